"""The small subcommands: ``synth``, ``catalog scan|search``, ``presets``, ``extractors``."""

from __future__ import annotations

import argparse

from dask_features.cli._runtime import positive_int

__all__ = [
    "add_catalog",
    "add_extractors",
    "add_synth",
    "run_catalog",
    "run_extractors",
    "run_presets",
    "run_synth",
]


def add_synth(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output folder")
    p.add_argument("--experiments", type=positive_int, default=4)
    p.add_argument(
        "--steps", type=positive_int, default=50, help="transfer and transient steps per experiment"
    )
    p.add_argument("--points", type=positive_int, default=301, help="points per transfer sweep")
    p.add_argument("--samples", type=positive_int, default=2000, help="samples per transient step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--defects",
        default="",
        help="comma-separated KIND=FRACTION, e.g. nan_samples=0.05,ragged=0.02 "
        "(kinds: nan_samples, ragged, flat_cycles, clipped, empty_steps)",
    )


def run_synth(args: argparse.Namespace) -> int:
    from dask_features import synth

    defects: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in args.defects.split(","))):
        kind, _, frac = item.partition("=")
        try:
            defects[kind.strip()] = float(frac or 0.05)
        except ValueError:
            raise ValueError(
                f"--defects {item!r}: the fraction must be a number, e.g. {kind.strip()}=0.05"
            ) from None
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


def add_catalog(p: argparse.ArgumentParser, common: list[argparse.ArgumentParser]) -> None:
    sub = p.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    scan = sub.add_parser(
        "scan", parents=common, help="index (incrementally) every experiment file under FOLDER"
    )
    scan.add_argument("folder", help="relative to the working directory")
    scan.add_argument("--db", required=True, help="catalog database file")
    scan.add_argument("--full", action="store_true", help="re-read every file, not only new or changed ones")
    search = sub.add_parser(
        "search", parents=common, help="list experiments matching filters (tab-separated)"
    )
    search.add_argument("--db", required=True)
    for name in ("chip-id", "device-id", "test-id", "status", "device-type", "text"):
        search.add_argument(f"--{name}")
    search.add_argument("--min-steps", type=int)


def run_catalog(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dask_features import Catalog

    if args.catalog_command == "search" and not Path(args.db).is_file():
        raise FileNotFoundError(f"{args.db}: no such catalog (create it with `dask-features catalog scan`)")
    with Catalog(args.db) as cat:
        if args.catalog_command == "scan":
            print(cat.scan(args.folder, incremental=not args.full))
            return 0
        names = ("chip_id", "device_id", "test_id", "status", "device_type", "text", "min_steps")
        filters = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
        for exp in cat.search(**filters):
            print(
                f"{exp.test_id}\t{exp.chip_id}\t{exp.device_id}\t{exp.n_transfer_steps}\t{exp.n_transient_steps}\t{exp.path}"
            )
    return 0


def run_presets(args: argparse.Namespace) -> int:
    from dask_features import list_presets, load_config

    for name in list_presets():
        cfg = load_config(name)
        print(f"{name:24s} {len(cfg.features)} features  {cfg.description}")
    return 0


def add_extractors(p: argparse.ArgumentParser) -> None:
    p.add_argument("--markdown", action="store_true", help="print the feature catalogue as Markdown")


def run_extractors(args: argparse.Namespace) -> int:
    if args.markdown:
        from dask_features.extractors.catalogue import render_markdown

        print(render_markdown(), end="")
        return 0
    from dask_features import list_extractors
    from dask_features.extractors import get_extractor

    for name in list_extractors():
        print(f"{name:28s} {get_extractor(name).description}")
    return 0
