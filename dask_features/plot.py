"""Matplotlib figures of raw OECT data and extracted features, for notebooks and reports.

Every function takes data (an :class:`~dask_features.Experiment` and a step number, or the DataFrames
returned by :func:`~dask_features.read_features`), draws into ``ax`` (a new figure when omitted) and returns
the :class:`~matplotlib.axes.Axes`. Nothing calls ``plt.show()``; axes are labelled with units, and
currents, transconductances and times are shown with an SI prefix chosen from the data (µA, mS, ms...).

This module imports matplotlib; ``import dask_features`` does not import it.

>>> from dask_features import plot                                                # doctest: +SKIP
>>> ax = plot.plot_transfer(experiment, step=0)                                    # doctest: +SKIP
>>> ax = plot.plot_feature_evolution(steps, "gm_max_forward", unit="S")           # doctest: +SKIP
>>> ax = plot.plot_tau_fits(experiment, 0, cycles)                                 # doctest: +SKIP
>>> ax = plot.plot_tau_cycles(cycles, 0, test_id="t1")                             # doctest: +SKIP
>>> ax = plot.plot_tau_distribution(cycles)                                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dask_features.errors import InvalidArgumentError, StepRangeError, UnknownColumnError
from dask_features.io.hdf5 import Experiment

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "plot_feature_evolution",
    "plot_tau_cycles",
    "plot_tau_distribution",
    "plot_tau_fits",
    "plot_transfer",
]

_PREFIXES = ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))
_DIRECTIONS = ("forward", "reverse")
_SHORT = {"forward": "fwd", "reverse": "rev"}


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7.0, 4.5)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=figsize, layout="constrained")
    return new


def si_scale(values: Any, unit: str | None) -> tuple[float, str]:
    """Factor and prefixed unit that bring ``values`` into a readable range.

    Parameters
    ----------
    values : array_like
        Values in base SI units (A, S, s...).
    unit : str or None
        Base unit. ``None`` or ``""`` (dimensionless) and ``"V"`` are never rescaled.

    Returns
    -------
    factor : float
        Multiply the values by it.
    label : str
        The prefixed unit, e.g. ``"µA"`` (``""`` when ``unit`` is empty).

    Examples
    --------
    >>> si_scale([2e-3, 1e-3], "S")
    (1000.0, 'mS')
    """
    if not unit or unit in ("V", "1"):
        return 1.0, unit or ""
    arr = np.abs(np.asarray(values, dtype=np.float64))
    arr = arr[np.isfinite(arr) & (arr > 0)]
    if arr.size == 0:
        return 1.0, unit
    top = float(np.max(arr))
    for base, prefix in _PREFIXES:
        if top >= base:
            return 1.0 / base, prefix + unit
    return 1e12, "p" + unit


def _with_unit(name: str, unit: str) -> str:
    return f"{name} [{unit}]" if unit else name


def _experiment_label(experiment: Experiment) -> str:
    polarity = f", {experiment.device_type}-type" if experiment.device_type else ""
    return f"{experiment.chip_id}-{experiment.device_id} {experiment.test_id}{polarity}"


def _split_sweep(vg: np.ndarray, id_: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Forward and reverse halves of one sweep, split at its Vg extremum (as the extractors do)."""
    keep = np.isfinite(vg) & np.isfinite(id_)
    vg, id_ = vg[keep], id_[keep]
    if vg.size == 0:
        return {"forward": (vg, id_), "reverse": (vg, id_)}
    turn = int(np.argmax(np.abs(vg - vg[0])))
    return {"forward": (vg[: turn + 1], id_[: turn + 1]), "reverse": (vg[turn:], id_[turn:])}


def _markers(experiment: Experiment, step: int) -> dict[tuple[str, str], tuple[float, float, float]]:
    """``(kind, direction) -> (value, Vg at it, Id at it)`` recomputed with the registered extractors."""
    from dask_features.extractors import transfer as tr

    chunk = experiment.read_transfer(step, step + 1)
    out: dict[tuple[str, str], tuple[float, float, float]] = {}
    for direction in _DIRECTIONS:
        gm = float(tr.gm_max(chunk, direction=direction)[0])
        vg_gm, id_gm = tr.gm_max_coords(chunk, direction=direction)[0]
        vg_on, id_on = tr.Von_coords(chunk, direction=direction, device_type="auto")[0]
        out["gm_max", direction] = (gm, float(vg_gm), float(id_gm))
        out["Von", direction] = (float(vg_on), float(vg_on), float(id_on))
    return out


def _feature_value(features: Mapping[str, Any] | pd.Series | None, name: str) -> float | None:
    if features is None or name not in features:
        return None
    value = features[name]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def plot_transfer(
    experiment: Experiment,
    step: int,
    features: Mapping[str, Any] | pd.Series | None = None,
    *,
    yscale: str = "log",
    ax: Axes | None = None,
) -> Axes:
    """Transfer curve |Id| vs Vg of one step, forward and reverse, with gm_max and Von marked.

    gm_max (peak |dId/dVg|) is marked by a circle on the curve, Von (steepest log-current slope) by a
    vertical dotted line and a diamond; both are recomputed from the raw sweep with the registered
    ``transfer.gm_max_coords`` and ``transfer.Von_coords`` extractors (``device_type="auto"``).

    Parameters
    ----------
    experiment : Experiment
        Handle from :func:`~dask_features.open_experiment` (or a catalog search).
    step : int
        0-based transfer step number.
    features : mapping or pandas.Series, optional
        A row of the ``steps`` table of that step. When it has ``gm_max_forward``/``gm_max_reverse``
        [S] or ``Von_forward``/``Von_reverse`` [V], those values are shown in the legend (and Von drawn
        at the stored voltage) instead of the recomputed ones, so the figure shows what was extracted.
    yscale : {"log", "linear"}, default "log"
        Scale of the current axis.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        Lines ``forward``/``reverse`` (the curve), then the markers, labelled in the legend.
    """
    if not 0 <= step < experiment.n_transfer_steps:
        raise StepRangeError(
            f"{experiment.name}: transfer step {step} outside [0, {experiment.n_transfer_steps})"
        )
    ax = _axes(ax)
    chunk = experiment.read_transfer(step, step + 1)
    halves = _split_sweep(chunk.vg[0], chunk.id[0])
    all_id = np.abs(np.concatenate([h[1] for h in halves.values()]))
    factor, unit = si_scale(all_id, "A")
    gm_factor, gm_unit = si_scale([1e-3], "S")
    markers = _markers(experiment, step)
    for i, direction in enumerate(_DIRECTIONS):
        color = f"C{i}"
        vg, id_ = halves[direction]
        ax.plot(vg, np.abs(id_) * factor, color=color, lw=1.4, label=direction)
        gm, vg_gm, id_gm = markers["gm_max", direction]
        gm = _feature_value(features, f"gm_max_{direction}") or gm
        if np.isfinite(vg_gm):
            gm_factor, gm_unit = si_scale([gm], "S")
            ax.plot(
                vg_gm,
                abs(id_gm) * factor,
                "o",
                ms=8,
                mfc="none",
                mew=2,
                color=color,
                label=f"gm_max {_SHORT[direction]} = {gm * gm_factor:.3g} {gm_unit} at {vg_gm:.3g} V",
            )
        von, _, id_on = markers["Von", direction]
        stored = _feature_value(features, f"Von_{direction}")
        if stored is not None and np.isfinite(stored) and vg.size:
            order = np.argsort(vg)
            von, id_on = stored, float(np.interp(stored, vg[order], id_[order]))
        if np.isfinite(von):
            ax.axvline(von, color=color, ls=":", lw=1.2)
            ax.plot(
                von,
                abs(id_on) * factor,
                "D",
                ms=6,
                color=color,
                label=f"Von {_SHORT[direction]} = {von:.3g} V",
            )
    ax.set_yscale(yscale)
    ax.set_xlabel("gate voltage Vg [V]")
    ax.set_ylabel(_with_unit("|Id|", unit))
    ax.set_title(f"{_experiment_label(experiment)}: transfer step {step}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_feature_evolution(
    steps: pd.DataFrame,
    feature: str,
    by: str | None = "test_id",
    *,
    unit: str | None = None,
    relative: bool = False,
    ax: Axes | None = None,
) -> Axes:
    """A feature against the step number, one line per experiment (or per ``by`` group).

    Parameters
    ----------
    steps : pandas.DataFrame
        A ``steps`` table from :func:`~dask_features.read_features` (columns ``step_index`` and
        ``feature``), or any frame with those columns.
    feature : str
        Column to plot.
    by : str or None, default "test_id"
        Column that tells the series apart (one line each); ``None`` plots all rows as one line.
    unit : str, optional
        Base unit of the feature (``"S"``, ``"A"``, ``"V"``, ``"s"``); values get an SI prefix. Take it
        from the config: ``{f.name: f.unit for f in load_config(name).features}``.
    relative : bool, default False
        Divide each series by its first finite value (drift in % is then easy to compare between devices).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        One line per group, labelled with the group value.
    """
    for col in ("step_index", feature, *([by] if by else [])):
        if col not in steps.columns:
            raise UnknownColumnError(
                f"column {col!r} not in the table (columns: {', '.join(map(str, steps.columns))})"
            )
    ax = _axes(ax)
    groups = steps.groupby(by, sort=True) if by else [(None, steps)]
    if relative:
        factor, label_unit = 100.0, "% of first step"
    else:
        factor, label_unit = si_scale(steps[feature], unit)
    for key, frame in groups:
        frame = frame.sort_values("step_index")
        y = frame[feature].to_numpy(dtype=np.float64)
        if relative:
            finite = y[np.isfinite(y)]
            y = y / finite[0] if finite.size and finite[0] != 0 else np.full_like(y, np.nan)
        label = None if key is None else str(key[0] if isinstance(key, tuple) else key)
        ax.plot(frame["step_index"], y * factor, marker=".", ms=4, lw=1.2, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(_with_unit(feature, label_unit))
    ax.set_title(f"{feature} over the run" + (" (relative to the first step)" if relative else ""))
    ax.grid(True, alpha=0.3)
    if by:
        ax.legend(title=by, fontsize="small")
    return ax


def _cycles_of(cycles: pd.DataFrame, experiment: Experiment, step: int) -> pd.DataFrame:
    """Rows of ``cycles`` for this experiment and step (all rows when the table has no id columns)."""
    rows = cycles
    if "source_file" in rows.columns and (rows["source_file"] == experiment.path).any():
        rows = rows[rows["source_file"] == experiment.path]
    elif "test_id" in rows.columns:
        rows = rows[rows["test_id"] == experiment.test_id]
    return rows[rows["step_index"] == step].sort_values("cycle")


def plot_tau_fits(
    experiment: Experiment,
    step: int,
    cycles: pd.DataFrame,
    n_cycles: int = 3,
    *,
    first_cycle: int = 0,
    ax: Axes | None = None,
) -> Axes:
    """Raw transient |I| of a few cycles with the fitted tau_on / tau_off exponentials drawn over it.

    The fits are those of the ``cycles`` table (``transient.tau_on_off``): on
    ``|I| = amp_on (1 - exp(-(t - t_on)/tau_on)) + offset_on`` from ``t_on`` to the next ``t_off``, off
    ``|I| = amp_off exp(-(t - t_off)/tau_off) + offset_off`` from ``t_off`` to the next ``t_on``, with
    ``|I| = s I`` (``s`` the sign of the step's mean current). Flagged half-cycles (``status_on`` /
    ``status_off`` not 0, NaN tau) are shaded grey and labelled with their reason instead of a fit.

    Parameters
    ----------
    experiment : Experiment
        The experiment the cycles come from.
    step : int
        0-based transient step number.
    cycles : pandas.DataFrame
        The ``cycles`` table (``read_features(out, config, table="cycles")``), for this or several
        experiments (rows are matched on ``source_file``, else ``test_id``).
    n_cycles : int, default 3
        Number of cycles to show.
    first_cycle : int, default 0
        First cycle number shown (0 = first cycle whose rising edge is in the record).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        The raw trace (line ``data``), then one line per drawn fit; the first on/off fits are labelled,
        flagged half-cycles are grey spans (the first labelled ``flagged half-cycle``) with their reason.
    """
    if not 0 <= step < experiment.n_transient_steps:
        raise StepRangeError(
            f"{experiment.name}: transient step {step} outside [0, {experiment.n_transient_steps})"
        )
    rows = _cycles_of(cycles, experiment, step)
    rows = rows[rows["cycle"] >= first_cycle]
    shown = rows.head(n_cycles)
    if shown.empty:
        raise InvalidArgumentError(
            f"no cycles >= {first_cycle} for step {step} of {experiment.name} in the cycles table"
        )
    ax = _axes(ax, (8.0, 4.5))
    chunk = experiment.read_transient(step, step + 1)
    t, current = chunk.step(0)
    sign = 1.0 if np.nanmean(current) >= 0 else -1.0
    t0_step = float(t[0]) if t.size else 0.0
    starts = rows["t_on"].to_numpy(dtype=np.float64)
    spacing = np.diff(starts[np.isfinite(starts)])
    period = float(np.median(spacing)) if spacing.size else float(chunk.period[0])
    if not np.isfinite(period):
        period = float(np.nanmax(t) - np.nanmin(t)) / max(n_cycles, 1)
    lo = float(np.nanmin(shown[["t_on", "t_off"]].to_numpy())) - 0.1 * period
    hi = float(np.nanmax(shown[["t_on", "t_off"]].to_numpy())) + 0.6 * period
    window = (t >= lo) & (t <= hi)
    tt = t[window]
    yy = sign * current[window]
    factor, unit = si_scale(yy, "A")
    ax.plot(tt - t0_step, yy * factor, color="0.55", lw=1.0, marker=".", ms=2.5, label="data |I|")
    following = dict(zip(rows["cycle"], rows["t_on"], strict=True))
    labelled = {"on": False, "off": False, "flagged": False}
    for row in shown.itertuples(index=False):
        next_on = following.get(row.cycle + 1, row.t_off + period / 2)
        spans = {
            "on": (row.t_on, row.t_off, row.tau_on, row.amp_on, row.offset_on, "C3", _status(row, "on")),
            "off": (row.t_off, next_on, row.tau_off, row.amp_off, row.offset_off, "C0", _status(row, "off")),
        }
        for kind, (start, stop, tau, amp, offset, color, code) in spans.items():
            if not (np.isfinite(start) and np.isfinite(stop)) or stop <= start:
                continue
            if code != 0 or not np.isfinite(tau):
                # A flagged half-cycle is shown, not hidden: greyed, with its reason.
                label = None if labelled["flagged"] else "flagged half-cycle"
                labelled["flagged"] = True
                ax.axvspan(
                    max(start, lo) - t0_step, min(stop, hi) - t0_step, color="0.85", zorder=0, label=label
                )
                ax.annotate(
                    f"tau_{kind}: {_reason(code)}",
                    xy=(max(start, lo) - t0_step, 0.02 if kind == "on" else 0.08),
                    xycoords=("data", "axes fraction"),
                    xytext=(2, 0),
                    textcoords="offset points",
                    color="0.3",
                    fontsize="x-small",
                )
                continue
            tf = np.linspace(start, min(stop, hi), 200)
            shape = 1.0 - np.exp(-(tf - start) / tau) if kind == "on" else np.exp(-(tf - start) / tau)
            label = None if labelled[kind] else f"fit tau_{kind}"
            labelled[kind] = True
            ax.plot(tf - t0_step, (amp * shape + offset) * factor, color=color, lw=2.0, label=label)
            top = kind == "on"
            ax.annotate(
                f"tau_{kind} {tau * 1e3:.3g} ms",
                xy=(
                    (start if top else start + 0.35 * (min(stop, hi) - start)) - t0_step,
                    (offset + (amp if top else amp * 0.5)) * factor,
                ),
                xytext=(4, 3 if top else 0),
                textcoords="offset points",
                color=color,
                fontsize="small",
                va="bottom" if top else "center",
            )
    ax.set_xlabel("time since step start [s]")
    ax.set_ylabel(_with_unit("|I|", unit))
    ax.set_title(f"{_experiment_label(experiment)}: transient step {step}, tau fits of {len(shown)} cycles")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def _status(row: Any, kind: str) -> int:
    """Status code of one half-cycle of a cycles-table row (0 when the table predates per-half codes)."""
    value = getattr(row, f"status_{kind}", 0)
    return int(value) if pd.notna(value) else 0


def _reason(code: int) -> str:
    """Name of a tau status code (the number when unknown)."""
    from dask_features.extractors.tau import TauStatus

    try:
        return TauStatus(code).name
    except ValueError:
        return f"status {code}"


def plot_tau_cycles(
    cycles: pd.DataFrame,
    step: int,
    *,
    test_id: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """tau_on and tau_off of every cycle of one step, with the flagged half-cycles marked.

    Parameters
    ----------
    cycles : pandas.DataFrame
        The ``cycles`` table of ``transient.tau_on_off`` (columns ``step_index``, ``cycle``, ``tau_on``,
        ``tau_off``, ``status_on``, ``status_off``).
    step : int
        0-based transient step number.
    test_id : str, optional
        Experiment to show when the table holds several (required then).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        One line per direction (``tau_on``, ``tau_off``, in ms, NaN gaps where flagged) and one marker
        series per direction at the bottom of the axes for the flagged half-cycles, labelled with the
        reasons and their counts.
    """
    rows = cycles
    if "test_id" in rows.columns:
        ids = rows["test_id"].unique()
        if test_id is None and len(ids) > 1:
            raise InvalidArgumentError(f"the cycles table holds {len(ids)} experiments: pass test_id=")
        if test_id is not None:
            rows = rows[rows["test_id"] == test_id]
    rows = rows[rows["step_index"] == step].sort_values("cycle")
    if rows.empty:
        raise InvalidArgumentError(f"no cycles for step {step} in the cycles table")
    ax = _axes(ax)
    x = rows["cycle"].to_numpy()
    for kind, color in (("on", "C3"), ("off", "C0")):
        tau = rows[f"tau_{kind}"].to_numpy(dtype=np.float64)
        ax.plot(x, tau * 1e3, color=color, marker=".", lw=1.0, label=f"tau_{kind}")
        codes = rows.get(f"status_{kind}", pd.Series(0, index=rows.index)).to_numpy()
        bad = (codes != 0) | ~np.isfinite(tau)
        if bad.any():
            reasons = pd.Series([_reason(int(c)) for c in codes[bad]]).value_counts()
            text = ", ".join(f"{name} {n}" for name, n in reasons.items())
            ax.plot(
                x[bad],
                np.full(bad.sum(), 0.03 if kind == "on" else 0.07),
                transform=ax.get_xaxis_transform(),
                ls="none",
                marker="x",
                color=color,
                alpha=0.7,
                label=f"tau_{kind} flagged: {text}",
            )
    ax.set_xlabel("cycle")
    ax.set_ylabel("tau [ms]")
    label = f"{test_id}: " if test_id else ""
    ax.set_title(f"{label}transient step {step}, tau per cycle (x = flagged half-cycle)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def plot_tau_distribution(
    cycles: pd.DataFrame,
    by: str | None = None,
    *,
    directions: Sequence[str] = ("on", "off"),
    ax: Axes | None = None,
) -> Axes:
    """Per-step median of tau_on and tau_off with the interquartile range as a band [ms].

    Parameters
    ----------
    cycles : pandas.DataFrame
        The ``cycles`` table (columns ``step_index``, ``tau_on``, ``tau_off`` in s). Cycles without a
        fit (NaN tau) are ignored.
    by : str, optional
        Column that tells series apart (e.g. ``"test_id"``): one median line per group and direction
        (colour per group, solid on / dashed off). Default: all rows pooled per step.
    directions : sequence of {"on", "off"}, default ("on", "off")
        Which time constants.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        One median line (and one IQR band) per direction and group.
    """
    cols = [f"tau_{d}" for d in directions]
    for col in ("step_index", *cols, *([by] if by else [])):
        if col not in cycles.columns:
            raise UnknownColumnError(f"column {col!r} not in the cycles table")
    ax = _axes(ax)
    groups = list(cycles.groupby(by, sort=True)) if by else [(None, cycles)]
    for gi, (key, frame) in enumerate(groups):
        for di, col in enumerate(cols):
            stats = frame.groupby("step_index")[col].quantile([0.25, 0.5, 0.75]).unstack()
            stats = stats.dropna(how="all")
            if stats.empty:
                continue
            color = f"C{gi}" if by else f"C{3 if directions[di] == 'on' else 0}"
            style = "-" if directions[di] == "on" or not by else "--"
            name = str(key[0] if isinstance(key, tuple) else key) if by else ""
            label = f"{col} {name}".strip()
            ax.fill_between(stats.index, stats[0.25] * 1e3, stats[0.75] * 1e3, color=color, alpha=0.2, lw=0)
            ax.plot(stats.index, stats[0.5] * 1e3, style, color=color, lw=1.6, marker=".", ms=4, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("tau [ms]")
    ax.set_ylim(bottom=0)
    n = int(cycles[cols].notna().any(axis=1).sum())
    ax.set_title(f"tau per step: median, band = interquartile range ({n} fitted cycles)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", title=by)
    return ax


from dask_features.plot_transfer import plot_drift, plot_transfer_analysis  # noqa: E402, F401  re-exported
