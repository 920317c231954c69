"""Soft links on the way to what is read: followed when they lead somewhere, named when they do not.

HDF5 answers a soft link that points at nothing with a bare KeyError and a loop with a bare
RuntimeError, naming neither the file nor the link; a chain longer than the storage check follows
was read unchecked (external data included).
"""

from __future__ import annotations

import functools
import logging
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from dask_features import synth
from dask_features.errors import DaskFeaturesError, ExperimentFormatError, MissingGroupError
from dask_features.io import hdf5, open_experiment
from dask_features.io._safety import _MAX_SOFT_LINKS

Edit = Callable[[h5py.File], None]


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("links")
    return synth.write_experiment(
        folder, n_transfer=5, n_transient=5, sweep_points=21, transient_samples=200, seed=8
    )


@pytest.fixture
def copy(original: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(original, tmp_path / original.name))


def _edit(path: Path, edit: Edit) -> None:
    with h5py.File(path, "r+") as f:
        edit(f)


def _relink(name: str, target: str) -> Edit:
    """``name`` (a dataset or group) replaced by a soft link to ``target``."""

    def edit(f: h5py.File) -> None:
        del f[name]
        f[name] = h5py.SoftLink(target)

    return edit


def _loop(name: str) -> Edit:
    """``name`` -> ``/loop_b`` -> ``/name``."""

    def edit(f: h5py.File) -> None:
        del f[name]
        f[name] = h5py.SoftLink("/loop_b")
        f["loop_b"] = h5py.SoftLink(f"/{name}")

    return edit


def _chain(name: str, hops: int, end: str | h5py.ExternalLink | None = None) -> Edit:
    """``name`` reached through ``hops`` soft links: ``name`` -> ``/c{hops-1}`` -> ... -> ``/c1``
    -> ``/c0``, where ``c0`` is what ``name`` was (moved there), or ``end`` (a link) when given."""

    def edit(f: h5py.File) -> None:
        if end is None:
            f.move(name, "c0")
        else:
            del f[name]
            f["c0"] = end if isinstance(end, h5py.ExternalLink) else h5py.SoftLink(end)
        for i in range(1, hops):
            f[f"c{i}"] = h5py.SoftLink(f"/c{i - 1}")
        f[name] = h5py.SoftLink(f"/c{hops - 1}")

    return edit


def _alias_to_nothing(f: h5py.File) -> None:
    # The outer link's target goes through a good link, then finds nothing: the outer link is named.
    f["alias"] = h5py.SoftLink("/")
    _relink("transient", "/alias/gone")(f)


#: A required object behind a soft link that cannot be followed: (edit, error, message).
BROKEN = {
    "dangling-dataset": (
        _relink("transfer/measurement_data", "/nowhere"),
        MissingGroupError,
        "soft link 'transfer/measurement_data' -> '/nowhere' points at nothing",
    ),
    "dangling-group": (
        _relink("transfer", "/nowhere"),
        MissingGroupError,
        "soft link 'transfer' -> '/nowhere' points at nothing",
    ),
    "self-loop-relative": (
        _relink("transfer/measurement_data", "measurement_data"),
        ExperimentFormatError,
        "soft links loop at 'transfer/measurement_data'",
    ),
    "two-link-loop": (_loop("transfer"), ExperimentFormatError, "soft links loop at 'transfer'"),
    "too-many-hops": (
        _chain("transfer", _MAX_SOFT_LINKS + 1),
        ExperimentFormatError,
        f"soft link 'transfer' -> '/c{_MAX_SOFT_LINKS}' leads through more than {_MAX_SOFT_LINKS} soft links",
    ),
}


@pytest.mark.parametrize(("edit", "error", "message"), list(BROKEN.values()), ids=list(BROKEN))
def test_a_required_object_behind_a_broken_soft_link_is_a_named_error(
    copy: Path, edit: Edit, error: type[Exception], message: str
) -> None:
    _edit(copy, edit)
    with pytest.raises(error) as info:
        open_experiment(copy)
    assert str(info.value) == f"{copy}: {message}"  # the file, the link and what is wrong, once
    assert isinstance(info.value, DaskFeaturesError)
    assert isinstance(info.value, KeyError if error is MissingGroupError else ValueError)
    assert pickle.loads(pickle.dumps(info.value)).args == info.value.args  # crosses to the client


def test_a_chain_too_long_to_check_is_refused_before_its_external_end_is_read(
    copy: Path, tmp_path: Path
) -> None:
    # HDF5 follows up to 16 soft links: a chain of 9 to an external link once read the other file.
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as g, h5py.File(copy, "r") as f:
        g["data"] = f["transfer/measurement_data"][()] * 0 + 1e-3
    _edit(
        copy,
        _chain("transfer/measurement_data", _MAX_SOFT_LINKS + 1, h5py.ExternalLink(str(outside), "/data")),
    )
    with pytest.raises(ExperimentFormatError, match=f"more than {_MAX_SOFT_LINKS} soft links"):
        open_experiment(copy)
    _edit(copy, lambda f: f.__delitem__(f"c{_MAX_SOFT_LINKS}"))  # one hop less: the external link is seen
    _edit(copy, _relink("transfer/measurement_data", f"/c{_MAX_SOFT_LINKS - 1}"))
    with pytest.raises(
        ExperimentFormatError, match="refused: reads data outside the file: 'c0' is an external link"
    ):
        open_experiment(copy)


def _relative(f: h5py.File) -> None:
    f.move("transient/measurement_data", "transient/stored")
    f["transient/measurement_data"] = h5py.SoftLink("stored")  # relative to its group


def _through_alias(f: h5py.File) -> None:
    f.move("transient", "stored")
    f["alias"] = h5py.SoftLink("/")
    f["transient"] = h5py.SoftLink("/alias/stored")


GOOD = {
    "longest-chain": _chain("transfer", _MAX_SOFT_LINKS),
    "relative": _relative,
    "through-alias": _through_alias,
}


@pytest.mark.parametrize("edit", list(GOOD.values()), ids=list(GOOD))
def test_soft_links_that_lead_to_the_data_are_followed(original: Path, copy: Path, edit: Edit) -> None:
    _edit(copy, edit)
    linked, plain = open_experiment(copy), open_experiment(original)
    assert linked.problems == plain.problems == ()
    np.testing.assert_array_equal(linked.read_transfer(0, 5).id, plain.read_transfer(0, 5).id)
    np.testing.assert_array_equal(linked.read_transient(0, 5).current, plain.read_transient(0, 5).current)


#: The optional workflow behind a soft link that cannot be followed: (edit, problem).
BROKEN_WORKFLOW = {
    "dangling": (
        _relink("raw/workflow", "/nowhere"),
        "soft link 'raw/workflow' -> '/nowhere' points at nothing",
    ),
    "dangling-group": (_relink("raw", "/nowhere"), "soft link 'raw' -> '/nowhere' points at nothing"),
    "loop": (_relink("raw/workflow", "workflow"), "soft links loop at 'raw/workflow'"),
    "too-many-hops": (
        _chain("raw/workflow", _MAX_SOFT_LINKS + 1),
        f"soft link 'raw/workflow' -> '/c{_MAX_SOFT_LINKS}' leads through more than {_MAX_SOFT_LINKS} soft links",
    ),
}


@pytest.mark.parametrize(("edit", "problem"), list(BROKEN_WORKFLOW.values()), ids=list(BROKEN_WORKFLOW))
def test_a_broken_soft_link_to_the_optional_workflow_is_a_problem_of_the_file(
    original: Path,
    copy: Path,
    edit: Edit,
    problem: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As an unparsable workflow: the file is read without it (its data is all there).
    _edit(copy, edit)
    with caplog.at_level(logging.WARNING, logger="dask_features.io.opening"):
        linked = open_experiment(copy)
    assert linked.problems == (f"{copy}: {problem}",)
    assert f"{copy}: {problem}; workflow ignored" in caplog.messages
    assert linked.workflow is None
    without = Path(shutil.copy(original, copy.with_name("without-workflow.h5")))
    _edit(without, lambda f: f.__delitem__("raw/workflow"))
    reference = open_experiment(without)
    elsewhere = pickle.loads(pickle.dumps(linked))
    for handle in (linked, elsewhere):
        if handle is elsewhere:  # as in a worker process, which checks the file again before reading
            monkeypatch.setattr(hdf5, "_CHECKED", set())
        np.testing.assert_array_equal(handle.read_transfer(0, 5).id, reference.read_transfer(0, 5).id)
        got, want = handle.read_transient(0, 5), reference.read_transient(0, 5)
        np.testing.assert_array_equal(got.current, want.current)
        np.testing.assert_array_equal(got.period, want.period)


#: The transient data behind a soft link that cannot be followed: (edit, error, problem).
BROKEN_TRANSIENT = {
    "dangling-group": (
        _relink("transient", "/nowhere"),
        MissingGroupError,
        "soft link 'transient' -> '/nowhere' points at nothing",
    ),
    "dangling-data": (
        _relink("transient/measurement_data", "/nowhere"),
        MissingGroupError,
        "soft link 'transient/measurement_data' -> '/nowhere' points at nothing",
    ),
    "dangling-table": (
        _relink("transient/step_info_table", "missing_table"),
        MissingGroupError,
        "soft link 'transient/step_info_table' -> 'missing_table' points at nothing",
    ),
    "dangling-through-alias": (
        _alias_to_nothing,
        MissingGroupError,
        "soft link 'transient' -> '/alias/gone' points at nothing",
    ),
    "self-loop-group": (
        _relink("transient", "/transient"),
        ExperimentFormatError,
        "soft links loop at 'transient'",
    ),
}


@pytest.mark.parametrize(
    ("edit", "error", "problem"), list(BROKEN_TRANSIENT.values()), ids=list(BROKEN_TRANSIENT)
)
def test_transient_data_behind_a_broken_soft_link_is_unavailable_and_the_transfer_data_is_read(
    original: Path,
    copy: Path,
    edit: Edit,
    error: type[Exception],
    problem: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The transfer sweeps are all there: a reader that needs no transient data reads them; the
    # transient part is reported as unavailable with the reason, not a bare KeyError or a failure.
    _edit(copy, edit)
    with caplog.at_level(logging.WARNING, logger="dask_features.io.opening"):
        linked = open_experiment(copy, sources=["transfer"])
    assert f"{copy}: {problem}; transient data unavailable" in caplog.messages
    assert open_experiment(copy) == linked  # open_experiment(path) reports it too
    assert linked.transient_unavailable == problem
    assert linked.problems == (f"{copy}: {problem}; transient data unavailable",)
    assert (linked.n_transient_steps, linked.transient_total_points) == (0, 0)  # none can be read
    plain = open_experiment(original)
    elsewhere = pickle.loads(pickle.dumps(linked))
    for handle in (linked, elsewhere):
        if handle is elsewhere:  # as in a worker process, which checks the file again before reading
            monkeypatch.setattr(hdf5, "_CHECKED", set())
        np.testing.assert_array_equal(handle.read_transfer(0, 5).id, plain.read_transfer(0, 5).id)
        # Asked for anyway: the named error, not a step range outside [0, 0).
        for read in (
            functools.partial(handle.read_transient, 0, 1),
            handle.transient_table,
            functools.partial(handle.transient_bounds, 0, 1),
        ):
            with pytest.raises(MissingGroupError) as info:
                read()
            assert str(info.value) == f"{copy}: {problem}"
    # A reader that needs the transient data: the file fails as before, naming the link.
    with pytest.raises(error) as failed:
        open_experiment(copy, sources=["transfer", "transient"])
    assert str(failed.value) == f"{copy}: {problem}"


def test_a_file_whose_only_data_is_behind_a_broken_soft_link_fails(copy: Path) -> None:
    _edit(copy, lambda f: f.__delitem__("transfer"))
    _edit(copy, _relink("transient", "/nowhere"))
    with pytest.raises(MissingGroupError) as info:
        open_experiment(copy, sources=["transfer"])
    assert str(info.value) == f"{copy}: soft link 'transient' -> '/nowhere' points at nothing"


def _external(name: str, target: Path | str, obj: str) -> Edit:
    """``name`` replaced by an external link to ``obj`` in file ``target``."""

    def edit(f: h5py.File) -> None:
        del f[name]
        f[name] = h5py.ExternalLink(str(target), obj)

    return edit


def test_an_allowed_external_link_that_points_at_nothing_is_named(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inside the allowed folder, the target is followed: one that is not there is the same problem
    # as a dangling soft link (HDF5 said "missing dataset 'transient/measurement_data'", or a bare
    # KeyError for the workflow).
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.h5").write_text("not HDF5")
    with h5py.File(shared / "other.h5", "w") as g:
        g["x"] = 1
    missing, absent, garbage = (
        (shared / "gone.h5", "/transient", "points at nothing (no such file)"),
        (shared / "other.h5", "/transient", "cannot be followed (object 'transient' doesn't exist)"),
        (shared / "notes.h5", "/transient", "cannot be followed (file signature not found)"),
    )
    for target, obj, why in (missing, absent, garbage):
        _edit(copy, _external("transient", target, obj))
        problem = f"external link 'transient' -> '{target}:{obj}' {why}"
        linked = open_experiment(copy, allow_external_in=str(shared), sources=["transfer"])
        assert linked.transient_unavailable == problem
        assert linked.n_transfer_steps == 5
        with pytest.raises(MissingGroupError) as info:
            open_experiment(copy, allow_external_in=str(shared), sources=["transient"])
        assert str(info.value) == f"{copy}: {problem}"
    # A relative name (HDF5 looks next to the file, then in the working directory: both allowed),
    # and the optional workflow (a problem of the file).
    monkeypatch.chdir(copy.parent)
    _edit(copy, _external("raw/workflow", "gone.h5", "/workflow"))
    linked = open_experiment(copy, allow_external_in=str(copy.parent), sources=["transfer"])
    assert (
        f"{copy}: external link 'raw/workflow' -> 'gone.h5:/workflow' points at nothing (no such file)"
        in (linked.problems)
    )
    assert linked.workflow is None
    # Required transfer data: the file fails, naming the link.
    _edit(copy, _external("transfer/measurement_data", shared / "gone.h5", "/data"))
    with pytest.raises(MissingGroupError) as info:
        open_experiment(copy, allow_external_in=str(tmp_path), sources=["transfer"])
    assert str(info.value) == (
        f"{copy}: external link 'transfer/measurement_data' -> '{shared / 'gone.h5'}:/data' "
        "points at nothing (no such file)"
    )


def test_an_external_link_outside_the_allowed_folder_is_refused_even_where_it_would_not_be_read(
    copy: Path, tmp_path: Path
) -> None:
    # The rule of the project: a file that points outside its folders is refused whole (as for the
    # optional workflow), whether or not the target exists and whether or not this reader needs it.
    _edit(copy, _external("transient", tmp_path / "elsewhere" / "gone.h5", "/transient"))
    with pytest.raises(
        ExperimentFormatError, match="refused: reads data outside the file: 'transient' is an external link"
    ):
        open_experiment(copy, sources=["transfer"])
