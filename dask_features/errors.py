"""Exception hierarchy of :mod:`dask_features`.

Every error the package raises on purpose derives from :class:`DaskFeaturesError`; most also derive
from the matching built-in so callers may catch either (``except ValueError`` keeps working).
Messages name the file, step and feature involved so a failure in a batch of hundreds of
experiments can be traced without a debugger.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CatalogError",
    "CatalogNotFoundError",
    "ConfigError",
    "DaskFeaturesError",
    "DaskFeaturesWarning",
    "DataFolderError",
    "ExperimentFormatError",
    "ExperimentNotFoundError",
    "ExtractorError",
    "ExtractorSignatureError",
    "FormatVersionError",
    "IncompleteOutputWarning",
    "IndexTableError",
    "InputTypeError",
    "InvalidArgumentError",
    "InvalidParameterError",
    "MissingGroupError",
    "NotHDF5Error",
    "NotInCatalogError",
    "OutputBusyError",
    "OutputError",
    "OutputNotFoundError",
    "OutputShapeError",
    "ReadOnlyCatalogError",
    "RegistrationError",
    "SourceChangedError",
    "StepRangeError",
    "TruncatedFileError",
    "UnknownColumnError",
    "UnknownExtractorError",
    "UnknownFeatureError",
    "UnknownSourceError",
    "UnsafeExpressionError",
    "WorkflowError",
]


#: Longest problem line a ConfigError keeps [characters].
_MAX_PROBLEM = 500


class DaskFeaturesError(Exception):
    """Root of every error raised on purpose by :mod:`dask_features`."""


class DaskFeaturesWarning(UserWarning):
    """Root of every warning issued by :mod:`dask_features` (filter them all with this class)."""


class IncompleteOutputWarning(DaskFeaturesWarning):
    """:func:`~dask_features.read_features` returned results with experiments missing or stale."""


class _MessageKeyError(KeyError):
    # KeyError would otherwise repr() its message (quotes and escaped newlines).
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# --- arguments and registries -------------------------------------------------------------


class InvalidArgumentError(DaskFeaturesError, ValueError):
    """A function argument has a value outside what it accepts (the message names it)."""


class InputTypeError(DaskFeaturesError, TypeError):
    """An argument has a type the function cannot use (e.g. ``extract`` given a number as data)."""


class UnknownExtractorError(DaskFeaturesError, _MessageKeyError):
    """No extractor is registered under the name asked for (the message lists close matches)."""


class UnknownFeatureError(DaskFeaturesError, _MessageKeyError):
    """A config has no feature of the name asked for."""


class OutputShapeError(DaskFeaturesError, ValueError):
    """An extractor's result does not match its declared output kind, shape or fields."""


class UnknownColumnError(DaskFeaturesError, _MessageKeyError):
    """A table lacks the column asked for."""


class UnknownSourceError(DaskFeaturesError, _MessageKeyError):
    """No data source is registered under the name asked for."""


class RegistrationError(DaskFeaturesError, ValueError):
    """A name is registered twice (pass ``replace=True`` to override an extractor)."""


class ExtractorSignatureError(DaskFeaturesError, TypeError):
    """An extractor function's signature cannot be registered (``*args``, a parameter without default)."""


class InvalidParameterError(DaskFeaturesError, ValueError):
    """An extractor parameter is unknown or has a value outside its choices.

    Parameters
    ----------
    problems : str or sequence of str
        One problem, or several found at once (the message joins them with ``"; "``).
    """

    def __init__(self, problems: Sequence[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))

    def __reduce__(self) -> tuple[type, tuple[list[str]]]:
        return (type(self), (self.problems,))


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


class ExperimentNotFoundError(DaskFeaturesError, FileNotFoundError):
    """An experiment file named as input does not exist."""


class StepRangeError(DaskFeaturesError, IndexError):
    """A chunk read asked for steps outside the experiment."""


class WorkflowError(DaskFeaturesError, ValueError):
    """The workflow JSON is invalid or uses an unknown step type (the experiment stays readable)."""


class NotHDF5Error(ExperimentFormatError):
    """The file is not an HDF5 file at all."""


class TruncatedFileError(ExperimentFormatError):
    """The file is HDF5 but cut short (an interrupted copy or write)."""


class FormatVersionError(ExperimentFormatError):
    """The ``format_version`` root attribute is missing or not a supported one."""


class MissingGroupError(ExperimentFormatError, _MessageKeyError):
    """A group or dataset the layout requires is missing."""


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


class OutputBusyError(OutputError):
    """Another extraction is writing a different version of the same config into the same folder."""


class OutputNotFoundError(DaskFeaturesError, FileNotFoundError):
    """No output files exist for the config asked for."""


class SourceChangedError(DaskFeaturesError, RuntimeError):
    """An experiment file changed while it was being extracted; its results were not written."""


class DataFolderError(DaskFeaturesError, NotADirectoryError):
    """A path given as a data folder is not a folder."""


# --- catalog ------------------------------------------------------------------------------


class CatalogError(DaskFeaturesError, RuntimeError):
    """A catalog database cannot be used (not a catalog, or written by a newer schema)."""


class CatalogNotFoundError(DaskFeaturesError, FileNotFoundError):
    """A catalog opened read-only does not exist."""


class ReadOnlyCatalogError(DaskFeaturesError, PermissionError):
    """A write was attempted on a catalog opened with ``read_only=True``."""


class NotInCatalogError(DaskFeaturesError, _MessageKeyError):
    """An experiment is not in the catalog (scan its folder first)."""
