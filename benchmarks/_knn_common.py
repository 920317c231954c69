"""Synthetic ViT-like features shared by ``bench_knn_grid.py`` and ``bench_knn_load.py`` (no benchmark here)."""

from __future__ import annotations

import numpy as np


def vit_like(n: int, d: int, n_classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2-normalised features from class centres, sub-clusters and low-rank noise, with a GCD split.

    Returns
    -------
    features : float32 (n, d)
    labels : int64 (n,)
        Classes ``0 .. n_classes - 1``; the last class is New.
    labeled_mask : bool (n,)
        Half of the points of the Old classes.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    centres = rng.normal(size=(n_classes, d))
    sub = rng.normal(scale=0.6, size=(n_classes, 4, d))
    basis = rng.normal(size=(32, d)) / np.sqrt(32)
    x = centres[y] + sub[y, rng.integers(0, 4, n)] + rng.normal(scale=1.0, size=(n, 32)) @ basis
    x += rng.normal(scale=0.3, size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labeled = (y < n_classes - 1) & (rng.random(n) < 0.5)
    return x.astype(np.float32), y, labeled
