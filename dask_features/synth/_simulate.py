"""One synthetic run in memory: device, drift, defects, measurement arrays and truth tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dask_features.synth._device import (
    DeviceParams,
    StepParams,
    drain_current,
    draw_device,
    step_params,
    transfer_truth,
)
from dask_features.synth._traces import GatePulse, sweep_voltages, transfer_arrays, transient_arrays

__all__ = ["DEFECTS", "Run", "simulate"]

DEFECTS = ("nan_samples", "ragged", "flat_cycles", "clipped", "empty_steps")
"""Defect kinds accepted by ``defects=``; each is also a boolean column of both truth tables."""


@dataclass(frozen=True)
class Run:
    """Everything generated for one file before it is written.

    Attributes
    ----------
    dev : DeviceParams
        The device.
    transfer : ndarray
        ``(n_transfer, 2, sweep_points)`` Vg [V] and Id [A], NaN-padded.
    transient : ndarray
        ``(3, total_samples)`` continuous time [s], original time [s], drain current [A].
    transfer_truth, transient_truth : dict of str to ndarray
        Truth columns, one entry per step.
    n_samples : ndarray of int
        Samples per transient step.
    ragged_len : ndarray of int
        Recorded points per transfer step.
    """

    dev: DeviceParams
    transfer: np.ndarray
    transient: np.ndarray
    transfer_truth: dict[str, np.ndarray]
    transient_truth: dict[str, np.ndarray]
    n_samples: np.ndarray
    ragged_len: np.ndarray


def _take(sp: StepParams, n: int) -> StepParams:
    return StepParams(vth=sp.vth[:n], k=sp.k[:n], tau_on=sp.tau_on[:n], tau_off=sp.tau_off[:n])


def _pick(rng: np.random.Generator, candidates: np.ndarray, frac: float, n: int) -> np.ndarray:
    """Boolean mask of ``round(frac * n)`` steps (at least one if ``frac > 0``) among ``candidates``."""
    mask = np.zeros(n, dtype=bool)
    if frac <= 0 or candidates.size == 0:
        return mask
    count = min(max(round(frac * n), 1), candidates.size)
    mask[rng.choice(candidates, count, replace=False)] = True
    return mask


def simulate(
    *,
    n_transfer: int,
    n_transient: int,
    sweep_points: int,
    transient_samples: int,
    device_type: str,
    sweep_v: tuple[float, float],
    pulse: GatePulse,
    defects: Mapping[str, float],
    seed: int,
) -> Run:
    """Generate the arrays and truth tables of one run (no I/O).

    Parameters
    ----------
    n_transfer, n_transient : int
        Steps of each type; step ``i`` of both types belongs to loop iteration ``i``.
    sweep_points : int
        Points per transfer sweep (odd).
    transient_samples : int
        Samples per complete transient step.
    device_type : {"N", "P"}
        Channel polarity.
    sweep_v : tuple of float
        Start and turning-point gate voltage of the sweeps [V].
    pulse : GatePulse
        Gate wave of the transient steps.
    defects : mapping of str to float
        Fraction of steps affected per defect kind (see `DEFECTS`).
    seed : int
        Seed of every random draw.

    Returns
    -------
    Run
    """
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    rng_dev, rng_defect, rng_tr, rng_ts = streams
    dev = draw_device(rng_dev, device_type)
    sp = step_params(dev, max(n_transfer, n_transient), rng_dev)
    frac = {k: float(defects.get(k, 0.0)) for k in DEFECTS}

    # Transfer.
    all_tr = np.arange(n_transfer)
    tr_flags = {k: np.zeros(n_transfer, dtype=bool) for k in DEFECTS}
    for kind in ("nan_samples", "ragged", "clipped"):
        tr_flags[kind] = _pick(rng_defect, all_tr, frac[kind], n_transfer)
    ragged_len = np.where(
        tr_flags["ragged"],
        (rng_defect.uniform(0.3, 0.9, n_transfer) * sweep_points).astype(np.int64),
        sweep_points,
    )
    tr_clip = np.where(tr_flags["clipped"], rng_defect.uniform(0.5, 0.8, n_transfer), np.nan)
    v_start, v_end = sweep_v
    vg = sweep_voltages(v_start, v_end, sweep_points)
    sp_tr = _take(sp, n_transfer)
    transfer = transfer_arrays(
        vg, sp_tr, dev, rng_tr, nan_steps=tr_flags["nan_samples"], ragged_len=ragged_len, clip_frac=tr_clip
    )
    lo, hi = min(v_start, v_end), max(v_start, v_end)
    half = 0.5 * dev.polarity * dev.hysteresis
    fwd = transfer_truth(sp_tr.vth + half, sp_tr.k, dev, lo, hi)
    rev = transfer_truth(sp_tr.vth - half, sp_tr.k, dev, lo, hi)
    tr_truth = {
        "step_index": all_tr,
        "vth_forward": sp_tr.vth + half,
        "vth_reverse": sp_tr.vth - half,
        "hysteresis": np.full(n_transfer, -2 * half),  # reverse minus forward, as transfer.hysteresis
        "von_forward": fwd["von"],
        "von_reverse": rev["von"],
        "gm_max_forward": fwd["gm_max"],
        "gm_max_reverse": rev["gm_max"],
        "vg_gm_max_forward": fwd["vg_gm_max"],
        "vg_gm_max_reverse": rev["vg_gm_max"],
        "k": sp_tr.k,
        "n_points": ragged_len,
        "clip_level": tr_clip * _max_abs_current(vg, sp_tr, dev),
        **tr_flags,
    }

    # Transient.
    all_ts = np.arange(n_transient)
    ts_flags = {k: np.zeros(n_transient, dtype=bool) for k in DEFECTS}
    ts_flags["empty_steps"] = _pick(rng_defect, all_ts, frac["empty_steps"], n_transient)
    filled = np.flatnonzero(~ts_flags["empty_steps"])
    for kind in ("nan_samples", "ragged", "flat_cycles", "clipped"):
        ts_flags[kind] = _pick(rng_defect, filled, frac[kind], n_transient)
    n_samples = np.full(n_transient, transient_samples, dtype=np.int64)
    n_samples[ts_flags["ragged"]] = (
        rng_defect.uniform(0.3, 0.9, int(ts_flags["ragged"].sum())) * transient_samples
    ).astype(np.int64)
    n_samples[ts_flags["empty_steps"]] = 0
    ts_clip = np.where(ts_flags["clipped"], rng_defect.uniform(0.4, 0.8, n_transient), np.nan)
    sp_ts = _take(sp, n_transient)
    transient, tt = transient_arrays(
        pulse,
        sp_ts,
        dev,
        rng_ts,
        n_samples=n_samples,
        nan_steps=ts_flags["nan_samples"],
        flat_steps=ts_flags["flat_cycles"],
        clip_frac=ts_clip,
    )
    ends = np.cumsum(n_samples)
    ts_truth = {
        "step_index": all_ts,
        "tau_on": sp_ts.tau_on,
        "tau_off": sp_ts.tau_off,
        "period": np.full(n_transient, pulse.period),
        "duty": np.full(n_transient, pulse.duty),
        "phase": tt.phase,
        "time_step": np.full(n_transient, pulse.time_step),
        "i_low": tt.i_low,
        "i_high": tt.i_high,
        "noise_sigma": tt.noise_sigma,
        "n_samples": n_samples,
        "start_data_index": ends - n_samples,
        "end_data_index": ends,
        "clip_level": tt.clip_level,
        "flat_start": tt.flat_start,
        "flat_stop": tt.flat_stop,
        **ts_flags,
    }
    return Run(
        dev=dev,
        transfer=transfer,
        transient=transient,
        transfer_truth=tr_truth,
        transient_truth=ts_truth,
        n_samples=n_samples,
        ragged_len=ragged_len,
    )


def _max_abs_current(vg: np.ndarray, sp: StepParams, dev: DeviceParams) -> np.ndarray:
    """Largest noise-free |Id| of each step's sweep [A] (the reference of transfer clip levels)."""
    ends = np.array([vg.min(), vg.max()])
    return np.abs(drain_current(ends, sp.vth[:, None], sp.k[:, None], dev)).max(axis=1)
