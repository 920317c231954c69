"""Measurement arrays of a synthetic run: noisy transfer sweeps and concatenated transient traces.

Defects are applied here, on whole blocks of steps with boolean masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dask_features.synth._device import DeviceParams, StepParams, drain_current
from dask_features.synth.signals import square_wave_response

__all__ = ["GatePulse", "TransientTruth", "sweep_voltages", "transfer_arrays", "transient_arrays"]

# Steps per block when building transient traces: bounds the temporaries of a 5,000-step run
# (about 10 float64 matrices of block x samples) to a few hundred MB.
_TRANSIENT_BLOCK = 500
# NaN samples injected per affected step.
_NAN_PER_STEP = 3


@dataclass(frozen=True)
class GatePulse:
    """Square gate wave of the transient steps, as the hardware runs it.

    Each period starts with ``bottom_time`` at ``v_bottom``, then ``top_time`` at ``v_top``.

    Attributes
    ----------
    v_bottom, v_top : float
        Gate voltages [V].
    bottom_time, top_time : float
        Durations [s].
    time_step : float
        Sampling interval [s].
    on_is_top : bool
        Whether |I| is high during the top phase (N-type) or the bottom phase (P-type).
    """

    v_bottom: float
    v_top: float
    bottom_time: float
    top_time: float
    time_step: float
    on_is_top: bool

    @property
    def period(self) -> float:
        """Gate period [s]."""
        return self.bottom_time + self.top_time

    @property
    def duty(self) -> float:
        """Fraction of the period in which |I| is high."""
        return (self.top_time if self.on_is_top else self.bottom_time) / self.period

    @property
    def first_rise(self) -> float:
        """Time of the first rising |I| edge after the trigger [s]."""
        return self.bottom_time if self.on_is_top else 0.0


@dataclass(frozen=True)
class TransientTruth:
    """Per-step truth of the transient traces besides the time constants.

    Attributes
    ----------
    n_samples : ndarray of int
        Samples per step (0 for empty steps).
    phase : ndarray
        Time of the first rising |I| edge, step-local [s].
    i_low, i_high : ndarray
        Settled |I| levels [A].
    noise_sigma : ndarray
        Standard deviation of the added noise [A].
    clip_level : ndarray
        |I| level of clipped steps [A]; NaN elsewhere.
    flat_start, flat_stop : ndarray
        Step-local time range with no response [s]; NaN where there is none.
    """

    n_samples: np.ndarray
    phase: np.ndarray
    i_low: np.ndarray
    i_high: np.ndarray
    noise_sigma: np.ndarray
    clip_level: np.ndarray
    flat_start: np.ndarray
    flat_stop: np.ndarray


def sweep_voltages(v_start: float, v_end: float, n_points: int) -> np.ndarray:
    """Forward-then-reverse gate voltages of a symmetric sweep, turning point in the middle [V]."""
    half = np.linspace(v_start, v_end, (n_points + 1) // 2)
    return np.concatenate([half, half[-2::-1]])


def transfer_arrays(
    vg: np.ndarray,
    sp: StepParams,
    dev: DeviceParams,
    rng: np.random.Generator,
    *,
    nan_steps: np.ndarray,
    ragged_len: np.ndarray,
    clip_frac: np.ndarray,
) -> np.ndarray:
    """Transfer measurement data ``(n_steps, 2, n_points)``: Vg [V] and noisy Id [A], NaN-padded.

    Parameters
    ----------
    vg : ndarray
        Sweep gate voltages ``(n_points,)`` [V].
    sp : StepParams
        Per-step parameters.
    dev : DeviceParams
        The device.
    rng : numpy.random.Generator
        Noise source.
    nan_steps : ndarray of bool
        Steps that get a few NaN Id samples inside the sweep.
    ragged_len : ndarray of int
        Recorded points per step (``n_points`` for complete sweeps).
    clip_frac : ndarray
        |Id| limit as a fraction of the step's largest |Id| (NaN = not clipped).

    Returns
    -------
    ndarray
    """
    n_steps, n_points = sp.vth.shape[0], vg.shape[0]
    turn = (n_points - 1) // 2
    forward = np.arange(n_points) <= turn
    # Hysteresis: the turn-on (forward) sweep switches on later than the reverse sweep.
    shift = np.where(forward, 0.5, -0.5) * dev.polarity * dev.hysteresis
    clean = drain_current(vg, sp.vth[:, None] + shift, sp.k[:, None], dev)
    sigma = dev.noise_rel * np.abs(clean) + dev.noise_abs
    current = clean + sigma * rng.standard_normal(clean.shape)
    clipped = ~np.isnan(clip_frac)
    if clipped.any():
        limit = clip_frac[clipped, None] * np.abs(clean[clipped]).max(axis=1, keepdims=True)
        current[clipped] = np.sign(current[clipped]) * np.minimum(np.abs(current[clipped]), limit)
    data = np.empty((n_steps, 2, n_points))
    data[:, 0, :] = vg
    data[:, 1, :] = current
    pad = np.arange(n_points) >= ragged_len[:, None]
    data[:, 0, :][pad] = np.nan
    data[:, 1, :][pad] = np.nan
    _inject_nans(data[:, 1, :], nan_steps, ragged_len, rng)
    return data


def _inject_nans(rows: np.ndarray, steps: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> None:
    """Set a few samples strictly inside each selected row (and its recorded length) to NaN."""
    chosen = np.flatnonzero(steps & (lengths >= 3))
    if chosen.size == 0:
        return
    inner = (lengths[chosen] - 2)[:, None]
    pos = 1 + (rng.random((chosen.size, _NAN_PER_STEP)) * inner).astype(np.int64)
    rows[np.repeat(chosen, _NAN_PER_STEP), pos.ravel()] = np.nan


def transient_arrays(
    pulse: GatePulse,
    sp: StepParams,
    dev: DeviceParams,
    rng: np.random.Generator,
    *,
    n_samples: np.ndarray,
    nan_steps: np.ndarray,
    flat_steps: np.ndarray,
    clip_frac: np.ndarray,
) -> tuple[np.ndarray, TransientTruth]:
    """Concatenated transient data ``(3, sum(n_samples))`` and its per-step truth.

    Rows: continuous time [s], original (per-step) time [s], drain current [A].

    Parameters
    ----------
    pulse : GatePulse
        Gate wave and sampling.
    sp : StepParams
        Per-step parameters.
    dev : DeviceParams
        The device.
    rng : numpy.random.Generator
        Noise and defect source.
    n_samples : ndarray of int
        Samples per step (shorter for aborted steps, 0 for empty ones).
    nan_steps, flat_steps : ndarray of bool
        Steps with NaN samples, and with one to three cycles of no response.
    clip_frac : ndarray
        Clip level as a fraction of the way from ``i_low`` to ``i_high`` (NaN = not clipped).

    Returns
    -------
    data : ndarray
    truth : TransientTruth
    """
    n_steps: int = sp.vth.shape[0]
    dt, period = pulse.time_step, pulse.period
    i_low = np.abs(drain_current(np.float64(_on_off_voltage(pulse, on=False)), sp.vth, sp.k, dev))
    i_high = np.abs(drain_current(np.float64(_on_off_voltage(pulse, on=True)), sp.vth, sp.k, dev))
    # A small trigger delay per step, so records do not all start exactly on a gate edge.
    phase = pulse.first_rise + rng.uniform(0.0, 0.05 * period, n_steps)
    sigma = dev.noise_rel * i_high + dev.noise_abs
    clip_level = i_low + clip_frac * (i_high - i_low)
    # Cycle numbers count rising edges; cycle -1 is the partial one before the first edge.
    n_cycles = np.ceil(n_samples * dt / period)
    flat_first = np.where(flat_steps, np.floor(rng.random(n_steps) * n_cycles) - 1, np.nan)
    flat_count = rng.integers(1, 4, n_steps)
    flat_start = np.maximum(phase + flat_first * period, 0.0)
    flat_stop = phase + (flat_first + flat_count) * period

    offsets = np.concatenate([[0], np.cumsum(n_samples)])
    data = np.empty((3, int(offsets[-1])))
    data[0] = np.arange(data.shape[1]) * dt
    for start in range(0, n_steps, _TRANSIENT_BLOCK):
        blk = slice(start, min(start + _TRANSIENT_BLOCK, n_steps))
        width = int(n_samples[blk].max(initial=0))
        if width == 0:
            continue
        t = np.arange(width) * dt
        valid = np.arange(width) < n_samples[blk, None]
        level = square_wave_response(
            t,
            period=period,
            tau_on=sp.tau_on[blk, None],
            tau_off=sp.tau_off[blk, None],
            i_low=i_low[blk, None],
            i_high=i_high[blk, None],
            duty=pulse.duty,
            phase=phase[blk, None],
        )
        flat = (t >= flat_start[blk, None]) & (t < flat_stop[blk, None])
        level = np.where(flat, i_low[blk, None], level)
        level += sigma[blk, None] * rng.standard_normal(level.shape)
        level = np.minimum(level, np.where(np.isnan(clip_level[blk]), np.inf, clip_level[blk])[:, None])
        lengths = n_samples[blk]
        _inject_nans(level, nan_steps[blk], lengths, rng)
        sl = slice(offsets[blk.start], offsets[blk.stop])
        data[1, sl] = np.broadcast_to(t, level.shape)[valid]
        data[2, sl] = dev.polarity * level[valid]
    truth = TransientTruth(
        n_samples=n_samples,
        phase=phase,
        i_low=i_low,
        i_high=i_high,
        noise_sigma=sigma,
        clip_level=clip_level,
        flat_start=flat_start,
        flat_stop=flat_stop,
    )
    return data, truth


def _on_off_voltage(pulse: GatePulse, *, on: bool) -> float:
    """Gate voltage of the high-|I| (``on=True``) or low-|I| phase [V]."""
    return pulse.v_top if pulse.on_is_top == on else pulse.v_bottom
