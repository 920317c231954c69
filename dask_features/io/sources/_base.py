"""The :class:`Source` interface and the registry of sources."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dask_features.errors import RegistrationError, UnknownSourceError

if TYPE_CHECKING:
    from dask_features.io.chunks import Chunk
    from dask_features.io.hdf5 import Experiment

__all__ = ["Source", "get_source", "register_source", "source_names"]


class Source(abc.ABC):
    """One kind of measurement data in an experiment file (e.g. transfer sweeps).

    Subclasses set :attr:`name` and implement the four questions below; instances are stateless
    and shipped to workers inside feature specs, so they must stay picklable and small.
    """

    #: Name used in configs (``input: transfer``) and in ``register(..., source=...)``.
    name: ClassVar[str]

    @abc.abstractmethod
    def n_steps(self, experiment: Experiment) -> int:
        """Number of steps of this source in ``experiment`` (0 when the file has none)."""

    @abc.abstractmethod
    def points_per_step(self, experiment: Experiment) -> float:
        """Data points read per step, on average (sizes chunks; at least 1)."""

    @abc.abstractmethod
    def read(self, experiment: Experiment, start: int, stop: int) -> Chunk:
        """Read steps ``[start, stop)`` into a chunk (inside a task)."""

    @abc.abstractmethod
    def describe(self, experiment: Experiment) -> str:
        """A short phrase for messages, e.g. ``"24 transfer sweeps of up to 41 points"``."""

    def unavailable(self, experiment: Experiment) -> str | None:
        """Why ``experiment``'s data of this source cannot be read although the file has some (e.g.
        a link to them that cannot be followed), naming the file; None when they can."""
        return None

    def step_arrays(self, chunk: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of row ``i`` as a single-step extractor (``per_step=True``) receives it."""
        x, y = chunk.step(i)
        return np.asarray(x), np.asarray(y)

    def __repr__(self) -> str:
        return f"<Source {self.name}>"

    def __reduce__(self) -> tuple[Any, tuple[type[Source], str]]:
        # Unpickle to the registered instance; the class travels by reference, so unpickling imports
        # (and thereby registers) a source defined in a user module on a fresh worker.
        return (_restore, (type(self), self.name))


_SOURCES: dict[str, Source] = {}


def register_source(source: Source) -> Source:
    """Add ``source`` to the registry (its :attr:`~Source.name` must be new) and return it."""
    if source.name in _SOURCES and type(_SOURCES[source.name]) is not type(source):
        raise RegistrationError(f"a source named {source.name!r} is already registered")
    _SOURCES[source.name] = source
    return source


def _restore(cls: type[Source], name: str) -> Source:
    return _SOURCES[name] if name in _SOURCES else register_source(cls())


def get_source(name: str) -> Source:
    """The registered source called ``name``.

    Raises
    ------
    UnknownSourceError
        (a ``KeyError``) naming the registered sources.
    """
    try:
        return _SOURCES[name]
    except (KeyError, TypeError):
        raise UnknownSourceError(
            f"no data source named {name!r} (sources: {', '.join(source_names())})"
        ) from None


def source_names() -> tuple[str, ...]:
    """Names of the registered sources, in registration order (the order of output columns)."""
    return tuple(_SOURCES)
