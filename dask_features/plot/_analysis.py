"""Figures of the robust transfer analysis: one sweep with every marker, and features drifting over a run.

Both functions recompute nothing a user cannot see: :func:`plot_transfer_analysis` runs the registered
``transfer.*`` extractors on the one step it draws, :func:`plot_drift` draws the ``steps`` table and
marks the steps the ``errors`` table flagged. Re-exported by :mod:`dask_features.plot`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from dask_features.errors import StepRangeError, UnknownColumnError
from dask_features.io.hdf5 import Experiment
from dask_features.plot._style import _axes, _experiment_label, _with_unit, si_scale

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_drift", "plot_transfer_analysis"]

Half = Literal["forward", "reverse"]
_HALVES: tuple[Half, ...] = ("forward", "reverse")


def _marks(chunk: Any, half: Half, params: Mapping[str, Any]) -> dict[str, Any]:
    """Curves and markers of one half of a one-step chunk, from the registered extractors."""
    from dask_features.extractors import _robust_core as core
    from dask_features.extractors import transfer, transfer_robust

    window, peak_window = core.windows(chunk, params["window"], params["peak_window"])
    order, device_type = params["order"], params["device_type"]
    # The values the extractors report with these parameters (flags included): the same as the table.
    fit_params = {"window": window, "order": order, "peak_window": peak_window, "device_type": device_type}
    limits = {k: params[k] for k in ("max_rel_se", "max_se_vg")}
    f = core.fit(chunk, window, order)
    on = core.turn_on(chunk, f, device_type)[0]
    start, stop, _, _ = f.halves[half]
    part = slice(int(start[0]), int(stop[0]))
    swing = core.swing(chunk, half, window, order, device_type, params["floor_factor"], peak_window, 4)
    gm = transfer_robust.gm
    first, last, _ = swing.bounds[0]
    return {
        "vg": f.sweeps.vg[0, part],
        "id": f.sweeps.id[0, part],
        "gm": on * f.sign[0] * f.id1[0, part],
        "gm_max": float(gm(chunk, direction=half, **fit_params, **limits)[0]),
        "vg_gm": float(gm(chunk, direction=half, value="vg_at_gm_max", **fit_params, **limits)[0]),
        "vth": float(
            transfer_robust.Vth(
                chunk,
                direction=half,
                **fit_params,
                max_se_vth=params["max_se_vth"],
                max_rel_se=params["max_rel_se"],
            )[0]
        ),
        "ss": float(swing.ss[0]),
        "ss_span": (f.sweeps.vg[0, first], f.sweeps.vg[0, max(last - 1, first)]) if last > first else None,
        "von": float(transfer.Von(chunk, direction=half, device_type=device_type)[0]),
    }


def plot_transfer_analysis(
    experiment: Experiment,
    step: int,
    *,
    window: int | Literal["auto"] = "auto",
    order: int = 3,
    device_type: str = "auto",
    floor_factor: float = 10.0,
    peak_window: int | Literal["auto"] = "auto",
    max_rel_se: float = 0.02,
    max_se_vg: float = 0.025,
    max_se_vth: float = 0.01,
    axes: Sequence[Axes] | None = None,
) -> tuple[Axes, Axes]:
    """One transfer sweep on linear and log axes with the smoothed gm and every marker.

    Left: |Id| (linear) with the smoothed gm curve on a second axis, the gm maximum (circle) and the
    ELR tangent from it down to Vth (dashed). Right: |Id| (log) with the subthreshold-swing region
    shaded and labelled with SS, and oect-infra's Von (dotted). Forward and reverse halves in two
    colours. Flagged values (NaN) are left out of the figure and say "flagged" in the legend.

    Parameters
    ----------
    experiment : Experiment
        Handle from :func:`~dask_features.open_experiment`.
    step : int
        0-based transfer step.
    window, order, device_type, floor_factor, peak_window, max_rel_se, max_se_vg, max_se_vth
        As for the ``transfer.gm`` / ``transfer.Vth`` / ``transfer.subthreshold_swing`` extractors:
        give the config's values, and the figure shows (and flags) what the table holds.
    axes : pair of matplotlib.axes.Axes, optional
        Where to draw (linear, log); a new 1 x 2 figure when omitted.

    Returns
    -------
    (Axes, Axes)
        The linear and the log panel (the gm axis is ``ax_lin.right_ax``).
    """

    if not 0 <= step < experiment.n_transfer_steps:
        raise StepRangeError(
            f"{experiment.name}: transfer step {step} outside [0, {experiment.n_transfer_steps})"
        )
    if axes is None:
        import matplotlib.pyplot as plt

        fig, _ = plt.subplots(1, 2, figsize=(12.0, 4.5), layout="constrained")
        axes = fig.axes  # the same two panels, left to right, typed (plt.subplots gives Any for them)
    ax_lin, ax_log = axes
    chunk = experiment.read_transfer(step, step + 1)
    params = {
        "window": window,
        "order": order,
        "device_type": device_type,
        "floor_factor": floor_factor,
        "peak_window": peak_window,
        "max_rel_se": max_rel_se,
        "max_se_vg": max_se_vg,
        "max_se_vth": max_se_vth,
    }
    marks = {half: _marks(chunk, half, params) for half in _HALVES}
    factor, unit = si_scale(np.abs(chunk.id[0]), "A")
    gm_factor, gm_unit = si_scale(np.concatenate([m["gm"] for m in marks.values()]), "S")
    ax_gm = ax_lin.twinx()
    # An attribute of our own on a matplotlib object (pandas' name for a twin axis): no typed alternative.
    ax_lin.right_ax = ax_gm  # type: ignore[attr-defined]
    for i, (half, m) in enumerate(marks.items()):
        color = f"C{i}"
        ax_lin.plot(m["vg"], np.abs(m["id"]) * factor, color=color, lw=1.4, label=f"|Id| {half}")
        ax_log.plot(m["vg"], np.abs(m["id"]) * factor, color=color, lw=1.4, label=f"|Id| {half}")
        ax_gm.plot(m["vg"], m["gm"] * gm_factor, color=color, lw=1.0, ls="-.", alpha=0.8)
        if np.isfinite(m["gm_max"]):
            id_at = float(np.interp(m["vg_gm"], *_ascending(m["vg"], np.abs(m["id"]))))
            ax_gm.plot(m["vg_gm"], m["gm_max"] * gm_factor, "o", mfc="none", mew=2, ms=8, color=color)
            label = f"gm_max {half} = {m['gm_max'] * gm_factor:.3g} {gm_unit} at {m['vg_gm']:.3g} V"
            ax_lin.plot([], [], "o", mfc="none", mew=2, color=color, label=label)
            if np.isfinite(m["vth"]):
                ax_lin.plot(
                    [m["vth"], m["vg_gm"]], [0.0, id_at * factor], ls="--", color=color, lw=1.0,
                    label=f"Vth {half} (ELR) = {m['vth']:.3g} V",
                )  # fmt: skip
        else:
            ax_lin.plot([], [], " ", label=f"gm_max / Vth {half}: flagged")
        if m["ss_span"] is not None and np.isfinite(m["ss"]):
            ax_log.axvspan(
                *sorted(m["ss_span"]), color=color, alpha=0.12, label=f"SS {half} = {m['ss']:.3g} mV/dec"
            )
        else:
            ax_log.plot([], [], " ", label=f"SS {half}: flagged")
        if np.isfinite(m["von"]):
            ax_log.axvline(m["von"], color=color, ls=":", lw=1.2, label=f"Von {half} = {m['von']:.3g} V")
    ax_lin.set_ylim(bottom=0)
    ax_log.set_yscale("log")
    for ax in (ax_lin, ax_log):
        ax.set_xlabel("gate voltage Vg [V]")
        ax.set_ylabel(_with_unit("|Id|", unit))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    ax_gm.set_ylabel(_with_unit("gm (smoothed)", gm_unit))
    ax_lin.set_title(f"{_experiment_label(experiment)}: step {step}, linear")
    ax_log.set_title("log scale")
    return ax_lin, ax_log


def _ascending(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(x)
    return x[order], y[order]


def plot_drift(
    steps: pd.DataFrame,
    features: str | Sequence[str],
    *,
    errors: pd.DataFrame | None = None,
    units: Mapping[str, str | None] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Features of one run over its steps, with every flagged step marked.

    Parameters
    ----------
    steps : pandas.DataFrame
        A ``steps`` table (columns ``step_index`` and the features) of one experiment.
    features : str or sequence of str
        Columns to draw; several share the axis, so give features of one unit.
    errors : pandas.DataFrame, optional
        The matching ``errors`` table; a step with a record for a drawn feature gets an ``x`` on the
        axis bottom (its value is NaN, so there is no point to draw).
    units : mapping, optional
        Feature -> base unit for the SI prefix (from the config: ``{f.name: f.unit for f in
        load_config(name).features}``).
    ax : matplotlib.axes.Axes, optional
        Where to draw.

    Returns
    -------
    matplotlib.axes.Axes
        One line per feature, plus one ``flagged`` marker series per feature with flags.
    """

    names = [features] if isinstance(features, str) else list(features)
    missing = [c for c in ("step_index", *names) if c not in steps.columns]
    if missing:
        raise UnknownColumnError(
            f"columns {missing} not in the table (columns: {', '.join(map(str, steps.columns))})"
        )
    ax = _axes(ax)
    frame = steps.sort_values("step_index")
    unit = (units or {}).get(names[0])
    factor, label_unit = si_scale(frame[names].to_numpy(dtype=np.float64), unit)
    for i, name in enumerate(names):
        ax.plot(
            frame["step_index"], frame[name] * factor, marker=".", ms=4, lw=1.2, color=f"C{i}", label=name
        )
        if errors is not None and len(errors):
            flagged = np.unique(errors.loc[errors["feature"] == name, "step_index"].dropna().astype(int))
            if flagged.size:
                ax.plot(
                    flagged, np.zeros(flagged.size), "x", color=f"C{i}", transform=ax.get_xaxis_transform(),
                    clip_on=False, label=f"{name}: flagged ({flagged.size})",
                )  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel(_with_unit(", ".join(names), label_unit))
    ax.set_title("drift over the run")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax
