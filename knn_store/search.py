"""Grid search of SS-DDBC over (feature set, k, density percentile) on a cached kNN.

The client hashes each feature set once and ensures one entry per feature set at ``max(ks)``. It then
submits one task per (feature set, k) that loops over every percentile: a task carries an
:class:`~knn_store.EntryRef`, k and the parameters (a few hundred bytes), never kNN arrays; labels are
scattered once per run. Workers load the entry through the per-process memo, with BLAS pinned to one thread.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from knn_store._names import check_name
from knn_store.cluster.metrics import gcd_scores
from knn_store.cluster.ours import ssddbc_sweep
from knn_store.errors import InvalidFeaturesError, InvalidParameterError
from knn_store.store.cache import KNNStore
from knn_store.store.entry import EntryRef
from knn_store.store.memo import load

__all__ = ["COLUMNS", "best_configurations", "grid_search", "run_clustering_search_on_features"]

logger = logging.getLogger(__name__)

#: Columns of the result table, in order.
COLUMNS = (
    "feature_set",
    "k",
    "density_percentile",
    "acc_all",
    "acc_old",
    "acc_new",
    "ari",
    "nmi",
    "n_clusters",
    "seconds",
)
_SORT = ["feature_set", "k", "density_percentile"]


@dataclass(frozen=True)
class _Labels:
    labels: np.ndarray
    labeled_mask: np.ndarray


def _run_k(
    ref: EntryRef, name: str, k: int, percentiles: tuple[float, ...], lab: _Labels, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """One task: every percentile of one (feature set, k). Runs in a worker or in-process."""
    rows = []
    with threadpool_limits(limits=1):  # N workers x N BLAS threads would oversubscribe the cores
        nb, ds = load(ref, k)
        t0 = time.perf_counter()
        results = ssddbc_sweep(
            lab.labels,
            lab.labeled_mask,
            k=k,
            density_percentiles=percentiles,
            precomputed_knn=(nb, ds),
            **params,
        )
        shared = (time.perf_counter() - t0) / len(percentiles)
        for p, res in zip(percentiles, results, strict=True):
            t0 = time.perf_counter()
            scores = gcd_scores(lab.labels, res.labels, lab.labeled_mask)
            rows.append(
                {
                    "feature_set": name,
                    "k": int(k),
                    "density_percentile": float(p),
                    **scores,
                    "n_clusters": res.n_clusters,
                    "seconds": shared + time.perf_counter() - t0,
                }
            )
    return rows


def _as_feature_sets(feature_sets: Mapping[str, Any] | Any) -> dict[str, Any]:
    sets = dict(feature_sets) if isinstance(feature_sets, Mapping) else {"features": feature_sets}
    if not sets:
        raise InvalidFeaturesError("feature_sets is empty")
    for name in sets:
        check_name(name)
    return sets


def _check_grid(ks: Iterable[int], percentiles: Iterable[float]) -> tuple[list[int], tuple[float, ...]]:
    k_list = sorted({int(k) for k in ks})
    p_list = tuple(sorted({float(p) for p in percentiles}))
    if not k_list or k_list[0] < 1:
        raise InvalidParameterError(f"ks must be a non-empty set of integers >= 1, got {k_list}")
    if not p_list or p_list[0] < 0 or p_list[-1] > 100:
        raise InvalidParameterError(
            f"density percentiles must be a non-empty set within [0, 100], got {p_list}"
        )
    return k_list, p_list


def best_configurations(table: pd.DataFrame, by: str = "acc_all") -> pd.DataFrame:
    """Best row per feature set.

    Rule: highest ``by`` (default ``acc_all``); ties broken by higher ``nmi``, then higher ``ari``, then
    smaller ``k``, then smaller ``density_percentile`` (cheaper and more conservative). NaN scores rank last.
    Note that ``acc_*`` use ground truth of the unlabelled points: it is the GCD reporting protocol, an
    oracle for model selection; pass ``by="nmi"`` or another column to select differently.
    """
    if table.empty:
        return table.copy()
    if by not in table.columns:
        raise InvalidParameterError(f"cannot select by {by!r}: not a column of the table")
    ranked = table.sort_values(
        [by, "nmi", "ari", "k", "density_percentile"],
        ascending=[False, False, False, True, True],
        na_position="last",
        kind="mergesort",
    )
    return ranked.groupby("feature_set", sort=True).head(1).sort_values("feature_set").reset_index(drop=True)


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("feature_set", pa.string()),
            ("k", pa.int64()),
            ("density_percentile", pa.float64()),
            ("acc_all", pa.float64()),
            ("acc_old", pa.float64()),
            ("acc_new", pa.float64()),
            ("ari", pa.float64()),
            ("nmi", pa.float64()),
            ("n_clusters", pa.int64()),
            ("seconds", pa.float64()),
        ]
    )


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(pa.Table.from_pandas(df, schema=_schema(), preserve_index=False), tmp)
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    finally:
        tmp.unlink(missing_ok=True)


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df = df.astype({"feature_set": str, "k": "int64", "density_percentile": "float64", "n_clusters": "int64"})
    return df.sort_values(_SORT, kind="mergesort").reset_index(drop=True)


def grid_search(
    feature_sets: Mapping[str, Any] | Any,
    labels: Any,
    labeled_mask: Any,
    ks: Iterable[int],
    density_percentiles: Iterable[float],
    client: Any | None = None,
    store: KNNStore | str | os.PathLike[str] | None = None,
    *,
    metric: str = "euclidean",
    backend: str | None = None,
    refresh: bool = False,
    out: str | os.PathLike[str] | None = None,
    select_by: str = "acc_all",
    cluster_params: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Run SS-DDBC over every (feature set, k, density percentile) and score it.

    Parameters
    ----------
    feature_sets : dict of str to array_like (n, d), or one array_like
        Feature matrices over the same n points; names must be safe path components (see ``check_name``).
        A single array is named ``"features"``.
    labels : array_like, int, shape (n,)
        Ground-truth classes of every point (used for scoring; only labelled ones reach the clustering).
    labeled_mask : array_like, bool, shape (n,)
        Points whose label is known to the clustering. Old classes are those present among them.
    ks : iterable of int
        Neighbour counts; one kNN per feature set is computed at ``max(ks)`` and sliced.
    density_percentiles : iterable of float
        Core-point percentiles in [0, 100].
    client : distributed.Client, optional
        Run tasks on this cluster; ``None`` runs serially in this process (same results).
    store : KNNStore or path, optional
        Where entries live; ``None`` uses a temporary store removed at the end of the call.
    metric, backend : str
        kNN metric and backend (see :meth:`KNNStore.ensure`).
    refresh : bool, default False
        Recompute the kNN even on a cache hit (the ``--clear-knn-cache`` of older scripts is not needed:
        retrained features have a different key anyway).
    out : path, optional
        Directory; ``results.parquet`` (all rows) and ``best.parquet`` are written atomically.
    select_by : str, default "acc_all"
        Column for :func:`best_configurations`.
    cluster_params : mapping, optional
        Extra keyword arguments of :func:`knn_store.ssddbc` (``relative``, ``cutoff``).
    progress : bool, optional
        tqdm bar over jobs; ``None`` shows it only on a terminal.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, sorted by (feature_set, k, density_percentile); one row per job;
        ``seconds`` is the clustering and scoring time of that job (the per-k work shared by the
        percentiles of one task is split evenly between them). ``df.attrs["best"]`` holds the rows of
        :func:`best_configurations` as a list of dicts (``pd.DataFrame(df.attrs["best"])``).
    """
    if store is None:
        with KNNStore.temporary() as tmp:
            return grid_search(
                feature_sets, labels, labeled_mask, ks, density_percentiles, client, tmp,
                metric=metric, backend=backend, refresh=refresh, out=out, select_by=select_by,
                cluster_params=cluster_params, progress=progress,
            )  # fmt: skip
    if not isinstance(store, KNNStore):
        store = KNNStore(store)
    sets = _as_feature_sets(feature_sets)
    k_list, p_list = _check_grid(ks, density_percentiles)
    lab = _Labels(np.asarray(labels), np.asarray(labeled_mask, dtype=bool))
    params = dict(cluster_params or {})
    refs: dict[str, EntryRef] = {}
    for name, x in sets.items():
        n = np.shape(x)[0]
        if lab.labels.shape != (n,) or lab.labeled_mask.shape != (n,):
            raise InvalidFeaturesError(
                f"feature set {name!r} has {n} rows but labels/labeled_mask have shapes "
                f"{lab.labels.shape}/{lab.labeled_mask.shape}"
            )
        refs[name] = store.ensure(
            x, k_list[-1], metric, backend=backend, refresh=refresh, source={"name": name}
        )
    jobs = [(name, k) for name in sets for k in k_list]  # grouped by feature set: one memo load per worker
    rows = _execute(jobs, refs, p_list, lab, params, client, progress)
    df = _table(rows)
    best = best_configurations(df, select_by)
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_parquet(df, out_dir / "results.parquet")
        _write_parquet(best, out_dir / "best.parquet")
        logger.info("wrote %d rows to %s", len(df), out_dir / "results.parquet")
    # Plain records (not a DataFrame): attrs must stay JSON-serialisable and cheap to copy.
    df.attrs["best"] = best.to_dict(orient="records")
    df.attrs["select_by"] = select_by
    return df


def _execute(
    jobs: Sequence[tuple[str, int]],
    refs: Mapping[str, EntryRef],
    percentiles: tuple[float, ...],
    lab: _Labels,
    params: dict[str, Any],
    client: Any | None,
    progress: bool | None,
) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    rows: list[dict[str, Any]] = []
    total = len(jobs) * len(percentiles)
    with tqdm(total=total, unit="job", disable=None if progress is None else not progress) as bar:
        if client is None:
            for name, k in jobs:
                part = _run_k(refs[name], name, k, percentiles, lab, params)
                rows.extend(part)
                bar.update(len(part))
            return rows
        from distributed import as_completed

        [lab_future] = client.scatter([lab], hash=False)  # labels travel once per worker, not per task
        run = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                _run_k,
                refs[name],
                name,
                k,
                percentiles,
                lab_future,
                params,
                key=f"knn-grid-{run}-{name}-k{k}",
            )
            for name, k in jobs
        ]
        try:
            for fut, part in as_completed(futures, with_results=True):
                rows.extend(part)
                bar.update(len(part))
                del fut, part  # results are freed as soon as they are in the table
        finally:
            # Only an aborted run (a task error, KeyboardInterrupt) leaves work to cancel.
            pending = [f for f in futures if not f.done()]
            if pending:
                client.cancel(pending)
            del futures, lab_future
    return rows


def run_clustering_search_on_features(
    features: Any,
    labels: Any,
    labeled_mask: Any,
    ks: Iterable[int] = range(3, 22),
    density_percentiles: Iterable[float] = range(40, 95, 5),
    client: Any | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Training-loop mode: grid search on freshly computed features with a temporary store.

    The store lives only for this call and is removed afterwards, even if the search fails. Parameters
    are those of :func:`grid_search` (``features`` may be an array or a dict of arrays).
    """
    if "store" in kwargs:
        raise InvalidParameterError(
            "run_clustering_search_on_features always uses a temporary store; use grid_search"
        )
    with KNNStore.temporary() as store:
        return grid_search(features, labels, labeled_mask, ks, density_percentiles, client, store, **kwargs)
