"""Realistic demo data in the exact raw HDF5 layout of oect-infra, with known ground truth.

`write_experiment` writes one stability experiment (a loop of transfer sweeps and transient pulse
trains) as oect-infra's serial (``2.0_direct_new_storage``) or parallel (``2.0_new_storage``)
converter would, `generate_dataset` writes a folder of them, and `read_ground_truth` returns the
per-step parameters the data were generated from (stored in the file's ``/synth`` group, which
oect-infra ignores).

Physics
-------
Transfer sweeps run from the off side to the on side and back (N: -0.6 -> 0.6 -> -0.6 V, P:
0.6 -> -0.6 -> 0.6 V; an odd number of points, turning point in the middle). The drain current is

    I = s * (k u² / (1 + (theta u)²) + i_floor),   u = w * softplus(s (Vg - Vth) / w)

with polarity s = +1 (N) or -1 (P, negative drain bias, negative currents): exponential below the
threshold (subthreshold slope ``w ln(10) / 2`` per decade, about 90-140 mV/dec), quadratic just
above it and saturating further up, so |dI/dVg| has a single peak at an overdrive of about
``1 / (√3 theta)``; ``i_floor`` (1-10 nA) is the off-current floor. The forward (turn-on) sweep's
threshold lies ``hysteresis / 2`` further in the turn-on direction and the reverse sweep's
``hysteresis / 2`` back. Over the steps of a run the threshold drifts by tens of mV in the turn-off
direction and ``k`` falls by 10-30 % (fast early, then levelling off), with small step-to-step
jitter. Noise is Gaussian, relative (0.2-0.6 % of |I|) plus absolute (0.2-1 nA).

Transient steps apply a square gate wave: each period starts with ``bottomTime`` at
``gateVoltageBottom`` and continues with ``topTime`` at ``gateVoltageTop`` (N: 0 / 0.5 V, |I| high
on top; P: -0.5 / 0 V, |I| high at the bottom). |I| follows
:func:`~dask_features.synth.signals.square_wave_response` between the levels the transfer model
gives at those gate voltages, with ``tau_on`` (|I| rising) and ``tau_off`` (|I| falling) between
1 and 50 ms that grow over the run; a small random trigger delay shifts each record. Gaussian
noise (0.2-0.6 % of the high level) is added and the sign follows the device type.
``continuous_time`` restarts nowhere (``offset_{k+1} = last_time_k + timeStep``),
``original_time`` restarts at 0 in every step.

Hardware parameters (workflow and ``param_*`` columns) are in mV and ms; data are in V, A and s.
"""

from __future__ import annotations

from dask_features.synth._experiment import generate_dataset, write_experiment
from dask_features.synth._file import TRUTH_GROUP, read_ground_truth
from dask_features.synth._simulate import DEFECTS
from dask_features.synth.signals import square_wave_response

__all__ = [
    "DEFECTS",
    "TRUTH_GROUP",
    "generate_dataset",
    "read_ground_truth",
    "square_wave_response",
    "write_experiment",
]
