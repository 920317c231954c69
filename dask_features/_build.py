"""Building the ahead-of-time kernel module (:mod:`dask_features._compiled`) with ``numba.pycc``.

Only :mod:`dask_features.warmup` (``make``) and tests build; a run only looks the module up. The
module's key covers this file too: the build's options are part of the machine code.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dask_features._compiled import (
    _PACKAGE,
    _PREFIX,
    JIT_OPTIONS,
    KERNEL_MODULES,
    cpu_features,
    export_name,
    kernels,
    module_name,
    search_dirs,
)
from dask_features.errors import OutputError

__all__ = ["build"]


def _writable(folder: Path) -> bool:
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
    return folder.is_dir() and os.access(folder, os.W_OK)


@contextlib.contextmanager
def _kernel_flags() -> Iterator[None]:
    """Compile the exported functions with the kernels' options (numba.pycc compiles with the defaults)."""
    import numba.pycc.compiler as pycc_compiler

    default = pycc_compiler.Flags

    def flags() -> Any:
        f: Any = default()
        f.release_gil = True
        f.error_model = JIT_OPTIONS["error_model"]
        return f

    pycc_compiler.Flags = flags  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        pycc_compiler.Flags = default  # type: ignore[misc]


def build(folder: Path | None = None) -> Path:
    """Compile every kernel with a signature into one extension module; return its path.

    Written to ``folder`` (default: the first writable of :func:`search_dirs`) under a temporary
    name, then renamed, so concurrent builds and readers never see a partial file. An existing
    module of the same key is kept. Older modules (other keys) in the package folder are removed.

    Raises
    ------
    ImportError
        numba.pycc is not available.
    OutputError
        No writable folder.
    Exception
        Whatever numba or the C compiler raise when compilation fails.
    """
    for module in KERNEL_MODULES:
        importlib.import_module(module)
    if folder is None:
        folder = next((d for d in search_dirs() if _writable(d)), None)
        if folder is None:
            raise OutputError(f"no writable folder for the compiled kernels among {search_dirs()}")
    folder.mkdir(parents=True, exist_ok=True)
    name = module_name()
    target = folder / (name + importlib.machinery.EXTENSION_SUFFIXES[0])
    if target.is_file():
        return target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba.pycc's pending deprecation
        from numba.pycc import CC

    import tempfile  # only a build needs it (with shutil and random: ~9 ms of a first call's import)

    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
    try:
        cc = CC(name)
        cc.target_cpu = "host" if cpu_features() else ""
        cc.output_dir = str(tmp)
        for k in kernels():
            if k.signature is not None and k.name.split(":")[0] in KERNEL_MODULES:
                cc.export(export_name(k.name), k.signature)(k.numba_source())
        with _kernel_flags(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc.compile()
        os.replace(tmp / cc.output_file, target)
    finally:
        import shutil  # only a build needs it (it loads bz2, lzma and fnmatch)

        shutil.rmtree(tmp, ignore_errors=True)
    if folder == _PACKAGE:  # a user cache folder may serve other installs: keep their modules
        for old in folder.glob(_PREFIX + "*"):
            if old.name != target.name:
                with contextlib.suppress(OSError):
                    old.unlink()
    return target
