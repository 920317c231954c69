"""Command line interface: ``knn-store grid-search | info | prune [--temporary] | clear``.

The store root is ``--store``, else ``$KNN_STORE_DIR``, else ``~/.cache/knn_store``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from knn_store._names import check_name
from knn_store._numbers import percentile_problem
from knn_store.errors import InvalidFeaturesError, InvalidParameterError, KnnStoreError
from knn_store.input_files import read_features, read_labels, read_mask
from knn_store.neighbors import BACKENDS
from knn_store.store.cache import KNNStore
from knn_store.store.temporary import cleanup_temporary

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _default_root() -> str:
    return os.environ.get("KNN_STORE_DIR") or str(Path("~/.cache/knn_store").expanduser())


_MAX_PERCENTILES = 10_001  # a step of 0.01 over [0, 100]; more is a typo, not a grid


def _density_range(text: str) -> list[float]:
    """``START:STOP:STEP`` with STOP included (``40:90:5`` -> 40, 45, ..., 90) or a comma list."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not step > 0:
                raise ValueError("STEP must be > 0")
            if not 0 <= start <= stop <= 100:
                raise ValueError("need 0 <= START <= STOP <= 100 (percentiles)")
            if (stop - start) / step + 1 > _MAX_PERCENTILES:
                raise ValueError(f"more than {_MAX_PERCENTILES:,} percentiles; is STEP {step:g} a typo?")
            values = [float(v) for v in np.round(np.arange(start, stop + step / 2, step), 6)]
        else:
            values = [float(v) for v in text.split(",")]
        problem = percentile_problem(tuple(sorted(set(values))))  # grid_search's rule
        if problem is not None:
            raise ValueError(problem)
        return values
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"bad --density-range {text!r}: {exc}; use e.g. 40:90:5 or 50,70"
        ) from exc


def _param(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` of ``--param``: VALUE read as JSON where it is JSON, else kept as text."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def _weights(text: str) -> dict[str, float]:
    """``--l2-weights``: ``silhouette=3,separation=0``, or ``none`` for no L2 term."""
    if text.strip().lower() == "none":
        return {}
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            weights[name.strip()] = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=W[,NAME=W] or 'none', got {text!r}") from None
    return weights


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store", default=None, help="store root (default: $KNN_STORE_DIR or ~/.cache/knn_store)"
    )
    common.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    common.add_argument("-q", "--quiet", action="store_true", help="only results, warnings and errors")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    p = argparse.ArgumentParser(prog="knn-store", description="Cached exact kNN and SS-DDBC grid searches.")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grid-search", parents=[common], help="run an SS-DDBC grid search")
    g.add_argument(
        "--features",
        action="append",
        required=True,
        metavar="[NAME=]FILE",
        help="features (.npy, .npz, .zarr, .parquet); repeat for several feature sets; NAME defaults to the file stem",
    )
    g.add_argument(
        "--labels", help="labels file (.npy vector, or .npz/.parquet/.zarr with labels and labeled_mask)"
    )
    g.add_argument("--labeled-mask", help=".npy boolean vector of points whose label is known")
    g.add_argument("--k-min", type=int, default=3, help="smallest k (default 3)")
    g.add_argument(
        "--k-max",
        type=int,
        default=20,
        help="largest k, included (default 20: the users' grid, whose batch runner's --k_max 21 excludes 21)",
    )
    g.add_argument(
        "--density-range",
        type=_density_range,
        default=_density_range("40:90:5"),
        help="density percentiles as START:STOP:STEP with STOP included, or a comma list (default 40:90:5)",
    )
    g.add_argument("--metric", default="euclidean", choices=["euclidean", "cosine"])
    g.add_argument("--backend", default=None, choices=list(BACKENDS))
    where = g.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, default=None, help="start a LocalCluster with N worker processes"
    )
    where.add_argument("--address", default=None, help="connect to an existing scheduler")
    g.add_argument(
        "--clear-knn-cache",
        action="store_true",
        help="recompute the kNN of these features (not needed after retraining: keys follow content)",
    )
    how = g.add_argument_group("clustering, loss and selection (default: the users' variant B)")
    how.add_argument(
        "--algorithm",
        default="reference",
        help="'reference' (the users' own SS-DDBC, default) or 'ours' (this project's variant)",
    )
    how.add_argument(
        "--variant",
        default=None,
        help="the users' package copy to reproduce: A (dense_method=0, assign_model=2, no L2 term) or B "
        "(dense_method=1, assign_model=3, L2 = 3 x silhouette); --param and --l2-weights override it",
    )
    how.add_argument(
        "--param",
        action="append",
        default=[],
        type=_param,
        metavar="NAME=VALUE",
        help="an algorithm parameter, e.g. co_mode=1, co_manual=0.5, voting_k=7, cutoff=mean; VALUE is "
        "read as JSON (numbers, true/false, null), else as text; repeat for several",
    )
    how.add_argument(
        "--l2-weights",
        type=_weights,
        default=None,
        metavar="NAME=W[,NAME=W]",
        help="weights of the loss's L2 components (silhouette, separation), or 'none' for L2 = 0",
    )
    how.add_argument("--no-loss", action="store_true", help="skip the loss columns (l1, l2, loss, score)")
    how.add_argument("--select-by", default="acc_all", help="column maximised for the best configuration")
    how.add_argument(
        "--select-rule",
        default="ours",
        choices=["ours", "first"],
        help="tie rule of the best configuration: 'first' is the users' (first best in k-major order)",
    )
    g.add_argument("--out", required=True, help="output directory (results.parquet, best.parquet)")

    i = sub.add_parser("info", parents=[common], help="list entries")
    i.add_argument("--json", action="store_true", help="one JSON object per line")

    pr = sub.add_parser("prune", parents=[common], help="evict least recently used entries")
    pr.add_argument("--max-bytes", default=None, help="e.g. 20GB")
    pr.add_argument("--max-age", default=None, help="e.g. 30d")
    pr.add_argument("--grace", default=None, help="never evict entries used within this time (default 1h)")
    pr.add_argument(
        "--temporary",
        action="store_true",
        help="instead, remove temporary stores (KNNStore.temporary) left behind by killed processes; "
        "stores whose process is alive are never touched",
    )
    pr.add_argument(
        "--temp-dir", default=None, help="where --temporary looks (default: the system temporary directory)"
    )

    sub.add_parser("clear", parents=[common], help="remove every entry")
    return p


@contextlib.contextmanager
def _client(workers: int | None, address: str | None, verbose: int) -> Iterator[Any]:
    if workers is None and address is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if not verbose:
        # distributed installs its own INFO handlers; a CLI run should show results, not cluster chatter.
        logging.getLogger("distributed").setLevel(logging.WARNING)

    if address is not None:
        with Client(address) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _load_inputs(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    sets: dict[str, np.ndarray] = {}
    labels = mask = None
    for spec in args.features:
        name, sep, file = spec.partition("=")
        if not sep:
            name, file = Path(spec).stem, spec
        if check_name(name) in sets:
            raise InvalidParameterError(
                f"feature-set name {name!r} given twice; use NAME=FILE to disambiguate"
            )
        x, lab, m = read_features(file)
        sets[name] = x
        labels = lab if labels is None else labels
        mask = m if mask is None else mask
    if args.labels:
        labels, m = read_labels(args.labels)
        mask = m if m is not None else mask
    if args.labeled_mask:
        mask = read_mask(args.labeled_mask)
    if labels is None or mask is None:
        raise InvalidFeaturesError(
            "grid-search needs labels and a labeled mask: pass --labels (and --labeled-mask), or put "
            "'labels'/'labeled_mask' arrays (or 'label'/'labeled' columns) in the features file"
        )
    # grid_search checks the mask is boolean (or 0/1): a swapped labels file must not become a mask.
    return sets, np.asarray(labels), np.asarray(mask)


def _clustering_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, float] | None]:
    """The algorithm parameters and L2 weights of ``--variant``, ``--param`` and ``--l2-weights``
    (the explicit options win over the variant's values)."""
    from knn_store.cluster.jobs import VARIANTS

    params: dict[str, Any] = {}
    l2_weights: dict[str, float] | None = None
    if args.variant is not None:
        if args.variant not in VARIANTS:
            raise InvalidParameterError(f"--variant must be one of {sorted(VARIANTS)}, got {args.variant!r}")
        variant_params, variant_weights = VARIANTS[args.variant]
        # The variant's parameters are the reference algorithm's; 'ours' takes only its loss weights.
        params = dict(variant_params) if args.algorithm == "reference" else {}
        l2_weights = dict(variant_weights)
    for name, value in args.param:
        params[name] = value
    if args.l2_weights is not None:
        l2_weights = args.l2_weights
    return params, l2_weights


def _check_out(out: Path) -> None:
    """Fail before the grid runs, not after it, when its results could not be written to ``out``."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problem = "is not a directory" if not existing.is_dir() else "is not writable"
        raise InvalidParameterError(f"--out {out}: cannot write results there ({existing} {problem})")


def _grid_search(args: argparse.Namespace, store: KNNStore) -> int:
    import pandas as pd

    from knn_store.search import grid_search

    if args.k_min < 1 or args.k_max < args.k_min:
        raise InvalidParameterError(f"need 1 <= --k-min <= --k-max, got {args.k_min} and {args.k_max}")
    params, l2_weights = _clustering_options(args)
    _check_out(Path(args.out))
    sets, labels, mask = _load_inputs(args)
    t0 = time.perf_counter()
    with _client(args.workers, args.address, args.verbose) as client:
        df = grid_search(
            sets,
            labels,
            mask,
            range(args.k_min, args.k_max + 1),
            args.density_range,
            client=client,
            store=store,
            metric=args.metric,
            backend=args.backend,
            refresh=args.clear_knn_cache,
            out=args.out,
            select_by=args.select_by,
            select_rule=args.select_rule,
            algorithm=args.algorithm,
            cluster_params=params,
            loss=not args.no_loss,
            l2_weights=l2_weights,
        )
    print(
        f"{len(df)} jobs in {time.perf_counter() - t0:.1f} s; results in {Path(args.out) / 'results.parquet'}"
    )
    print(pd.DataFrame(df.attrs["best"]).to_string(index=False))
    return 0


def _info(args: argparse.Namespace, store: KNNStore) -> int:
    rows = store.info()
    if args.json:
        for r in rows:
            print(json.dumps(asdict(r)))
        return 0
    print(f"store {store.root}: {len(rows)} entries, {sum(r.bytes for r in rows) / 1e6:.1f} MB")
    for r in rows:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.last_access))
        print(
            f"{r.key}  k_max={','.join(map(str, r.k_max))}  n={r.n}  d={r.d}  {r.metric}  {r.backend}  "
            f"{r.bytes / 1e6:.2f} MB  used {used}"
        )
    return 0


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``knn-store`` console script; returns the process exit code.

    Exit codes: 0 ok, 1 error, 2 usage error, 130 Ctrl-C, 143 SIGTERM, 141 closed output pipe.
    """
    args = _parser().parse_args(argv)
    level = (
        logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    )
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(args)
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        # Entries are published atomically: what is in the store is complete, the rest is recomputed.
        print("interrupted: finished entries are kept; rerun the same command to resume", file=sys.stderr)
        return 143 if exc.args == ("SIGTERM",) else 130
    except BrokenPipeError:  # "knn-store info | head": the reader left, nothing to report
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(args: argparse.Namespace) -> int:
    try:
        store = KNNStore(args.store or _default_root())
        if args.command == "grid-search":
            return _grid_search(args, store)
        if args.command == "info":
            return _info(args, store)
        if args.command == "prune" and args.temporary:
            removed = cleanup_temporary(args.temp_dir)
            print(
                f"removed {len(removed)} orphaned temporary stores from {args.temp_dir or tempfile.gettempdir()}"
            )
            return 0
        if args.command == "prune":
            evicted = store.prune(max_bytes=args.max_bytes, max_age=args.max_age, grace=args.grace)
            print(f"pruned {len(evicted)} entries from {store.root}")
            return 0
        n = store.clear()
        print(f"removed {n} entries from {store.root}")
        return 0
    except KnnStoreError as exc:
        if args.debug:
            raise
        print(f"knn-store: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # A read-only or misplaced store, an unreachable --address: one line naming the path or address.
        if args.debug or isinstance(exc, BrokenPipeError):
            raise
        print(f"knn-store: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
