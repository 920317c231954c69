"""Compile the package's bytecode before fresh-process measurements.

An installed package has its bytecode after its first import. Where ``PYTHONDONTWRITEBYTECODE`` is
set (some CI and sandboxed shells), nothing is ever written and every fresh process compiles every
module of the package again (over 0.1 s), which no user's installation pays.
"""

from __future__ import annotations

import compileall
from pathlib import Path

import dask_features


def compile_package() -> None:
    """Write the bytecode of every module of ``dask_features`` (a no-op when it is current)."""
    compileall.compile_dir(Path(dask_features.__file__).parent, quiet=1)
