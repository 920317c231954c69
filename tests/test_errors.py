"""Every error raised on purpose is a DaskFeaturesError that also is the matching built-in (issue case 8)."""

from __future__ import annotations

import ast
import builtins
import importlib
import warnings
from pathlib import Path

import pytest

import dask_features as dfe
from dask_features import errors
from dask_features.extractors import get_extractor
from dask_features.io.workflow import parse_workflow

PACKAGE = Path(dfe.__file__).parent
# Modules whose ValueErrors are a protocol, not a report to the user: an extractor's ``check`` and its
# per-step code raise plain ValueError, which the registry turns into InvalidParameterError and the
# engine into a per-step error record; a derived expression's runtime errors become error records too.
# The package's lazy-import ``__getattr__`` must raise AttributeError (PEP 562; hasattr relies on it).
# The command line turns its own input errors into an ``error:`` line and an exit code (SystemExit).
PROTOCOL = {"extractors", "config/expressions.py", "config/_grammar.py", "cli", "__main__.py", "__init__.py"}


def _raised_builtins() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if any(rel == p or rel.startswith(p + "/") for p in PROTOCOL):
            continue
        module = importlib.import_module("dask_features." + rel.removesuffix(".py").replace("/", "."))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                cls = getattr(module, target.id, getattr(builtins, target.id, None))
                if isinstance(cls, type) and not issubclass(cls, errors.DaskFeaturesError):
                    found.append(f"{rel}:{node.lineno} raises {target.id}")
    return found


def test_no_module_raises_outside_the_error_root() -> None:
    assert _raised_builtins() == []


def test_every_error_class_also_subclasses_a_builtin() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, Warning):
            assert issubclass(cls, errors.DaskFeaturesWarning)
        elif cls is not errors.DaskFeaturesError:
            assert issubclass(cls, errors.DaskFeaturesError)
            assert any(b.__module__ == "builtins" and b is not Exception for b in cls.__mro__[1:]), name


@pytest.mark.parametrize(
    ("call", "builtin", "cls"),
    [
        (lambda: get_extractor("transfer.gm_mx"), KeyError, errors.UnknownExtractorError),
        (lambda: parse_workflow("{not json"), ValueError, errors.WorkflowError),
        (lambda: dfe.load_config("v2_mixed")["nope"], KeyError, errors.UnknownFeatureError),
        (lambda: dfe.open_experiment("/no/such/file.h5"), FileNotFoundError, errors.ExperimentNotFoundError),
        (
            lambda: dfe.Catalog("/no/such/catalog.db", read_only=True),
            FileNotFoundError,
            errors.CatalogNotFoundError,
        ),
        (lambda: dfe.extract(42, "v2_mixed", "/tmp/x"), TypeError, errors.InputTypeError),
    ],
)
def test_errors_are_both(call, builtin: type, cls: type) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(builtin) as info:
        call()
    assert isinstance(info.value, cls)
    assert isinstance(info.value, errors.DaskFeaturesError)


def test_catalog_errors(tmp_path: Path) -> None:
    with dfe.Catalog(tmp_path / "c.db") as cat:
        with pytest.raises(errors.NotInCatalogError) as info:
            cat.record_extraction(tmp_path / "x.h5", "c", "h", None, "success")
        assert isinstance(info.value, KeyError)
        assert "not in catalog" in str(info.value)  # no KeyError repr quotes
    with dfe.Catalog(tmp_path / "c.db", read_only=True) as cat, pytest.raises(PermissionError) as denied:
        cat.scan(tmp_path)
    assert isinstance(denied.value, errors.ReadOnlyCatalogError)


def test_warnings_share_one_root(tmp_path: Path) -> None:
    assert issubclass(dfe.io.StepBoundaryWarning, dfe.DaskFeaturesWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dfe.synth.write_experiment(
            tmp_path / "old.h5", n_transfer=2, n_transient=2, seed=1, index_columns=False
        )
        dfe.open_experiment(tmp_path / "old.h5")
    assert caught
    assert all(issubclass(w.category, dfe.DaskFeaturesWarning) for w in caught)
