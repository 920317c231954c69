"""Transfer sweeps and features over steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dask_features.errors import StepRangeError, UnknownColumnError
from dask_features.io.hdf5 import Experiment

if TYPE_CHECKING:
    from matplotlib.axes import Axes

from dask_features.plot._style import _DIRECTIONS, _SHORT, _axes, _experiment_label, _with_unit, si_scale


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
    from dask_features.extractors import transfer_coords as tc

    chunk = experiment.read_transfer(step, step + 1)
    out: dict[tuple[str, str], tuple[float, float, float]] = {}
    for direction in _DIRECTIONS:
        gm = float(tr.gm_max(chunk, direction=direction)[0])
        vg_gm, id_gm = tc.gm_max_coords(chunk, direction=direction)[0]
        vg_on, id_on = tc.Von_coords(chunk, direction=direction, device_type="auto")[0]
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
