"""Matplotlib figures of grid-search results (:func:`knn_store.grid_search` tables).

Functions take the result table, draw into ``ax`` (a new figure when omitted) and return the
:class:`~matplotlib.axes.Axes`; nothing calls ``plt.show()``. ``import knn_store`` does not import this
module or matplotlib.

>>> from knn_store import plot                                         # doctest: +SKIP
>>> ax = plot.plot_acc_heatmap(results, feature_set="pca16")           # doctest: +SKIP
>>> ax = plot.plot_best(results)                                       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_acc_heatmap", "plot_best"]

#: Axis labels of the result columns.
_LABELS = {
    "acc_all": "ACC all (Hungarian)",
    "acc_old": "ACC old classes",
    "acc_new": "ACC new classes",
    "ari": "ARI",
    "nmi": "NMI",
    "n_clusters": "clusters found",
    "seconds": "clustering time [s]",
}


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=figsize, layout="constrained")
    return new


def _one_set(results: pd.DataFrame, feature_set: str | None) -> tuple[str, pd.DataFrame]:
    names = sorted(results["feature_set"].unique()) if "feature_set" in results.columns else []
    if feature_set is None:
        if len(names) != 1:
            raise ValueError(f"the table holds feature sets {names}; pass feature_set= to choose one")
        feature_set = names[0]
    rows = results[results["feature_set"] == feature_set]
    if rows.empty:
        raise ValueError(f"no rows for feature set {feature_set!r} (have {names})")
    return feature_set, rows


def plot_acc_heatmap(
    results: pd.DataFrame,
    feature_set: str | None = None,
    metric: str = "acc_all",
    *,
    annotate: bool | None = None,
    mark_best: bool = True,
    cmap: str = "viridis",
    ax: Axes | None = None,
) -> Axes:
    """Heatmap of a score over the (k, density percentile) grid of one feature set.

    Parameters
    ----------
    results : pandas.DataFrame
        Table returned by :func:`knn_store.grid_search` (columns ``feature_set``, ``k``,
        ``density_percentile`` and the score columns).
    feature_set : str, optional
        Which feature set; may be omitted when the table holds only one.
    metric : str, default "acc_all"
        Score column: ``acc_all``, ``acc_old``, ``acc_new``, ``ari``, ``nmi``, ``n_clusters``, ``seconds``.
    annotate : bool, optional
        Write the value in each cell; default only when the grid has at most 150 cells.
    mark_best : bool, default True
        Outline the best cell (highest ``metric``; first in k, then percentile, on ties) in red.
    cmap : str, default "viridis"
        Matplotlib colour map.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure (with a colour bar) when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        Rows = k (bottom to top), columns = density percentile [%]; ``ax.images[0]`` is the heatmap.
    """
    if metric not in results.columns:
        raise KeyError(f"metric {metric!r} is not a column of the results ({', '.join(results.columns)})")
    name, rows = _one_set(results, feature_set)
    grid = rows.pivot_table(index="k", columns="density_percentile", values=metric, aggfunc="mean")
    grid = grid.sort_index().sort_index(axis=1)
    values = grid.to_numpy(dtype=np.float64)
    ks, ps = grid.index.to_numpy(), grid.columns.to_numpy()
    ax = _axes(ax, (1.2 + 0.62 * len(ps) + 1.6, 1.4 + 0.42 * len(ks)))
    image = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label=_LABELS.get(metric, metric), shrink=0.9)
    ax.set_xticks(range(len(ps)), [f"{p:g}" for p in ps])
    ax.set_yticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel("density percentile [%]")
    ax.set_ylabel("k (neighbours)")
    if annotate if annotate is not None else values.size <= 150:
        finite = values[np.isfinite(values)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        fmt = "{:.0f}" if metric == "n_clusters" else "{:.2f}"
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                color = "black" if v > mid else "white"
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize="x-small", color=color)
    title = f"{_LABELS.get(metric, metric)}: feature set {name!r}"
    if mark_best and np.isfinite(values).any():
        i, j = np.unravel_index(int(np.nanargmax(values)), values.shape)
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.5))
        title += f"\nbest {values[i, j]:.3f} at k={ks[i]}, percentile={ps[j]:g}"
    ax.set_title(title)
    return ax


def plot_best(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("acc_all", "acc_old", "acc_new"),
    select_by: str = "acc_all",
    *,
    ax: Axes | None = None,
) -> Axes:
    """Scores of the chosen configuration of every feature set, as grouped bars.

    The configuration is chosen with :func:`knn_store.best_configurations` (highest ``select_by``, ties
    broken by NMI, ARI, smaller k, smaller percentile); its k and percentile label each group.

    Parameters
    ----------
    results : pandas.DataFrame
        Table returned by :func:`knn_store.grid_search`.
    metrics : sequence of str, default ("acc_all", "acc_old", "acc_new")
        Scores to show, one bar each.
    select_by : str, default "acc_all"
        Column that picks the best configuration.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        One bar container per metric (``ax.containers``), bars labelled with their value.
    """
    from knn_store.search import best_configurations

    best = best_configurations(results, select_by)
    if best.empty:
        raise ValueError("the results table is empty")
    ax = _axes(ax, (max(5.0, 1.8 * len(best) + 2.5), 4.0))
    x = np.arange(len(best))
    width = 0.8 / len(metrics)
    for i, metric in enumerate(metrics):
        bars = ax.bar(
            x + (i - (len(metrics) - 1) / 2) * width, best[metric], width, label=_LABELS.get(metric, metric)
        )
        ax.bar_label(bars, fmt="%.2f", fontsize="x-small", padding=2)
    ax.set_xticks(
        x,
        [
            f"{r.feature_set}\nk={r.k}, percentile={r.density_percentile:g}"
            for r in best.itertuples(index=False)
        ],
    )
    ax.set_ylabel("score")
    top = float(np.nanmax(best[list(metrics)].to_numpy(dtype=np.float64))) if len(best) else 1.0
    ax.set_ylim(0, max(1.0, top) * 1.12)
    ax.set_title(f"Best configuration per feature set (selected by {select_by})")
    ax.legend(fontsize="small", loc="upper center", ncols=len(metrics))
    ax.grid(True, axis="y", alpha=0.3)
    return ax
