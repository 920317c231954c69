"""End to end: real HDF5 files, a real LocalCluster, real Parquet."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import dask_features as dfe
from dask_features.engine.output import read_metadata
from dask_features.errors import ExperimentNotFoundError
from dask_features.extractors import Registry, register
from dask_features.io import StepBoundaryWarning

CONFIGS = ["v2_transfer_basic", "v2_mixed", "transient_tau"]


def _frames(out: Path, config: str) -> dict[str, pd.DataFrame]:
    frames = {t: dfe.read_features(out, config, table=t) for t in ("steps", "cycles")}
    return {
        t: f.sort_values([c for c in ("test_id", "step_index", "cycle") if c in f]).reset_index(drop=True)
        for t, f in frames.items()
    }


@pytest.mark.cluster
@pytest.mark.parametrize("config", CONFIGS)
def test_modes_workers_and_chunking_agree(
    dataset: Path, tmp_path: Path, dask_client: object, config: str
) -> None:
    runs = {
        "cluster-step-auto": {"client": dask_client},
        "cluster-experiment": {"client": dask_client, "mode": "experiment"},
        "cluster-step-chunk5": {"client": dask_client, "chunk_steps": 5},
        "one-worker-sync": {"scheduler": "sync"},
    }
    results = {}
    for name, kwargs in runs.items():
        res = dfe.extract(dataset, config, tmp_path / name, progress=False, **kwargs)
        assert res.ok, res.summary()
        assert len(res.successful) == 3
        results[name] = _frames(tmp_path / name, config)
    first = results.pop("cluster-step-auto")
    assert len(first["steps"]) == 3 * 24
    for name, frames in results.items():
        for table in ("steps", "cycles"):
            pd.testing.assert_frame_equal(frames[table], first[table], obj=f"{name}/{table}")


def test_output_layout_and_metadata(dataset: Path, tmp_path: Path) -> None:
    res = dfe.extract(dataset, "v2_transfer_basic", tmp_path, scheduler="sync", progress=False)
    cfg = dfe.load_config("v2_transfer_basic")
    for source, steps_file in res.successful.items():
        table = pq.read_table(steps_file)
        ids = ["chip_id", "device_id", "test_id", "experiment"]
        assert table.column_names == [*ids, "step_index", *[f.name for f in cfg.features]]
        assert table.schema.field("step_index").type == "int64"
        meta = read_metadata(steps_file)
        exp = dfe.open_experiment(source)
        assert meta["config_hash"] == cfg.hash
        assert meta["config_name"] == "v2_transfer_basic"
        assert meta["source_file"] == source
        assert (meta["source_size"], meta["source_mtime_ns"]) == (exp.file_size, exp.file_mtime_ns)
        assert meta["test_id"] == exp.test_id
        assert table.column("test_id").unique().to_pylist() == [exp.test_id]
        assert table.column("experiment").unique().to_pylist() == [meta["experiment"]]
        assert meta["package_version"] == dfe.__version__
        assert steps_file.parent == tmp_path / "v2_transfer_basic" / "steps"
    frame = dfe.read_features(tmp_path, "v2_transfer_basic")
    assert list(frame.columns[:6]) == [
        "chip_id",
        "device_id",
        "test_id",
        "experiment",
        "source_file",
        "step_index",
    ]
    lazy = dfe.read_features(tmp_path, "v2_transfer_basic", as_dask=True)
    assert lazy.npartitions == 3
    pd.testing.assert_frame_equal(lazy.compute().reset_index(drop=True), frame)


@pytest.mark.parametrize("preset", ["v2_mixed", "v2_transient_cycles"])
def test_only_string_columns_are_dictionary_encoded(preset: str, defective: Path, tmp_path: Path) -> None:
    """Strings repeat (identity columns, error messages); numbers are written plain, with statistics."""
    res = dfe.extract(defective, preset, tmp_path, scheduler="sync", progress=False)
    assert res.n_errors
    files = list((tmp_path / preset).glob("*/*.parquet"))
    assert {f.parent.name for f in files} >= {"steps", "errors"}
    for path in files:
        meta = pq.ParquetFile(path).metadata
        schema = pq.read_schema(path)
        for i in range(meta.num_columns):
            column = meta.row_group(0).column(i)
            top = column.path_in_schema.split(".")[0]
            assert ("RLE_DICTIONARY" in column.encodings) == (schema.field(top).type == "string"), column
            assert column.is_stats_set


def test_vector_features_are_expanded(dataset: Path, tmp_path: Path) -> None:
    config = {
        "name": "vec",
        "features": [
            {"name": "gm", "extractor": "transfer.gm_max", "params": {"direction": "both"}},
            {"name": "coords", "extractor": "transfer.gm_max_coords", "params": {"direction": "forward"}},
            {"name": "mean_gm", "func": "lambda g: np.mean(g, axis=1)", "input": "gm"},
        ],
    }
    dfe.extract(dataset, config, tmp_path, scheduler="sync", progress=False)
    frame = dfe.read_features(tmp_path, "vec")
    assert {"gm_0", "gm_1", "coords_0", "coords_1", "mean_gm"} <= set(frame.columns)
    np.testing.assert_allclose(frame["mean_gm"], (frame["gm_0"] + frame["gm_1"]) / 2)


def test_resume_force_and_config_change(dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    out = tmp_path / "out"
    first = dfe.extract(data, "v2_transfer_basic", out, scheduler="sync", progress=False)
    assert len(first.successful) == 3
    again = dfe.extract(data, "v2_transfer_basic", out, scheduler="sync", progress=False)
    assert (len(again.successful), len(again.skipped)) == (0, 3)
    # A file only touched (same content) is still up to date: resume compares content.
    touched = sorted(data.glob("*.h5"))[0]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    partial = dfe.extract(data, "v2_transfer_basic", out, scheduler="sync", progress=False)
    assert (len(partial.successful), len(partial.skipped)) == (0, 3)
    forced = dfe.extract(data, "v2_transfer_basic", out, scheduler="sync", force=True, progress=False)
    assert len(forced.successful) == 3
    # Same name, different content: not skipped (the old tool skipped anything with any features).
    modified = {
        "name": "v2_transfer_basic",
        "features": [
            {"name": "gm_max_forward", "extractor": "transfer.gm_max", "params": {"direction": "reverse"}}
        ],
    }
    other = dfe.extract(data, modified, out, scheduler="sync", progress=False)
    assert len(other.successful) == 3
    assert list(dfe.read_features(out, "v2_transfer_basic").columns)[-1] == "gm_max_forward"


@pytest.mark.parametrize(
    "options",
    [{"scheduler": "sync"}, {"scheduler": "processes", "workers": 2, "mode": "experiment"}],
    ids=["client-opens", "tasks-open"],
)
def test_files_behind_broken_soft_links_fail_alone_and_a_rerun_resumes(
    dataset: Path, tmp_path: Path, options: dict[str, object]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    small = {"n_transfer": 4, "n_transient": 4, "sweep_points": 21, "transient_samples": 200}
    loop = dfe.synth.write_experiment(data / "loop-test_1.h5", seed=1, **small)
    dangling = dfe.synth.write_experiment(data / "dangling-test_2.h5", seed=2, **small)
    with h5py.File(loop, "r+") as f:
        f.move("transfer", "stored")
        f["transfer"] = h5py.SoftLink("/transfer")
    _soft_link(dangling, "raw/workflow", "/nowhere")
    out = tmp_path / "out"

    def run() -> dfe.ExtractionResult:
        return dfe.extract(data, "v2_transfer_basic", out, progress=False, **options)  # type: ignore[arg-type]

    first = run()
    assert first.failed == {str(loop): f"{loop}: soft links loop at 'transfer'"}
    assert len(first.successful) == 4  # the others, the one without its (optional) workflow included
    again = run()
    assert (again.failed, len(again.successful), len(again.skipped)) == (first.failed, 0, 4)
    with h5py.File(loop, "r+") as f:  # mended: only it is computed
        del f["transfer"]
        f.move("stored", "transfer")
    mended = run()
    assert (mended.failed, list(mended.successful), len(mended.skipped)) == ({}, [str(loop)], 4)


@pytest.mark.parametrize(
    "options",
    [{"scheduler": "sync"}, {"scheduler": "processes", "workers": 2, "mode": "experiment"}],
    ids=["client-opens", "tasks-open"],
)
def test_transient_data_behind_a_dangling_link_fail_only_the_configs_that_need_them(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, object]
) -> None:
    # The transfer sweeps of such a file are all there: a transfer-only config reads them (they
    # were lost with the whole file); a config that reads transient data fails the file alone,
    # naming it and the link.
    data, plain = tmp_path / "data", tmp_path / "plain"
    shutil.copytree(dataset, data)
    small = {"n_transfer": 4, "n_transient": 4, "sweep_points": 21, "transient_samples": 200}
    soft = dfe.synth.write_experiment(plain / "soft-test_2.h5", seed=2, **small)
    soft = Path(shutil.copy(soft, data / soft.name))
    _soft_link(soft, "transient", "/nowhere")
    external = dfe.synth.write_experiment(data / "external-test_3.h5", seed=3, **small)
    moved = data / "moved" / "transient.h5"  # inside the allowed folder, but not there
    with h5py.File(external, "r+") as f:
        del f["transient"]
        f["transient"] = h5py.ExternalLink(str(moved), "/transient")
    monkeypatch.setenv("DASK_FEATURES_ALLOW_EXTERNAL_IN", str(data))

    def run(config: str, where: Path = data) -> dfe.ExtractionResult:
        return dfe.extract(where, config, tmp_path / f"{where.name}-out", progress=False, **options)  # type: ignore[arg-type]

    transfer = run("v2_transfer_basic")
    assert (transfer.failed, len(transfer.successful)) == ({}, 5)
    run("v2_transfer_basic", plain)  # the same file, unlinked
    got, want = (
        dfe.read_features(tmp_path / f"{where}-out", "v2_transfer_basic").query(
            "experiment.str.startswith('soft')"
        )
        for where in ("data", "plain")
    )
    assert len(got) == 4
    pd.testing.assert_frame_equal(
        got.drop(columns="source_file").reset_index(drop=True),
        want.drop(columns="source_file").reset_index(drop=True),
    )
    for config in ("transient_tau", "v2_mixed"):
        needs = run(config)
        assert needs.failed == {
            str(soft): f"{soft}: soft link 'transient' -> '/nowhere' points at nothing",
            str(
                external
            ): f"{external}: external link 'transient' -> '{moved}:/transient' points at nothing (no such file)",
        }
        assert len(needs.successful) == 3  # the other files of the run


@pytest.mark.cluster
def test_bad_steps_cost_only_themselves(defective: Path, tmp_path: Path, dask_client: object) -> None:
    res = dfe.extract(defective, "v2_mixed", tmp_path, client=dask_client, progress=False)
    assert res.ok, res.summary()
    frame = dfe.read_features(tmp_path, "v2_mixed")
    bad = frame[frame.test_id == "test_900"]
    good = frame[frame.test_id == "test_901"]
    assert len(bad) == len(good) == 24
    assert good["gm_max_forward"].notna().all()
    truth = dfe.synth.read_ground_truth(next(defective.glob("*test_900.h5")))
    # NaN samples and aborted sweeps are data: most of those steps still give a value.
    assert bad["gm_max_forward"].notna().mean() > 0.7
    empty = (
        truth["transient"].query("empty_steps")["step_index"] if "empty_steps" in truth["transient"] else []
    )
    if len(empty):
        assert bad.set_index("step_index").loc[list(empty), "peak_current"].isna().all()
        assert set(empty) <= set(res.errors.query("test_id == 'test_900'")["step_index"])


def test_corrupt_file_among_good_ones(dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    (data / "broken-test_666.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (data / "notes-test_667.h5").write_text("not hdf5")
    res = dfe.extract(data, "v2_transfer_basic", tmp_path / "out", scheduler="sync", progress=False)
    assert len(res.successful) == 3
    assert set(map(os.path.basename, res.failed)) == {"broken-test_666.h5", "notes-test_667.h5"}
    assert all(os.path.basename(p) in reason for p, reason in res.failed.items())


def test_extractor_failures_are_isolated_per_step(dataset: Path, tmp_path: Path) -> None:
    registry = Registry()

    @register("test.fragile", source="transfer", registry=registry)
    def fragile(chunk, *, bad_step: int = 3):  # type: ignore[no-untyped-def]
        if bad_step in chunk.step_index:
            raise FloatingPointError("cannot handle this sweep")
        return chunk.lengths.astype(float)

    @register("test.per_step", source="transfer", per_step=True, registry=registry)
    def per_step(vg, id, *, limit: float = 0.0):  # type: ignore[no-untyped-def]
        if len(vg) < 41:
            raise ValueError("short")
        return float(np.max(np.abs(id)))

    config = dfe.load_config(
        {
            "name": "fragile",
            "features": [
                {"name": "n", "extractor": "test.fragile"},
                {"name": "imax", "extractor": "test.per_step"},
                {"name": "bad_derived", "func": "lambda n: n[:3]", "input": "n"},
            ],
        },
        registry=registry,
    )
    res = dfe.extract(dataset, config, tmp_path, scheduler="sync", chunk_steps=10, progress=False)
    assert res.ok
    frame = dfe.read_features(tmp_path, "fragile")
    assert frame.loc[frame.step_index == 3, "n"].isna().all()
    assert frame.loc[frame.step_index != 3, "n"].eq(41).all()
    assert frame["imax"].notna().all()
    assert frame["bad_derived"].isna().all()
    errors = res.errors
    step3 = errors[(errors.feature == "n")]
    assert sorted(step3.step_index) == [3, 3, 3]
    assert step3.message.str.contains("FloatingPointError: cannot handle this sweep").all()
    derived = errors[errors.feature == "bad_derived"]
    assert len(derived) == 3
    assert derived.message.str.contains("one value").all()
    written = dfe.read_features(tmp_path, "fragile", table="errors")
    assert len(written) == len(errors)


def test_output_folder_not_writable(dataset: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    with pytest.raises(dfe.OutputError, match="file-not-folder"):
        dfe.extract(dataset, "v2_transfer_basic", blocked / "out", scheduler="sync", progress=False)


def test_invalid_config_fails_before_any_work(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(dfe.ConfigError, match="unknown input"):
        dfe.extract(
            dataset,
            {"name": "x", "features": [{"name": "a", "func": "lambda b: b", "input": "b"}]},
            tmp_path / "o",
        )
    assert not (tmp_path / "o").exists()


def test_result_reports_timings(dataset: Path, tmp_path: Path) -> None:
    res = dfe.extract(dataset, "v2_transfer_basic", tmp_path, scheduler="threads", workers=2, progress=False)
    assert set(res.timings) == set(res.successful) == set(res.compute_seconds)
    assert res.total_seconds >= max(res.timings.values())
    assert "3 written" in res.summary()
    assert json.loads(json.dumps({k: str(v) for k, v in res.successful.items()}))


@pytest.mark.cluster
@pytest.mark.timeout(120)
def test_back_to_back_runs_on_one_cluster(dataset: Path, tmp_path: Path, dask_client: object) -> None:
    # Graph keys were once derived from the file and config only: a rerun reused keys the scheduler
    # was still forgetting, lost its futures and hung.
    for mode in ("step", "experiment", "step", "step"):
        res = dfe.extract(
            dataset, "v2_transfer_basic", tmp_path, client=dask_client, mode=mode, force=True, progress=False
        )
        assert len(res.successful) == 3


def _mixed_inputs(dataset: Path, folder: Path, elsewhere: Path) -> Path:
    """The dataset plus files each failing differently (or warning), some sorting before the good ones."""
    shutil.copytree(dataset, folder)
    (folder / "a-broken-test_666.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (folder / "z-notes-test_667.h5").write_text("not hdf5")
    small = {"sweep_points": 21, "transient_samples": 300, "seed": 3}
    dfe.synth.write_experiment(folder / "z-no-transient-test_668.h5", n_transfer=4, n_transient=0, **small)
    dfe.synth.write_experiment(
        folder / "z-old-test_669.h5", n_transfer=4, n_transient=6, index_columns=False, **small
    )
    linked = dfe.synth.write_experiment(folder / "z-linked-test_670.h5", n_transfer=4, n_transient=6, **small)
    elsewhere.mkdir()
    with h5py.File(linked, "r+") as f, h5py.File(elsewhere / "target.h5", "w") as g:
        g["data"] = f["transfer/measurement_data"][()]
        del f["transfer/measurement_data"]
        f["transfer/measurement_data"] = h5py.ExternalLink(str(elsewhere / "target.h5"), "/data")
    for (
        name,
        link,
        target,
    ) in (  # soft links that cannot be followed: HDF5 raises a bare KeyError or RuntimeError
        ("z-loop-test_671.h5", "transient", "/transient"),
        ("z-dangling-test_672.h5", "transfer/measurement_data", "/nowhere"),
        ("z-no-workflow-test_673.h5", "raw/workflow", "/nowhere"),  # optional: a problem, not a failure
    ):
        _soft_link(
            dfe.synth.write_experiment(folder / name, n_transfer=4, n_transient=6, **small), link, target
        )
    return folder


def _soft_link(path: Path, name: str, target: str) -> None:
    """Replace object ``name`` of file ``path`` by a soft link to ``target``."""
    with h5py.File(path, "r+") as f:
        del f[name]
        f[name] = h5py.SoftLink(target)


#: Runs whose tasks open their files (whole-file tasks), by name: extract() options.
TASKS_OPEN = {
    "cluster": {"mode": "experiment"},  # client added in the test
    "processes": {"scheduler": "processes", "workers": 2},  # 8 files >= 4 per worker: whole files
    "sync": {"scheduler": "sync", "mode": "experiment"},
}


@pytest.mark.parametrize("runner", list(TASKS_OPEN))
def test_files_opened_by_tasks_are_checked_and_reported_as_by_the_client(
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    runner: str,
) -> None:
    # Whole-file tasks open their files themselves (on the workers); everything the user sees must
    # be what a client that opens every file itself reports (a run in chunks of steps): failures
    # (same words), refusals, warnings, outputs. The allowed folder is set in the client's
    # environment only.
    options: dict[str, object] = dict(TASKS_OPEN[runner])
    if runner == "cluster":
        options["client"] = request.getfixturevalue("dask_client")
    data = _mixed_inputs(dataset, tmp_path / "data", tmp_path / "elsewhere")
    for allowed in (None, str(tmp_path / "elsewhere")):
        if allowed:
            monkeypatch.setenv("DASK_FEATURES_ALLOW_EXTERNAL_IN", allowed)
        seen = {}
        for name, kwargs in {
            "client-opens": {"scheduler": "sync", "chunk_steps": 50},
            runner: options,
        }.items():
            out = tmp_path / f"{name}-{bool(allowed)}"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = dfe.extract(data, "transient_tau", out, progress=False, **kwargs)  # type: ignore[arg-type]
            messages = sorted(str(w.message) for w in caught if issubclass(w.category, StepBoundaryWarning))
            seen[name] = (
                res.failed,
                sorted(res.successful),
                messages,
                _frames(out, "transient_tau")["steps"],
            )
        reference, tasks = seen["client-opens"], seen[runner]
        assert tasks[:3] == reference[:3]
        pd.testing.assert_frame_equal(tasks[3], reference[3])
        failed = {os.path.basename(p): why for p, why in reference[0].items()}
        assert set(failed) == {
            "a-broken-test_666.h5",
            "z-notes-test_667.h5",
            "z-no-transient-test_668.h5",
            "z-loop-test_671.h5",
            "z-dangling-test_672.h5",
        } | (set() if allowed else {"z-linked-test_670.h5"})
        assert (
            failed["z-loop-test_671.h5"] == f"{data / 'z-loop-test_671.h5'}: soft links loop at 'transient'"
        )
        assert failed["z-dangling-test_672.h5"] == (
            f"{data / 'z-dangling-test_672.h5'}: soft link 'transfer/measurement_data' -> '/nowhere' points at nothing"
        )
        assert str(data / "z-no-workflow-test_673.h5") in reference[1]
        assert (
            "no transient steps, which config 'transient_tau' needs" in failed["z-no-transient-test_668.h5"]
        )
        assert len(reference[2]) == 1
        assert "z-old-test_669.h5" in reference[2][0]


def test_a_folder_without_experiment_files_is_an_error_not_an_empty_run(tmp_path: Path) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an experiment")
    with pytest.raises(ExperimentNotFoundError, match="no experiment files"):
        dfe.extract(empty, "v2_transfer_basic", tmp_path / "out", scheduler="sync", progress=False)
    assert not (tmp_path / "out").exists()
    # An empty list (a catalog query that found nothing) is a run of nothing, as before.
    assert dfe.extract([], "v2_transfer_basic", tmp_path / "out2", scheduler="sync", progress=False).ok
