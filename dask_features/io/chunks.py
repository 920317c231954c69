"""In-memory containers for a chunk of steps, as extractors receive them.

A chunk is what one Dask task reads from one experiment file: a contiguous range ``[a, b)`` of
transfer or transient steps. Chunks are created inside tasks and never travel through the graph.

Transfer steps are rectangular (NaN-padded to the longest sweep); transient steps are ragged and
stored flat with CSR-style ``offsets`` so extractors can vectorise over all samples of a chunk.

Both containers carry a ``memo`` dict so work shared by several features (the transconductance
curve, detected edges, ...) is computed once per chunk: see :meth:`TransferChunk.cached`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

__all__ = ["Chunk", "ChunkMeta", "TransferChunk", "TransientChunk"]

T = TypeVar("T")


@dataclass(frozen=True)
class ChunkMeta:
    """Experiment-level facts an extractor may need.

    Attributes
    ----------
    path : str
        Source HDF5 file (for error messages).
    test_id : str
        Experiment identifier.
    device_type : {"N", "P"} or None
        Device polarity from the file's metadata, None when the file does not say.
    attrs : mapping
        All root attributes of the file, decoded (e.g. channel geometry when the lab records it).
    """

    path: str = ""
    test_id: str = ""
    device_type: str | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class _Memo:
    memo: dict[Any, Any]
    issues: list[tuple[int, str]]

    def report(self, rows: np.ndarray | list[int] | int, message: str) -> None:
        """Record a per-step problem (the step's value is NaN); the engine files it with the feature name.

        Parameters
        ----------
        rows : int or array of int or bool mask
            Row positions within this chunk (not step numbers).
        message : str
            Why those steps gave no value, e.g. ``"all-NaN sweep"``.
        """
        idx = np.arange(len(self.step_index))[np.asarray(rows)] if np.ndim(rows) else [int(rows)]  # type: ignore[attr-defined,arg-type]
        steps = self.step_index[idx]  # type: ignore[attr-defined]
        self.issues.extend((int(s), message) for s in np.atleast_1d(steps))

    def cached(self, key: Any, compute: Callable[[], T]) -> T:
        """Return ``compute()``, evaluated at most once per chunk for a given ``key``.

        Use a tuple key that includes every parameter the result depends on, e.g.
        ``("gm", "forward")``.
        """
        try:
            return self.memo[key]
        except KeyError:
            value = self.memo[key] = compute()
            return value


@dataclass(eq=False)
class TransferChunk(_Memo):
    """A chunk of transfer sweeps.

    Attributes
    ----------
    step_index : ndarray of int64, shape (n,)
        0-based transfer step numbers within the experiment.
    vg : ndarray of float64, shape (n, m)
        Gate voltage [V as stored in the file], right-padded with NaN.
    id : ndarray of float64, shape (n, m)
        Drain current [A as stored in the file], right-padded with NaN.
    lengths : ndarray of int64, shape (n,)
        Number of valid points per step (trailing padding excluded). NaN points *inside* a
        sweep are data: extractors drop them per step.
    meta : ChunkMeta
        Experiment-level metadata.
    """

    step_index: np.ndarray
    vg: np.ndarray
    id: np.ndarray
    lengths: np.ndarray
    meta: ChunkMeta = field(default_factory=ChunkMeta)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    issues: list[tuple[int, str]] = field(default_factory=list, repr=False)

    @property
    def n_steps(self) -> int:
        return int(self.step_index.shape[0])

    def take(self, rows: np.ndarray | slice) -> TransferChunk:
        """Sub-chunk with the given rows (fresh memo); used to isolate failing steps."""
        return TransferChunk(
            step_index=self.step_index[rows],
            vg=self.vg[rows],
            id=self.id[rows],
            lengths=self.lengths[rows],
            meta=self.meta,
        )

    def step(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(vg, id)`` of row ``i`` trimmed to its valid length."""
        n = int(self.lengths[i])
        return self.vg[i, :n], self.id[i, :n]


@dataclass(eq=False)
class TransientChunk(_Memo):
    """A chunk of transient traces, stored flat.

    Attributes
    ----------
    step_index : ndarray of int64, shape (n,)
        0-based transient step numbers within the experiment.
    time : ndarray of float64, shape (total,)
        ``continuous_time`` [s] of all steps, concatenated.
    current : ndarray of float64, shape (total,)
        Drain current [A as stored], concatenated.
    offsets : ndarray of int64, shape (n + 1,)
        Step ``i`` occupies ``time[offsets[i]:offsets[i + 1]]``.
    period : ndarray of float64, shape (n,)
        Gate pulse period [s] (topTime + bottomTime) per step, NaN when unknown.
    time_step : ndarray of float64, shape (n,)
        Sampling interval [s] (timeStep) per step, NaN when unknown.
    duty : ndarray of float64, shape (n,)
        Fraction of the period spent at the top gate voltage, NaN when unknown.
    meta : ChunkMeta
        Experiment-level metadata.
    """

    step_index: np.ndarray
    time: np.ndarray
    current: np.ndarray
    offsets: np.ndarray
    period: np.ndarray
    time_step: np.ndarray
    duty: np.ndarray
    meta: ChunkMeta = field(default_factory=ChunkMeta)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    issues: list[tuple[int, str]] = field(default_factory=list, repr=False)

    @property
    def n_steps(self) -> int:
        return int(self.step_index.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Number of samples per step, shape (n,)."""
        return np.diff(self.offsets)

    def step(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(time, current)`` of row ``i``."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.time[a:b], self.current[a:b]

    def take(self, rows: np.ndarray | slice) -> TransientChunk:
        """Sub-chunk with the given rows (fresh memo); used to isolate failing steps."""
        idx = np.arange(self.n_steps)[rows]
        starts, stops = self.offsets[idx], self.offsets[idx + 1]
        sel = (
            np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
            if len(idx)
            else np.zeros(0, np.int64)
        )
        lengths = stops - starts
        return TransientChunk(
            step_index=self.step_index[idx],
            time=self.time[sel],
            current=self.current[sel],
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            period=self.period[idx],
            time_step=self.time_step[idx],
            duty=self.duty[idx],
            meta=self.meta,
        )


#: What an extractor receives: a chunk of one source's steps.
Chunk = TransferChunk | TransientChunk
