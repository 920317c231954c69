"""GCD evaluation: Hungarian clustering accuracy (All / Old / New), ARI and NMI.

Accuracy uses the *standard* variant of Vaze et al., "Generalized Category Discovery" (CVPR 2022), known
in their code as ``split_cluster_acc_v2``: one optimal one-to-one cluster-to-class assignment over all
evaluated points, then accuracy on the Old-class and New-class subsets under that same assignment. (The
``v1`` variant with separate assignments per subset inflates the numbers and is not offered.)
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from knn_store.errors import InvalidParameterError

__all__ = ["adjusted_rand_index", "cluster_acc", "gcd_scores", "normalized_mutual_info", "split_cluster_acc"]


def _contingency(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    w = np.zeros((int(p.max(initial=-1)) + 1, int(t.max(initial=-1)) + 1), dtype=np.int64)
    np.add.at(w, (p, t), 1)
    return w


def adjusted_rand_index(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985) from the contingency table.

    Same value as ``sklearn.metrics.adjusted_rand_score``, without its per-call validation overhead
    (milliseconds, which matter in a 200-job grid). Identical partitions, including the degenerate
    all-singletons and single-cluster cases, score 1.0.
    """
    w = _contingency(np.asarray(y_true), np.asarray(y_pred)).astype(np.float64)
    n = w.sum()
    if n < 2:
        return 1.0
    pairs = (w * (w - 1)).sum() / 2
    rows = (w.sum(1) * (w.sum(1) - 1)).sum() / 2
    cols = (w.sum(0) * (w.sum(0) - 1)).sum() / 2
    expected = rows * cols / (n * (n - 1) / 2)
    top = (rows + cols) / 2
    if top == expected:
        return 1.0
    return float((pairs - expected) / (top - expected))


def normalized_mutual_info(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """NMI with the arithmetic-mean normalisation (scikit-learn's default), from the contingency table.

    ``MI / ((H(true) + H(pred)) / 2)`` with natural logarithms; 1.0 when both sides have a single group.
    """
    w = _contingency(np.asarray(y_true), np.asarray(y_pred)).astype(np.float64)
    n = w.sum()
    if w.shape[0] == w.shape[1] <= 1:
        return 1.0
    p = w / n
    pr, pc = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(pr, pc)[nz])).sum())
    h = (-(pr[pr > 0] * np.log(pr[pr > 0])).sum() - (pc[pc > 0] * np.log(pc[pc > 0])).sum()) / 2
    return float(np.clip(mi / max(h, np.finfo(np.float64).eps), 0.0, 1.0))


def _mapped_correct(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Boolean per point: is its cluster matched to its class by the optimal one-to-one assignment."""
    classes, t = np.unique(y_true, return_inverse=True)
    clusters, p = np.unique(y_pred, return_inverse=True)
    w = np.zeros((clusters.size, classes.size), dtype=np.int64)
    np.add.at(w, (p, t), 1)
    rows, cols = linear_sum_assignment(w, maximize=True)
    match = np.full(clusters.size, -1, dtype=np.int64)  # unmatched clusters count as wrong
    match[rows] = cols
    return match[p] == t


def cluster_acc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Clustering accuracy under the optimal one-to-one cluster-to-class mapping (fraction in [0, 1])."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise InvalidParameterError(
            f"y_true and y_pred must be 1-D of equal length, got {y_true.shape}, {y_pred.shape}"
        )
    if y_true.size == 0:
        return float("nan")
    return float(_mapped_correct(y_true, y_pred).mean())


def split_cluster_acc(
    y_true: np.ndarray, y_pred: np.ndarray, old_mask: np.ndarray
) -> tuple[float, float, float]:
    """All / Old / New accuracy with one Hungarian assignment over all points (GCD ``v2``).

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray, shape (m,)
        True classes and cluster ids of the evaluated (unlabelled) points.
    old_mask : numpy.ndarray, bool, shape (m,)
        True where the point's class is an Old class (one that has labelled examples).

    Returns
    -------
    (float, float, float)
        Accuracies in [0, 1]; a subset with no point gives NaN.
    """
    y_true, y_pred, old_mask = np.asarray(y_true), np.asarray(y_pred), np.asarray(old_mask, dtype=bool)
    if not (y_true.shape == y_pred.shape == old_mask.shape) or y_true.ndim != 1:
        raise InvalidParameterError("y_true, y_pred and old_mask must be 1-D arrays of equal length")
    if y_true.size == 0:
        return float("nan"), float("nan"), float("nan")
    ok = _mapped_correct(y_true, y_pred)

    def _mean(sel: np.ndarray) -> float:
        return float(ok[sel].mean()) if sel.any() else float("nan")

    return float(ok.mean()), _mean(old_mask), _mean(~old_mask)


def gcd_scores(y_true: np.ndarray, y_pred: np.ndarray, labeled_mask: np.ndarray) -> dict[str, float]:
    """Score a clustering the GCD way, on the unlabelled points only.

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n,)
        Ground-truth classes of every point.
    y_pred : numpy.ndarray, shape (n,)
        Cluster ids (-1 is treated as one more cluster).
    labeled_mask : numpy.ndarray, bool, shape (n,)
        Points whose label was given to the clustering; Old classes are the classes present among them.

    Returns
    -------
    dict
        ``acc_all``, ``acc_old``, ``acc_new`` (standard v2 Hungarian accuracy), ``ari``, ``nmi``.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    mask = np.asarray(labeled_mask, dtype=bool)
    if not (y_true.shape == y_pred.shape == mask.shape):
        raise InvalidParameterError("y_true, y_pred and labeled_mask must have the same shape")
    unl = ~mask
    t, p = y_true[unl], y_pred[unl]
    old = np.isin(t, np.unique(y_true[mask]))
    acc_all, acc_old, acc_new = split_cluster_acc(t, p, old)
    has = t.size > 0
    return {
        "acc_all": acc_all,
        "acc_old": acc_old,
        "acc_new": acc_new,
        "ari": adjusted_rand_index(t, p) if has else float("nan"),
        "nmi": normalized_mutual_info(t, p) if has else float("nan"),
    }
