"""Noise-free signal models used by the demo-data generator, tests and benchmarks.

Kept free of I/O so the tau fitter's tests and benchmarks can build traces with a known answer.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import ArrayLike

from dask_features.errors import InvalidArgumentError

__all__ = ["grid_step", "noisy_square_wave", "square_wave_response", "true_windows"]


def square_wave_response(
    t: ArrayLike,
    *,
    period: ArrayLike,
    tau_on: ArrayLike,
    tau_off: ArrayLike,
    i_low: ArrayLike,
    i_high: ArrayLike,
    duty: ArrayLike = 0.5,
    phase: ArrayLike = 0.0,
) -> np.ndarray:
    """First-order response of the channel current magnitude to a square gate wave.

    The current relaxes exponentially towards ``i_high`` during the "on" part of each period
    (time constant ``tau_on``) and towards ``i_low`` during the "off" part (``tau_off``). The trace
    is in its periodic steady state, so a record may start anywhere in a cycle, including inside
    a transition (a partial first cycle, as in real recordings).

    Definition used throughout the package: **tau_on is the time constant of the transitions in
    which |I| rises, tau_off of those in which |I| falls**, whatever the device polarity.

    All parameters broadcast against each other, so a (n_steps, 1) column of parameters and a
    (n_steps, n_samples) time matrix give one trace per step in one call.

    Parameters
    ----------
    t : array_like
        Time [s].
    period : array_like
        Gate period [s].
    tau_on, tau_off : array_like
        Rise and fall time constants of |I| [s].
    i_low, i_high : array_like
        Settled |I| in the off and on states [A].
    duty : array_like, default 0.5
        Fraction of the period in the on state.
    phase : array_like, default 0.0
        Time of the first rising edge [s]; edges repeat every ``period``.

    Returns
    -------
    ndarray
        |I| [A], broadcast shape of the inputs.
    """
    t = np.asarray(t, dtype=np.float64)
    period, duty, phase = (np.asarray(v, dtype=np.float64) for v in (period, duty, phase))
    tau_on, tau_off = np.asarray(tau_on, np.float64), np.asarray(tau_off, np.float64)
    i_low, i_high = np.asarray(i_low, np.float64), np.asarray(i_high, np.float64)
    t_on = duty * period
    t_off = period - t_on
    a = np.exp(-t_on / tau_on)
    b = np.exp(-t_off / tau_off)
    # Steady state: level at the rising edge (y0) and at the falling edge (y1).
    y0 = (i_low * (1 - b) + b * i_high * (1 - a)) / (1 - a * b)
    y1 = i_high * (1 - a) + a * y0
    u = np.mod(t - phase, period)
    on = u < t_on
    rise = i_high + (y0 - i_high) * np.exp(-u / tau_on)
    # Clip so the unused branch of np.where cannot overflow (exp of a large positive number).
    fall = i_low + (y1 - i_low) * np.exp(-np.maximum(u - t_on, 0.0) / tau_off)
    return np.where(on, rise, fall)


def true_windows(
    n: int, dt: float, *, period: float, duty: float = 0.5, phase: float = 0.0
) -> list[tuple[str, int, int]]:
    """Sample ranges of the complete half-cycles of :func:`square_wave_response` sampled at ``i * dt``.

    Parameters
    ----------
    n : int
        Number of samples.
    dt : float
        Sample interval [s].
    period, duty, phase : float
        As in :func:`square_wave_response`.

    Returns
    -------
    list of (direction, first, stop)
        ``"on"`` (|I| rising) or ``"off"``, and the samples ``[first, stop)`` from the first sample at or
        after the edge to the last one before the next edge, for every half-cycle whose both edges lie
        in ``[0, n dt)``; in time order.
    """
    t_end = n * dt
    k = np.arange(np.floor(-phase / period) - 1, np.ceil((t_end - phase) / period) + 1)
    rise = phase + k * period
    edges = sorted([(r, "on") for r in rise] + [(r + duty * period, "off") for r in rise])
    edges = [(e, name) for e, name in edges if 0 <= e < t_end]
    return [
        (name, int(np.ceil(t_a / dt - 1e-9)), int(np.ceil(t_b / dt - 1e-9)))
        for (t_a, name), (t_b, _) in itertools.pairwise(edges)
    ]


def noisy_square_wave(
    t: ArrayLike,
    *,
    period: float,
    tau_on: float,
    tau_off: float,
    i_low: float,
    i_high: float,
    snr_db: float,
    noise: str = "constant",
    duty: float = 0.5,
    phase: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`square_wave_response` plus Gaussian noise of a given step SNR.

    ``SNR = 20 log10((i_high - i_low) / sd_high)``, ``sd_high`` the noise standard deviation at the
    high level. With ``noise="proportional"`` the standard deviation scales with the noise-free |I|
    (``sd = sd_high |I| / i_high``, as from a ranging ammeter); with ``"constant"`` it is ``sd_high``
    everywhere.

    Returns
    -------
    noisy, clean : ndarray
        |I| with and without noise [A].
    """
    if noise not in ("constant", "proportional"):
        raise InvalidArgumentError(f"noise must be 'constant' or 'proportional', got {noise!r}")
    rng = np.random.default_rng() if rng is None else rng
    clean = square_wave_response(
        t, period=period, tau_on=tau_on, tau_off=tau_off, i_low=i_low, i_high=i_high, duty=duty, phase=phase
    )
    sd = (i_high - i_low) * 10 ** (-snr_db / 20)
    sd_t = sd * np.abs(clean) / abs(i_high) if noise == "proportional" else sd
    return clean + sd_t * rng.standard_normal(clean.shape), clean


def grid_step(
    samples_per_period: int,
    frac: float,
    snr_db: float,
    noise: str,
    rng: np.random.Generator,
    dt: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, float, float, list[tuple[str, int, int]]]:
    """One step of the tau accuracy grid: time [s], noisy |I| [A], period [s], tau [s], true windows.

    tau_on = tau_off = ``frac`` x half-period; duty 0.5; a random phase; levels 0.1 and 1 mA; between
    6 and 60 periods (about 200,000 samples). The windows are those of :func:`true_windows`.

    Parameters
    ----------
    samples_per_period : int
        Samples per period (the period is ``samples_per_period * dt``).
    frac : float
        tau as a fraction of the half-period.
    snr_db : float
        Step SNR [dB] (see :func:`noisy_square_wave`).
    noise : {"constant", "proportional"}
        Noise model.
    rng : numpy.random.Generator
        Source of the phase, then of the noise.
    dt : float, default 1e-4
        Sampling interval [s].
    """
    period = samples_per_period * dt
    tau = frac * period / 2
    n_cycles = int(np.clip(200_000 // samples_per_period, 6, 60))
    t = np.arange(n_cycles * samples_per_period) * dt
    phase = rng.uniform(0, period)
    y, _ = noisy_square_wave(
        t, period=period, tau_on=tau, tau_off=tau, i_low=0.1e-3, i_high=1e-3, snr_db=snr_db, noise=noise,
        phase=phase, rng=rng,
    )  # fmt: skip
    return t, y, period, tau, true_windows(t.size, dt, period=period, phase=phase)
