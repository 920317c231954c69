"""knn_store.plot on a real (small) grid search over the digits GCD split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import knn_store

pytestmark = pytest.mark.usefixtures("agg_figures")


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    labeled = (y < 5) & (rng.random(y.size) < 0.5)
    sets = {"pixels": x.astype(np.float32), "pca8": _pca(x, 8)}
    return knn_store.grid_search(sets, y, labeled, [4, 8, 12], [40, 60, 80], progress=False)


def _pca(x: np.ndarray, d: int) -> np.ndarray:
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[:d].T).astype(np.float32)


def test_heatmap_shows_the_grid(results: pd.DataFrame) -> None:
    from matplotlib.patches import Rectangle

    from knn_store.plot import plot_acc_heatmap

    ax = plot_acc_heatmap(results, feature_set="pca8")
    rows = results[results.feature_set == "pca8"]
    grid = rows.pivot(index="k", columns="density_percentile", values="acc_all").sort_index()
    image = ax.images[0].get_array()
    assert image.shape == (3, 3)
    np.testing.assert_allclose(np.asarray(image), grid.to_numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4", "8", "12"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["40", "60", "80"]
    assert ax.get_xlabel() == "density percentile [%]"
    assert ax.get_ylabel() == "k (neighbours)"
    assert len(ax.texts) == 9  # annotated cells
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == 1
    best = rows.loc[rows.acc_all.idxmax()]
    i, j = list(grid.index).index(best.k), list(grid.columns).index(best.density_percentile)
    assert boxes[0].get_xy() == (j - 0.5, i - 0.5)
    assert f"k={best.k}" in ax.get_title()


def test_heatmap_other_metric_and_errors(results: pd.DataFrame) -> None:
    from knn_store.plot import plot_acc_heatmap

    ax = plot_acc_heatmap(results, "pixels", metric="n_clusters", annotate=False, mark_best=False)
    assert not ax.texts
    assert not ax.patches
    with pytest.raises(ValueError, match="feature_set"):
        plot_acc_heatmap(results)
    with pytest.raises(ValueError, match="no rows"):
        plot_acc_heatmap(results, "missing")
    with pytest.raises(KeyError, match="acc_bogus"):
        plot_acc_heatmap(results, "pixels", metric="acc_bogus")
    single = results[results.feature_set == "pixels"]
    assert plot_acc_heatmap(single).images


def test_plot_best(results: pd.DataFrame) -> None:
    from knn_store.plot import plot_best

    ax = plot_best(results)
    best = knn_store.best_configurations(results)
    assert len(ax.containers) == 3
    heights = [bar.get_height() for bar in ax.containers[0]]
    np.testing.assert_allclose(heights, best.acc_all)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0].startswith(best.feature_set[0])
    assert f"k={best.k[0]}" in labels[0]
    assert "acc_all" in ax.get_title()


def test_plot_best_empty() -> None:
    from knn_store.plot import plot_best
    from knn_store.search import COLUMNS

    with pytest.raises(ValueError, match="empty"):
        plot_best(pd.DataFrame(columns=list(COLUMNS)))
