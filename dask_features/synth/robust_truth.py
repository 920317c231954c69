"""Noise-free truth of the robust transfer features, from the generator's device model.

The stored truth (``read_ground_truth``) holds the model threshold ``vth`` (a softplus parameter) and
the gm peak; the robust extractors report the threshold by linear extrapolation at the gm peak (ELR)
and the subthreshold swing. This module computes exactly those definitions on the noise-free model
(analytic derivatives, fine grid plus a parabola through the best three points), so an estimate can
be compared with what a perfect measurement would give.
"""

from __future__ import annotations

import numpy as np

from dask_features.synth._device import DeviceParams, _current_at, _parabolic_peak, drain_current, overdrive

__all__ = ["elr_truth", "transfer_slopes"]

_FINE_POINTS = 4001
_BLOCK = 256


def transfer_slopes(
    vg: np.ndarray, vth: np.ndarray, k: np.ndarray, dev: DeviceParams
) -> tuple[np.ndarray, ...]:
    """Noise-free ``Id`` [A], turn-on slope ``|dId/dVg|`` [S] and ``|d log10|Id| / dVg|`` [dec/V].

    Parameters
    ----------
    vg : ndarray
        Gate voltage [V].
    vth, k : ndarray
        Threshold [V] and current factor [A/V²], broadcasting against ``vg``.
    dev : DeviceParams
        Shape parameters.
    """
    x, u = overdrive(vg, vth, dev)
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * x))
    denom = 1.0 + (dev.theta * u) ** 2
    gm = 2.0 * k * u * sigmoid / denom**2  # d/du (k u² / (1 + θ²u²)) * du/dVg, always >= 0
    current = _current_at(u, k, dev)  # from the overdrive above, not computed again
    return current, gm, gm / (np.abs(current) * np.log(10.0))


def elr_truth(
    vth: np.ndarray, k: np.ndarray, dev: DeviceParams, v_low: float, v_high: float
) -> dict[str, np.ndarray]:
    """gm peak, ELR threshold and subthreshold swing of noise-free sweeps within ``[v_low, v_high]``.

    Parameters
    ----------
    vth, k : ndarray
        Per-step model threshold [V] and current factor [A/V²] of one sweep direction.
    dev : DeviceParams
        The device.
    v_low, v_high : float
        Gate voltage range of the sweep [V].

    Returns
    -------
    dict of str to ndarray
        ``gm_max`` [S], ``vg_gm_max`` [V], ``vth_elr`` [V] (zero of the tangent to Id at the gm
        peak) and ``ss`` [mV/dec] (minimum of dVg / d log10|Id| over the range).
    """
    grid = np.linspace(v_low, v_high, _FINE_POINTS)
    out = {name: np.empty(len(vth)) for name in ("gm_max", "vg_gm_max", "vth_elr", "ss")}
    for a in range(0, len(vth), _BLOCK):
        block = slice(a, a + _BLOCK)
        _, gm, dlog = transfer_slopes(grid, vth[block, None], k[block, None], dev)
        x_peak, gm_max = _parabolic_peak(gm, grid)
        current = drain_current(x_peak, vth[block], k[block], dev)
        out["vg_gm_max"][block] = x_peak
        out["gm_max"][block] = gm_max
        out["vth_elr"][block] = x_peak - dev.polarity * np.abs(current) / gm_max
        out["ss"][block] = 1e3 / _parabolic_peak(dlog, grid)[1]
    return out
