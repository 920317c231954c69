"""Exception hierarchy of :mod:`dask_features`.

Every error the package raises on purpose derives from :class:`DaskFeaturesError`; most also derive
from the matching built-in so callers may catch either (``except ValueError`` keeps working).
Messages name the file, step and feature involved so a failure in a batch of hundreds of
experiments can be traced without a debugger.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConfigError",
    "DaskFeaturesError",
    "ExperimentFormatError",
    "ExtractorError",
    "FormatVersionError",
    "IndexTableError",
    "MissingGroupError",
    "MissingOutputError",
    "NotHDF5Error",
    "OutputError",
    "TruncatedFileError",
    "UnsafeExpressionError",
]


#: Longest problem line a ConfigError keeps [characters].
_MAX_PROBLEM = 500


class DaskFeaturesError(Exception):
    """Root of every error raised on purpose by :mod:`dask_features`."""


# --- reading experiment files -------------------------------------------------------------


class ExperimentFormatError(DaskFeaturesError, ValueError):
    """An experiment file does not follow the oect-infra HDF5 layout.

    Parameters
    ----------
    path : str
        The offending file.
    problem : str
        What is wrong, in words a user can act on.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Keep the exception picklable across Dask worker boundaries.
        return (type(self), (self.path, self.problem))


class NotHDF5Error(ExperimentFormatError):
    """The file is not an HDF5 file at all."""


class TruncatedFileError(ExperimentFormatError):
    """The file is HDF5 but cut short (an interrupted copy or write)."""


class FormatVersionError(ExperimentFormatError):
    """The ``format_version`` root attribute is missing or not a supported one."""


class MissingGroupError(ExperimentFormatError, KeyError):
    """A group or dataset the layout requires is missing."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return f"{self.path}: {self.problem}"


class IndexTableError(ExperimentFormatError):
    """A step info table disagrees with the measurement data it indexes."""


# --- configuration and extraction ---------------------------------------------------------


class ConfigError(DaskFeaturesError, ValueError):
    """A feature configuration is invalid.

    All problems found are reported at once.

    Parameters
    ----------
    problems : sequence of str
        One line per problem.
    source : str, optional
        Where the configuration came from (file path, preset name or ``"<dict>"``).
    """

    def __init__(self, problems: Sequence[str] | str, source: str | None = None) -> None:
        # A problem line quotes user values; cut each so one huge value cannot flood a message.
        lines = [problems] if isinstance(problems, str) else list(problems)
        self.problems = [
            p
            if len(p) <= _MAX_PROBLEM
            else f"{p[:_MAX_PROBLEM]}... ({len(p) - _MAX_PROBLEM} more characters)"
            for p in lines
        ]
        self.source = source
        head = f"invalid feature config {source!r}" if source else "invalid feature config"
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head} ({len(self.problems)} problem(s)):\n{body}")

    def __reduce__(self) -> tuple[type, tuple[list[str], str | None]]:
        return (type(self), (self.problems, self.source))


class UnsafeExpressionError(ConfigError):
    """A ``func`` expression uses a construct outside the safe subset."""


class ExtractorError(DaskFeaturesError, RuntimeError):
    """An extractor failed or returned a result that does not match its declaration.

    Parameters
    ----------
    feature : str
        Feature name in the configuration.
    message : str
        What went wrong.
    path : str, optional
        Experiment file.
    steps : sequence of int, optional
        Step indices involved.
    """

    def __init__(
        self,
        feature: str,
        message: str,
        path: str | None = None,
        steps: Sequence[int] | None = None,
    ) -> None:
        self.feature = feature
        self.message = message
        self.path = path
        self.steps = None if steps is None else [int(s) for s in steps]
        where = f"{path}: " if path else ""
        if self.steps:
            shown = ", ".join(map(str, self.steps[:5])) + (", ..." if len(self.steps) > 5 else "")
            where += f"steps [{shown}]: "
        super().__init__(f"{where}feature {feature!r}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str | None, list[int] | None]]:
        return (type(self), (self.feature, self.message, self.path, self.steps))


class OutputError(DaskFeaturesError, OSError):
    """Results could not be written (folder not writable, disk full, unsafe name)."""


class MissingOutputError(DaskFeaturesError, FileNotFoundError):
    """An output folder, or a config's output inside it, does not exist (misspelled name or path)."""
