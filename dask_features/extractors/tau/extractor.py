"""``transient.tau_on_off``: switching time constants of every half-cycle of every transient step.

Definition
----------
Each step is a square-wave response of the drain current. **tau_on is the time constant of the
transitions in which |I| rises, tau_off of those in which |I| falls**, whatever the device polarity
(the same convention as :func:`dask_features.synth.square_wave_response`; for a single-polarity step
|I| is ``s * I`` with ``s`` the sign of the step's mean current).

1. *Edges.* The step is folded on its period (from the workflow, ``topTime + bottomTime``, or the
   ``period`` parameter) using the sample index, over its last whole number of periods, and the
   cycles are averaged; the local noise of every phase comes from folded second differences, so a
   noise that grows with the current is seen where it is. The gate switches where the workflow says,
   up to a delay: with the workflow's duty a square wave of that duty is aligned with the profile
   (``edge_source`` 1), without it each edge is found by a box contrast of an eighth of the period
   (``edge_source`` 2). Each edge is then bracketed by halving box contrasts (6 local noise units)
   and placed at the least-squares change point between the previous transition's exponential and
   the new one, so the first sample of every transition is exact on clean profiles, from 20 to
   30,000 and more samples per period. The edge phase applies to every cycle (no window search);
   every half-cycle is then checked against the period's rhythm (status OFF_RHYTHM).
2. *Window.* Each half-cycle is fitted from its **anchor** to the last sample before the next
   transition departs, every sample weighted equally. The anchor is the first sample of the
   exponential, plus ``skip_samples``. With ``start="steepest"`` (default) a *delayed* edge (an
   S-shaped transition whose steepest one-sample step lies at least 2 samples after its departure
   and is clearly larger than the first) is anchored at that steepest point, where a single
   exponential starts to hold; ``start="edge"`` anchors every transition at its departure. All
   windows of one direction in a step have the same length.
3. *Model.* On: ``y = A (1 - exp(-(t - t0)/tau)) + C``; off: ``y = A exp(-(t - t0)/tau) + C``, with
   ``t0`` the time of the first fitted sample (reported as ``t_on`` / ``t_off``). The exact
   least-squares solution is found for all half-cycles of the chunk at once (start from the 1/e
   crossing of the step's mean half-cycle, then variable-projection Levenberg-Marquardt; see
   :mod:`dask_features.extractors.tau._fit`). Transients spanning more than 32 bins per tau are
   fitted on means of consecutive samples, which obey the same model exactly. Fast transitions (at
   most 2.5 samples per tau, not delayed, whole samples per period) that start from a settled plateau
   are fitted together with that plateau, ``C + (P - C) exp(-(t - t_edge)/tau)`` with ``P`` the
   plateau level and the edge's sub-sample position from the cycle-averaged profile, where that
   lowers the step's median standard error (see :mod:`dask_features.extractors.tau._anchored`).
   With ``baseline="drift"`` the baseline of every window may drift linearly: on
   ``y = A (1 - exp(-(t - t0)/tau)) + C + D (t - t0)``, off ``y = A exp(-(t - t0)/tau) + C + D (t - t0)``,
   with ``D`` a third linear parameter of the variable projection (the anchored fits carry the same
   drift through the plateau); ``offset_*`` is then the baseline at ``t0``. A baseline drifting
   linearly over the record is taken up exactly; the price is precision (the standard error of tau
   grows by 5 % at 2-3 samples per tau, 1.3-1.5x at tau = 8-100 samples and 0.1 window, about 3x at
   tau = 0.2-0.3 window).
   A cycle (one output row) is an on half-cycle and the off half-cycle that follows it; cycle 0 is
   the first whose rising edge lies in the record, cycle -1 the partial one before it.
4. *Quality.* ``r2_*`` is the R^2 over the first ``max(8, 5 tau)`` samples of the window (a long
   settled plateau would otherwise push every R^2 towards 1); ``se_*`` the standard error of
   ln tau (the relative standard error of tau). A half-cycle is OK only if its edge is where the
   period puts it (its window lies between its own edges), its amplitude agrees with the step's
   swing (the median of its neighbouring cycles), the fitted curve settles within the window, the
   residual is consistent with the step's local noise (plus the cycle-averaged shape's own misfit),
   tau is precise (``se <= max_rel_se``) and the baseline does not drift enough to move tau by more
   than its standard error. With the default ``baseline="flat"`` the model has no drift term: the
   drift is the slope of the fitted asymptotes over the neighbouring cycles, its effect on tau the
   fit's first-order sensitivity to a linear term. With ``baseline="drift"`` a linear drift is in
   the model and what is checked is the curvature of the baseline it leaves: the slope of the fitted
   drift ``D`` over the neighbouring cycles, its effect the sensitivity to a quadratic term. Otherwise
   tau is NaN and ``status_on`` / ``status_off`` give the reason. R^2 (``baseline="drift"``: of the
   transition, the drift subtracted), se, amplitude and offset stay as diagnostics where computed.

Relation to autotau: autotau (``CyclesAutoTauFitter``) picks, by adjusted R^2, the best window of
20-33 % of the period among all start positions in the first two periods and applies its offset to
every cycle. On ideal first-order responses both give the same tau; on real, non-exponential
transients the numbers differ because the windows differ (e.g. autotau's example trace: about
5.5 / 1.0 ms here against 5.1 / 1.8 ms from autotau, whose tau_off moves to 0.96 ms when the first
50 ms are cropped; the value here does not move).

Status codes (``status_on``, ``status_off``; ``status`` is ``status_on`` if non-zero, else
``status_off``): see :class:`~dask_features.extractors.tau._status.TauStatus`:

== ================ ===================================================================================
0  OK
1  NO_PERIOD        period or sample interval unknown or invalid (one flagged row for the step)
2  TOO_SHORT        step shorter than one period, or a half-cycle window under 5 samples
3  NO_EDGES         no rising or no falling transition above the noise (flat or dead step; one row)
4  PARTIAL          half-cycle cut by the start or end of the record (transition already in progress)
5  NAN_GAP          NaN or inf inside the half-cycle window (only that half-cycle is lost)
6  FLAT             amplitude < ``min_amplitude`` x the step's median, < 2 noise sd, or wrong direction
7  CLIPPED          a run of ``clip_samples`` identical extreme values within 6 tau of the window start
8  TAU_OUT_OF_RANGE tau shorter than 0.5 sample interval (not identifiable)
9  LOW_R2           R^2 below ``min_r2``
10 FIT_FAILED       numerical failure
11 OFF_RHYTHM       the half-cycle's edge is clearly elsewhere than the period puts it
12 AMPLITUDE        amplitude differs from the neighbouring cycles' median by > 50 % (+ 3 noise sd)
13 NOT_SETTLED      tau above 0.6 window: the curve does not settle within the window
14 MISFIT           residual variance above 3x (+ 5 chi-square sd) the local noise + the profile's misfit
15 IMPRECISE        standard error of tau above ``max_rel_se`` (default 5 %)
16 DRIFT            the baseline drifts (asymptotes move over the cycles, > 4 sd) enough to move tau by
                    more than its standard error; ``baseline="drift"``: it curves (the fitted drift
                    changes over the cycles, > 4 sd) enough to move tau by more than that
== ================ ===================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from dask_features._numbers import positive_number, real_number
from dask_features.errors import InvalidParameterError
from dask_features.extractors.registry import Output, Ragged, register
from dask_features.extractors.tau._edges import StepEdges, detect_edges
from dask_features.extractors.tau._fit import FIELDS, fit_chunk
from dask_features.extractors.tau._status import TauStatus
from dask_features.io.chunks import TransientChunk

__all__ = ["TauStatus", "step_edges", "tau_on_off"]


def _is_auto_or_positive(value: object) -> bool:
    if isinstance(value, str):
        return value == "auto"
    return positive_number(value)


def _check(params: Mapping[str, Any]) -> None:
    problems = [
        f"{name} must be 'auto' or a positive finite number, got {params[name]!r}"
        for name in ("period", "sample_rate")
        if not _is_auto_or_positive(params[name])
    ]
    for name in ("skip_samples", "clip_samples"):
        v = params[name]
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            problems.append(f"{name} must be a non-negative integer, got {v!r}")
    r2 = real_number(params["min_r2"])
    if r2 is None or not r2 <= 1:
        problems.append(f"min_r2 must be a number <= 1, got {params['min_r2']!r}")
    se = real_number(params["max_rel_se"])
    if se is None or not se > 0:
        problems.append(f"max_rel_se must be a positive number, got {params['max_rel_se']!r}")
    amp = real_number(params["min_amplitude"])
    if amp is None or not 0 <= amp < 1:
        problems.append(f"min_amplitude must be a number in [0, 1), got {params['min_amplitude']!r}")
    if problems:
        raise InvalidParameterError(problems)


def _sampling(
    chunk: TransientChunk, period: float | str, sample_rate: float | str
) -> tuple[np.ndarray, np.ndarray]:
    """Period [s] and sample interval [s] per step; NaN where unknown."""
    n = chunk.n_steps
    per = np.asarray(chunk.period, np.float64) if period == "auto" else np.full(n, float(period))
    if sample_rate != "auto":
        return per, np.full(n, 1.0 / float(sample_rate))
    dt = np.asarray(chunk.time_step, np.float64).copy()
    # Fall back on the recorded time axis when the workflow has no timeStep.
    for i in np.flatnonzero(~(np.isfinite(dt) & (dt > 0))):
        t, _ = chunk.step(int(i))
        d = np.diff(t[np.isfinite(t)])
        dt[i] = float(np.median(d)) if d.size else np.nan
    return per, dt


def step_edges(
    chunk: TransientChunk, *, period: float | str = "auto", sample_rate: float | str = "auto"
) -> list[StepEdges]:
    """Edges of every step of ``chunk``, computed once per chunk and shared by transient extractors.

    Parameters
    ----------
    chunk : TransientChunk
        The steps.
    period : float or "auto", default "auto"
        Gate period [s]; "auto" = the step's workflow value.
    sample_rate : float or "auto", default "auto"
        Sampling rate [Hz]; "auto" = 1 / the step's timeStep (or the median time increment).

    Returns
    -------
    list of StepEdges
        One per step, in chunk order.
    """

    def compute() -> list[StepEdges]:
        per, dt = _sampling(chunk, period, sample_rate)
        with np.errstate(invalid="ignore", divide="ignore"):
            spp = per / dt
        return detect_edges(chunk.current, chunk.offsets, spp, np.asarray(chunk.duty, np.float64))

    return chunk.cached(("tau_edges", period, sample_rate), compute)


_MESSAGES = {
    TauStatus.NO_PERIOD: "tau: period or sample interval unknown (set period= / sample_rate=)",
    TauStatus.TOO_SHORT: "tau: step shorter than one period",
    TauStatus.NO_EDGES: "tau: no transition above the noise in the cycle-averaged profile",
}


@register(
    "transient.tau_on_off",
    source="transient",
    output=Output.ragged(FIELDS),
    check=_check,
    unit="s",
    cost=45.0,  # measured: ~18 µs per cycle of 200 samples (400 points) in chunks of many steps
)
def tau_on_off(
    chunk: TransientChunk,
    *,
    period: float | Literal["auto"] = "auto",
    sample_rate: float | Literal["auto"] = "auto",
    skip_samples: int = 0,
    start: Literal["steepest", "edge"] = "steepest",
    min_r2: float = 0.5,
    min_amplitude: float = 0.2,
    clip_samples: int = 3,
    max_rel_se: float = 0.05,
    baseline: Literal["flat", "drift"] = "flat",
) -> Ragged:
    """Switching time constants tau_on / tau_off of every cycle (one row per cycle per step).

    See the module docstring for the definition and the status codes.

    Parameters
    ----------
    chunk : TransientChunk
        Transient steps.
    period : float or "auto", default "auto"
        Gate period [s]; "auto" = ``topTime + bottomTime`` of the step's workflow.
    sample_rate : float or "auto", default "auto"
        Sampling rate [Hz]; "auto" = ``1 / timeStep`` of the step's workflow, else the median time
        increment of the step.
    skip_samples : int, default 0
        Samples skipped after each anchor (edge or steepest point) before the fit starts.
    start : {"steepest", "edge"}, default "steepest"
        Anchor of delayed (S-shaped) edges: their steepest point, or the edge itself.
    min_r2 : float, default 0.5
        Half-cycles with R^2 (first 5 tau) below this get NaN tau and status LOW_R2. The default only
        rejects fits that are not exponential at all; R^2 is about 0.86 at 20 dB SNR for a perfect fit.
    min_amplitude : float, default 0.2
        Half-cycles whose amplitude is below this fraction of the step's median are FLAT.
    clip_samples : int, default 3
        Identical extreme samples that make a half-cycle CLIPPED; 0 disables the check.
    max_rel_se : float, default 0.05
        Half-cycles whose relative standard error of tau exceeds this are IMPRECISE (NaN tau). The
        default makes a 20 % error a 4-sigma event; raise it (``inf`` disables the check) to keep noisy
        estimates, then filter on ``se_on`` / ``se_off`` yourself.
    baseline : {"flat", "drift"}, default "flat"
        Baseline of each window's model. "flat": constant (the asymptote); where the baseline drifts
        over the cycles enough to move tau by more than its standard error the half-cycle is DRIFT
        (NaN tau). "drift": constant plus a linear drift fitted in every window (not an output
        column), for records whose baseline drifts: a linear drift is then taken up exactly (analytic
        transients, 30-60 dB, whose baseline drifts linearly by 0.5-4x the swing over a 12- or 40-cycle
        record: 85-92 % of the half-cycles OK, no more of them off by over 3 se than without drift,
        where "flat" keeps 0.2-27 %), at the cost of a larger standard error of tau (see the module
        docstring); DRIFT then flags a baseline that curves too much within the window.

    Returns
    -------
    Ragged
        Fields ``cycle`` (0 = first cycle whose rising edge is in the record, -1 = the partial one
        before), ``tau_on``, ``tau_off`` [s], ``r2_on``, ``r2_off``, ``amp_on``, ``amp_off``,
        ``offset_on``, ``offset_off`` [A as stored, of |I| = s * I], ``t_on``, ``t_off`` [s, t0 of each
        fit], ``se_on``, ``se_off`` (relative standard error of tau), ``status``, ``status_on``,
        ``status_off`` (per half-cycle: these are the truth; ``status`` is the first non-zero of the
        two) and ``edge_source`` (1 = workflow period and duty, 2 = period and profile alone).
    """
    edges = step_edges(chunk, period=period, sample_rate=sample_rate)
    _, dt = _sampling(chunk, period, sample_rate)
    counts, fields = fit_chunk(
        chunk.time,
        chunk.current,
        chunk.offsets,
        dt,
        edges,
        start=start,
        skip_samples=skip_samples,
        min_r2=min_r2,
        min_amplitude=min_amplitude,
        clip_samples=clip_samples,
        max_rel_se=max_rel_se,
        baseline=baseline,
    )
    lengths = chunk.lengths
    if (lengths == 0).any():
        chunk.report(lengths == 0, "tau: empty step")
    for code, message in _MESSAGES.items():
        bad = np.array([e.status == code for e in edges], bool) & (lengths > 0)
        if bad.any():
            chunk.report(bad, message)
    return Ragged(counts, fields)
