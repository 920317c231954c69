"""Reason codes and thresholds shared by tau edge detection and fitting."""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

__all__ = ["Baseline", "StartRule", "TauStatus"]

StartRule = Literal["steepest", "edge"]
#: Baseline of the fitted model: constant within each window, or constant plus a linear drift.
Baseline = Literal["flat", "drift"]

#: Smallest half-cycle window that is fitted (3 free parameters plus at least 2 degrees of freedom).
MIN_SEGMENT = 5
#: A fit must settle within its window: tau at most this fraction of the window (exp(-1.67) = 19 % left).
MAX_TAU_FRACTION = 0.6
#: A half-cycle's amplitude may differ from the median of its neighbours (same step and direction, within
#: AMPLITUDE_NEIGHBOURS cycles) by this fraction, plus 3 residual standard deviations: a clipped, flat or
#: mis-windowed half-cycle differs by more, a swing drifting over the record does not.
AMPLITUDE_TOLERANCE = 0.5
AMPLITUDE_NEIGHBOURS = 4
#: Residual variance above the expected (local noise + the profile's own misfit) by this factor, plus
#: 5 chi-square standard deviations, is a misfit.
RESIDUAL_FACTOR = 3.0
#: An edge found this many noise units more strongly away from its predicted position is off rhythm.
RHYTHM_Z = 6.0
#: A transition smaller than this many residual standard deviations is noise (FLAT). Kept low because at
#: 20 dB and tau = 1 sample a genuine transition is only ~4 sd high once the window starts.
MIN_AMPLITUDE_SD = 2.0
#: tau shorter than this many sample intervals cannot be resolved: the transition is over within a sample.
MIN_TAU_SAMPLES = 0.5
#: The baseline drift of a half-cycle is measured on the fitted asymptotes (with ``baseline="drift"``: on
#: the fitted drifts, for the baseline's curvature) of the cycles within this many
#: cycles of it (same step and direction); it must differ from 0 by more than DRIFT_Z standard errors and
#: move ln tau by more than its standard error and more than DRIFT_MIN_SHIFT. The floor keeps noise-free
#: fits (se ~1e-10, asymptotes that differ between cycles by rounding) from being flagged: 1e-4 is ten
#: times the fit's convergence tolerance on ln tau.
DRIFT_NEIGHBOURS = 2
DRIFT_Z = 4.0
DRIFT_MIN_SHIFT = 1e-4


class TauStatus(IntEnum):
    """Reason codes of a fitted half-cycle (and of a cycle row, see :mod:`.extractor`).

    Step-level codes (1-3) apply to every row of a step; the others to one half-cycle.
    """

    OK = 0
    #: period or sample interval unknown (NaN workflow values and no explicit parameter) or invalid.
    NO_PERIOD = 1
    #: the step is shorter than one period, or a half-cycle window holds fewer than 5 samples.
    TOO_SHORT = 2
    #: no rising or no falling transition stands out of the noise of the cycle-averaged profile.
    NO_EDGES = 3
    #: the half-cycle window is cut by the start or end of the record (e.g. a transition in progress at t=0).
    PARTIAL = 4
    #: a NaN (or inf) sample inside the half-cycle window.
    NAN_GAP = 5
    #: no transition in the expected direction: amplitude below ``min_amplitude`` x the step's median or
    #: below 2 residual standard deviations, or the wrong sign.
    FLAT = 6
    #: a run of identical extreme values starts within 6 (fitted) tau of the window start (saturation / compliance).
    CLIPPED = 7
    #: tau below 0.5 sample interval: the transition is over within a sample, so the window start (the
    #: edge sample or the one before it) cannot be told apart and tau is not identifiable.
    TAU_OUT_OF_RANGE = 8
    #: R^2 (first 5 tau of the window) below ``min_r2``.
    LOW_R2 = 9
    #: the least-squares solve failed numerically.
    FIT_FAILED = 10
    #: the half-cycle's edge is not where the period puts it (a missed, extra or shifted edge): its
    #: window would not lie between its own edges.
    OFF_RHYTHM = 11
    #: the fitted amplitude disagrees with the step's swing (cycle-averaged profile) beyond the noise.
    AMPLITUDE = 12
    #: the fitted curve does not settle within the window (tau above 0.6 window).
    NOT_SETTLED = 13
    #: the residual is larger than the step's noise (plus the profile's own misfit) allows.
    MISFIT = 14
    #: the standard error of tau exceeds ``max_rel_se`` (too few samples per tau, or too much noise).
    IMPRECISE = 15
    #: the baseline drifts (the fitted asymptote moves from cycle to cycle) enough to move tau by more than
    #: its standard error: the model has no drift term, so tau would be biased. With ``baseline="drift"``
    #: (a linear drift term in every window): the baseline curves (the fitted drift changes from cycle to
    #: cycle) enough to move tau by more than its standard error.
    DRIFT = 16
