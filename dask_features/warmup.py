"""Compile and cache everything that is compiled on first use, once, at install time.

The tau fit's kernels are compiled by numba the first time they run (seconds) and cached on disk
(next to the package, or in ``NUMBA_CACHE_DIR`` / numba's user cache when the package folder is
read-only). Running every shipped preset once on a tiny generated experiment fills that cache, so
no user's first extraction, and no freshly started Dask worker, pays for the compilation:

.. code-block:: bash

    python -m dask_features.warmup

``make`` runs it after installing. What remains on a process's first tau fit is numba's own import
and start-up (loading the cached machine code), a fraction of a second.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

__all__ = ["warm_up"]


def warm_up() -> dict[str, float]:
    """Run every shipped preset once on a one-step generated experiment.

    Returns
    -------
    dict of str to float
        Wall time of each preset's run [s] (the first ones include compilation when the cache was
        cold).
    """
    from dask_features import extract, list_presets, synth

    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dask-features-warmup-") as tmp:
        path = synth.write_experiment(
            Path(tmp), n_transfer=1, n_transient=1, transient_samples=1000, seed=0, test_id="test_warmup"
        )
        for preset in list_presets():
            t0 = time.perf_counter()
            extract(path, preset, Path(tmp) / "out", progress=False, force=True)
            times[preset] = time.perf_counter() - t0
    return times


if __name__ == "__main__":
    for name, seconds in warm_up().items():
        print(f"{name}: {seconds:.2f} s")
