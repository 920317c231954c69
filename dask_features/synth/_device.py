"""Device model of the demo-data generator: parameters, their drift, transfer curves and truth.

All functions work on whole stability runs at once: per-step parameters are ``(n_steps,)`` arrays
and curves are ``(n_steps, n_points)`` matrices, so no Python loop runs over steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DeviceParams",
    "StepParams",
    "drain_current",
    "draw_device",
    "overdrive",
    "step_params",
    "transfer_truth",
]

# The truth of a step is searched on this many gate voltages across the sweep range (about 1 mV
# for the default ±0.6 V sweep), then refined by a parabola through the best three.
_FINE_POINTS = 1201
# Steps per block when evaluating the fine grid, to bound memory for 5,000-step runs.
_FINE_BLOCK = 512


@dataclass(frozen=True)
class DeviceParams:
    """Constant parameters of one synthetic device (one experiment file).

    Attributes
    ----------
    polarity : int
        +1 for N-type (current and overdrive positive), -1 for P-type.
    vth0 : float
        Threshold voltage at the start of the run [V].
    vth_drift : float
        Total threshold shift over the run, in the turn-off direction [V].
    hysteresis : float
        Threshold difference forward minus reverse sweep, in the turn-on direction [V].
    k0 : float
        Current factor at the start of the run [A/V²].
    k_drop : float
        Relative loss of the current factor over the run (0.1 = 10 %).
    width : float
        Softplus width of the onset [V]; the subthreshold slope is ``width * ln(10) / 2`` per decade.
    theta : float
        Saturation coefficient [1/V]; the gm peak sits at an overdrive of about ``1 / (√3 theta)``.
    i_floor : float
        Off-current floor (leakage) [A].
    noise_rel, noise_abs : float
        Relative [-] and absolute [A] standard deviation of the measurement noise.
    tau_on0, tau_off0 : float
        Rise and fall time constants of |I| at the start of the run [s].
    tau_on_growth, tau_off_growth : float
        Relative growth of the time constants over the run.
    """

    polarity: int
    vth0: float
    vth_drift: float
    hysteresis: float
    k0: float
    k_drop: float
    width: float
    theta: float
    i_floor: float
    noise_rel: float
    noise_abs: float
    tau_on0: float
    tau_off0: float
    tau_on_growth: float
    tau_off_growth: float


@dataclass(frozen=True)
class StepParams:
    """Per-step model parameters of a run, one entry per step (``(n_steps,)`` arrays).

    Attributes
    ----------
    vth : ndarray
        Threshold voltage between the two sweep directions [V].
    k : ndarray
        Current factor [A/V²].
    tau_on, tau_off : ndarray
        Rise and fall time constants of |I| [s].
    """

    vth: np.ndarray
    k: np.ndarray
    tau_on: np.ndarray
    tau_off: np.ndarray


def draw_device(rng: np.random.Generator, device_type: str) -> DeviceParams:
    """Draw a plausible OECT for a ±0.6 V sweep.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    device_type : {"N", "P"}
        Channel polarity.

    Returns
    -------
    DeviceParams
    """
    polarity = 1 if device_type == "N" else -1
    return DeviceParams(
        polarity=polarity,
        vth0=polarity * rng.uniform(0.0, 0.1),
        vth_drift=rng.uniform(0.02, 0.08),
        hysteresis=rng.uniform(0.01, 0.04),
        k0=rng.uniform(0.8e-2, 1.4e-2),
        k_drop=rng.uniform(0.1, 0.3),
        width=rng.uniform(0.08, 0.12),
        theta=rng.uniform(2.4, 3.0),
        i_floor=10.0 ** rng.uniform(-9.0, -8.0),
        noise_rel=rng.uniform(0.002, 0.006),
        noise_abs=rng.uniform(2e-10, 1e-9),
        tau_on0=rng.uniform(5e-3, 20e-3),
        tau_off0=rng.uniform(3e-3, 15e-3),
        tau_on_growth=rng.uniform(0.2, 0.8),
        tau_off_growth=rng.uniform(0.1, 0.6),
    )


def step_params(dev: DeviceParams, n_steps: int, rng: np.random.Generator) -> StepParams:
    """Slow drift of the device over a stability run, with a little step-to-step jitter.

    Parameters
    ----------
    dev : DeviceParams
        The device.
    n_steps : int
        Number of steps (iterations) of the run.
    rng : numpy.random.Generator
        Source of the jitter.

    Returns
    -------
    StepParams
    """
    progress = np.arange(n_steps) / max(n_steps - 1, 1)
    settle = 1.0 - np.exp(-3.0 * progress)  # fast early drift that levels off, as in real runs
    vth = dev.vth0 + dev.polarity * dev.vth_drift * settle + rng.normal(0.0, 2e-3, n_steps)
    k = dev.k0 * (1.0 - dev.k_drop * settle) * (1.0 + rng.normal(0.0, 0.005, n_steps))
    jitter_on, jitter_off = (1.0 + rng.normal(0.0, 0.02, (2, n_steps))).clip(0.9, 1.1)
    tau_on = np.clip(dev.tau_on0 * (1.0 + dev.tau_on_growth * progress) * jitter_on, 1e-3, 50e-3)
    tau_off = np.clip(dev.tau_off0 * (1.0 + dev.tau_off_growth * progress) * jitter_off, 1e-3, 50e-3)
    return StepParams(vth=vth, k=k, tau_on=tau_on, tau_off=tau_off)


def overdrive(vg: np.ndarray | float, vth: np.ndarray, dev: DeviceParams) -> tuple[np.ndarray, np.ndarray]:
    """``(x, u)``: the scaled gate drive ``x = polarity (vg - vth) / width`` [-] and the effective
    overdrive ``u = width * softplus(x)`` [V] of :func:`drain_current`."""
    x = dev.polarity * (vg - vth) / dev.width
    return x, dev.width * np.logaddexp(0.0, x)


def drain_current(vg: np.ndarray | float, vth: np.ndarray, k: np.ndarray, dev: DeviceParams) -> np.ndarray:
    """Noise-free drain current of the device [A].

    ``I = polarity * (k u² / (1 + (theta u)²) + i_floor)`` with the effective overdrive
    ``u = width * softplus(polarity * (vg - vth) / width)``: exponential below threshold,
    quadratic just above it and saturating further up, so the transconductance has one peak.

    Parameters
    ----------
    vg : ndarray or float
        Gate voltage [V].
    vth, k : ndarray
        Threshold [V] and current factor [A/V²], broadcasting against ``vg``.
    dev : DeviceParams
        Shape parameters.

    Returns
    -------
    ndarray
        Signed drain current [A] (negative for P-type, whose drain bias is negative).
    """
    _, u = overdrive(vg, vth, dev)
    return _current_at(u, k, dev)


def _current_at(u: np.ndarray, k: np.ndarray, dev: DeviceParams) -> np.ndarray:
    """:func:`drain_current` [A] from the effective overdrive ``u`` [V] of :func:`overdrive`."""
    return dev.polarity * (k * u * u / (1.0 + (dev.theta * u) ** 2) + dev.i_floor)


def _parabolic_peak(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Location and height of the maximum of each row of ``y`` on the uniform grid ``x``."""
    i = np.clip(np.argmax(y, axis=1), 1, y.shape[1] - 2)
    rows = np.arange(y.shape[0])
    y0, y1, y2 = y[rows, i - 1], y[rows, i], y[rows, i + 1]
    denom = y0 - 2.0 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(denom < 0, 0.5 * (y0 - y2) / denom, 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    return x[i] + shift * (x[1] - x[0]), y1 - 0.25 * (y0 - y2) * shift


def transfer_truth(
    vth: np.ndarray, k: np.ndarray, dev: DeviceParams, v_low: float, v_high: float
) -> dict[str, np.ndarray]:
    """Transconductance peak and onset of noise-free sweeps, searched inside ``[v_low, v_high]``.

    Parameters
    ----------
    vth, k : ndarray
        Per-step threshold [V] and current factor [A/V²] of one sweep direction, ``(n_steps,)``.
    dev : DeviceParams
        The device.
    v_low, v_high : float
        Gate voltage range of the sweep [V].

    Returns
    -------
    dict of str to ndarray
        ``gm_max`` [S] (max of |dI/dVg|), ``vg_gm_max`` [V] and ``von`` [V], the gate voltage of
        the steepest rise of log10|I| (the onset, as oect-infra's ``Von`` defines it).
    """
    grid = np.linspace(v_low, v_high, _FINE_POINTS)
    h = grid[1] - grid[0]
    out = {name: np.empty(vth.shape[0]) for name in ("gm_max", "vg_gm_max", "von")}
    for start in range(0, vth.shape[0], _FINE_BLOCK):
        block = slice(start, start + _FINE_BLOCK)
        current = drain_current(grid, vth[block, None], k[block, None], dev)
        mid = 0.5 * (grid[1:] + grid[:-1])
        gm = np.abs(np.diff(current, axis=1)) / h
        out["vg_gm_max"][block], out["gm_max"][block] = _parabolic_peak(gm, mid)
        slope = dev.polarity * np.diff(np.log10(np.abs(current)), axis=1) / h
        out["von"][block], _ = _parabolic_peak(slope, mid)
    return out
