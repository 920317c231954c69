"""Extractors from other packages (entry points) and from local files (``--import``).

A package registers extractors by importing a module that calls :func:`dask_features.register`;
it announces that module in its ``pyproject.toml``::

    [project.entry-points."dask_features.extractors"]
    my_lab = "my_lab.features"

``--import MODULE`` does the same for one run: a module name, or a path to a ``.py`` file. A file's
folder is put on ``PYTHONPATH`` so that worker processes started afterwards import it too; with
``--address`` the file is uploaded to the scheduler and the workers, which may not have it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["GROUP", "add_import_option", "load_plugins"]

logger = logging.getLogger(__name__)

#: Entry-point group of extractor plugins.
GROUP = "dask_features.extractors"
#: ``.py`` files imported by ``--import`` in this process (uploaded to a remote cluster's scheduler and workers).
IMPORTED_FILES: list[Path] = []


class PluginError(ImportError):
    """An ``--import`` module could not be imported (the message says why)."""


def add_import_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module or a .py file that registers extractors (repeatable)",
    )


def _import_file(path: Path) -> ModuleType:
    name = path.stem
    if not name.isidentifier():
        raise PluginError(f"--import {path}: the file name must be a Python module name")
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve() == path:
            return loaded
        raise PluginError(f"--import {path}: a module named {name!r} is already imported ({loaded.__name__})")
    folder = str(path.parent)
    sys.path.insert(0, folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"--import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    IMPORTED_FILES.append(path)
    return module


def import_plugin(spec: str) -> ModuleType:
    """Import ``spec``: a ``.py`` file (or any existing path) or a dotted module name."""
    path = Path(spec).expanduser()
    try:
        if spec.endswith(".py") or path.exists():
            if not path.is_file():
                raise PluginError(f"--import {spec}: no such file")
            return _import_file(path.resolve())
        return importlib.import_module(spec)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"--import {spec} failed: {type(exc).__name__}: {exc}") from exc


def load_plugins(imports: list[str]) -> None:
    """Load every installed extractor plugin (a broken one is a warning), then ``--import`` modules."""
    # Imported here: importlib.metadata costs tens of ms, which --help and --version need not pay.
    from importlib.metadata import entry_points

    for ep in entry_points(group=GROUP):
        try:
            ep.load()
        except Exception as exc:  # another package's bug must not stop this command
            logger.warning(
                "extractor plugin %r (%s) was not loaded: %s: %s", ep.name, ep.value, type(exc).__name__, exc
            )
    for spec in imports:
        import_plugin(spec)
