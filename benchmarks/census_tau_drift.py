"""Census of ``transient.tau_on_off`` on drifting baselines: ``baseline="flat"`` against ``"drift"``.

Run ``.venv/bin/python benchmarks/census_tau_drift.py [--shapes line,settling,curve4,square]``.

Analytic square-wave responses (:func:`dask_features.synth.signals.noisy_square_wave`) plus a baseline
drift of 0-4x the swing over the record, written to real HDF5 files by the synth writer
(:func:`dask_features.synth.write_experiment`, its transient samples replaced), read back and extracted
with both baselines. 4 regimes of period 0.2 s (1 kHz: tau 2/3 ms over 40 cycles, 8/12 ms over 12; 10
kHz: 5/10 ms over 40, 30/20 ms over 12), 30/40/60 dB constant and 40 dB proportional noise, 3 seeds
(drifting up for even seeds, down for odd ones, then ending at the levels) x 4 steps per file. Drift
shapes: ``line`` (linear in time), ``settling`` (``1 - exp(-t / 2 periods)``), ``curve4``
(``1 - exp(-t / (record / 4))``), ``square`` (``(t / record)^2``).

Per shape, drift and baseline: half-cycles OK, OK but more than 5 % off (of which more than 3 standard
errors off), and DRIFT. Files are written to a temporary folder and deleted once read.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import h5py
import numpy as np

from dask_features.extractors.tau import TauStatus, tau_on_off
from dask_features.io import open_experiment
from dask_features.synth import write_experiment
from dask_features.synth.signals import noisy_square_wave

PERIOD, DUTY, I_LOW, I_HIGH, N_STEPS = 0.2, 0.5, 1e-4, 1e-3, 4
#: name -> (sample interval [s], tau_on [s], tau_off [s], cycles)
REGIMES = {
    "fast1k": (1e-3, 2e-3, 3e-3, 40),
    "mid1k": (1e-3, 8e-3, 12e-3, 12),
    "mid10k": (1e-4, 5e-3, 10e-3, 40),
    "slow10k": (1e-4, 30e-3, 20e-3, 12),
}
NOISES = [("constant", 30.0), ("constant", 40.0), ("constant", 60.0), ("proportional", 40.0)]
SEEDS = [0, 1, 2]
DRIFTS = {"line": [0.0, 0.5, 1.0, 2.0, 4.0], "settling": [1.0, 2.0, 4.0], "curve4": [1.0, 2.0, 4.0]}
DRIFTS["square"] = DRIFTS["curve4"]


def shape_of(shape: str, t: np.ndarray, record: float) -> np.ndarray:
    """Drift of the baseline over the record, 0 at the start and 1 at the end."""
    if shape == "line":
        return t / record
    if shape == "settling":
        return -np.expm1(-t / (2 * PERIOD)) / -np.expm1(-record / (2 * PERIOD))
    if shape == "curve4":
        return -np.expm1(-4 * t / record) / -np.expm1(-4.0)
    return (t / record) ** 2


def write(path: Path, regime: str, noise: str, snr: float, seed: int, drift: float, shape: str) -> None:
    dt, tau_on, tau_off, cycles = REGIMES[regime]
    n = round(cycles * PERIOD / dt)
    t = np.arange(n) * dt
    rng = np.random.default_rng([seed, int(snr), noise == "constant", list(REGIMES).index(regime)])
    frac = shape_of(shape, t, n * dt)
    frac = frac if seed % 2 == 0 else 1.0 - frac  # drifting down, ending at the levels (|I| > 0)
    traces = []
    for _ in range(N_STEPS):
        y, _ = noisy_square_wave(
            t, period=PERIOD, tau_on=tau_on, tau_off=tau_off, i_low=I_LOW, i_high=I_HIGH, snr_db=snr,
            noise=noise, duty=DUTY, phase=rng.uniform(0, PERIOD), rng=rng,
        )  # fmt: skip
        traces.append(y + drift * (I_HIGH - I_LOW) * frac)
    write_experiment(
        path, n_transfer=0, n_transient=N_STEPS, transient_samples=n, period=PERIOD, time_step=dt,
        duty=DUTY, seed=seed, compression=None,
    )  # fmt: skip
    with h5py.File(path, "r+") as f:
        f["transient/measurement_data"][2, :] = np.concatenate(traces)


def census(shape: str, folder: Path) -> dict[tuple[float, str], np.ndarray]:
    """Per (drift, baseline): counts OK, OK > 5 % off, of those > 3 se off, DRIFT."""
    out: dict[tuple[float, str], np.ndarray] = {}
    for regime, (noise, snr), seed, drift in itertools.product(REGIMES, NOISES, SEEDS, DRIFTS[shape]):
        path = folder / f"{regime}_{noise}{snr:g}_{seed}_{drift:g}.h5"
        write(path, regime, noise, snr, seed, drift, shape)
        _, tau_on, tau_off, _ = REGIMES[regime]
        for baseline in ("flat", "drift"):
            f = tau_on_off(open_experiment(path).read_transient(0, N_STEPS), baseline=baseline).fields
            counts = out.setdefault((drift, baseline), np.zeros(4, np.int64))
            for name, true in (("on", tau_on), ("off", tau_off)):
                status, err = f[f"status_{name}"], np.log(f[f"tau_{name}"] / true)
                ok = status == TauStatus.OK
                wrong = ok & (np.abs(np.expm1(err)) > 0.05)
                counts += [ok.sum(), wrong.sum(), (wrong & (np.abs(err) > 3 * f[f"se_{name}"])).sum(), 0]
                counts[3] += int((status == TauStatus.DRIFT).sum())
        path.unlink()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="line,settling", help="comma-separated drift shapes")
    args = parser.parse_args()
    print("shape     drift  |  flat: OK  >5% (>3se)  DRIFT  |  drift: OK  >5% (>3se)  DRIFT")
    for shape in args.shapes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            res = census(shape, Path(tmp))
        for drift in DRIFTS[shape]:
            a, b = res[(drift, "flat")], res[(drift, "drift")]
            print(
                f"{shape:9s} {drift:4g}x  | {a[0]:9d} {a[1]:4d} ({a[2]:4d}) {a[3]:6d}  |"
                f" {b[0]:9d} {b[1]:4d} ({b[2]:4d}) {b[3]:6d}"
            )


if __name__ == "__main__":
    main()
