"""CPU time of the cycles extractor's peak finder against ``scipy.signal.find_peaks`` (issue 16).

``transient.cycles`` (preset ``v2_transient_cycles``) searches the peaks of every step with
:func:`dask_features.extractors._peaks.find_peaks`, which returns what SciPy's ``find_peaks`` returns
without importing SciPy. Two measures, on generated square-wave OECT transients with noise
(``synth.signals.noisy_square_wave``, |I| with the extractor's floor sample appended):

1. one ``find_peaks`` call per step, this finder vs SciPy's (``distance=10`` and the preset's
   prominence), per step length;
2. the whole extractor on a chunk of steps (what a task computes), run on this finder and then on
   SciPy's, in ns per sample: the ``cost`` the extractor is registered with.

CPU time of this process (``time.process_time``), runs interleaved, best of ``--repeat``; the
results are also checked to be identical. The first call in a fresh process (imports) is measured by
``bench_startup.py --only first --presets v2_transient_cycles``.

Usage: ``python benchmarks/bench_peaks.py [--quick] [--repeat N]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import signal

from dask_features.extractors import _peaks, transient
from dask_features.io.chunks import TransientChunk
from dask_features.synth.signals import noisy_square_wave

PERIOD = 200  # samples per gate period (the generator's default: 0.2 s at 1 ms)


def scipy_peaks(x: np.ndarray, distance: float, prominence: float) -> tuple[np.ndarray, np.ndarray]:
    idx, props = signal.find_peaks(x, distance=distance, prominence=prominence)
    return idx, props["prominences"]


def step(n: int, rng: np.random.Generator) -> np.ndarray:
    """Signed current of one transient step (P-type: negative), rounded to 0.1 nA [A]."""
    y, _ = noisy_square_wave(
        np.arange(n, dtype=np.float64), period=float(PERIOD), tau_on=15.0, tau_off=25.0, i_low=1e-7,
        i_high=1e-6, snr_db=float(rng.uniform(25, 45)), phase=float(rng.uniform(0, PERIOD)), rng=rng,
    )  # fmt: skip
    return -np.round(y, 10)


def cpu(fn: Callable[[], Any]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def bench_calls(lengths: list[int], n_steps: int, repeat: int) -> None:
    print(f"\n== one find_peaks call per step (distance=10), CPU us per step, best of {repeat} ==")
    rng = np.random.default_rng(0)
    for n in lengths:
        inputs = [transient.peak_search_input(step(n, rng), None) for _ in range(n_steps)]
        for x, p in inputs:  # identical results (and compiled/JIT code loaded before timing)
            a, b = _peaks.find_peaks(x, 10, p), scipy_peaks(x, 10, p)
            assert np.array_equal(a[0], b[0])
            assert a[1].tobytes() == b[1].tobytes()
        ours, theirs = [], []
        for _ in range(repeat):
            ours.append(cpu(lambda inputs=inputs: [_peaks.find_peaks(x, 10, p) for x, p in inputs]))
            theirs.append(cpu(lambda inputs=inputs: [scipy_peaks(x, 10, p) for x, p in inputs]))
        o, t = min(ours) / n_steps * 1e6, min(theirs) / n_steps * 1e6
        peaks = np.mean([_peaks.local_maxima(x, np.empty(len(x) // 2 + 1, np.int64)) for x, _ in inputs[:5]])
        print(
            f"  {n:6d} samples (~{peaks:5.0f} local maxima): ours {o:7.1f} us  scipy {t:7.1f} us  "
            f"ratio ours/scipy {o / t:4.2f}"
        )


def chunk_of(n_steps: int, n: int, rng: np.random.Generator) -> TransientChunk:
    current = np.concatenate([step(n, rng) for _ in range(n_steps)])
    return TransientChunk(
        step_index=np.arange(n_steps),
        time=np.arange(len(current)) * 1e-3,
        current=current,
        offsets=np.arange(n_steps + 1, dtype=np.int64) * n,
        period=np.full(n_steps, PERIOD * 1e-3),
        time_step=np.full(n_steps, 1e-3),
        duty=np.full(n_steps, 0.5),
    )


def bench_extractor(lengths: list[int], samples: int, repeat: int) -> None:
    print(f"\n== transient.cycles (preset parameters) on a chunk, CPU ns per sample, best of {repeat} ==")
    rng = np.random.default_rng(1)
    own = _peaks.find_peaks
    for n in lengths:
        n_steps = max(1, samples // n)
        chunk = chunk_of(n_steps, n, rng)
        ours, theirs = [], []
        for _ in range(repeat):
            _peaks.find_peaks = own
            ours.append(cpu(lambda chunk=chunk: transient.cycles(chunk)))
            _peaks.find_peaks = scipy_peaks  # the extractor as it was
            theirs.append(cpu(lambda chunk=chunk: transient.cycles(chunk)))
        got = transient.cycles(chunk)
        _peaks.find_peaks = own
        assert got.tobytes() == transient.cycles(chunk).tobytes()
        o, t = min(ours) / (n_steps * n) * 1e9, min(theirs) / (n_steps * n) * 1e9
        print(
            f"  {n_steps:5d} steps x {n:6d} samples: ours {o:5.1f} ns/sample ({o * n / 1e3:6.1f} us/step)  "
            f"scipy {t:5.1f} ns/sample ({t * n / 1e3:6.1f} us/step)  ratio {o / t:4.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--quick", action="store_true", help="fewer steps and repeats (what `make bench` runs)"
    )
    args = parser.parse_args()
    lengths = [2000, 5000, 20_000]
    steps, samples, repeat = (50, 1_000_000, 3) if args.quick else (300, 5_000_000, args.repeat)
    bench_calls(lengths, steps, repeat)
    bench_extractor(lengths, samples, repeat)


if __name__ == "__main__":
    main()
