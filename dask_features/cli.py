"""Command line: ``dask-features {demo, extract, synth, catalog, presets, extractors}``.

Every subcommand is a thin layer over the Python API; ``main(argv)`` returns an exit code
(0 ok, 1 some experiments failed or an error, 2 usage error) so tests call it in-process.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

logger = logging.getLogger("dask_features")

#: What ``dask-features demo`` extracts.
DEMO_CONFIGS = ("v2_mixed", "transient_tau")


def _parser() -> argparse.ArgumentParser:
    from dask_features._version import __version__

    p = argparse.ArgumentParser(
        prog="dask-features",
        description="Chunked, streaming OECT feature extraction on Dask.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="generate demo data (unless DATA is given), extract the default features, print a summary",
    )
    demo.add_argument("data", nargs="?", help="folder of experiment files (default: generate demo data)")
    demo.add_argument("--out", default=None, help="output folder (default: ./dask-features-demo)")
    demo.add_argument("--experiments", type=int, default=4, help="demo experiments to generate (default 4)")
    demo.add_argument("--steps", type=int, default=100, help="steps per demo experiment (default 100)")
    _cluster_args(demo)

    ext = sub.add_parser("extract", help="extract a feature config from experiment files into Parquet")
    ext.add_argument("data", nargs="+", help="experiment files or folders (searched recursively)")
    ext.add_argument("--config", "-c", required=True, help="preset name or YAML file")
    ext.add_argument("--out", "-o", required=True, help="output folder")
    ext.add_argument("--mode", choices=("step", "experiment"), default="step")
    ext.add_argument("--chunk-steps", default="auto", help="steps per task, or 'auto' (default)")
    ext.add_argument("--force", action="store_true", help="recompute experiments whose output is up to date")
    ext.add_argument("--catalog", default=None, help="SQLite catalog to record extractions in")
    _cluster_args(ext)

    syn = sub.add_parser("synth", help="write synthetic experiments in the oect-infra HDF5 layout")
    syn.add_argument("out", help="output folder")
    syn.add_argument("--experiments", type=int, default=4)
    syn.add_argument("--steps", type=int, default=50, help="transfer and transient steps per experiment")
    syn.add_argument("--points", type=int, default=301, help="points per transfer sweep")
    syn.add_argument("--samples", type=int, default=2000, help="samples per transient step")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument(
        "--defects",
        default="",
        help="comma-separated KIND=FRACTION, e.g. nan_samples=0.05,ragged=0.02 "
        "(kinds: nan_samples, ragged, flat_cycles, clipped, empty_steps)",
    )

    cat = sub.add_parser("catalog", help="index a data folder / search it")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    scan = cat_sub.add_parser("scan", help="index (incrementally) every experiment file under FOLDER")
    scan.add_argument("folder")
    scan.add_argument("--db", required=True, help="catalog database file")
    scan.add_argument("--full", action="store_true", help="re-read every file, not only new or changed ones")
    search = cat_sub.add_parser("search", help="list experiments matching filters")
    search.add_argument("--db", required=True)
    for name in ("chip-id", "device-id", "test-id", "status", "device-type", "text"):
        search.add_argument(f"--{name}")
    search.add_argument("--min-steps", type=int)

    sub.add_parser("presets", help="list the shipped feature configs")
    ext = sub.add_parser("extractors", help="list the registered extractors")
    ext.add_argument("--markdown", action="store_true", help="print the feature catalogue as Markdown")
    return p


def _cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scheduling")
    g.add_argument("--workers", "-w", type=int, default=None, help="worker processes (default: all cores)")
    g.add_argument(
        "--scheduler",
        choices=("threads", "processes", "sync", "distributed"),
        default="distributed",
        help="local scheduler, or 'distributed' (a LocalCluster; default)",
    )
    g.add_argument("--address", default=None, help="connect to an existing Dask scheduler at this address")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # The cluster's own INFO chatter (workers starting, comms closing) only with -vv. distributed
    # sets its loggers' levels when imported, so import it before overriding them.
    import distributed  # noqa: F401

    for name in ("distributed", "tornado"):
        logging.getLogger(name).setLevel(level if verbose >= 2 else logging.WARNING)


def _run_extract(data: Any, config: str, out: str, args: argparse.Namespace, **kwargs: Any) -> Any:
    from dask_features import extract

    chunk = kwargs.pop("chunk_steps", "auto")
    return extract(
        data,
        config,
        out,
        client=args.address,
        scheduler=None if args.address else args.scheduler,
        workers=args.workers or os.cpu_count(),
        chunk_steps=chunk if chunk == "auto" else int(chunk),
        **kwargs,
    )


def _demo(args: argparse.Namespace) -> int:
    from dask_features import read_features, synth

    out = Path(args.out or "dask-features-demo")
    generated = not args.data
    if generated:
        data = str(out / "data")
        paths = synth.generate_dataset(data, n_experiments=args.experiments, n_steps=args.steps, seed=0)
        print(
            f"Generated {len(paths)} demo experiments ({args.steps} transfer + {args.steps} transient steps each) in {data}"
        )
    else:
        data = args.data
        print(f"Using experiments under {data}")
    status = 0
    for config in DEMO_CONFIGS:
        result = _run_extract(data, config, str(out / "features"), args)
        print(result.summary())
        status |= 0 if result.ok else 1
    steps = read_features(out / "features", "v2_mixed")
    cycles = read_features(out / "features", "transient_tau", table="cycles")
    summary = steps.groupby("test_id")[["gm_max_forward", "absI_max", "peak_current"]].median()
    from dask_features.extractors.tau import TauStatus

    # tau is NaN wherever its half-cycle is flagged; count half-cycles, not rows: a row holds two, and
    # the partial ones at the record ends are not complete half-cycles.
    summary[["tau_on_ms", "tau_off_ms"]] = cycles.groupby("test_id")[["tau_on", "tau_off"]].median() * 1e3
    halves = cycles.melt(id_vars="test_id", value_vars=["status_on", "status_off"], value_name="half")
    by_test = halves.groupby("test_id")["half"]
    summary["half_cycles_fitted"] = (
        by_test.apply(lambda s: int((s == 0).sum())).astype(str)
        + "/"
        + by_test.apply(lambda s: int((s != TauStatus.PARTIAL).sum())).astype(str)
    )
    if generated:  # the generator recorded the truth: show it next to what was extracted
        for path in sorted(Path(data).glob("*.h5")):
            truth = synth.read_ground_truth(path)
            test_id = path.stem.rsplit("-", 1)[-1]
            summary.loc[test_id, "true_gm_max"] = truth["transfer"]["gm_max_forward"].median()
            summary.loc[test_id, "true_tau_on_ms"] = truth["transient"]["tau_on"].median() * 1e3
            summary.loc[test_id, "true_tau_off_ms"] = truth["transient"]["tau_off"].median() * 1e3
    print("\nMedian over the steps of each experiment (gm in S, currents in A):")
    print(summary.to_string(float_format="{:.4g}".format))
    print(f"\nParquet files: {(out / 'features').resolve()}/<config>/{{steps,cycles,errors}}/*.parquet")
    print(
        "Read them with dask_features.read_features(out_dir, config), pandas.read_parquet or dask.dataframe."
    )
    return status


def _extract(args: argparse.Namespace) -> int:
    result = _run_extract(
        args.data,
        args.config,
        args.out,
        args,
        mode=args.mode,
        chunk_steps=args.chunk_steps,
        force=args.force,
        catalog=args.catalog,
    )
    print(result.summary())
    return 0 if result.ok else 1


def _synth(args: argparse.Namespace) -> int:
    from dask_features import synth

    defects: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in args.defects.split(","))):
        kind, _, frac = item.partition("=")
        defects[kind.strip()] = float(frac or 0.05)
    paths = synth.generate_dataset(
        args.out,
        n_experiments=args.experiments,
        n_steps=args.steps,
        seed=args.seed,
        sweep_points=args.points,
        transient_samples=args.samples,
        defects=defects or None,
    )
    for p in paths:
        print(p)
    return 0


def _catalog(args: argparse.Namespace) -> int:
    from dask_features import Catalog

    with Catalog(args.db) as cat:
        if args.catalog_command == "scan":
            report = cat.scan(args.folder, incremental=not args.full)
            print(report)
            return 0
        filters = {
            k: v
            for k, v in {
                "chip_id": args.chip_id,
                "device_id": args.device_id,
                "test_id": args.test_id,
                "status": args.status,
                "device_type": args.device_type,
                "text": args.text,
                "min_steps": args.min_steps,
            }.items()
            if v is not None
        }
        for exp in cat.search(**filters):
            print(
                f"{exp.test_id}\t{exp.chip_id}\t{exp.device_id}\t{exp.n_transfer_steps}\t{exp.n_transient_steps}\t{exp.path}"
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dask-features`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    from dask_features.errors import DaskFeaturesError

    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "extract":
            return _extract(args)
        if args.command == "synth":
            return _synth(args)
        if args.command == "catalog":
            return _catalog(args)
        if args.command == "presets":
            from dask_features import list_presets, load_config

            for name in list_presets():
                cfg = load_config(name)
                print(f"{name:24s} {len(cfg.features)} features  {cfg.description}")
            return 0
        if args.markdown:
            from dask_features.extractors.catalogue import render_markdown

            print(render_markdown(), end="")
            return 0
        from dask_features import list_extractors
        from dask_features.extractors import get_extractor

        for name in list_extractors():
            print(f"{name:28s} {get_extractor(name).description}")
        return 0
    except DaskFeaturesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
