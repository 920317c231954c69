"""Compiled kernels: machine code built ahead of time when present, numba's JIT otherwise.

Kernel modules declare each loop with :func:`kernel` and, for the kernels Python calls, the exact
argument and return types (a numba signature string). Importing a kernel module imports no numba.
On its first call a kernel resolves to:

1. the ahead-of-time compiled function, if a module built by :func:`~dask_features._build.build` from exactly these
   kernel sources is present (its name carries :func:`key`: a hash of the kernel modules' source,
   of this file, of the Python, NumPy, numba and llvmlite versions and of the CPU's features; a
   module with another key is never loaded), and the call's arguments have exactly the declared
   types;
2. otherwise numba's JIT (imported then, on-disk cache, ``nogil``, ``error_model="numpy"``), which
   compiles for whatever types it is given.

Both run the same source with the same options, so they give the same values bit for bit (see
the tests); an argument that does not match the declared types (dtype, dimensions, C-contiguity,
scalar type) takes the JIT path instead of being converted. Helpers that only kernels call need no
signature: they are compiled into their callers in both modes.

The code is built for the CPU it is built on, as the JIT's is (vectorised loops use its instruction
set), where the CPU's features can be read without numba (``/proc/cpuinfo``); elsewhere it is generic
code for the architecture. The module is looked for, and built, in the package folder, then in a user cache folder
(``$NUMBA_CACHE_DIR/dask_features``, else ``$XDG_CACHE_HOME/dask_features`` or
``~/.cache/dask_features``); ``DASK_FEATURES_KERNEL_DIR`` replaces both with one folder.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import itertools
import os
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dask_features._kernel_types import ArgCheck, parse_signature
from dask_features.errors import DaskFeaturesWarning

__all__ = [
    "KERNEL_MODULES",
    "Kernel",
    "cpu_features",
    "find",
    "find_module",
    "jit_fallbacks",
    "kernel",
    "kernels",
    "key",
    "load",
    "preload",
    "recording",
    "search_dirs",
]

#: Modules whose kernels go into the ahead-of-time module (their source is part of its key).
KERNEL_MODULES = (
    "dask_features.extractors._robust_kernels",
    "dask_features.extractors._slope_kernels",
    "dask_features.extractors._peak_kernel",
    "dask_features.extractors._peaks",
    "dask_features.extractors.tau._kernels",
    "dask_features.extractors.tau._locate",
    "dask_features.extractors.tau._anchored",
    "dask_features.io._raw_kernels",
)
#: numba options of every kernel, in both modes. error_model="numpy": a division by zero gives
#: inf/NaN (handled by the callers) instead of raising.
JIT_OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}
#: Environment variable naming the one folder searched for (and given to) the compiled module.
DIR_ENV = "DASK_FEATURES_KERNEL_DIR"
_PREFIX = "_dfkernels_"
_PACKAGE = Path(__file__).resolve().parent
_KERNELS: dict[str, Kernel] = {}  # "module:function" -> kernel, filled as modules are imported
_LOCK = threading.Lock()
_UNRESOLVED = object()
_RECORDS: list[tuple[Kernel, tuple[Any, ...]]] | None = None


class Kernel:
    """A numba kernel that runs ahead-of-time compiled code when available (see the module docstring)."""

    def __init__(self, func: Callable[..., Any], signature: str | None) -> None:
        self.py_func = func
        self.signature = signature
        self.name = f"{func.__module__}:{func.__name__}"
        self.checks: tuple[ArgCheck, ...] | None = None if signature is None else parse_signature(signature)
        self.used_jit = False
        self._compiled: Any = _UNRESOLVED
        self._dispatcher: Any = None
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__
        self.__module__ = func.__module__
        self.__wrapped__ = func

    def __repr__(self) -> str:
        return f"<kernel {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _RECORDS is not None:
            _RECORDS.append((self, tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)))
        compiled = self._compiled
        if compiled is _UNRESOLVED:
            compiled = self.resolve()
        if compiled is not None and not kwargs and self.accepts(args):
            return compiled(*args)
        self.used_jit = True
        return self.dispatcher()(*args, **kwargs)

    def accepts(self, args: tuple[Any, ...]) -> bool:
        """Whether ``args`` have exactly the declared types (else the JIT path runs)."""
        checks = self.checks
        return (
            checks is not None
            and len(args) == len(checks)
            and all(c(a) for c, a in zip(checks, args, strict=True))
        )

    def resolve(self) -> Any:
        """:meth:`compiled`, looked up once: what every later call runs (None: the JIT)."""
        if self._compiled is _UNRESOLVED:
            self._compiled = self.compiled()
        return self._compiled

    def compiled(self) -> Any:
        """The ahead-of-time compiled function, or None (no signature, no module, or not in it)."""
        if self.signature is None:
            return None
        module = find_module()
        return None if module is None else getattr(module, export_name(self.name), None)

    def dispatcher(self) -> Any:
        """numba's JIT dispatcher of this kernel (imports numba; compiles on first call, cached on disk)."""
        if self._dispatcher is None:
            import numba

            self._dispatcher = numba.njit(**JIT_OPTIONS)(self.numba_source())
        return self._dispatcher

    def numba_source(self) -> Callable[..., Any]:
        """The Python function with the kernels it calls replaced by their dispatchers (for numba)."""
        func = self.py_func
        names = func.__code__.co_names
        env = dict(func.__globals__)
        for name in names:
            value = env.get(name)
            if isinstance(value, Kernel) and value is not self:
                env[name] = value.dispatcher()
        clone = types.FunctionType(func.__code__, env, func.__name__, func.__defaults__, func.__closure__)
        clone.__qualname__ = func.__qualname__
        clone.__module__ = func.__module__
        clone.__doc__ = func.__doc__
        return clone


def kernel(signature: str | None = None) -> Callable[[Callable[..., Any]], Kernel]:
    """Declare a kernel; ``signature`` (numba syntax, e.g. ``"f8(f8[::1], i8)"``) if Python calls it.

    Array types are written ``f8[:, ::1]`` (C-contiguous) or ``f8[:, :]`` (any layout); scalars
    ``f8``, ``i8``, ``b1``. Kernels without a signature are helpers compiled into their callers.
    """

    def declare(func: Callable[..., Any]) -> Kernel:
        k = Kernel(func, signature)
        _KERNELS[k.name] = k
        return k

    return declare


def export_name(name: str) -> str:
    """Symbol of kernel ``module:function`` in the compiled module."""
    return name.removeprefix("dask_features.").replace(".", "_").replace(":", "__")


def _source_file(module: str) -> Path:
    return _PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")


def _package_folder(name: str) -> list[str]:
    """The folder holding top-level package ``name`` (found, not imported), or none."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.origin or not spec.submodule_search_locations:
        return []
    return [os.path.dirname(os.path.dirname(spec.origin))]


@functools.cache
def _dist_infos(entry: str) -> tuple[str, ...]:
    """Names of the ``.dist-info`` folders in ``sys.path`` entry ``entry``, listed once per process
    (a listing of site-packages takes about a millisecond; the key needs two versions)."""
    try:
        return tuple(n for n in os.listdir(entry or ".") if n.endswith(".dist-info"))
    except OSError:
        return ()


@functools.cache
def key() -> str:
    """Hash of the kernel sources, this file, the build's and the versions the compiled code depends on.

    Computed once per process, from the sources as they are when first asked (at the first kernel
    call or build).
    """
    h = hashlib.sha256()
    own = [Path(__file__), _PACKAGE / "_kernel_types.py", _PACKAGE / "_build.py"]
    for path in [_source_file(m) for m in KERNEL_MODULES] + own:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    versions = [sys.version, np.__version__] + [_version(d) for d in ("numba", "llvmlite")]
    h.update(repr([*versions, cpu_features()]).encode())
    return h.hexdigest()[:20]


@functools.cache
def cpu_features() -> str:
    """This CPU's feature flags from ``/proc/cpuinfo`` ('' where unreadable: then code is generic).

    Code built for the host CPU may use instructions another CPU lacks; with the flags in the key,
    a module built on one CPU is never loaded on a CPU with other features.
    """
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name.strip() in ("flags", "Features"):  # x86, ARM
                return value.strip()
            if not line.strip():
                break  # only the first processor's block
    return ""


def _version(dist: str) -> str:
    """Version of installed distribution ``dist`` ('-' when not installed).

    Read from the name of its ``.dist-info`` folder: first the one beside the package of that name
    (located without importing it), else the first on ``sys.path`` as imports search. Importing
    ``importlib.metadata`` alone takes 0.1-0.2 s in a fresh process, more than loading the compiled
    kernels it keys; listing every ``sys.path`` entry would list the working folder too (the first
    entry of a notebook or ``python -c``, which may hold thousands of data files). Other
    installation formats ask ``importlib.metadata``.
    """
    prefix, suffix = dist.lower() + "-", ".dist-info"
    for entry in itertools.chain(_package_folder(dist), sys.path):
        for name in _dist_infos(entry):
            if name.lower().startswith(prefix):
                return name[len(prefix) : -len(suffix)]
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def module_name() -> str:
    """Name of the compiled module of the current sources (file: this plus the extension suffix)."""
    return _PREFIX + key()


def search_dirs() -> list[Path]:
    """Folders searched for the compiled module, first found wins (see the module docstring)."""
    if os.environ.get(DIR_ENV):
        return [Path(os.environ[DIR_ENV])]
    if os.environ.get("NUMBA_CACHE_DIR"):
        cache = Path(os.environ["NUMBA_CACHE_DIR"])
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [_PACKAGE, cache / "dask_features"]


def find(dirs: list[Path] | None = None) -> Path | None:
    """Path of the compiled module of the current sources in ``dirs`` (default :func:`search_dirs`)."""
    name = module_name() + importlib.machinery.EXTENSION_SUFFIXES[0]
    for folder in search_dirs() if dirs is None else dirs:
        if (folder / name).is_file():
            return folder / name
    return None


_MODULE: Any = _UNRESOLVED


def find_module() -> types.ModuleType | None:
    """The compiled module of the current sources, loaded once per process, or None."""
    global _MODULE
    with _LOCK:
        if _MODULE is _UNRESOLVED:
            path = find()
            _MODULE = None
            if path is not None:
                try:
                    _MODULE = load(path)
                except ImportError as exc:  # e.g. a damaged file, or one built on another system
                    warnings.warn(
                        f"cannot load the compiled kernels ({exc}); using numba's JIT instead "
                        "(rebuild with python -m dask_features.warmup)",
                        DaskFeaturesWarning,
                        stacklevel=3,
                    )
        return _MODULE


def load(path: Path) -> types.ModuleType:
    """Load a compiled kernel module (for :func:`find_module`, and for tests comparing it with the JIT)."""
    name = path.name.split(".")[0]
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    module = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(name, loader, origin=str(path)))
    loader.exec_module(module)
    return module


def kernels() -> list[Kernel]:
    """Every kernel declared so far (those of imported modules)."""
    return list(_KERNELS.values())


def jit_fallbacks() -> list[str]:
    """Kernels called from Python that ran numba's JIT in this process (``module:function``)."""
    return sorted(k.name for k in _KERNELS.values() if k.used_jit)


def preload() -> None:
    """Load the compiled module and look up every declared kernel in it now, not at each kernel's
    first call: a process about to fork workers does it once for all of them."""
    for k in kernels():
        k.resolve()


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[Kernel, tuple[Any, ...]]]]:
    """Record every kernel call from Python (the kernel and copies of its arguments) while active.

    For tests and diagnostics: replaying the calls through both the compiled module and the JIT
    compares them on the arguments real extractions pass.
    """
    global _RECORDS
    records: list[tuple[Kernel, tuple[Any, ...]]] = []
    _RECORDS = records
    try:
        yield records
    finally:
        _RECORDS = None
