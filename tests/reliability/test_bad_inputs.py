"""Bad-input corpus: every kind of broken file or config next to a good experiment.

One table of :class:`Case` rows. Each case writes its bad input (synth generator plus direct HDF5
edits) into a folder that also holds a clean experiment, runs one ``extract`` over the folder and
checks

* the bad input's outcome: a specific failure naming the file, per-step NaN with error records
  naming file, step and feature, or a correct output;
* that the clean experiment is written and equal to its output from a run on its own;
* for every written experiment: no step-level value is NaN without an error record for that step
  and feature (nothing is lost silently).

The file cases run on the sync scheduler one by one, and once more all together on the session's
LocalCluster.
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import dask_features as dfe
from dask_features.engine.output import read_metadata
from tests.reliability.conftest import (
    copy_good,
    edit_h5,
    extract_one,
    replace_dataset,
    steps_frame,
    write_small,
)

TRANSFER_FEATURES = ("gm_max_forward", "Von_forward", "absI_max")  # step-level transfer features of v2_mixed
TRANSIENT_FEATURES = ("peak_current", "decay_time")
NO_TRANSIENT_DATA = "no finite current sample|fewer than 3 usable samples"

# --- expected outcomes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Failed:
    """The experiment is listed in ``result.failed`` with a reason naming the file; nothing written."""

    fragment: str


@dataclass(frozen=True)
class StepNaN:
    """The experiment is written; ``features`` are NaN at ``steps``, each with an error record.

    ``fragment`` may list alternatives separated by ``|`` (features word their reasons differently).
    """

    steps: Sequence[int]
    features: Sequence[str]
    fragment: str


@dataclass(frozen=True)
class Written:
    """The experiment is written; ``check(ctx)`` verifies its values and metadata."""

    check: Callable[[Ctx], None] | None = None


@dataclass(frozen=True)
class Raises:
    """``extract`` raises before any work: nothing is written."""

    exc: type[BaseException]
    fragment: str


Outcome = Failed | StepNaN | Written | Raises


@dataclass
class Ctx:
    """What a case's check sees after the run.

    Attributes
    ----------
    bad : list of Path
        The bad input files.
    result : ExtractionResult
        Result of the run over the whole folder.
    tmp : Path
        Scratch folder for reference runs.
    config : Any
        The config of the case.
    """

    bad: list[Path]
    result: dfe.ExtractionResult
    tmp: Path
    config: Any

    def steps(self, path: Path | None = None) -> pd.DataFrame:
        """Steps table written for ``path`` (default: the first bad file)."""
        return steps_frame(self.result.successful[str(path or self.bad[0])])

    def reference(self, build: Callable[[Path], Path]) -> pd.DataFrame:
        """Steps table of a reference file built by ``build(folder)`` and extracted on its own."""
        folder = self.tmp / f"ref-{len(list(self.tmp.glob('ref-*')))}"
        folder.mkdir()
        return extract_one(build(folder), self.config, folder / "out")


@dataclass(frozen=True)
class Case:
    """One kind of bad input.

    Attributes
    ----------
    name : str
        Test id.
    build : callable
        ``build(folder) -> list of Path``: writes the bad input(s) into ``folder``.
    expect : Outcome
        Expected outcome.
    config : Any
        Config to run (a preset name, a dict, or a callable ``(folder) -> config`` for YAML files).
    out : callable, optional
        ``out(tmp) -> Path``: the output folder (default ``tmp / "out"``).
    warns : str, optional
        A warning the run must emit (fragment of its message; the file's path must be in it too).
    """

    name: str
    build: Callable[[Path], list[Path]]
    expect: Outcome
    config: Any = "v2_mixed"
    out: Callable[[Path], Path] | None = field(default=None)
    warns: str | None = None


# --- builders --------------------------------------------------------------------------------


def _small(name: str, **kw: Any) -> Callable[[Path], list[Path]]:
    """Builder of one synthetic file ``<name>.h5`` with ``write_experiment`` options ``kw``."""
    return lambda folder: [write_small(folder / f"{name}.h5", **kw)]


def _edited(name: str, edit: Callable[[h5py.File], None], **kw: Any) -> Callable[[Path], list[Path]]:
    """Builder of a synthetic file ``<name>.h5`` changed in place by ``edit``."""
    return lambda folder: [edit_h5(write_small(folder / f"{name}.h5", **kw), edit)]


def _raw(name: str, content: bytes) -> Callable[[Path], list[Path]]:
    def build(folder: Path) -> list[Path]:
        path = folder / f"{name}.h5"
        path.write_bytes(content)
        return [path]

    return build


def _truncated(folder: Path) -> list[Path]:
    path = write_small(folder / "truncated.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # an interrupted copy
    return [path]


def _set_attr(key: str, value: Any) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        if value is None:
            del f.attrs[key]
        else:
            f.attrs[key] = value

    return edit


def _delete(*names: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        for name in names:
            del f[name]

    return edit


def _reshape(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[h5py.File], None]:
    return lambda f: replace_dataset(f, name, change(f[name][()]))


def _edit_transfer(step: int, change: Callable[[np.ndarray], None]) -> Callable[[h5py.File], None]:
    """Edit the (2, points) block of one transfer step."""

    def edit(f: h5py.File) -> None:
        ds = f["transfer/measurement_data"]
        block = ds[step]
        change(block)
        ds[step] = block

    return edit


def _edit_transient_table(
    column: str, step: int, value: Callable[[np.ndarray], int]
) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        ds = f["transient/step_info_table"]
        rows = ds[()]
        rows[column][step] = value(rows)
        ds[...] = rows

    return edit


def _all_nan_transient_step(f: h5py.File) -> None:
    table = f["transient/step_info_table"][()]
    a, b = int(table["start_data_index"][2]), int(table["end_data_index"][2])
    ds = f["transient/measurement_data"]
    block = ds[()]
    block[2, a:b] = np.nan
    ds[...] = block


def _scale_currents(factor: float) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        tr = f["transfer/measurement_data"]
        data = tr[()]
        data[:, 1, :] *= factor
        tr[...] = data
        ts = f["transient/measurement_data"]
        data = ts[()]
        data[2] *= factor
        ts[...] = data

    return edit


def _non_finite(value: float) -> Callable[[h5py.File], None]:
    """Put ``value`` into a few Id samples of transfer step 2 and of transient step 1."""

    def edit(f: h5py.File) -> None:
        tr = f["transfer/measurement_data"]
        data = tr[()]
        data[2, 1, [5, 17]] = value
        tr[...] = data
        ts = f["transient/measurement_data"]
        start = int(f["transient/step_info_table"][1]["start_data_index"])
        data = ts[()]
        data[2, start + 10] = value
        data[2, start + 130] = -value
        ts[...] = data

    return edit


def _workflow(text: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f["raw/workflow"]
        f["raw"].create_dataset("workflow", data=text, dtype=h5py.string_dtype())

    return edit


def _two(make: Callable[[Path, int], Path]) -> Callable[[Path], list[Path]]:
    return lambda folder: [make(folder, 0), make(folder, 1)]


def _yaml(text: str) -> Callable[[Path], Path]:
    """Config given as a YAML file written next to the data (``config`` callables get the folder)."""

    def write(folder: Path) -> Path:
        path = folder.parent / "config.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


# --- checks of written outputs ---------------------------------------------------------------


def _equals_reference(build: Callable[[Path], Path], *, drop: Sequence[str] = ()) -> Callable[[Ctx], None]:
    """The bad file's output equals that of ``build(folder)`` (the same data without the defect)."""

    def check(ctx: Ctx) -> None:
        got, want = ctx.steps().drop(columns=list(drop)), ctx.reference(build).drop(columns=list(drop))
        pd.testing.assert_frame_equal(got, want)

    return check


def _problem_recorded(fragment: str, *, same_as_clean: bool) -> Callable[[Ctx], None]:
    """A non-fatal problem of the file is in the output metadata; values are those of the clean file."""

    def check(ctx: Ctx) -> None:
        meta = read_metadata(ctx.result.successful[str(ctx.bad[0])])
        assert any(fragment in p for p in meta["problems"]), meta["problems"]
        if same_as_clean:
            pd.testing.assert_frame_equal(ctx.steps(), ctx.reference(lambda d: write_small(d / "x.h5")))

    return check


def _scaled(factor: float, *, von: bool = True) -> Callable[[Ctx], None]:
    """Currents times ``factor``: current-like features scale exactly (no float32 round trip, no
    overflow), ratios and, with ``von``, onset voltages do not change."""

    def check(ctx: Ctx) -> None:
        got, ref = ctx.steps(), ctx.reference(lambda d: write_small(d / "x.h5"))
        for col in ("gm_max_forward", "absI_max", "peak_current"):
            np.testing.assert_allclose(got[col], ref[col] * factor, rtol=1e-12, err_msg=col)
        if von:
            np.testing.assert_array_equal(got["Von_forward"], ref["Von_forward"])
        np.testing.assert_allclose(got["peak_to_absI"], ref["peak_to_absI"], rtol=1e-12)

    return check


def _ids_survive(ctx: Ctx) -> None:
    """Non-ASCII ids and names reach the output unchanged, and two such files do not collide."""
    chips = set()
    for path in ctx.bad:
        out = ctx.result.successful[str(path)]
        assert out.stem == path.stem  # the output keeps the (valid UTF-8) file name
        meta, exp = read_metadata(out), dfe.open_experiment(path)
        assert (meta["chip_id"], meta["test_id"], meta["description"]) == (
            exp.chip_id,
            exp.test_id,
            "Stabilität µA ✓",
        )
        chips.add(meta["chip_id"])
    assert chips == {"芯片-α", "晶片-β"}
    assert len({ctx.result.successful[str(p)] for p in ctx.bad}) == 2
    frame = dfe.read_features(ctx.result.out_dir, ctx.result.config_name)
    mine = frame[frame.source_file.isin([str(p) for p in ctx.bad])]
    assert mine.groupby("chip_id").size().to_dict() == {"芯片-α": 8, "晶片-β": 8}


def _numeric_ids(ctx: Ctx) -> None:
    meta = read_metadata(ctx.result.successful[str(ctx.bad[0])])
    assert (meta["chip_id"], meta["device_id"]) == ("20250804008", "3")  # digits, as strings
    exp = dfe.open_experiment(ctx.bad[0])
    assert isinstance(exp.attrs["chip_id"], int)  # the file really holds integers


def _both_written(ctx: Ctx) -> None:
    outs = [ctx.result.successful[str(p)] for p in ctx.bad]
    assert len(set(outs)) == 2
    metas = [read_metadata(o) for o in outs]
    assert {m["test_id"] for m in metas} == {"test_42"}
    assert [m["source_file"] for m in metas] == [str(p) for p in ctx.bad]
    a, b = (steps_frame(o) for o in outs)
    assert not a.equals(b)  # different data under the same test id: neither overwrote the other


def _p_type_auto(ctx: Ctx) -> None:
    got = ctx.steps()
    truth = dfe.synth.read_ground_truth(ctx.bad[0])["transfer"]
    # P device, polarity from the file: Von near the model's onset (grid 0.06 V)
    np.testing.assert_allclose(got["Von_forward"], truth["von_forward"], atol=0.061)


def _p_type_under_n(ctx: Ctx) -> None:
    errors = ctx.result.errors
    mine = errors[(errors.source_file == str(ctx.bad[0])) & (errors.feature == "Von_forward")]
    # An N-config on a P device gives a meaningless Von: it must at least be reported per step.
    assert sorted(mine.step_index) == list(range(8)), "Von of a P device under device_type N is not reported"
    assert mine.message.str.contains("P").all()


# --- the table -------------------------------------------------------------------------------

AUTO_VON = {
    "name": "auto_von",
    "features": [
        {
            "name": "Von_forward",
            "extractor": "transfer.Von",
            "params": {"direction": "forward", "device_type": "auto"},
        },
        {"name": "gm_max_forward", "extractor": "transfer.gm_max"},
    ],
}
N_VON = {
    **AUTO_VON,
    "name": "n_von",
    "features": [{**AUTO_VON["features"][0], "params": {"device_type": "N"}}],
}


def _non_ascii(folder: Path, i: int) -> Path:
    chip = ("芯片-α", "晶片-β")[i]  # differ only in non-ASCII characters
    return write_small(
        folder / f"{chip}-3-Stabilität_µA-test_ü{i}.h5",
        chip_id=chip,
        description="Stabilität µA ✓",
        test_id=f"test_ü{i}",
        seed=3 + i,
    )


def _duplicate_id(folder: Path, i: int) -> Path:
    return write_small(
        folder / f"chip{i}-1-dup-test_42.h5", test_id="test_42", chip_id=f"chip{i}", seed=4 + i
    )


CASES = [
    # --- files that cannot be read: the experiment fails, by name --------------------------
    Case("not_hdf5", _raw("notes", b"Vg,Id\n0.1,1e-6\n"), Failed("not an HDF5 file")),
    Case("empty_file", _raw("empty", b""), Failed("not an HDF5 file")),
    Case("hdf5_signature_then_garbage", _raw("garbage", b"\x89HDF\r\n\x1a\n" + b"\0" * 200), Failed("")),
    Case("truncated", _truncated, Failed("truncated")),
    Case(
        "wrong_format_version",
        _edited("v1", _set_attr("format_version", "1.0_legacy")),
        Failed("unsupported format_version '1.0_legacy'"),
    ),
    Case(
        "missing_format_version",
        _edited("nover", _set_attr("format_version", None)),
        Failed("no 'format_version' attribute"),
    ),
    Case(
        "no_measurement_groups",
        _edited("nogroups", _delete("transfer", "transient")),
        Failed("neither a 'transfer' nor a 'transient' group"),
    ),
    Case(
        "missing_transfer_group",
        _edited("notransfer", _delete("transfer")),
        Failed("no transfer steps, which config 'v2_transfer_basic' needs"),
        config="v2_transfer_basic",
    ),
    Case(
        "missing_transient_group",
        _edited("notransient", _delete("transient")),
        Failed("no transient steps, which config 'transient_tau' needs"),
        config="transient_tau",
    ),
    Case(
        "missing_dataset",
        _edited("nodata", _delete("transfer/measurement_data")),
        Failed("missing dataset 'transfer/measurement_data'"),
    ),
    Case(
        "wrong_transfer_shape",
        _edited(
            "shape3", _reshape("transfer/measurement_data", lambda a: np.concatenate([a, a[:, :1]], axis=1))
        ),
        Failed("transfer/measurement_data has shape (8, 3, 41), expected (n_steps, 2, max_points)"),
    ),
    Case(
        "wrong_transient_shape",
        _edited("shape2", _reshape("transient/measurement_data", lambda a: a[:2])),
        Failed("transient/measurement_data has shape (2, 3200), expected (3, total_points)"),
    ),
    Case(
        "wrong_dtype",
        _edited(
            "intdata",
            _reshape("transfer/measurement_data", lambda a: np.nan_to_num(a * 1e9).astype(np.int64)),
        ),
        Failed("has dtype int64, expected float"),
    ),
    Case(
        "index_table_row_count",
        _edited("rows", _reshape("transfer/step_info_table", lambda t: t[:-1])),
        Failed("transfer/step_info_table has 7 rows but measurement_data has 8 steps"),
    ),
    Case(
        "index_table_past_the_data",
        _edited(
            "range", _edit_transient_table("end_data_index", 7, lambda t: int(t["end_data_index"][7]) + 50)
        ),
        Failed("transient step 7 has sample range [2800, 3250) outside the data (0..3200)"),
    ),
    # --- readable files with bad steps: NaN for those steps, each recorded -----------------
    Case(
        "all_nan_transfer_step",
        _edited("allnan", _edit_transfer(3, lambda b: b.fill(np.nan))),
        StepNaN([3], TRANSFER_FEATURES, "no finite (Vg, Id) point"),
    ),
    Case(
        "single_point_step",
        _edited(
            "onepoint", _edit_transfer(4, lambda b: b.__setitem__((slice(None), slice(1, None)), np.nan))
        ),
        StepNaN([4], TRANSFER_FEATURES, "only 1 finite (Vg, Id) point"),
    ),
    Case(
        "empty_transient_step",
        _edited(
            "emptystep", _edit_transient_table("end_data_index", 2, lambda t: int(t["start_data_index"][2]))
        ),
        StepNaN([2], TRANSIENT_FEATURES, NO_TRANSIENT_DATA),
    ),
    Case(
        "all_nan_transient_step",
        _edited("nantransient", _all_nan_transient_step),
        StepNaN([2], TRANSIENT_FEATURES, NO_TRANSIENT_DATA),
    ),
    Case("nan_samples", _small("nansamples", defects={"nan_samples": 0.3}), Written()),
    Case("ragged_sweeps", _small("ragged", defects={"ragged": 0.4}), Written()),
    Case(
        "inf_values",
        _edited("inf", _non_finite(np.inf)),
        # An overflowed sample is a missing sample: same result as NaN in its place.
        Written(_equals_reference(lambda d: edit_h5(write_small(d / "x.h5"), _non_finite(np.nan)))),
    ),
    Case("huge_magnitudes", _edited("huge", _scale_currents(1e30)), Written(_scaled(1e30))),
    Case("tiny_magnitudes", _edited("tiny", _scale_currents(1e-30)), Written(_scaled(1e-30, von=False))),
    Case(
        "missing_index_columns",
        _small("noindex", index_columns=False),
        # Boundaries are recovered from original_time restarts: same values as with the columns.
        Written(_equals_reference(lambda d: write_small(d / "x.h5"))),
        warns="step boundaries inferred from original_time resets",
    ),
    Case("numeric_ids", _small("numeric", numeric_ids=True), Written(_numeric_ids)),
    Case("non_ascii_ids", _two(_non_ascii), Written(_ids_survive)),
    Case("duplicate_test_ids", _two(_duplicate_id), Written(_both_written)),
    Case(
        "workflow_not_json",
        _edited("wfjson", _workflow("[{not json")),
        Written(_problem_recorded("workflow is not valid JSON", same_as_clean=True)),
    ),
    Case(
        "workflow_unknown_step",
        _edited("wfstep", _workflow('[{"id": "s", "type": "sweep", "params": {}}]')),
        Written(_problem_recorded("unknown step type 'sweep'", same_as_clean=True)),
    ),
    Case(
        "p_type_under_auto_config", _small("ptype", device_type="P"), Written(_p_type_auto), config=AUTO_VON
    ),
    # --- configs: rejected before any work -------------------------------------------------
    Case(
        "yaml_cycle",
        lambda folder: [],
        Raises(dfe.ConfigError, "dependency cycle: a -> b -> a"),
        config=_yaml(
            """
            name: cyclic
            features:
              - {name: g, extractor: transfer.gm_max}
              - {name: a, func: "lambda x: x + 1", input: b}
              - {name: b, func: "lambda x: x * 2", input: a}
            """
        ),
    ),
    Case(
        "yaml_unknown_extractor",
        lambda folder: [],
        Raises(dfe.ConfigError, "transfer.gm_maximum"),
        config=_yaml("name: typo\nfeatures:\n  - {name: g, extractor: transfer.gm_maximum}\n"),
    ),
    Case(
        "yaml_unsafe_expression",
        lambda folder: [],
        Raises(dfe.ConfigError, "attribute '__class__' is not allowed"),
        config=_yaml(
            """
            name: evil
            features:
              - {name: g, extractor: transfer.gm_max}
              - {name: h, func: "lambda g: g.__class__", input: g}
            """
        ),
    ),
    Case(
        "output_folder_not_writable",
        lambda folder: [],
        Raises(dfe.OutputError, "not-a-folder"),
        out=lambda tmp: _blocking_file(tmp) / "out",
    ),
]


def _blocking_file(tmp: Path) -> Path:
    # A regular file where a folder should be: not writable even for root (chmod would not stop root).
    path = tmp / "not-a-folder"
    path.write_text("x")
    return path


def _colliding_names(folder: Path, i: int) -> Path:
    return write_small(folder / ("a b.h5", "a_b.h5")[i], seed=6 + i)


def _distinct_outputs(ctx: Ctx) -> None:
    outs = {ctx.result.successful[str(p)] for p in ctx.bad}
    assert len(outs) == 2, f"{[str(p) for p in ctx.bad]} were both written to {outs}"


FIXED_CASES = [
    pytest.param(
        # "a b" and "a_b" sanitise to the same stem: the second output silently replaces the first.
        Case("sanitised_names_collide", _two(_colliding_names), Written(_distinct_outputs)),
        id="sanitised_names_collide",
    ),
    pytest.param(
        Case(
            "p_type_under_n_config",
            _small("ptype_n", device_type="P"),
            Written(_p_type_under_n),
            config=N_VON,
        ),
        id="p_type_under_n_config",
    ),
    pytest.param(
        # Below oect-infra's 1e-12 A clip every log-slope is 0 and the argmax is the first point.
        Case(
            "tiny_currents_von",
            _edited("tiny_von", _scale_currents(1e-30)),
            StepNaN(range(8), ["Von_forward"], "1e-12"),
        ),
        id="tiny_currents_von",
    ),
    pytest.param(
        Case(
            "missing_transient_group_in_mixed",
            _edited("notransient_mixed", _delete("transient")),
            StepNaN(range(8), TRANSIENT_FEATURES, "transient"),
        ),
        id="missing_transient_group_in_mixed",
    ),
]


# --- the harness -----------------------------------------------------------------------------


def _step_columns(config: Any) -> dict[str, str]:
    """Output column -> feature name, for the config's step-level features."""
    cfg = dfe.load_config(config)
    cols: dict[str, str] = {}
    for f in cfg.step_features():
        out = f.output
        if out is None or out.kind == "ragged":
            continue
        names = [f.name] if out.kind == "scalar" else [f"{f.name}_{j}" for j in range(out.width or 0)]
        cols.update(dict.fromkeys(names, f.name))
    return cols


def assert_no_silent_nan(frame: pd.DataFrame, errors: pd.DataFrame, source: str, config: Any) -> None:
    """Every NaN of a step-level feature has an error record for that step and feature (or ``*``)."""
    mine = errors[errors.source_file == source]
    recorded = set(zip(mine.step_index, mine.feature, strict=True))
    for col, feature in _step_columns(config).items():
        if col not in frame:
            continue
        for step in frame.loc[frame[col].isna(), "step_index"]:
            assert (step, feature) in recorded or (step, "*") in recorded, (
                f"{source}: step {step} {col} is NaN with no error record"
            )


def _resolve_config(case: Case, folder: Path) -> Any:
    return case.config(folder) if callable(case.config) else case.config


def check_outcome(case: Case, ctx: Ctx, out: Path) -> None:
    """Assert the expected outcome of ``case`` on the run in ``ctx``."""
    res, expect = ctx.result, case.expect
    for path in ctx.bad:
        source = str(path)
        if isinstance(expect, Failed):
            assert source in res.failed, res.summary()
            reason = res.failed[source]
            assert source in reason, reason
            assert expect.fragment in reason, reason
            assert source not in res.successful
            continue
        assert source in res.successful, res.summary()
        frame = steps_frame(res.successful[source])
        assert len(frame) == 8
        assert_no_silent_nan(frame, res.errors, source, ctx.config)
        if isinstance(expect, StepNaN):
            errors = res.errors[res.errors.source_file == source]
            for feature in expect.features:
                assert frame.loc[frame.step_index.isin(expect.steps), feature].isna().all(), feature
                assert frame.loc[~frame.step_index.isin(expect.steps), feature].notna().all(), feature
                rows = errors[errors.feature.isin([feature, "*"])]
                assert set(expect.steps) <= set(rows.step_index), (feature, rows)
                assert all(any(a in m for a in expect.fragment.split("|")) for m in rows.message), (
                    rows.message.tolist()
                )
            steps_dir = out / res.config_name / "steps"
            errors_file = out / res.config_name / "errors" / res.successful[source].relative_to(steps_dir)
            on_disk = pq.read_table(errors_file).to_pandas()
            assert len(on_disk) == len(errors)
    if isinstance(expect, Written) and expect.check is not None:
        expect.check(ctx)


def run_case(case: Case, tmp: Path, good_file: Path, clean_steps: Callable[[Any], pd.DataFrame]) -> None:
    """Build the case's folder, run one extract over it and check everything."""
    data = tmp / "data"
    good = copy_good(good_file, data)
    bad = case.build(data)
    config = _resolve_config(case, data)
    out = case.out(tmp) if case.out else tmp / "out"
    if isinstance(case.expect, Raises):
        with pytest.raises(case.expect.exc, match=case.expect.fragment):
            dfe.extract(data, config, out, scheduler="sync", progress=False)
        assert not out.exists() or not list(out.rglob("*.parquet"))  # nothing was written
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = dfe.extract(data, config, out, scheduler="sync", progress=False)
    if case.warns is not None:
        assert any(case.warns in str(w.message) and str(bad[0]) in str(w.message) for w in caught), caught
    check_outcome(case, Ctx(bad, result, tmp, config), out)
    # The good experiment next to it: written, and exactly what a run on its own gives.
    assert set(result.successful) | set(result.failed) == {str(good), *map(str, bad)}
    pd.testing.assert_frame_equal(steps_frame(result.successful[str(good)]), clean_steps(config))
    assert_no_silent_nan(steps_frame(result.successful[str(good)]), result.errors, str(good), config)
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize(
    "case", [*CASES, *FIXED_CASES], ids=[c.name for c in CASES] + [p.id for p in FIXED_CASES]
)
def test_bad_input(
    case: Case, tmp_path: Path, good_file: Path, clean_steps: Callable[[Any], pd.DataFrame]
) -> None:
    run_case(case, tmp_path, good_file, clean_steps)


def test_corpus_is_complete() -> None:
    """The issue asks for at least 20 kinds of bad input, each with its outcome."""
    assert len(CASES) + len(FIXED_CASES) >= 20
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.cluster
def test_file_cases_together_on_a_cluster(
    tmp_path: Path, good_file: Path, clean_steps: Callable[[Any], pd.DataFrame], dask_client: object
) -> None:
    """Every v2_mixed file case in one folder, one run on the LocalCluster: the same outcomes."""
    cases = [
        c for c in CASES if c.config == "v2_mixed" and c.out is None and not isinstance(c.expect, Raises)
    ]
    data = tmp_path / "data"
    good = copy_good(good_file, data)
    built: dict[str, list[Path]] = {}
    for case in cases:
        folder = data / case.name  # one sub-folder each: names never clash
        folder.mkdir()
        built[case.name] = case.build(folder)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        # Expected findings (old files without index columns) are asserted by the sync cases.
        warnings.simplefilter("ignore")
        result = dfe.extract(data, "v2_mixed", out, client=dask_client, progress=False)
    for case in cases:
        scratch = tmp_path / "scratch" / case.name
        scratch.mkdir(parents=True)
        check_outcome(case, Ctx(built[case.name], result, scratch, "v2_mixed"), out)
    pd.testing.assert_frame_equal(steps_frame(result.successful[str(good)]), clean_steps("v2_mixed"))
    assert len(result.successful) + len(result.failed) == 1 + sum(len(v) for v in built.values())
    assert not list(out.rglob("*.tmp"))
