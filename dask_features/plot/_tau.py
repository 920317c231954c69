"""Switching time constants: fits over the trace, tau over cycles, distributions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dask_features.errors import InvalidArgumentError, StepRangeError, UnknownColumnError
from dask_features.io.hdf5 import Experiment

if TYPE_CHECKING:
    from matplotlib.axes import Axes

from dask_features.plot._style import _axes, _experiment_label, _with_unit, si_scale


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
