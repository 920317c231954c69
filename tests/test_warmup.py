"""The install-time warm-up (``python -m dask_features.warmup``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dask_features import _compiled, warmup
from dask_features.errors import DaskFeaturesWarning


def test_no_writable_folder_warns_and_leaves_the_jit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(_compiled.DIR_ENV, str(blocker / "kernels"))  # cannot be created
    with pytest.warns(DaskFeaturesWarning, match="JIT"):
        assert warmup.build_kernels() is None


@pytest.mark.slow
def test_warm_up_builds_the_module_and_every_preset_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_compiled.DIR_ENV, str(tmp_path))
    pytest.importorskip("numba.pycc")
    times = warmup.warm_up()
    assert "compiled kernels" in times
    assert _compiled.find() is not None
    assert [p.name for p in tmp_path.iterdir()] == [_compiled.find().name]  # type: ignore[union-attr]


def test_make_rebuilds_the_kernels_when_any_kernel_module_changes() -> None:
    """The Makefile's KERNELS (prerequisites of the warm-up) are exactly the sources of the key."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "Makefile").read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("KERNELS :="))
    listed = set(line.removeprefix("KERNELS :=").split())
    modules = {m.replace(".", "/") + ".py" for m in _compiled.KERNEL_MODULES}
    assert listed == modules | {
        "dask_features/_compiled.py",
        "dask_features/_build.py",
        "dask_features/_kernel_types.py",
    }


def test_key_versions_come_from_beside_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``.dist-info`` in an earlier ``sys.path`` entry that does not hold the package (the working
    folder of a notebook) is neither listed nor believed."""
    import importlib.metadata

    expected = importlib.metadata.version("numba")
    (tmp_path / "numba-0.0.1.dist-info").mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    listed: list[str] = []
    real = os.listdir

    def spy(path: str = ".") -> list[str]:
        listed.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", spy)
    _compiled._dist_infos.cache_clear()
    try:
        assert _compiled._version("numba") == expected
        assert listed
        assert str(tmp_path) not in listed
    finally:
        _compiled._dist_infos.cache_clear()


@pytest.mark.parametrize("dist", ["numba", "llvmlite", "numpy", "no-such-distribution"])
def test_key_versions_are_the_installed_ones(dist: str) -> None:
    """The key reads versions from folder names; they must be what the installer recorded."""
    import importlib.metadata

    try:
        expected = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        expected = "-"
    assert _compiled._version(dist) == expected
