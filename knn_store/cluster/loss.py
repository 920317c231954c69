"""The users' selection loss: ``l1`` (cross-entropy on labelled points), ``l2`` (silhouette / separation).

As their batch runner computes it (``ssddbc_reference.md`` section 8):

* ``l1``: over the labelled points, each cluster's class distribution of its labelled members; the mean
  over labelled points of ``-ln(p(own cluster, own class) + 1e-10)``;
* ``separation``: ``exp(-mean distance between the mean vectors of every pair of core clusters)``, 0 with
  fewer than 2 clusters ('prototype' method);
* ``silhouette``: the mean silhouette (Euclidean, all points clustered) of the unlabelled points, 0 with fewer
  than 2 clusters or no unlabelled point;
* ``l2 = sum of weight * component`` (both components are "maximise" terms and enter with a plus sign);
  their variant B uses ``{"silhouette": 3.0, "separation": 0.0}`` (the default here), variant A no component
  (``{}``: ``l2 = 0``);
* ``loss = l1 + l2`` is what their batch runner writes; ``score = -l1 + l2`` is what their pseudo-label
  pipeline maximises.

The silhouette needs the distances of every unlabelled point to every point. They do not depend on the
labels, so :class:`UsersLoss` keeps them once (when they fit in ``max_bytes``) for all jobs of a task.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from knn_store._numbers import real_number
from knn_store.cluster._reference_distances import Points, distance_blocks
from knn_store.errors import InvalidParameterError

__all__ = ["COMPONENTS", "DEFAULT_WEIGHTS", "LOSS_COLUMNS", "UsersLoss", "check_weights", "l1_cross_entropy"]

#: Columns produced by :meth:`UsersLoss.__call__`.
LOSS_COLUMNS = ("l1", "l2", "loss", "score")
#: L2 components understood in ``weights``.
COMPONENTS = ("silhouette", "separation")
#: Their variant B's weights (the batch runner's ``l2_component_weights`` with ``separation_weight=0``).
DEFAULT_WEIGHTS = {"silhouette": 3.0, "separation": 0.0}


def check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """``weights`` (default :data:`DEFAULT_WEIGHTS`) as a dict, or :class:`~knn_store.InvalidParameterError`
    naming the first unknown component or non-finite weight."""
    checked = dict(DEFAULT_WEIGHTS if weights is None else weights)
    for name, w in checked.items():
        number = real_number(w)  # the user's value, whatever the annotation says
        if name not in COMPONENTS or number is None or not math.isfinite(number):
            raise InvalidParameterError(
                f"l2_weights: unknown component {name!r} or non-finite weight {w!r}; components are {COMPONENTS}"
            )
    return checked


def l1_cross_entropy(pred: np.ndarray, y: np.ndarray, labeled: np.ndarray) -> float:
    """Their ``l1_type='cross_entropy'`` (see the module docstring); NaN without labelled points."""
    lp, lt = pred[labeled], y[labeled]
    if lp.size == 0:
        return float("nan")
    _, c = np.unique(lp, return_inverse=True)
    _, t = np.unique(lt, return_inverse=True)
    counts = np.zeros((c.max() + 1, t.max() + 1))
    np.add.at(counts, (c, t), 1)
    p = counts[c, t] / counts.sum(axis=1)[c]
    return float(np.mean(-np.log(p + 1e-10)))


class UsersLoss:
    """Loss columns of one feature set, reusable across the jobs of a grid task.

    Parameters
    ----------
    features : numpy.ndarray, float32, shape (n, d), or Points
        A :class:`~knn_store.cluster._reference_distances.Points` shares its distance matrix, if any.
    labels, labeled_mask : numpy.ndarray, shape (n,)
    weights : mapping of component name to float, optional
        Default :data:`DEFAULT_WEIGHTS`; a component with weight 0 is not computed.
    max_bytes : int, default 256 MiB
        Keep the (unlabelled x all) float32 distances when they fit; otherwise recompute them per job in
        bounded blocks.
    """

    def __init__(
        self,
        features: np.ndarray | Points,
        labels: np.ndarray,
        labeled_mask: np.ndarray,
        weights: Mapping[str, float] | None = None,
        *,
        max_bytes: int = 256 << 20,
    ) -> None:
        self.weights = check_weights(weights)
        self.points = features if isinstance(features, Points) else Points(features)
        self.labels = labels
        self.mask = labeled_mask
        self.rows = np.flatnonzero(~labeled_mask)
        self.all = np.arange(labeled_mask.size)
        self._max_bytes = max_bytes
        self._dist: np.ndarray | None = None

    def _zero_self(self, sl: slice, d: np.ndarray) -> tuple[slice, np.ndarray]:
        d[np.arange(d.shape[0]), self.rows[sl]] = 0  # exact, where the GEMM leaves ~1e-4
        return sl, d

    def _blocks(self) -> Iterable[tuple[slice, np.ndarray]]:
        if 4 * self.rows.size * self.all.size > self._max_bytes:
            return (self._zero_self(sl, d) for sl, d in distance_blocks(self.points, self.rows, self.all))
        if self._dist is None and self.points.full is not None:
            self._dist = self.points.full.take(self.rows, axis=0)  # once per task; zero diagonal already
        elif self._dist is None:
            parts = [self._zero_self(sl, d)[1] for sl, d in distance_blocks(self.points, self.rows, self.all)]
            self._dist = np.concatenate(parts) if parts else np.zeros((0, self.all.size), np.float32)
        return [(slice(0, self.rows.size), self._dist)]

    def silhouette(self, pred: np.ndarray) -> float:
        """Mean silhouette of the unlabelled points (scikit-learn's definition, singleton clusters score 0)."""
        ids, codes = np.unique(pred, return_inverse=True)
        if ids.size < 2 or self.rows.size == 0:
            return 0.0
        size = np.bincount(codes).astype(np.float64)
        onehot = np.zeros((pred.size, ids.size), dtype=np.float32)
        onehot[np.arange(pred.size), codes] = 1
        total = 0.0
        for sl, d in self._blocks():
            sums = (d @ onehot).astype(np.float64)
            own = codes[self.rows[sl]]
            r = np.arange(own.size)
            a = sums[r, own] / np.maximum(size[own] - 1, 1)
            sums /= size
            sums[r, own] = np.inf
            b = sums.min(axis=1)
            s = np.where(size[own] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
            total += float(np.nan_to_num(s).sum())
        return total / self.rows.size

    def separation(self, pred: np.ndarray, core: np.ndarray) -> float:
        """``exp(-mean distance between core-cluster mean vectors)``; 0 with fewer than 2 core clusters."""
        ids = np.unique(pred[core])
        if ids.size < 2:
            return 0.0
        x = self.points.x
        means = np.stack([x[core & (pred == c)].mean(axis=0) for c in ids]).astype(np.float64)
        d = np.sqrt(np.maximum(((means[:, None, :] - means[None, :, :]) ** 2).sum(-1), 0))
        return float(np.exp(-d[np.triu_indices(ids.size, 1)].mean()))

    def __call__(self, pred: np.ndarray, core: np.ndarray) -> dict[str, float]:
        """``l1``, ``l2``, ``loss`` and ``score`` of one clustering (see the module docstring)."""
        l1 = l1_cross_entropy(pred, self.labels, self.mask)
        l2 = 0.0
        if self.weights.get("silhouette", 0.0):
            l2 += self.weights["silhouette"] * self.silhouette(pred)
        if self.weights.get("separation", 0.0):
            l2 += self.weights["separation"] * self.separation(pred, core)
        return {"l1": l1, "l2": l2, "loss": l1 + l2, "score": -l1 + l2}
