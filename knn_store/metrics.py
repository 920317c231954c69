"""GCD evaluation: Hungarian clustering accuracy (All / Old / New), ARI and NMI.

Accuracy uses the *standard* variant of Vaze et al., "Generalized Category Discovery" (CVPR 2022), known
in their code as ``split_cluster_acc_v2``: one optimal one-to-one cluster-to-class assignment over all
evaluated points, then accuracy on the Old-class and New-class subsets under that same assignment. (The
``v1`` variant with separate assignments per subset inflates the numbers and is not offered.)
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from knn_store.errors import InvalidParameterError

__all__ = ["cluster_acc", "gcd_scores", "split_cluster_acc"]


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
        "ari": float(adjusted_rand_score(t, p)) if has else float("nan"),
        "nmi": float(normalized_mutual_info_score(t, p)) if has else float("nan"),
    }
