"""Every row says where it came from, for any Parquet reader (issue cases 4 and 5)."""

from __future__ import annotations

import warnings
from pathlib import Path

import dask.dataframe as dd
import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import dask_features as dfe
from dask_features.engine.names import experiment_stem

IDS = ["chip_id", "device_id", "test_id", "experiment"]
# A per-experiment-width vector (stored as a list column), a scalar, a derived feature and a ragged one.
CONFIG = {
    "name": "mixed_kinds",
    "features": [
        {"name": "gm", "extractor": "transfer.gm_max"},
        {"name": "cycles", "extractor": "transient.cycles"},
        {"name": "cycle_mean", "func": "lambda c: np.nanmean(c, axis=1)", "input": "cycles"},
        {"name": "tau", "extractor": "transient.tau_on_off"},
    ],
}


@pytest.fixture(scope="module")
def extracted(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("readers")
    assert dfe.extract(dataset, CONFIG, out, scheduler="sync", progress=False).ok
    return out / "mixed_kinds"


def _read(reader: str, folder: Path) -> pd.DataFrame:
    if reader == "pandas":
        return pd.read_parquet(folder)
    if reader == "pyarrow":
        return ds.dataset(folder, format="parquet").to_table().to_pandas()
    if reader == "dask":
        with warnings.catch_warnings():  # dask's own use of a pandas API deprecated in pandas 3.1
            warnings.simplefilter("ignore", DeprecationWarning)
            return dd.read_parquet(folder).compute()
    if reader == "polars":
        return pl.read_parquet(folder / "*.parquet").to_pandas()
    return duckdb.sql(f"SELECT * FROM read_parquet('{folder}/*.parquet')").df()


@pytest.mark.parametrize("table", ["steps", "cycles"])
@pytest.mark.parametrize("reader", ["pandas", "pyarrow", "dask", "polars", "duckdb"])
def test_every_reader_gets_identity_columns(extracted: Path, reader: str, table: str) -> None:
    frame = _read(reader, extracted / table)
    assert list(frame.columns[:5]) == [*IDS, "step_index"]
    assert frame[IDS].notna().all().all()
    # Three experiments, each one's steps told apart (the old files had 3 x step_index and nothing else).
    assert frame["experiment"].nunique() == 3
    assert frame.groupby("experiment")["test_id"].nunique().eq(1).all()
    if table == "steps":
        assert len(frame) == 3 * 24
        assert not frame.duplicated(["experiment", "step_index"]).any()
        assert {"gm", "cycles", "cycle_mean"} <= set(frame.columns)  # no column silently dropped
    else:
        assert not frame.duplicated(["experiment", "step_index", "cycle"]).any()


def test_one_schema_across_experiments(extracted: Path) -> None:
    for table in ("steps", "cycles"):
        schemas = {pq.read_schema(p).remove_metadata() for p in (extracted / table).glob("*.parquet")}
        assert len(schemas) == 1, table


def test_read_features_spreads_list_columns(extracted: Path) -> None:
    frame = dfe.read_features(extracted.parent, CONFIG)
    width = max(len(v) for v in pd.read_parquet(extracted / "steps")["cycles"])
    assert [f"cycles_{j}" for j in range(width)] == [c for c in frame.columns if c.startswith("cycles_")]
    assert frame.columns[4] == "source_file"


def test_output_names_are_url_safe(extracted: Path) -> None:
    files = sorted((extracted / "steps").glob("*.parquet"))
    assert len(files) == 3
    for path in files:
        assert not set("#?%:") & set(path.name)
        # "file://.../#chip.parquet" used to read the whole folder: all after "#" is a URL fragment.
        frame = pd.read_parquet("file://" + str(path))
        assert frame["experiment"].nunique() == 1
        assert len(frame) == 24
        meta = dfe.engine.output.read_metadata(path)
        assert experiment_stem(meta["source_file"], str(Path(meta["source_file"]).parent)) == path.stem


@pytest.mark.parametrize(
    "name",
    [
        "#chip-1-test.h5",
        "a?b.h5",
        "50%.h5",
        "C:x.h5",
        "CON.h5",
        "nul.txt.h5",
        "_hidden.h5",
        ".dot.h5",
        "芯片 1.h5",
    ],
)
def test_names_are_safe_unique_and_stable(name: str, tmp_path: Path) -> None:
    stem = experiment_stem(str(tmp_path / name), str(tmp_path))
    assert not set("#?%: ") & set(stem)
    assert not stem.startswith((".", "_"))
    assert stem.split(".")[0].upper() not in {"CON", "NUL"}
    # Independent of which other files are extracted with it, and never shared with a look-alike.
    assert experiment_stem(str(tmp_path / name), str(tmp_path)) == stem
    twin = name.replace("#", "_").replace("?", "_").replace("%", "_").replace(":", "_").replace(" ", "_")
    if twin != name:
        assert experiment_stem(str(tmp_path / twin), str(tmp_path)) != stem
