"""``dask-features extract`` (and ``--dry-run``) and ``dask-features demo``."""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from dask_features.cli._cluster import (
    IMPORT_BYTES,
    add_cluster_options,
    check_inputs,
    chunk_bytes,
    cluster,
    memory_limits,
    scheduler_for,
)
from dask_features.cli._runtime import on_interrupt, positive_int, say

__all__ = ["add_demo", "add_extract", "run_demo", "run_extract"]

#: What ``dask-features demo`` extracts.
DEMO_CONFIGS = ("v2_mixed", "transfer_robust", "transient_tau")


def add_extract(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="+", help="experiment files or folders (searched recursively)")
    p.add_argument("--config", "-c", required=True, help="preset name or YAML file")
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--mode", choices=("step", "experiment"), default="step")
    p.add_argument("--chunk-steps", default="auto", help="steps per task, or 'auto' (default)")
    p.add_argument("--force", action="store_true", help="recompute experiments whose output is up to date")
    p.add_argument("--catalog", default=None, help="SQLite catalog to record extractions in")
    p.add_argument(
        "--dry-run", action="store_true", help="show what would run, the chunk plan and an estimated time"
    )
    p.add_argument(
        "--allow-external-in",
        default=None,
        metavar="FOLDER",
        help="accept HDF5 external links / virtual / external storage whose targets are inside FOLDER "
        "(refused by default)",
    )
    add_cluster_options(p)


def add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", help="folder of experiment files (default: generate demo data)")
    p.add_argument("--out", default=None, help="output folder (default: ./dask-features-demo)")
    p.add_argument(
        "--experiments", type=positive_int, default=4, help="demo experiments to generate (default 4)"
    )
    p.add_argument("--steps", type=positive_int, default=100, help="steps per demo experiment (default 100)")
    add_cluster_options(p)


def _chunk_steps(text: str) -> int | Literal["auto"]:
    if text == "auto":
        return "auto"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"--chunk-steps must be a positive integer or 'auto', got {text!r}")
    return int(text)


def _written_since(out: Path, config_name: str, start: float) -> str:
    from dask_features.engine.versions import folder_name

    folder = out / folder_name(config_name) / "steps"
    n = sum(1 for p in folder.glob("*.parquet") if p.stat().st_mtime >= start) if folder.is_dir() else 0
    return f"{n} written to {folder.parent}, each complete"


def _errors_file(result: Any) -> str:
    """Write every step-level problem of the config's outputs to one Parquet file; say where."""
    from dask_features import read_features
    from dask_features.engine.versions import folder_name

    folder = Path(result.out_dir) / folder_name(result.config_name)
    target = folder / "errors.parquet"
    try:
        table = read_features(result.out_dir, result.config_name, table="errors")
        tmp = folder / f".errors-{uuid.uuid4().hex[:8]}.tmp"
        table.to_parquet(tmp, index=False)
        os.replace(tmp, target)
    except OSError:  # read-only output: the per-experiment files are there
        return f"{folder / 'errors'}/*.parquet"
    return str(target)


def _memory_note(result: Any, client: Any, config: Any, memory_limit: str | None) -> str | None:
    killed = [p for p, why in result.failed.items() if "KilledWorker" in why or "worker" in why.lower()]
    if not killed:
        return None
    limits = [m for m in memory_limits(client) if m]
    if not limits and memory_limit:
        from dask.utils import parse_bytes

        limits = [parse_bytes(memory_limit)]
    limit = f"{min(limits) / 2**20:,.0f} MB per worker" if limits else "the workers' memory limit"
    try:
        data = max(chunk_bytes(p, config) for p in killed[:20])
        needed = (
            f"about {(data + IMPORT_BYTES) / 2**20:,.0f} MB ({IMPORT_BYTES / 2**20:.0f} MB to import the "
            f"packages, {data / 2**20:,.1f} MB of data per task)"
        )
    except Exception:
        needed = f"at least {IMPORT_BYTES / 2**20:.0f} MB to import the packages"
    return (
        f"{len(killed)} experiment(s) failed because their worker processes died repeatedly; the usual "
        f"cause is memory: the limit is {limit}, a task needs {needed}. Give --memory-limit 1GB (or more), "
        "fewer --workers, or smaller --chunk-steps"
    )


def _scheduler_note(result: Any, client: Any) -> str | None:
    if client is None or getattr(client, "status", "running") in ("running", "connecting", "newly-created"):
        return None
    return (
        f"lost the connection to the Dask scheduler during the run (client {client.status}): the "
        f"{len(result.failed)} experiment(s) listed as failed were not finished. Outputs written are "
        "complete; start the scheduler again and rerun the same command to resume"
    )


def summary(result: Any, client: Any = None, config: Any = None, memory_limit: str | None = None) -> str:
    """The run's summary, once: counts, output folder, where the step errors are, failures."""
    lines = [
        line
        for line in result.summary().splitlines()
        if "result.errors" not in line and not line.startswith("FAILED ")
    ]
    for path, reason in result.failed.items():
        reason = reason.removeprefix(f"{path}: ")
        lines.append(f"FAILED {path}: {reason if len(reason) <= 300 else reason[:300] + '...'}")
    if result.n_errors:  # counted without building the errors DataFrame (pandas)
        lines.insert(
            2, f"{result.n_errors} step-level problem(s) (values NaN) listed in {_errors_file(result)}"
        )
    notes = (_memory_note(result, client, config, memory_limit), _scheduler_note(result, client))
    lines.extend(n for n in notes if n)
    return "\n".join(lines)


def _dry_run(args: argparse.Namespace, config: Any) -> int:
    from dask_features.engine.names import output_stems
    from dask_features.engine.output import is_complete
    from dask_features.engine.plan import (
        bundle_jobs,
        expand_inputs,
        item_path,
        make_job,
        missing_steps,
        open_item,
    )
    from dask_features.engine.versions import folder_hash, folder_name

    items, root = expand_inputs(list(args.data))
    folder = Path(args.out) / folder_name(config.name)
    # Outputs of another version of the config are moved aside by a real run, so none is up to date.
    same_version = folder_hash(folder) == config.hash
    stems = output_stems([item_path(i) for i in items], root)
    run, up_to_date, unreadable, failing = [], 0, 0, 0
    print(f"{'experiment':40s} {'transfer':>8s} {'transient':>9s} {'chunks':>6s} {'est. s':>7s}  status")
    for item in items:
        path = item_path(item)
        name = os.path.relpath(path, root) if root else path
        try:
            job = make_job(
                open_item(item, config.sources), config, stems[path], _chunk_steps(args.chunk_steps)
            )
        except Exception as exc:
            unreadable += 1
            print(f"{name:40s} {'':>8s} {'':>9s} {'':>6s} {'':>7s}  unreadable: {exc}")
            continue
        exp = job.experiment
        done = not args.force and same_version and is_complete(folder, config, path, job.stem)
        up_to_date += done
        why = None if done else missing_steps(exp, config)  # as the run would fail it
        failing += why is not None
        if not done and why is None:
            run.append(job)
        status = "up to date" if done else "would run" if why is None else f"would fail: {why}"
        print(
            f"{name:40s} {exp.n_transfer_steps:8d} {exp.n_transient_steps:9d} {len(job.chunks):6d} "
            f"{job.seconds:7.2f}  {status}"
        )
    bundles = list(bundle_jobs(run)) if args.mode == "step" else [[j] for j in run]
    tasks = sum(len(b[0].chunks) + 1 if len(b) == 1 and len(b[0].chunks) > 1 else 1 for b in bundles)
    work = sum(j.seconds for j in run)
    workers = args.workers or os.cpu_count() or 1
    print(
        f"would run {len(run)} experiment(s) as {tasks} task(s) ({sum(len(j.chunks) for j in run)} chunks); "
        f"{up_to_date} up to date, {unreadable} unreadable" + (f", {failing} would fail" if failing else "")
    )
    print(
        f"estimated work {work:.1f} s of CPU: about {work / workers:.1f} s on {workers} worker(s); "
        f"scheduler: {_planned_scheduler(args, config, run)}; nothing was written"
    )
    return 0


def _planned_scheduler(args: argparse.Namespace, config: Any, run: list[Any]) -> str:
    """What the real run would compute with, as its summary would say."""
    if args.address:
        return f"the cluster at {args.address}"
    if args.scheduler == "distributed" or args.memory_limit is not None:
        return "a LocalCluster (a few seconds to start)"
    if args.scheduler is not None:
        return f"{args.scheduler} (asked for)"
    if not run:
        return "none (nothing to run)"
    from dask_features.engine.streams import choose_local_scheduler

    choice = choose_local_scheduler(run[0], config, len(run), args.workers)
    return f"{choice.scheduler} ({choice.why})"


def run_extract(args: argparse.Namespace) -> int:
    from dask_features import extract, load_config
    from dask_features.io._safety import ALLOW_ENV

    config = load_config(args.config)  # every config problem before anything starts
    chunk = _chunk_steps(args.chunk_steps)
    check_inputs(args.data)
    if args.allow_external_in:
        os.environ[ALLOW_ENV] = str(Path(args.allow_external_in).resolve())
    if args.dry_run:
        return _dry_run(args, config)
    out, start = Path(args.out), time.time()
    on_interrupt.append(lambda: _written_since(out, config.name, start))
    with cluster(args) as client:
        result = extract(
            args.data,
            config,
            out,
            client=client,
            **({} if client is not None else scheduler_for(args)),
            mode=args.mode,
            chunk_steps=chunk,
            force=args.force,
            catalog=args.catalog,
            progress=False if args.quiet else None,
        )
        print(summary(result, client, config, args.memory_limit))
    return 0 if result.ok else 1


def run_demo(args: argparse.Namespace) -> int:
    from dask_features import extract, read_features, synth

    out = Path(args.out or "dask-features-demo")
    generated = not args.data
    if generated:
        data = str(out / "data")
        paths = synth.generate_dataset(data, n_experiments=args.experiments, n_steps=args.steps, seed=0)
        say(
            f"Generated {len(paths)} demo experiments ({args.steps} transfer + {args.steps} transient steps each) in {data}"
        )
    else:
        data = args.data
        check_inputs([data])
        say(f"Using experiments under {data}")
    status = 0
    start = time.time()
    on_interrupt.append(lambda: "; ".join(_written_since(out / "features", c, start) for c in DEMO_CONFIGS))
    with cluster(args) as client:
        for config in DEMO_CONFIGS:
            kwargs = {} if client is not None else scheduler_for(args)
            result = extract(
                data,
                config,
                out / "features",
                client=client,
                progress=False if args.quiet else None,
                **kwargs,
            )
            print(summary(result, client, None, args.memory_limit))
            status |= 0 if result.ok else 1
    steps = read_features(out / "features", "v2_mixed")
    robust = read_features(out / "features", "transfer_robust")
    cycles = read_features(out / "features", "transient_tau", table="cycles")
    table = steps.groupby("test_id")[["gm_max_forward", "absI_max", "peak_current"]].median()
    table = table.rename(columns={"gm_max_forward": "gm_max_v2"})  # oect-infra's point derivative
    table["gm_max_robust"] = robust.groupby("test_id")["gm_max_forward"].median()
    table["Vth_forward"] = robust.groupby("test_id")["Vth_forward"].median()
    # tau is NaN wherever its half-cycle is flagged; count half-cycles, not rows: a row holds two, and
    # the partial ones at the record ends (status 4) are not complete half-cycles.
    table[["tau_on_ms", "tau_off_ms"]] = cycles.groupby("test_id")[["tau_on", "tau_off"]].median() * 1e3
    halves = cycles.melt(id_vars="test_id", value_vars=["status_on", "status_off"], value_name="half")
    by_test = halves.groupby("test_id")["half"]
    table["half_cycles_fitted"] = (
        by_test.apply(lambda s: int((s == 0).sum())).astype(str)
        + "/"
        + by_test.apply(lambda s: int((s != 4).sum())).astype(str)
    )
    if generated:  # the generator recorded the truth: show it next to what was extracted
        for path in sorted(Path(data).glob("*.h5")):
            truth = synth.read_ground_truth(path)
            test_id = path.stem.rsplit("-", 1)[-1]
            table.loc[test_id, "true_gm_max"] = truth["transfer"]["gm_max_forward"].median()
            table.loc[test_id, "true_tau_on_ms"] = truth["transient"]["tau_on"].median() * 1e3
            table.loc[test_id, "true_tau_off_ms"] = truth["transient"]["tau_off"].median() * 1e3
    print("\nMedian over the steps of each experiment (gm in S, currents in A):")
    print(table.to_string(float_format="{:.4g}".format))
    say(f"\nParquet files: {(out / 'features').resolve()}/<config>/{{steps,cycles,errors}}/*.parquet")
    say("Read them with dask_features.read_features(out_dir, config), pandas.read_parquet or dask.dataframe.")
    return status
