"""Blocked Euclidean distances for the reference SS-DDBC: rows x columns, float32 GEMM, bounded memory.

The users' job computes these distances one point at a time (``norm(X[members] - x)``); here they come from
``|a|^2 + |b|^2 - 2 a.b`` in blocks of rows, so a block of (rows x columns) float32 never exceeds
``_BLOCK_BYTES``. Results agree with the direct form to about 1e-7 (float32 rounding), which only matters
for exact distance ties.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["Points", "distance_blocks"]

_BLOCK_BYTES = 32 << 20


#: A sweep keeps the whole (n x n) float32 distance matrix when it is at most this large.
FULL_MATRIX_BYTES = 256 << 20


class Points:
    """Float32 features with their squared norms, computed once per job (or once per k in a sweep).

    ``share()`` computes the whole distance matrix once, when it fits :data:`FULL_MATRIX_BYTES`: the jobs
    of a sweep then gather their (rows x columns) blocks from it instead of one GEMM each. Values can differ
    from a per-job GEMM in the last float bit (BLAS blocking), which only matters for exact distance ties.
    """

    __slots__ = ("full", "sq", "x")

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.sq = np.einsum("ij,ij->i", x, x)
        self.full: np.ndarray | None = None

    def share(self) -> Points:
        """Keep the full distance matrix if it fits (see the class docstring); returns self."""
        n = self.x.shape[0]
        if self.full is None and 4 * n * n <= FULL_MATRIX_BYTES:
            every = np.arange(n)
            full = np.concatenate([d for _, d in distance_blocks(self, every, every)])
            full[every, every] = 0  # exact self-distance, where the GEMM leaves ~1e-4
            self.full = full
        return self

    def distances(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Distances (float32, shape (len(rows), len(cols))) between two index sets; one block."""
        if self.full is not None:
            return self.full.take(rows, axis=0).take(cols, axis=1)
        d2 = self.x[rows] @ self.x[cols].T
        d2 *= np.float32(-2)
        d2 += self.sq[rows, None]
        d2 += self.sq[None, cols]
        np.maximum(d2, 0, out=d2)  # GEMM cancellation can go slightly negative
        return np.sqrt(d2, out=d2)

    def to_vectors(self, vectors: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Distances (float32, shape (len(vectors), len(cols))) from arbitrary float32 vectors to points."""
        vsq = np.einsum("ij,ij->i", vectors, vectors)
        d2 = vectors @ self.x[cols].T
        d2 *= np.float32(-2)
        d2 += vsq[:, None]
        d2 += self.sq[None, cols]
        np.maximum(d2, 0, out=d2)
        return np.sqrt(d2, out=d2)


def distance_blocks(points: Points, rows: np.ndarray, cols: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(slice into rows, distances block)`` covering ``rows x cols`` with bounded memory."""
    step = max(1, _BLOCK_BYTES // (4 * max(cols.size, 1)))
    for s in range(0, rows.size, step):
        sl = slice(s, min(s + step, rows.size))
        yield sl, points.distances(rows[sl], cols)
