"""Command line: ``dask-features {demo, extract, info, synth, catalog, presets, extractors}``.

Every subcommand is a thin layer over the Python API and takes ``-v/-q/--debug`` and ``--import``.
``main(argv)`` returns the exit code (0 ok; 1 failed experiments or an error; 2 usage error;
130 Ctrl-C; 143 SIGTERM; 141 closed output pipe) so tests call it in-process. Errors are one
``error: ...`` line; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from dask_features.cli import _runtime
from dask_features.cli._extract import add_demo, add_extract, run_demo, run_extract
from dask_features.cli._inspect import add_info, run_info
from dask_features.cli._misc import (
    add_catalog,
    add_extractors,
    add_synth,
    run_catalog,
    run_extractors,
    run_presets,
    run_synth,
)
from dask_features.cli._plugins import add_import_option, load_plugins

__all__ = ["main"]

_Run = Callable[[argparse.Namespace], int]

#: name -> (help, add arguments, run). ``catalog`` adds its own subcommands.
COMMANDS: dict[str, tuple[str, Callable[..., None] | None, _Run]] = {
    "demo": (
        "generate demo data (unless DATA is given), extract the default features, print a summary",
        add_demo,
        run_demo,
    ),
    "extract": ("extract a feature config from experiment files into Parquet", add_extract, run_extract),
    "info": ("describe experiment files: ids, steps, sources, workflow, problems found", add_info, run_info),
    "synth": ("write synthetic experiments in the oect-infra HDF5 layout", add_synth, run_synth),
    "catalog": ("index a data folder / search it", None, run_catalog),
    "presets": ("list the shipped feature configs", None, run_presets),
    "extractors": (
        "list the registered extractors (plugins and --import modules included)",
        add_extractors,
        run_extractors,
    ),
}


def _parser() -> argparse.ArgumentParser:
    from dask_features._version import __version__

    common = argparse.ArgumentParser(add_help=False)
    _runtime.add_common_options(common)
    add_import_option(common)
    p = argparse.ArgumentParser(
        prog="dask-features", description="Chunked, streaming OECT feature extraction on Dask."
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _runtime.add_common_options(p, top=True)
    p.set_defaults(imports=[])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add, _) in COMMANDS.items():
        cmd = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        if name == "catalog":
            add_catalog(cmd, [common])
        elif add is not None:
            add(cmd)
    return p


def _run(args: argparse.Namespace) -> int:
    try:
        load_plugins(args.imports)
        code = COMMANDS[args.command][2](args)
        swallowed = _runtime.swallowed_interrupt()
        if swallowed is not None:
            raise swallowed
        return code
    except KeyboardInterrupt as exc:
        if _runtime.is_debug():
            raise
        line, code = _runtime.interrupted_line(exc)
        print(line, file=sys.stderr, flush=True)
        return code
    except BrokenPipeError:
        return _runtime.quiet_broken_pipe()
    except Exception as exc:
        if _runtime.is_debug():
            raise
        print(f"error: {_runtime.explain(exc)}", file=sys.stderr, flush=True)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dask-features`` console script; returns the exit code."""
    args = _parser().parse_args(argv)  # --help and --version end here, before the engine loads
    from dask_features.io._safety import ALLOW_ENV

    restore_logging = _runtime.setup_logging(args)
    # Options that reach worker processes through the environment; put back for in-process callers.
    env = {k: os.environ.get(k) for k in ("PYTHONPATH", ALLOW_ENV)}
    _runtime.quiet_workers_on_ctrl_c()
    saved: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        _runtime.install_signal_handlers()
    try:
        return _run(args)
    finally:
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        restore_logging()
        _runtime.on_interrupt.clear()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
