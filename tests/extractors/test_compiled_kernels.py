"""The extractors' numba kernels compiled ahead of time against numba's JIT (``dask_features._compiled``)."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dask_features import _build, _compiled
from dask_features.extractors import _robust_kernels as rk
from dask_features.extractors import _slope_kernels as sk
from dask_features.extractors.tau import _anchored as anchored
from dask_features.extractors.tau import _kernels as tk

#: Presets whose extractors call the compiled kernels.
PRESETS = ("transient_tau", "transfer_robust", "v2_transient_cycles", "v2_transfer_basic")

#: Run in a fresh interpreter: extract PRESETS from one generated experiment and print what was used.
_EXTRACT = """
import hashlib, json, sys
from pathlib import Path
import pyarrow.parquet as pq
import dask_features as dfe
from dask_features import _compiled, synth

tmp = Path(sys.argv[1])
path = synth.write_experiment(tmp, n_transfer=3, n_transient=3, transient_samples=2000, seed=3, test_id="aot")
digest = hashlib.sha256()
for preset in sys.argv[2].split(","):
    dfe.extract(path, preset, tmp / "out", progress=False, force=True)
    for f in sorted((tmp / "out" / preset).rglob("*.parquet")):
        table = pq.read_table(f)
        for name in table.column_names:
            values = table.column(name).to_numpy(zero_copy_only=False)
            data = values.tobytes() if values.dtype.kind in "fiub" else repr(values.tolist()).encode()
            digest.update(name.encode() + data)
print(json.dumps({"numba": "numba" in sys.modules, "jit": _compiled.jit_fallbacks(), "digest": digest.hexdigest()}))
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled kernel module: the installed one (``python -m dask_features.warmup``), else built here."""
    path = _compiled.find()
    if path is not None:
        return path
    pytest.importorskip("numba.pycc", reason="numba.pycc is not available: no ahead-of-time compilation")
    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler: numba.pycc cannot build the kernel module")
    return _build.build(tmp_path_factory.mktemp("kernels"))


def _extract(kernel_dir: Path, tmp: Path) -> dict[str, Any]:
    env = {**os.environ, _compiled.DIR_ENV: str(kernel_dir)}
    tmp.mkdir(exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", _EXTRACT, str(tmp), ",".join(PRESETS)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _same_bits(a: Any, b: Any) -> bool:
    """Whether two kernel results are identical bit for bit (arrays, scalars and tuples of them)."""
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same_bits, a, b))
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _compare(kern: _compiled.Kernel, module: Any, args: tuple[Any, ...]) -> None:
    """Run ``kern`` compiled and JIT on copies of ``args``; results and written arguments must agree."""
    assert kern.accepts(args), f"{kern.name}: the arguments do not match {kern.signature}"
    fn = getattr(module, _compiled.export_name(kern.name))
    aot_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    jit_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    aot, jit = fn(*aot_args), kern.dispatcher()(*jit_args)
    assert _same_bits(aot, jit), kern.name
    for i, (x, y) in enumerate(zip(aot_args, jit_args, strict=True)):
        assert _same_bits(x, y), f"{kern.name}: argument {i} written differently"


def test_importing_the_kernel_modules_does_not_import_numba() -> None:
    code = "import sys\n" + "".join(f"import {m}\n" for m in _compiled.KERNEL_MODULES)
    code += "import dask_features.extractors\nprint('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _sweeps(log: bool, reduction: int) -> tuple[Any, ...]:
    """Three up-down sweeps (turning at column 3) with ties, a repeated Vg and sub-clip currents."""
    vg = np.tile([0.0, 0.5, 0.5, 1.0, 0.5, 0.0, -0.5], (3, 1))
    id_ = np.array(
        [
            [0.0, 1e-13, 2e-6, 4e-6, 2e-6, 1e-6, 0.0],
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            [-3.0, 2.0, -1.0, 0.0, 1.0, -2.0, 3.0],
        ]
    )
    return vg, id_, 3, log, reduction, 1e-12, 1e-12, np.zeros((3, 2)), np.zeros((3, 2), np.int64)


def _ranges() -> tuple[Any, ...]:
    x = np.array([[1.0, -2.0, np.nan, 4.0], [np.nan, np.nan, np.nan, np.nan], [0.5, -0.0, 3.0, 1e30]])
    return x, np.array([0, 0, 1], np.int64), np.array([4, 4, 3], np.int64)


@pytest.mark.parametrize(
    ("kern", "make"),
    [
        (rk.signed_range, lambda: (*_ranges(), np.zeros((3, 2)))),
        (rk.extremes, lambda: (*_ranges(), np.zeros((3, 2)), np.zeros((3, 2), np.int64))),
        (rk.rows_equal_first, lambda: (np.array([[1.0, np.nan], [1.0, np.nan]]),)),
        (rk.rows_equal_first, lambda: (np.array([[1.0, np.nan], [1.0, 2.0]]),)),
        # Flat rows divide by a zero span: inf/NaN (error_model="numpy"), not ZeroDivisionError.
        (tk.group_start, lambda: (np.ones((3, 12)), np.array([0, 1, 1], np.int64))),
        *(
            (sk.half_slope_extremes, lambda r=r, log=log: _sweeps(log, r))
            for log in (False, True)
            for r in range(3)
        ),
    ],
    ids=[
        "signed_range",
        "extremes",
        "rows_equal",
        "rows_differ",
        "zero_division",
        *(f"half_slope_extremes-{q}-{r}" for q in ("gm", "dlog") for r in ("max", "min", "absmax")),
    ],
)
def test_small_kernels_compiled_equal_jit(compiled: Path, kern: _compiled.Kernel, make: Any) -> None:
    _compare(kern, _compiled.load(compiled), make())


@pytest.mark.parametrize(
    "x",
    [
        np.asfortranarray(_ranges()[0]),  # not C-contiguous
        _ranges()[0].astype(np.float32),  # another dtype
        np.repeat(_ranges()[0], 2, axis=1)[:, ::2],  # a strided view
    ],
    ids=["fortran", "float32", "strided"],
)
def test_arguments_of_other_types_take_the_jit_path(compiled: Path, x: np.ndarray) -> None:
    _, start, stop = _ranges()
    args = (x, start, stop, np.zeros((3, 2)))
    assert not rk.signed_range.accepts(args)
    rk.signed_range(*args)
    assert rk.signed_range.used_jit
    expected = np.zeros((3, 2))
    _compiled.load(compiled).extractors__robust_kernels__signed_range(
        np.ascontiguousarray(x, np.float64), start, stop, expected
    )
    np.testing.assert_array_equal(args[3], expected)


def test_compiled_kernels_release_the_gil(compiled: Path) -> None:
    fit_rows = _compiled.load(compiled).extractors_tau__kernels__fit_rows
    y = np.exp(-np.arange(300) / 20.0) + 0.01 * np.random.default_rng(0).standard_normal((3000, 300))
    started, done, spins = threading.Event(), threading.Event(), [0]

    def fit() -> None:
        started.set()
        fit_rows(y, np.full(len(y), np.nan), 30, 1e-5)
        done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(
        10.0
    )  # the fitting thread keeps the GIL from set() to the call unless it releases it
    try:
        worker = threading.Thread(target=fit)
        worker.start()
        started.wait()
        while not done.is_set():  # counts only while the fit has released the GIL
            spins[0] += 1
            time.sleep(0)  # hand the GIL back as soon as the fit returns
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert spins[0] > 0


def test_a_stale_or_missing_module_is_never_loaded(compiled: Path, tmp_path: Path) -> None:
    assert _compiled.find([tmp_path]) is None
    # A module built from other sources (another key in its name) is ignored.
    shutil.copy(compiled, tmp_path / compiled.name.replace(_compiled.key(), "0" * len(_compiled.key())))
    assert _compiled.find([tmp_path]) is None
    assert _compiled.find([compiled.parent]) == compiled


def test_a_fresh_process_extracts_without_numba(compiled: Path, tmp_path: Path) -> None:
    used = _extract(compiled.parent, tmp_path)
    assert used["jit"] == []
    assert not used["numba"]


def test_a_damaged_module_warns_and_the_jit_computes(tmp_path: Path) -> None:
    name = _compiled.module_name() + importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / name).write_bytes(b"not a shared library")
    code = (
        "import warnings, numpy as np\n"
        "from dask_features.extractors import _robust_kernels as rk\n"
        "out = np.zeros((1, 2))\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    rk.signed_range(np.array([[3.0, -1.0]]), np.array([0]), np.array([2]), out)\n"
        "print(out.tolist(), rk.signed_range.used_jit, [str(x.message).split(' (')[0] for x in w])"
    )
    env = {**os.environ, _compiled.DIR_ENV: str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[[-1.0, 3.0]] True ['cannot load the compiled kernels']"


@pytest.mark.cluster
def test_workers_resolve_the_same_module(dask_client: Any) -> None:
    if _compiled.find() is None:
        pytest.skip("no compiled kernels in the default folders (python -m dask_features.warmup builds them)")

    def resolve() -> tuple[str, bool]:
        from dask_features import _compiled
        from dask_features.extractors.tau import _kernels

        return str(_compiled.find()), _kernels.fit_rows.compiled() is not None

    for found, resolved in dask_client.run(resolve).values():  # type: ignore[attr-defined]
        assert (found, resolved) == (str(_compiled.find()), True)


@pytest.mark.slow
def test_without_the_module_the_jit_gives_the_same_values(compiled: Path, tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    stale.mkdir()
    shutil.copy(compiled, stale / compiled.name.replace(_compiled.key(), "0" * len(_compiled.key())))
    aot, jit = _extract(compiled.parent, tmp_path / "aot"), _extract(stale, tmp_path / "jit")
    assert jit["numba"]
    assert jit["jit"]
    assert jit["digest"] == aot["digest"]


@pytest.mark.slow
def test_every_kernel_compiled_equals_jit_on_the_calls_of_real_extractions(
    compiled: Path, tmp_path: Path
) -> None:
    import dask_features as dfe
    from dask_features import synth
    from dask_features.extractors.tau import tau_on_off

    path = synth.write_experiment(tmp_path, n_transfer=4, n_transient=4, transient_samples=3000, seed=5)
    with _compiled.recording() as calls:
        for preset in PRESETS:
            dfe.extract(path, preset, tmp_path / "out", progress=False, force=True, scheduler="sync")
        # Degenerate rows: constant, all zero, a single spike (singular fits, NaN results).
        y = np.zeros((3, 40))
        y[0] += 1.0
        y[2, 7] = 1.0
        tk.fit_rows(y, np.full(3, np.nan), 30, 1e-5)
        tk.fit_rows_drift(y, np.full(3, np.nan), 30, 1e-5)
        tk.row_diagnostics(y, np.array([np.nan, 0.1, 2.0]), np.zeros(3), np.ones(3), 3)
        # Fast transitions anchored on the plateau before them (tau of 1.4 samples).
        rng = np.random.default_rng(1)
        u = np.arange(20.0)
        y = 0.2 + 0.8 * np.exp(-0.7 * (u + 0.3)) + 0.01 * rng.standard_normal((6, 20))
        pre = 1.0 + 0.01 * rng.standard_normal((6, 8))
        delta, k = anchored.edge_delay(y.mean(axis=0), float(pre.mean()))
        anchored.anchored_fit(y, pre, np.full(6, delta), np.full(6, k))
        # The same with a drifting baseline (tau_on_off's baseline="drift"), and one such extraction.
        drift = 0.002 * np.arange(-8.0, 20.0)
        y, pre = y + drift[8:], pre + drift[:8]
        delta, k = anchored.edge_delay_drift(y.mean(axis=0), float(pre.mean()), 8)
        anchored.anchored_fit_drift(y, pre, np.full(6, delta), np.full(6, k))
        tau_on_off(dfe.open_experiment(path).read_transient(0, 4), baseline="drift")
    module = _compiled.load(compiled)
    seen = set()
    for kern, args in calls:
        _compare(kern, module, args)
        seen.add(kern.name)
    exported = {k.name for k in _compiled.kernels() if k.signature is not None}
    assert seen == exported


def test_preload_looks_up_every_kernel_before_any_call(compiled: Path) -> None:
    # What a run does before forking workers (engine.streams): afterwards no kernel resolves lazily.
    code = (
        "import sys\n"
        "from dask_features import _compiled\n"
        "from dask_features.io import _read\n"
        "import dask_features.extractors.transfer\n"
        "_read.preload()\n"
        "assert 'dask_features.io._raw' in sys.modules\n"
        "_compiled.preload()\n"
        "ks = [k for k in _compiled.kernels() if k.signature]\n"
        "print(len(ks) > 0, all(k._compiled is not None and k._compiled is not _compiled._UNRESOLVED for k in ks))"
    )
    env = {**os.environ, _compiled.DIR_ENV: str(compiled.parent)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
