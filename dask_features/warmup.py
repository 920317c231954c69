"""Compile the numba kernels once, at install time, so no process compiles or imports numba later.

.. code-block:: bash

    python -m dask_features.warmup

``make`` runs it after installing. It

1. compiles every kernel ahead of time into one extension module (:func:`dask_features._build.build`,
   about half a minute): a fresh process, or a freshly started Dask worker, then runs the tau and
   robust transfer kernels without importing numba (which alone takes ~0.5 s) or loading any cached
   machine code. The module is written to the package folder if writable, else to
   ``$NUMBA_CACHE_DIR/dask_features`` (or ``$XDG_CACHE_HOME/dask_features``, ``~/.cache/dask_features``);
   ``DASK_FEATURES_KERNEL_DIR`` names another folder. Its name carries a hash of the kernel sources,
   of the Python, NumPy and numba versions and of the CPU's features, so editing a kernel, upgrading
   one of them or running on another CPU makes it ignored (until the next warm-up) rather than wrong;
2. runs every shipped preset once on a tiny generated experiment. With the compiled module this
   takes seconds and checks that every kernel call uses it; any call that still needs numba's JIT
   (no C compiler, ``numba.pycc`` missing, an argument type the module was not built for) is compiled
   here and cached on disk (next to the package, or in ``NUMBA_CACHE_DIR``), as before.

Without the compiled module everything works as before, through numba's JIT and its on-disk cache.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

from dask_features.errors import DaskFeaturesWarning

__all__ = ["build_kernels", "warm_up"]


def build_kernels() -> Path | None:
    """Build the ahead-of-time kernel module (kept if already built); None with a warning if impossible."""
    from dask_features import _build

    try:
        return _build.build()
    except Exception as exc:  # any failure (no numba.pycc, no C compiler) leaves the JIT path
        warnings.warn(
            f"the numba kernels could not be compiled ahead of time ({type(exc).__name__}: {exc}); "
            "they will be compiled by numba's JIT on first use instead (cached on disk)",
            DaskFeaturesWarning,
            stacklevel=2,
        )
        return None


def warm_up() -> dict[str, float]:
    """Build the compiled kernels, then run every shipped preset once on a one-step generated experiment.

    Returns
    -------
    dict of str to float
        Wall time of the build and of each preset's run [s] (a preset run includes JIT compilation
        when a kernel could not use the compiled module and numba's cache was cold).
    """
    from dask_features import extract, list_presets, synth

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    built = build_kernels()
    if built is not None:
        times["compiled kernels"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="dask-features-warmup-") as tmp:
        path = synth.write_experiment(
            Path(tmp), n_transfer=1, n_transient=1, transient_samples=1000, seed=0, test_id="test_warmup"
        )
        for preset in list_presets():
            t0 = time.perf_counter()
            extract(path, preset, Path(tmp) / "out", progress=False, force=True)
            times[preset] = time.perf_counter() - t0
    return times


def main() -> int:
    """Command line: warm up and print what was done."""
    from dask_features import _compiled

    for name, seconds in warm_up().items():
        print(f"{name}: {seconds:.2f} s")
    path = _compiled.find()
    print(f"compiled kernels: {path}" if path else "compiled kernels: none (numba's JIT is used)")
    jit = _compiled.jit_fallbacks()
    if path is not None and jit:
        print(f"kernels that still use numba's JIT: {', '.join(jit)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
