"""The researchers' SS-DDBC grid job, re-implemented loop for loop as the baseline of ``bench_ssddbc.py``.

This is no benchmark: it is a pure-Python/scikit-learn version of one job of their batch runner (the users'
code, public repository hollegjx/final), written from the prose specification (`ssddbc_reference.md`),
not from their code. It keeps their costs on purpose: a fresh scikit-learn kNN per job with a Python
re-sort of every row, the per-point relative-density loop, a second kNN among core points, a breadth-first
growth that recounts a cluster's class from scratch after every change, and a non-core assignment that
loops over points and clusters. ``knn_store.ssddbc(..., algorithm="reference")`` must give the same
partition; ``bench_ssddbc.py`` measures how much cheaper it is.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from sklearn.metrics import silhouette_samples
from sklearn.neighbors import NearestNeighbors

__all__ = ["VARIANT_A", "VARIANT_B", "users_job", "users_labels"]

#: Parameters their batch runners pass (variant A: ``clustering/``, variant B: ``ssddbc/``).
VARIANT_A = {"dense_method": 0, "assign_model": 2, "co_mode": 2, "voting_k": 5, "l2": ()}
VARIANT_B = {"dense_method": 1, "assign_model": 3, "co_mode": 2, "voting_k": 5, "l2": ("silhouette",)}


def _first_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    dist, idx = NearestNeighbors(n_neighbors=k + 1, metric="euclidean", algorithm="auto").fit(x).kneighbors(x)
    for i in range(len(idx)):  # their per-row re-sort by (distance, index)
        pairs = sorted(zip(dist[i].tolist(), idx[i].tolist(), strict=True))
        dist[i] = [p[0] for p in pairs]
        idx[i] = [p[1] for p in pairs]
    return idx[:, 1:], dist[:, 1:]  # column 0 dropped as "self" whatever it is


def _density(d: np.ndarray, method: int) -> np.ndarray:
    if method == 0:
        return 1.0 / (d.mean(axis=1) + 1e-8)
    if method == 1:
        return 1.0 / (np.median(d, axis=1) + 1e-8)
    if method == 2:
        raw = 1.0 / (d.mean(axis=1) + 1e-8)
        return (raw - raw.min()) / (raw.max() - raw.min() + 1e-8)
    return np.exp(-d.mean(axis=1))


def _relative(rho: np.ndarray, nb: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(len(rho))
    mean = np.mean(rho)
    for i in range(len(rho)):
        out[i] = (k + mean) / (k + np.sum(rho[nb[i]]) / k) * rho[i]
    return out


def _cutoff(d: np.ndarray, rho: np.ndarray, nb: np.ndarray, k: int, mode: int, manual: float | None) -> Any:
    if mode == 1:
        return manual
    base = np.mean(d)
    if mode == 2:
        return base
    mean = np.mean(rho)
    return np.array([(k + mean) / (k + np.mean(rho[nb[i]])) * base for i in range(len(rho))])


def _cluster_class(members: set[int], labeled: np.ndarray, y: np.ndarray) -> Any:
    """Their class rule, recounted from scratch: >= 5 members, > 25 % labelled, >= 80 % purity."""
    if len(members) < 5:
        return None
    lab = [i for i in members if labeled[i]]
    if not lab or len(lab) / len(members) <= 0.25:
        return None
    counts: dict[Any, int] = {}
    for i in lab:
        counts[y[i]] = counts.get(y[i], 0) + 1
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] / len(lab) >= 0.8 else None


def _grow(
    x: np.ndarray, core: np.ndarray, rho: np.ndarray, co: Any, k: int, labeled: np.ndarray, y: np.ndarray
) -> np.ndarray:
    n = len(x)
    cidx = np.flatnonzero(core)
    dist, loc = (
        NearestNeighbors(n_neighbors=min(k + 1, len(cidx)), metric="euclidean")
        .fit(x[cidx])
        .kneighbors(x[cidx])
    )
    dist, glob = dist[:, 1:], cidx[loc[:, 1:]]
    scalar = np.ndim(co) == 0
    near = {int(g): glob[i][dist[i] <= (co if scalar else co[g])] for i, g in enumerate(cidx)}
    label = np.full(n, -1)
    clusters: list[set[int]] = []
    klass: dict[int, Any] = {}
    seeds = sorted(cidx.tolist(), key=lambda i: (-rho[i], i))
    for s in seeds:
        if label[s] != -1:
            continue
        cid = len(clusters)
        pc = {s}
        label[s] = cid
        klass[cid] = _cluster_class(pc, labeled, y)
        queue = deque([s])
        while queue:
            xi = queue.popleft()
            for xj in near[xi].tolist():
                if labeled[xi] and labeled[xj] and y[xi] != y[xj]:
                    continue  # sample-level cannot-link
                q = label[xj]
                if q == -1:
                    pc.add(xj)
                    label[xj] = cid
                    queue.append(xj)
                    klass[cid] = _cluster_class(pc, labeled, y)
                elif q != cid:
                    sp, sq = klass.get(cid), klass.get(q)
                    if sp is None or sq is None or sp == sq:
                        for m in clusters[q]:  # CPython set order, as theirs
                            pc.add(m)
                            label[m] = cid
                            queue.append(m)
                        clusters[q] = set()
                        klass[cid] = _cluster_class(pc, labeled, y)
                        klass[q] = None
                    elif rho[xi] > rho[xj]:
                        clusters[q].remove(xj)
                        pc.add(xj)
                        label[xj] = cid
                        queue.append(xj)
                        klass[cid] = _cluster_class(pc, labeled, y)
                        klass[q] = _cluster_class(clusters[q], labeled, y)
        clusters.append(pc)
    out = np.full(n, -1)
    for new, members in enumerate(c for c in clusters if c):
        for m in members:
            out[m] = new
    return out


def _mean3(x: np.ndarray, members: np.ndarray, point: np.ndarray) -> Any:
    d = np.linalg.norm(x[members] - point, axis=1)
    return np.mean(np.sort(d)[: min(3, len(d))])


def _merge_small(labels: np.ndarray, x: np.ndarray, y: np.ndarray, labeled: np.ndarray) -> np.ndarray:
    info = {}
    for c in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == c)
        tl = np.unique(y[idx[labeled[idx]]])
        info[c] = (idx, x[idx].mean(axis=0), int(tl[0]) if tl.size == 1 else None)
    small = [c for c, v in info.items() if len(v[0]) <= 3]
    big = [c for c, v in info.items() if len(v[0]) > 3]
    out = labels.copy()
    if not small or not big:
        return out
    for c in small:
        idx, proto, lab = info[c]
        same = [b for b in big if lab is not None and info[b][2] == lab]
        if same:
            out[idx] = same[0]
            continue
        rep = x[idx[0]] if len(idx) == 1 else proto
        best, target = float("inf"), None
        for b in big:
            avg = _mean3(x, info[b][0], rep)
            if avg < best:
                best, target = avg, b
        out[idx] = target
    final = out.copy()
    for new, old in enumerate(sorted(np.unique(out[out >= 0]))):
        final[out == old] = new
    return final


def _assign(x: np.ndarray, labels: np.ndarray, rho: np.ndarray, model: int, voting_k: int) -> np.ndarray:
    out = labels.copy()
    pending = np.flatnonzero(labels == -1)
    pending = pending[np.argsort(-rho[pending])]
    core = np.flatnonzero(labels != -1)
    members = [np.flatnonzero(labels == c) for c in sorted(np.unique(labels[core]))]
    protos = [x[m].mean(axis=0) for m in members]
    for p in pending:
        if model == 1:
            out[p] = min(range(len(protos)), key=lambda c: np.linalg.norm(x[p] - protos[c]))
        elif model == 2:
            d = np.linalg.norm(x[core] - x[p], axis=1)
            scores: dict[int, float] = {}
            for j in np.argsort(d)[: min(voting_k, len(d))]:
                c = int(out[core[j]])
                scores[c] = scores.get(c, 0.0) + np.exp(-d[j])
            out[p] = max(scores, key=scores.__getitem__)
        else:
            avgs = [(c, _mean3(x, m, x[p])) for c, m in enumerate(members)]
            out[p] = min(avgs, key=lambda t: t[1])[0]
    return out


def users_labels(
    x: np.ndarray,
    y: np.ndarray,
    labeled: np.ndarray,
    *,
    k: int,
    density_percentile: float,
    dense_method: int = 1,
    assign_model: int = 3,
    co_mode: int = 2,
    co_manual: float | None = None,
    voting_k: int = 5,
) -> np.ndarray:
    """Final labels of one job (steps 1-6 of the reference), their loops and their precision."""
    nb, d = _first_knn(x, k)
    rho = _density(d, dense_method)
    rel = _relative(rho, nb, k)
    core = rel >= np.percentile(rel, density_percentile)
    co = _cutoff(d, rho, nb, k, co_mode, co_manual)
    labels = _merge_small(_grow(x, core, rho, co, k, labeled, y), x, y, labeled)
    return _assign(x, labels, rho, assign_model, voting_k)


def _l1_cross_entropy(pred: np.ndarray, y: np.ndarray, labeled: np.ndarray) -> float:
    lp, lt = pred[labeled], y[labeled]
    classes = {c: i for i, c in enumerate(np.unique(lt))}
    probs = {}
    for c in np.unique(lp):
        counts = np.zeros(len(classes))
        for t in lt[lp == c]:
            counts[classes[t]] += 1
        probs[c] = counts / counts.sum()
    return float(sum(-np.log(probs[c][classes[t]] + 1e-10) for c, t in zip(lp, lt, strict=True)) / len(lp))


def users_job(
    x: np.ndarray,
    y: np.ndarray,
    labeled: np.ndarray,
    test: np.ndarray,
    known: np.ndarray,
    *,
    k: int,
    density_percentile: float,
    variant: dict[str, Any] = VARIANT_B,
) -> dict[str, Any]:
    """One batch-runner job: labels, test-split v2 ACC and their loss (``l1`` cross-entropy, ``l2``, ``loss``)."""
    from scipy.optimize import linear_sum_assignment

    params = {key: v for key, v in variant.items() if key != "l2"}
    pred = users_labels(x, y, labeled, k=k, density_percentile=density_percentile, **params)
    t, p, kn = y[test], pred[test], known[test]
    size = max(p.max(), t.max()) + 1
    w = np.zeros((size, size), dtype=int)
    for a, b in zip(p, t, strict=True):
        w[a, b] += 1
    rows, cols = linear_sum_assignment(w.max() - w)
    match = dict(zip(cols, rows, strict=True))
    acc = {
        name: sum(w[match[c], c] for c in set(t[sel])) / max(sel.sum(), 1)
        for name, sel in (("acc_all", np.ones_like(kn)), ("acc_old", kn), ("acc_new", ~kn))
    }
    l1 = _l1_cross_entropy(pred, y, labeled)
    l2 = 0.0
    if "silhouette" in variant["l2"] and len(np.unique(pred)) > 1 and (~labeled).any():
        l2 = 3.0 * float(np.mean(silhouette_samples(x, pred, metric="euclidean")[~labeled]))
    return {"labels": pred, **acc, "l1": l1, "l2": l2, "loss": l1 + l2, "n_clusters": len(np.unique(pred))}
