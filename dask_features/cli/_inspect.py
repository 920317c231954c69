"""``dask-features info FILE|FOLDER``: what a file holds and what is wrong with it, without extracting."""

from __future__ import annotations

import argparse
import collections
import os
import warnings
from typing import Any

from dask_features.cli._cluster import check_inputs

__all__ = ["add_info", "run_info"]


def add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="FILE|FOLDER", help="experiment files or folders")


def _workflow(exp: Any) -> str:
    steps = exp.workflow
    if steps is None:
        return "none recorded"
    counts = collections.Counter(s.type for s in steps)
    parts = [f"{n} {kind}" for kind, n in sorted(counts.items())]
    return f"{len(steps)} steps after loop expansion ({', '.join(parts)})"


def _describe(exp: Any) -> list[str]:
    lines = [
        f"  ids: chip {exp.chip_id!r}, device {exp.device_id!r}, test {exp.test_id!r}"
        + (f", type {exp.device_type}" if exp.device_type else ""),
        f"  format: {exp.format_version}, {exp.file_size / 1e6:.2f} MB"
        + (f", status {exp.status}" if exp.status else ""),
        f"  transfer: {exp.n_transfer_steps} steps, up to {exp.transfer_max_points} points per sweep",
        f"  transient: unavailable ({exp.transient_unavailable})"
        if exp.transient_unavailable is not None
        else f"  transient: {exp.n_transient_steps} steps, {exp.transient_total_points} samples, step boundaries "
        + ("from the index columns" if exp.has_transient_index else "inferred (no index columns)"),
        f"  workflow: {_workflow(exp)}",
    ]
    if exp.description:
        lines.insert(1, f"  description: {exp.description[:200]}")
    problems = list(exp.problems)
    lines += [f"  problem: {p}" for p in problems] or ["  problems: none found"]
    return lines


def run_info(args: argparse.Namespace) -> int:
    from dask_features import open_experiment

    items = check_inputs(args.paths)
    bad = 0
    for path in items:
        print(os.path.relpath(path) if not os.path.isabs(args.paths[0]) else path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # what the warnings say is in exp.problems
                exp = open_experiment(path)
        except Exception as exc:
            bad += 1
            print(f"  unreadable: {exc}")
            continue
        print("\n".join(_describe(exp)))
    if len(items) > 1:
        print(f"{len(items)} files, {bad} unreadable")
    return 1 if bad else 0
