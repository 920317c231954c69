"""Grid search of SS-DDBC over (feature set, k, density percentile) on a cached kNN.

The client hashes each feature set once and ensures one entry per feature set at ``max(ks)``. It then
submits one task per (feature set, k) that loops over every percentile: a task carries an
:class:`~knn_store.EntryRef`, k and the parameters (a few hundred bytes), never kNN arrays; labels are
scattered once per run (with the feature matrices when the algorithm, ``cluster_fn`` or the loss columns
need them). Workers load the entry through the per-process memo, with BLAS pinned to one thread.

What a job runs and scores is :mod:`knn_store.cluster.jobs`: ``algorithm="reference"`` (the users' own
SS-DDBC, default) or ``"ours"``, or any ``cluster_fn`` fed with the cached kNN.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from knn_store._names import check_name
from knn_store._numbers import percentile_problem
from knn_store.cluster.jobs import ClusterFn, JobSpec, clear_shared_points, run_jobs, shared_points
from knn_store.errors import InvalidFeaturesError, InvalidLabelsError, InvalidParameterError
from knn_store.neighbors import prepare_features
from knn_store.store.cache import KNNStore
from knn_store.store.entry import EntryRef
from knn_store.store.memo import load

__all__ = ["COLUMNS", "RULES", "best_configurations", "grid_search", "run_clustering_search_on_features"]

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
    "l1",
    "l2",
    "loss",
    "score",
    "seconds",
)
#: Selection rules of :func:`best_configurations`.
RULES = ("ours", "first")
_SORT = ["feature_set", "k", "density_percentile"]


@dataclass(frozen=True)
class _Labels:
    labels: np.ndarray
    labeled_mask: np.ndarray
    features: Mapping[str, np.ndarray] | None = None


def _run_k(
    ref: EntryRef, name: str, k: int, percentiles: tuple[float, ...], lab: _Labels, spec: JobSpec
) -> list[dict[str, Any]]:
    """One task: every percentile of one (feature set, k). Runs in a worker or in-process."""
    with threadpool_limits(limits=1):  # N workers x N BLAS threads would oversubscribe the cores
        knn = load(ref, ref.k_max)  # full width: the reference serves its core kNN from it where it can
        x = None if lab.features is None else lab.features[name]
        points = shared_points(ref.key, x) if x is not None and spec.shares_distances else None
        rows = run_jobs(x, lab.labels, lab.labeled_mask, k, percentiles, knn, spec, points)
    return [{"feature_set": name, **row} for row in rows]


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
    problem = percentile_problem(p_list)
    if problem is not None:
        raise InvalidParameterError(problem)
    return k_list, p_list


def _as_mask(labeled_mask: Any) -> np.ndarray:
    """``labeled_mask`` as booleans: a boolean array, or numbers that are all 0 or 1.

    Anything else (the labels vector passed by mistake, fractions, NaN) would become a plausible-looking
    mask under ``astype(bool)`` and a wrong table, so it is refused.
    """
    mask = np.asarray(labeled_mask)
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind in "iuf" and np.isin(mask, (0, 1)).all():
        return mask.astype(bool)
    values = list(dict.fromkeys(mask.ravel()[:1000].tolist()))[:5]
    raise InvalidLabelsError(
        f"labeled_mask must be boolean (or 0/1), got dtype {mask.dtype} with values such as {values}; "
        "were labels and labeled_mask swapped?"
    )


def best_configurations(table: pd.DataFrame, by: str = "acc_all", rule: str = "ours") -> pd.DataFrame:
    """Best row per feature set.

    Rules (``rule``):

    * ``"ours"``: highest ``by``; ties broken by higher ``nmi``, then higher ``ari``, then smaller ``k``,
      then smaller ``density_percentile`` (cheaper and more conservative). NaN scores rank last.
    * ``"first"``: the users' rule: the first row with the highest ``by`` in k-major order (smaller ``k``,
      then smaller ``density_percentile``), as their serial batch runner keeps it (strict ``>``). Their
      batch runner selects ``by="acc_all"``; their pseudo-label pipeline ``by="score"`` (``-l1 + l2``).

    Note that ``acc_*`` use ground truth of the unlabelled points: it is the GCD reporting protocol, an
    oracle for model selection; ``by="score"`` uses no hidden label.
    """
    if rule not in RULES:
        raise InvalidParameterError(f"rule must be one of {RULES}, got {rule!r}")
    if table.empty:
        return table.copy()
    if by not in table.columns:
        raise InvalidParameterError(f"cannot select by {by!r}: not a column of the table")
    keys, asc = ([by, "k", "density_percentile"], [False, True, True])
    if rule == "ours":
        keys, asc = [by, "nmi", "ari", "k", "density_percentile"], [False, False, False, True, True]
    ranked = table.sort_values(keys, ascending=asc, na_position="last", kind="mergesort")
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
            ("l1", pa.float64()),
            ("l2", pa.float64()),
            ("loss", pa.float64()),
            ("score", pa.float64()),
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
    ks: Iterable[int] = range(3, 21),
    density_percentiles: Iterable[float] = range(40, 95, 5),
    client: Any | None = None,
    store: KNNStore | str | os.PathLike[str] | None = None,
    *,
    metric: str = "euclidean",
    backend: str | None = None,
    refresh: bool = False,
    out: str | os.PathLike[str] | None = None,
    select_by: str = "acc_all",
    select_rule: str = "ours",
    algorithm: str = "reference",
    cluster_params: Mapping[str, Any] | None = None,
    cluster_fn: ClusterFn | None = None,
    loss: bool = True,
    l2_weights: Mapping[str, float] | None = None,
    progress: bool | None = None,
    **params: Any,
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
    ks : iterable of int, default 3..20
        Neighbour counts; one kNN per feature set is computed at ``max(ks)`` and sliced. With the default
        percentiles this is the users' grid of 198 jobs.
    density_percentiles : iterable of float, default 40, 45, ..., 90
        Core-point percentiles in [0, 100].
    client : distributed.Client, optional
        Run tasks on this cluster, the exact kNN of a feature set missing from the store included
        (blockwise, see :meth:`KNNStore.ensure`); ``None`` runs serially in this process (same results).
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
    select_rule : {"ours", "first"}, default "ours"
        Tie rule of :func:`best_configurations`; ``"first"`` is the users' (first best in k-major order).
    algorithm : {"reference", "ours"}, default "reference"
        :func:`knn_store.ssddbc` algorithm; ``"reference"`` is the users' own SS-DDBC.
    cluster_params : mapping, optional
        Parameters of the algorithm (reference: ``dense_method``, ``assign_model``, ``co_mode``,
        ``co_manual``, ``voting_k``; ours: ``relative``, ``cutoff``), or extra ``params`` of ``cluster_fn``.
    cluster_fn : callable, optional
        Run this instead of an algorithm: ``cluster_fn(features, labels, labeled_mask, k, params,
        precomputed_knn) -> labels`` with ``params = {"density_percentile": p, **cluster_params}`` and the
        cached ``(neighbors, distances)`` sliced to k (self excluded, rows in (distance, index) order).
        ``labels`` is passed whole; the function should only read it where ``labeled_mask`` is true. It
        must be picklable to run on a cluster.
    loss : bool, default True
        Add the users' loss columns ``l1``, ``l2``, ``loss``, ``score`` (:mod:`knn_store.cluster.loss`;
        for ``cluster_fn`` every point counts as core in the separation term); NaN when False. The
        silhouette needs all pairwise distances: kept once per worker up to ~8,000 points, recomputed per
        job above (O(n^2 d), like the users' own job), so large sets want ``loss=False``.
    l2_weights : mapping, optional
        L2 component weights, default ``{"silhouette": 3.0, "separation": 0.0}`` (their variant B);
        ``{}`` gives their variant A (``l2 = 0``).
    progress : bool, optional
        tqdm bar over jobs; ``None`` shows it only on a terminal.
    **params
        Algorithm parameters given directly, e.g. ``grid_search(..., dense_method=0, assign_model=2)``;
        merged into ``cluster_params`` (naming one in both raises).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, sorted by (feature_set, k, density_percentile); one row per job
        (``acc_*``: GCD v2 over the unlabelled points, -1 counted as one more cluster);
        ``seconds`` is the clustering and scoring time of that job (the per-k work shared by the
        percentiles of one task is split evenly between them). ``df.attrs["best"]`` holds the rows of
        :func:`best_configurations` as a list of dicts (``pd.DataFrame(df.attrs["best"])``).
    """
    if store is None:
        with KNNStore.temporary() as tmp:
            return grid_search(
                feature_sets, labels, labeled_mask, ks, density_percentiles, client, tmp,
                metric=metric, backend=backend, refresh=refresh, out=out, select_by=select_by,
                select_rule=select_rule, algorithm=algorithm, cluster_params=cluster_params,
                cluster_fn=cluster_fn, loss=loss, l2_weights=l2_weights, progress=progress, **params,
            )  # fmt: skip
    if not isinstance(store, KNNStore):
        store = KNNStore(store)
    sets = _as_feature_sets(feature_sets)
    k_list, p_list = _check_grid(ks, density_percentiles)
    both = sorted(set(params) & set(cluster_params or {}))
    if both:
        raise InvalidParameterError(f"{both[0]!r} is given both directly and in cluster_params")
    spec = JobSpec(algorithm, {**(cluster_params or {}), **params}, cluster_fn, loss, l2_weights)
    spec.check()
    if select_rule not in RULES:
        raise InvalidParameterError(f"select_rule must be one of {RULES}, got {select_rule!r}")
    if metric != "euclidean" and (cluster_fn is not None or algorithm == "reference" or loss):
        # The users' algorithm and loss measure Euclidean distances on the features themselves.
        raise InvalidParameterError(
            f"metric={metric!r} only works with algorithm='ours' and loss=False; the reference algorithm, "
            "cluster_fn and the loss use Euclidean distances (L2-normalise the features for cosine)"
        )
    y, mask = np.asarray(labels), _as_mask(labeled_mask)
    refs: dict[str, EntryRef] = {}
    feats: dict[str, np.ndarray] = {}
    for name, x in sets.items():
        n = np.shape(x)[0]
        if y.shape != (n,) or mask.shape != (n,):
            raise InvalidFeaturesError(
                f"feature set {name!r} has {n} rows but labels/labeled_mask have shapes {y.shape}/{mask.shape}"
            )
        # A missing exact kNN is computed on the cluster too (blockwise, the same bits as here):
        # it is the costliest step of a large grid, and the client may be a laptop.
        refs[name] = store.ensure(
            x, k_list[-1], metric, backend=backend, refresh=refresh, source={"name": name}, client=client
        )
        if spec.needs_features:
            feats[name] = prepare_features(x, metric)
    lab = _Labels(y, mask, feats if spec.needs_features else None)
    jobs = [(name, k) for name in sets for k in k_list]  # grouped by feature set: one memo load per worker
    rows = _execute(jobs, refs, p_list, lab, spec, client, progress)
    df = _table(rows)
    best = best_configurations(df, select_by, select_rule)
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_parquet(df, out_dir / "results.parquet")
        _write_parquet(best, out_dir / "best.parquet")
        logger.info("wrote %d rows to %s", len(df), out_dir / "results.parquet")
    # Plain records (not a DataFrame): attrs must stay JSON-serialisable and cheap to copy.
    df.attrs["best"] = best.to_dict(orient="records")
    df.attrs["select_by"] = select_by
    df.attrs["select_rule"] = select_rule
    df.attrs["algorithm"] = "cluster_fn" if cluster_fn is not None else algorithm
    return df


def _execute(
    jobs: Sequence[tuple[str, int]],
    refs: Mapping[str, EntryRef],
    percentiles: tuple[float, ...],
    lab: _Labels,
    spec: JobSpec,
    client: Any | None,
    progress: bool | None,
) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    rows: list[dict[str, Any]] = []
    total = len(jobs) * len(percentiles)
    with tqdm(total=total, unit="job", disable=None if progress is None else not progress) as bar:
        if client is None:
            try:
                for name, k in jobs:
                    part = _run_k(refs[name], name, k, percentiles, lab, spec)
                    rows.extend(part)
                    bar.update(len(part))
            finally:
                clear_shared_points()  # workers keep theirs like the kNN memo; this process need not
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
                spec,
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
    ks: Iterable[int] = range(3, 21),
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
