"""Calibration of the standard error of ``transient.tau_on_off``: is the reported ``se`` the spread of tau?

For every OK half-cycle, ``z = ln(tau / true tau) / se``. If ``se`` is right, ``z`` has a standard
deviation near 1 and about 0.3 % of the values lie beyond 3; an ``se`` that is too small shows as a
larger spread and many more beyond 3 (the value is then more precise-looking than it is).

Data: the analytic square-wave responses of ``census_tau_drift.py`` (no drift), written to real HDF5
files and read back, for its fast (2-3 samples per tau) and middle (8-12) regimes at 1 kHz, with noise
constant or proportional to the current. Usage::

    .venv/bin/python benchmarks/census_tau_se.py [--seeds 6] [--steps 8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import census_tau_drift as census
import numpy as np

from dask_features.extractors.tau import TauStatus, tau_on_off
from dask_features.io import open_experiment

NOISES = [("constant", 40.0), ("proportional", 40.0), ("proportional", 30.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=8, help="steps per file")
    args = parser.parse_args()
    census.N_STEPS = args.steps
    print("regime  noise            half  OK     |z|>3  sd(z)  mean(z)")
    with tempfile.TemporaryDirectory() as tmp:
        for regime in ("fast1k", "mid1k"):
            _, tau_on, tau_off, _ = census.REGIMES[regime]
            for noise, snr in NOISES:
                z: dict[str, list[np.ndarray]] = {"on": [], "off": []}
                for seed in range(args.seeds):
                    path = Path(tmp) / f"{regime}_{noise}{snr:g}_{seed}.h5"
                    census.write(path, regime, noise, snr, seed, 0.0, "line")
                    f = tau_on_off(open_experiment(path).read_transient(0, args.steps)).fields
                    path.unlink()
                    for name, true in (("on", tau_on), ("off", tau_off)):
                        ok = f[f"status_{name}"] == TauStatus.OK
                        z[name].append(np.log(f[f"tau_{name}"][ok] / true) / f[f"se_{name}"][ok])
                for name, parts in z.items():
                    v = np.concatenate(parts)
                    print(
                        f"{regime:7s} {noise:12s} {snr:3g}  {name:4s}  {v.size:5d}  {np.sum(np.abs(v) > 3):5d}"
                        f"  {np.std(v):5.2f}  {np.mean(v):+6.2f}"
                    )


if __name__ == "__main__":
    main()
