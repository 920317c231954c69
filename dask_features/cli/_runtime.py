"""What every subcommand shares: verbosity, plain error lines, Ctrl-C / SIGTERM and broken pipes.

Exit codes: 0 ok, 1 failed experiments or an error, 2 usage error, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM), 141 output pipe closed (``... | head``). Tracebacks only with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

__all__ = [
    "Terminated",
    "add_common_options",
    "explain",
    "install_signal_handlers",
    "on_interrupt",
    "positive_int",
    "say",
    "setup_logging",
    "swallowed_interrupt",
]

logger = logging.getLogger("dask_features.cli")

#: Set by a running subcommand: returns "N written ..." for the interrupted line.
on_interrupt: list[Callable[[], str]] = []
_state: dict[str, Any] = {"quiet": False, "debug": False, "signal": None}


class _DefaultOption(TypedDict, total=False):
    """The keyword arguments ``add_common_options`` passes on: at most a ``default``."""

    default: str


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1 (argparse names the option in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` (cluster shutdown, temporary files) runs."""


def add_common_options(p: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``-v/-q/--debug`` on the top-level parser (``top=True``) and on every subcommand.

    Subcommand copies default to ``SUPPRESS`` so that ``dask-features -v extract`` and
    ``dask-features extract -v`` mean the same and neither overwrites the other.
    """
    none: _DefaultOption = {} if top else {"default": argparse.SUPPRESS}
    g = p.add_argument_group("output")
    g.add_argument(
        "-v", "--verbose", action="count", help="more log output (-vv: debug, cluster chatter)", **none
    )
    g.add_argument("-q", "--quiet", action="store_true", help="only results, warnings and errors", **none)
    g.add_argument("--debug", action="store_true", help="show tracebacks", **none)
    if top:
        p.set_defaults(verbose=0, quiet=False, debug=False)


class _Threshold(logging.Filter):
    """Our records at ``level`` and above; a cluster's dashboard link always (it is the one way in)."""

    def __init__(self, level: int, dashboards: bool, failures: bool) -> None:
        super().__init__()
        self.level = level
        self.dashboards = dashboards
        self.failures = failures

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _FAILED_EXPERIMENT, None) is not None:
            return self.failures  # failed experiments are listed once in the summary; -v: as they happen
        if record.levelno >= self.level:
            return True
        return self.dashboards and record.name.startswith("dask_features") and "dashboard" in str(record.msg)


# dask_features.engine.results.FAILED_EXPERIMENT (not imported: the CLI starts without the engine).
# The record is recognised by this mark, not by its logger's name, which moved once and left every
# failure printed twice.
_FAILED_EXPERIMENT = "failed_experiment"


_TOUCHED = ("dask_features", "distributed", "tornado", "bokeh", "asyncio")


def setup_logging(args: argparse.Namespace) -> Callable[[], None]:
    """Levels from ``-v/-q``; the cluster's own INFO chatter only with ``-vv``.

    Returns
    -------
    callable
        Restores the logging set-up found (``main`` called in-process, e.g. by tests, leaves no trace).
    """
    # distributed sets its loggers' levels when imported: import it first, then override them.
    import distributed  # noqa: F401

    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in _TOUCHED})
    saved_env = os.environ.get("TQDM_DISABLE")

    def restore() -> None:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, lvl in saved[2].items():
            logging.getLogger(name).setLevel(lvl)
        if saved_env is None:
            os.environ.pop("TQDM_DISABLE", None)
        os.environ.pop(_LEVEL_ENV, None)

    _state.update(quiet=bool(args.quiet), debug=bool(args.debug), verbose=int(args.verbose))
    verbose = 0 if args.quiet else args.verbose
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Threshold(level, dashboards=not args.quiet, failures=verbose > 0))
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("dask_features").setLevel(min(level, logging.INFO))
    # The cluster's own notes (restarts, dashboard host warnings) one step quieter than ours: what
    # they mean for the run is in the summary.
    cluster_level = (logging.ERROR, logging.WARNING, logging.DEBUG)[min(verbose, 2)]
    for name in ("distributed", "tornado", "bokeh"):
        logging.getLogger(name).setLevel(logging.CRITICAL if args.quiet else cluster_level)
    if args.quiet:
        os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ[_LEVEL_ENV] = str(worker_log_level())  # read by the worker preload
    return restore


def say(*parts: Any) -> None:
    """An informational line (suppressed by ``-q``); results use ``print``."""
    if not _state["quiet"]:
        print(*parts, flush=True)


def _silence() -> None:
    """After an interrupt: shutdown noise of the cluster is expected, not news."""
    if _state["debug"]:
        return
    for name in ("distributed", "tornado", "asyncio", "bokeh", "dask_features"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def quiet_workers_on_ctrl_c() -> None:
    """Workers of any LocalCluster this process starts (here or in the engine) ignore Ctrl-C."""
    import dask

    preload = list(dask.config.get("distributed.worker.preload", []))
    if _WORKER_PRELOAD not in preload:
        dask.config.set({"distributed.worker.preload": [*preload, _WORKER_PRELOAD]})


_WORKER_PRELOAD = str(Path(__file__).with_name("_worker_preload.py"))
_LEVEL_ENV = "DASK_FEATURES_WORKER_LOG_LEVEL"  # the preload's LEVEL_ENV (not imported: it is a plain file)


def install_signal_handlers() -> None:
    """Ctrl-C raises KeyboardInterrupt and SIGTERM raises :class:`Terminated`, both silencing the cluster."""

    def interrupt(signum: int, frame: Any) -> None:
        _state["signal"] = signum
        _silence()
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    _state["signal"] = None
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def swallowed_interrupt() -> KeyboardInterrupt | None:
    """The interrupt of a signal whose exception Python could not pass on, else None.

    A signal handler's exception raised while a weakref callback or a ``__del__`` runs is printed
    ("Exception ignored in ...") and dropped: the command then runs to its end. Its outputs are
    complete, but it must still end as an interrupted one (line, exit code 130 / 143).
    """
    signum = _state["signal"]
    if signum is None:
        return None
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def interrupted_line(exc: KeyboardInterrupt) -> tuple[str, int]:
    """The one line printed after Ctrl-C / SIGTERM, and the exit code."""
    what = "terminated" if isinstance(exc, Terminated) else "interrupted"
    done = ""
    for describe in on_interrupt:
        try:
            done = describe()
        except Exception:  # never let the report of an interrupt fail
            done = ""
    body = f"{done}; rerun the same command to resume" if done else "rerun the same command to resume"
    return f"{what}: {body}", 143 if isinstance(exc, Terminated) else 130


def _lost_scheduler(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"ClosedClientError", "CommClosedError", "StreamClosedError"}) or (
        type(exc).__module__.startswith("distributed") and "closed" in str(exc).lower()
    )


def explain(exc: BaseException) -> str:
    """One plain line for an error that reached the top (no traceback)."""
    if _lost_scheduler(exc):
        return (
            f"lost the connection to the Dask scheduler ({type(exc).__name__}); it stopped or the network "
            "failed. Outputs written so far are complete; rerun the same command to resume"
        )
    if isinstance(exc, TimeoutError) and "scheduler" in str(exc).lower():
        return f"the Dask scheduler did not answer in time ({exc}); check --address, or drop it"
    text = str(exc) or type(exc).__name__
    from dask_features.cli._plugins import PluginError
    from dask_features.errors import DaskFeaturesError

    if isinstance(exc, DaskFeaturesError | PluginError | OSError | ValueError | KeyError):
        return text.strip("'\"") if isinstance(exc, KeyError) else text
    return f"unexpected {type(exc).__name__}: {text} (run with --debug for the traceback)"


def quiet_broken_pipe() -> int:
    """The reader of our output went away (``| head``): stop without a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    except OSError:
        pass
    return 141


def worker_log_level() -> int:
    """Level of the workers' own log output: none by default, warnings with ``-v``, all with ``-vv``."""
    verbose = 0 if _state["quiet"] else int(_state.get("verbose", 0))
    return (logging.CRITICAL, logging.WARNING, logging.INFO)[min(verbose, 2)]


def is_debug() -> bool:
    return bool(_state["debug"])
