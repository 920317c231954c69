"""A config sent to a cluster's processes as bytes, unpickled once per process.

Every argument of a submitted task is unpickled by the scheduler (which reads the task) and by the
worker that runs it. A :class:`~dask_features.config.schema.FeatureConfig` is costly to unpickle
(its derived-feature expressions are parsed and checked again: ~1 ms for ``v2_transfer_basic``),
per task and per process, and on a small machine the scheduler's share is taken from the workers.
:class:`PackedConfig` is the config pickled once by the client; the scheduler only copies its
bytes, and each worker process unpickles it on first use and reuses it (keyed by the bytes' digest,
so a changed config is never mixed up with an older one).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dask_features.config.schema import FeatureConfig

__all__ = ["PackedConfig", "call_with_config"]

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
