"""What crosses the cluster as bytes: a task's config (unpickled once per process) and its result.

Every argument of a submitted task is unpickled by the scheduler (which reads the task) and by the
worker that runs it. A :class:`~dask_features.config.schema.FeatureConfig` is costly to unpickle
(its derived-feature expressions are parsed and checked again: ~1 ms for ``v2_transfer_basic``),
per task and per process, and on a small machine the scheduler's share is taken from the workers.
:class:`PackedConfig` is the config pickled once by the client; the scheduler only copies its
bytes, and each worker process unpickles it on first use and reuses it (keyed by the bytes' digest,
so a changed config is never mixed up with an older one).

A task whose value goes to the client (a bundle's outcomes, an assembled experiment) returns it
pickled (:func:`call_packed`): ``distributed`` then moves one bytes frame per task, where it
handled each experiment's outcome as an object of its own, which cost the client's event loop
~0.1 ms per experiment (more than everything else the client does for an experiment). The client
unpickles it with :func:`unpacked`.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dask_features.config.schema import FeatureConfig

__all__ = ["PackedConfig", "PackedResult", "call_packed", "call_with_config", "unpacked"]

#: Configs kept unpickled per process (a run uses one; a few runs on one cluster may alternate).
_KEEP = 8
_unpacked: dict[str, FeatureConfig] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class PackedConfig:
    """A pickled :class:`FeatureConfig` and the SHA-1 of its bytes."""

    data: bytes
    digest: str

    @classmethod
    def pack(cls, config: FeatureConfig) -> PackedConfig:
        """Pickle ``config`` (by value where plain pickle cannot, as Dask would)."""
        import cloudpickle  # type: ignore[import-untyped]

        data = cloudpickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
        return cls(data, hashlib.sha1(data, usedforsecurity=False).hexdigest())

    def unpack(self) -> FeatureConfig:
        """The config, unpickled at most once per process."""
        config = _unpacked.get(self.digest)
        if config is None:
            config = pickle.loads(self.data)
            with _lock:
                while len(_unpacked) >= _KEEP:
                    del _unpacked[next(iter(_unpacked))]  # the oldest
                _unpacked[self.digest] = config
        return config


def call_with_config(func: Callable[..., Any], first: Any, config: PackedConfig, *rest: Any) -> Any:
    """``func(first, config, *rest)`` with ``config`` unpacked: a task function's config is its second argument."""
    return func(first, config.unpack(), *rest)


@dataclass(frozen=True)
class PackedResult:
    """A task's value, pickled on the worker (see the module docstring)."""

    data: bytes


def call_packed(func: Callable[..., Any], first: Any, config: PackedConfig, *rest: Any) -> PackedResult:
    """:func:`call_with_config` with its value pickled, for tasks whose value only the client reads."""
    value = call_with_config(func, first, config, *rest)
    return PackedResult(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def unpacked(value: Any) -> Any:
    """The value a :func:`call_packed` task computed (anything else is returned as it is)."""
    return pickle.loads(value.data) if isinstance(value, PackedResult) else value
