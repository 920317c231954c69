"""Numerical core of ``transient.tau_on_off``: the chunk assembly around the batched exponential fit.

No Dask and no I/O. The public extractor lives in :mod:`dask_features.extractors.tau`; its module
docstring holds the definition of tau. Edges and half-cycle windows come from
:mod:`~dask_features.extractors.tau._edges`; the fit of the rows (:func:`fit_exp_rows`) is
:mod:`~dask_features.extractors.tau._rows`. Here:

:func:`fit_chunk`
    Runs edges, segmentation and the fit on all steps of a chunk and assembles one row per cycle
    with reason codes. Rows of equal length from all steps form one batch; slow transients sampled
    finely are fitted on bin means (exact for this model, see :func:`_fit_bucket`).

All statistics work on the normalised, polarity-folded signal ``z = (s*I - level) / scale`` of each
step (``s`` = sign of the step's mean current, ``level``/``scale`` = minimum/range of its
cycle-averaged profile), so results do not depend on the current's unit, scale or polarity.
"""

from __future__ import annotations

import numpy as np

from dask_features.extractors.tau import _kernels
from dask_features.extractors.tau._anchored import refit_anchored
from dask_features.extractors.tau._edges import StepEdges, StepSegments, segment_step
from dask_features.extractors.tau._gate import drifting, off_rhythm, running_median
from dask_features.extractors.tau._rows import ExpFit, fit_exp_rows, row_diagnostics
from dask_features.extractors.tau._status import (
    AMPLITUDE_NEIGHBOURS,
    AMPLITUDE_TOLERANCE,
    MAX_TAU_FRACTION,
    MIN_AMPLITUDE_SD,
    MIN_TAU_SAMPLES,
    RESIDUAL_FACTOR,
    Baseline,
    StartRule,
    TauStatus,
)

__all__ = ["FIELDS", "fit_chunk"]


# ---------------------------------------------------------------------------------------------------------
# Whole chunk


def _group_median(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` per integer group (NaN for empty groups), without a loop over groups."""
    out = np.full(n_groups, np.nan)
    if values.size == 0:
        return out
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    ids, first, counts = np.unique(g, return_index=True, return_counts=True)
    lo = first + (counts - 1) // 2
    hi = first + counts // 2
    out[ids] = 0.5 * (v[lo] + v[hi])
    return out


def _group_start(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Start rate for every row: the 1/e crossing of its group's mean row (same step and direction).

    The cycles of a step share their time constant and the mean row has sqrt(n) less noise, so this
    start lies within the per-cycle scatter and a few iterations per row finish the fit; it needs no
    model and no scale.
    """
    return _kernels.group_start(np.ascontiguousarray(y, np.float64), np.ascontiguousarray(groups, np.int64))


#: Rows are averaged in bins of b samples when tau spans more than 16 b samples (see :func:`_fit_bucket`).
SAMPLES_PER_BIN_TAU = 32


def _fit_bucket(y: np.ndarray, groups: np.ndarray, clip_samples: int, baseline: Baseline = "flat") -> ExpFit:
    """Fit rows of one length; slow transients sampled finely are fitted on means of b samples.

    The mean of ``c + a exp(-k u)`` over a bin of b samples is ``c + a' exp(-k b j)`` (j = bin index,
    ``a' = a (1 - e^{-kb}) / (b (1 - e^{-k}))``), so the binned rows obey the same model exactly and
    give k, a and c back; with at least 32 bins per tau the Fisher information lost on tau is below
    1 %, while the cost drops b-fold. R^2 and the clipping check always use the raw samples. A drift
    ``d u`` averages to ``d (b - 1) / 2 + d b j``: a line again, so the drift model is exact on bins too.
    """
    k0 = _group_start(y, groups)
    K, m = y.shape
    # The bin size is decided per row (from its own start), never from the other rows of the batch:
    # a row's result must not depend on which steps share its chunk.
    with np.errstate(invalid="ignore", divide="ignore"):
        tau0 = np.where(np.isfinite(k0) & (k0 > 0), 1.0 / k0, 1.0)
    bins = np.maximum(1, np.minimum(tau0 // SAMPLES_PER_BIN_TAU, m // 16)).astype(np.int64)
    k, c, a = np.full(K, np.nan), np.full(K, np.nan), np.full(K, np.nan)
    sigma, se, n_iter = np.full(K, np.nan), np.full(K, np.nan), 0
    se_level, gain, d = np.full(K, np.nan), np.full(K, np.nan), np.zeros(K)
    for b in np.unique(bins).tolist():
        rows = np.flatnonzero(bins == b)
        if b == 1:
            f = fit_exp_rows(y[rows], k0=k0[rows], diagnostics=False, baseline=baseline)
            k[rows], c[rows], a[rows], sigma[rows] = f.k, f.c, f.a, f.sigma
            se[rows], se_level[rows], gain[rows], d[rows] = f.se, f.se_level, f.level_gain, f.d
        else:
            nbin = m // b
            yb = y[rows, : nbin * b].reshape(rows.size, nbin, b).mean(axis=2)
            f = fit_exp_rows(yb, k0=k0[rows] * b, diagnostics=False, baseline=baseline)
            k[rows] = f.k / b
            with np.errstate(all="ignore"):
                a[rows] = f.a * b * np.expm1(-k[rows]) / np.expm1(-k[rows] * b)
            c[rows], sigma[rows] = f.c, f.sigma * np.sqrt(b)
            se[rows] = f.se  # ln tau shifts by ln b under binning: its standard error does not change
            if baseline == "flat":
                # A drift of d per sample is one of d b per bin (bin means of a line lie on a line).
                se_level[rows], gain[rows] = f.se_level, f.level_gain * b
            else:
                d[rows] = f.d / b
                c[rows] -= d[rows] * (b - 1) / 2.0
                # Bin means of q u^2 are q b^2 j^2 plus a line; the level d is per bin, b times d.
                se_level[rows], gain[rows] = f.se_level / b, f.level_gain * b * b
        n_iter = max(n_iter, f.n_iter)
    if baseline == "drift":
        r2 = row_diagnostics(y - d[:, None] * np.arange(m), k, c, a, clip_samples=0)[0]
        clipped = row_diagnostics(y, k, c, a, clip_samples=clip_samples)[1]
    else:
        r2, clipped = row_diagnostics(y, k, c, a, clip_samples=clip_samples)
    return ExpFit(k, c, a, r2, sigma, clipped, se, n_iter, se_level, gain, d)


#: Fits whose asymptote is a level of their direction: they measure a drift (see ``_gate.drifting``).
_LEVEL_STATUSES = np.array(
    [
        TauStatus.OK,
        TauStatus.TAU_OUT_OF_RANGE,
        TauStatus.NOT_SETTLED,
        TauStatus.MISFIT,
        TauStatus.LOW_R2,
        TauStatus.IMPRECISE,
    ]
)

FIELDS: dict[str, str] = {
    "cycle": "int64",
    "tau_on": "float64",
    "tau_off": "float64",
    "r2_on": "float64",
    "r2_off": "float64",
    "amp_on": "float64",
    "amp_off": "float64",
    "offset_on": "float64",
    "offset_off": "float64",
    "t_on": "float64",
    "t_off": "float64",
    "se_on": "float64",
    "se_off": "float64",
    "status": "int64",
    "status_on": "int64",
    "status_off": "int64",
    "edge_source": "int64",
}


def fit_chunk(
    time: np.ndarray,
    current: np.ndarray,
    offsets: np.ndarray,
    dt: np.ndarray,
    edges: list[StepEdges],
    *,
    start: StartRule = "steepest",
    skip_samples: int = 0,
    min_r2: float = 0.5,
    min_amplitude: float = 0.2,
    clip_samples: int = 3,
    max_rel_se: float = 0.05,
    baseline: Baseline = "flat",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fit every half-cycle of every step of a chunk; one row per cycle.

    Parameters
    ----------
    time, current : ndarray of float64, shape (total,)
        Concatenated time [s] and current [A as stored] of the chunk's steps.
    offsets : ndarray of int64, shape (n_steps + 1,)
        Step ``i`` is ``[offsets[i], offsets[i + 1])``.
    dt : ndarray of float64, shape (n_steps,)
        Sample interval of each step [s].
    edges : list of StepEdges
        From :func:`detect_edges`, one per step.
    start, skip_samples, min_r2, min_amplitude, clip_samples, max_rel_se, baseline
        See :func:`dask_features.extractors.tau.tau_on_off`. With ``baseline="drift"`` every window
        (and the plateau of an anchored refit) is fitted with a linear drift term, and the DRIFT check
        follows the fitted drift d over the cycles instead of the asymptote c.

    Returns
    -------
    counts : ndarray of int64, shape (n_steps,)
        Rows per step: one per cycle, one flagged row for a step that cannot be segmented, none for
        an empty step.
    fields : dict of str to ndarray
        The columns of :data:`FIELDS`, rows of one step contiguous and in cycle order.
    """
    n_steps = len(edges)
    lengths = np.diff(offsets).astype(np.int64)
    counts = np.zeros(n_steps, np.int64)
    parts: list[tuple[int, int, int, StepSegments | None]] = []  # (step, status, n_rows, segments)
    for i, ed in enumerate(edges):
        n = int(lengths[i])
        if n == 0:
            continue
        if ed.status != TauStatus.OK:
            parts.append((i, ed.status, 1, None))
            counts[i] = 1
            continue
        seg = segment_step(n, ed, start=start, skip_samples=skip_samples)
        parts.append((i, int(TauStatus.OK), seg.cycle.size, seg))
        counts[i] = seg.cycle.size
    total = int(counts.sum())
    out: dict[str, np.ndarray] = {
        k: np.full(total, np.nan if v == "float64" else 0, dtype=v) for k, v in FIELDS.items()
    }
    if total == 0:
        return counts, out

    # Flat row table: one entry per (cycle row, direction), steps in order.
    step_of_row = np.repeat(np.arange(n_steps), counts)
    status = np.zeros((total, 2), np.int64)
    start_idx = np.zeros((total, 2), np.int64)
    m_row = np.zeros((total, 2), np.int64)
    pos = 0
    for _, st, nr, part in parts:
        sl = slice(pos, pos + nr)
        if part is None:
            status[sl] = st
        else:
            out["cycle"][sl] = part.cycle
            status[sl, 0], status[sl, 1] = part.on_status, part.off_status
            start_idx[sl, 0], start_idx[sl, 1] = part.on_start, part.off_start
            m_row[sl] = part.m_on, part.m_off
        pos += nr

    sign = np.array([e.sign for e in edges])
    level = np.array([e.level for e in edges])
    scale = np.array([e.scale for e in edges])
    current = np.ascontiguousarray(current, dtype=np.float64)

    k = np.full((total, 2), np.nan)
    c, a, r2, sig, se, se_lv, gain = k.copy(), k.copy(), k.copy(), k.copy(), k.copy(), k.copy(), k.copy()
    drift = np.zeros((total, 2))
    clipped = np.zeros((total, 2), bool)
    gstart = start_idx + offsets[:-1][step_of_row][:, None]
    fit_mask = status == TauStatus.OK
    for mm in np.unique(m_row[fit_mask]):
        rr, dd = np.nonzero(fit_mask & (m_row == mm))
        srow = step_of_row[rr]
        # Rows are gathered through a strided view (no index matrix), then normalised per step.
        y = np.lib.stride_tricks.sliding_window_view(current, int(mm))[gstart[rr, dd]]
        with np.errstate(invalid="ignore"):
            y = (y * sign[srow][:, None] - level[srow][:, None]) / scale[srow][:, None]
        finite = np.isfinite(y).all(axis=1)
        status[rr[~finite], dd[~finite]] = TauStatus.NAN_GAP
        rr, dd, y = rr[finite], dd[finite], y[finite]
        f = _fit_bucket(y, step_of_row[rr] * 2 + dd, clip_samples, baseline)
        k[rr, dd], c[rr, dd], a[rr, dd], r2[rr, dd], sig[rr, dd] = f.k, f.c, f.a, f.r2, f.sigma
        se[rr, dd], se_lv[rr, dd], gain[rr, dd], drift[rr, dd] = f.se, f.se_level, f.level_gain, f.d
        clipped[rr, dd] = f.clipped

    refit_anchored(
        current,
        offsets,
        gstart,
        m_row,
        status,
        step_of_row,
        edges,
        (sign, level, scale),
        (k, c, a, sig, se, r2, clipped),
        clip_samples,
        drift=None if baseline == "flat" else drift,
    )
    fitted = fit_mask & (status == TauStatus.OK)
    # The rhythm check looks for each transition at its steepest-rule anchor, whatever the window rule.
    step_shift = np.zeros((n_steps, 2), np.int64)
    for i, ed in enumerate(edges):
        if ed.status == TauStatus.OK:
            ra, fa = ed.anchors(start, skip_samples)
            step_shift[i] = round(ed.rise_steep - ra), round(ed.fall_steep - fa)
    shift = step_shift[step_of_row]
    rhythm_bad = off_rhythm(current, offsets, step_of_row, gstart + shift, m_row, edges, fitted)
    with np.errstate(invalid="ignore", divide="ignore"):
        # On rows rise (a < 0), off rows fall (a > 0): signed amplitude in the expected direction.
        amp = a * np.array([-1.0, 1.0])
        good_dir = fitted & np.isfinite(k) & (amp > 0)
        gid = step_of_row[:, None] * 2 + np.arange(2)
        med = _group_median(amp[good_dir], gid[good_dir], 2 * n_steps)[gid]
        tau_samples = 1.0 / k
        failed = fitted & ~np.isfinite(k)
        flat = fitted & ~failed & (~(amp > 0) | (amp < min_amplitude * med) | (amp < MIN_AMPLITUDE_SD * sig))
        out_of_range = tau_samples < MIN_TAU_SAMPLES
        # The step's own description of each direction, from its cycle-averaged profile.
        prof = np.array([[e.var_rise, e.var_fall, e.misfit_rise, e.misfit_fall] for e in edges])
        var_exp = (prof[:, 0:2] + prof[:, 2:4])[step_of_row]
        # The step's swing: the median amplitude of the nearby half-cycles of that direction (same anchor),
        # so a swing drifting over a long record is no disagreement.
        local = running_median(np.where(good_dir, amp, np.nan), step_of_row, AMPLITUDE_NEIGHBOURS)
        amp_off = np.abs(amp / local - 1) > AMPLITUDE_TOLERANCE + 3 * sig / local
        not_settled = tau_samples > MAX_TAU_FRACTION * m_row
        dof = np.maximum(m_row - 3, 1)
        misfit = sig**2 > var_exp * (RESIDUAL_FACTOR + 5 * np.sqrt(2.0 / dof))
        checks = [
            (failed, TauStatus.FIT_FAILED),
            (rhythm_bad, TauStatus.OFF_RHYTHM),
            (flat, TauStatus.FLAT),
            (clipped, TauStatus.CLIPPED),
            (out_of_range, TauStatus.TAU_OUT_OF_RANGE),
            (not_settled, TauStatus.NOT_SETTLED),
            (amp_off, TauStatus.AMPLITUDE),
            (misfit, TauStatus.MISFIT),
            (r2 < min_r2, TauStatus.LOW_R2),
            (~(se <= max_rel_se), TauStatus.IMPRECISE),
        ]
    for mask, code in checks:
        status[fitted & (status == TauStatus.OK) & mask] = code
    # The drift is judged on the half-cycles that passed every other check and measured on every fit
    # whose asymptote is a level of that direction (also imprecise or misfitting ones, weighted by their
    # precision; not flat, clipped, misplaced or off-amplitude ones). Anchored refits keep the free fit's
    # se_lv and gain (fast transitions, which a drift hardly moves). With the drift term the level is
    # the drift d itself, which only a curved baseline moves over the cycles.
    spp = np.array([e.samples_per_period for e in edges])[step_of_row]
    judged = fitted & (status == TauStatus.OK)
    lv = c if baseline == "flat" else drift
    usable = fitted & np.isin(status, _LEVEL_STATUSES) & np.isfinite(lv) & np.isfinite(se_lv)
    status[drifting((lv, se_lv, gain, se), judged, usable, step_of_row, out["cycle"], spp)] = TauStatus.DRIFT

    dt_row = dt[step_of_row][:, None]
    sc = scale[step_of_row][:, None]
    ok = status == TauStatus.OK
    tau = np.where(ok, dt_row * tau_samples, np.nan)
    # Model in |I| units: on  A(1 - e^-(t-t0)/tau) + C = (c + a) - a e^..., off  A e^... + C.
    amp_i = amp * sc
    off_i = np.where(np.arange(2) == 0, c + a, c) * sc + level[step_of_row][:, None]
    n_step = lengths[step_of_row][:, None]
    first = offsets[:-1][step_of_row][:, None]
    inside = np.clip(start_idx, 0, np.maximum(n_step - 1, 0))
    t0 = time[first + inside] + (start_idx - inside) * dt_row
    t0 = np.where(m_row > 0, t0, np.nan)
    for j, name in enumerate(("on", "off")):
        out[f"tau_{name}"] = tau[:, j]
        out[f"r2_{name}"] = r2[:, j]
        out[f"amp_{name}"] = amp_i[:, j]
        out[f"offset_{name}"] = off_i[:, j]
        out[f"t_{name}"] = t0[:, j]
        out[f"status_{name}"] = status[:, j]
        out[f"se_{name}"] = np.where(np.isfinite(k[:, j]), se[:, j], np.nan)
    out["status"] = np.where(status[:, 0] != 0, status[:, 0], status[:, 1])
    out["edge_source"] = np.array([e.source for e in edges], np.int64)[step_of_row]
    return counts, out
