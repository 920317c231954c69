"""Every command and snippet in README.md runs as written.

Fenced blocks are executed in order in a sandbox folder (``HOME`` points there too): ``bash`` lines
one by one (``dask-features ...`` in-process through ``main``, anything else, pipes included, with
bash), ``python`` blocks with ``exec``, ``yaml`` blocks through the loader they are meant for. The
files the CLI block names (``my_features.yaml``, ``my_extractors.py``) are the README's own config
and extractor blocks. Skipped, with the reason: ``make`` lines (they build a venv / run this very
suite) and blocks whose optional dependency is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import dask_features as dfe
from dask_features.cli import _plugins, main
from dask_features.extractors.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", README, re.M | re.S)]

#: Lines not run, and why.
SKIP_LINES = {"make": "builds a venv or runs this very test suite"}
#: Blocks needing a package the test environment may not have.
NEEDS = {"SLURMCluster": "dask_jobqueue"}
#: Names the knn_store snippet takes from the reader's own session.
KNN_PRELUDE = """
import numpy as np
rng = np.random.default_rng(0)
centers = rng.normal(scale=6.0, size=(4, 8))
labels = np.repeat(np.arange(4), 60)
features = (centers[labels] + rng.normal(size=(240, 8))).astype("float32")
labeled_mask = (np.arange(240) % 2 == 0) & (labels < 2)
client = None
"""


def _block(fragment: str, lang: str) -> str:
    return next(code for kind, code in BLOCKS if kind == lang and fragment in code)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working folder with the README's config and extractor files; registry and paths restored."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "my_features.yaml").write_text(_block("name: my_features", "yaml"))
    (tmp_path / "my_extractors.py").write_text(_block("@register(", "python"))
    registry, imported = dict(REGISTRY), list(_plugins.IMPORTED_FILES)
    yield tmp_path
    REGISTRY.clear()
    REGISTRY.update(registry)
    _plugins.IMPORTED_FILES[:] = imported
    sys.modules.pop("my_extractors", None)


def _commands() -> list[str]:
    return [
        line for kind, code in BLOCKS if kind in ("bash", "sh") for line in code.splitlines() if line.strip()
    ]


def test_the_readme_has_what_this_test_expects() -> None:
    kinds = {kind for kind, _ in BLOCKS}
    assert {"bash", "python", "yaml"} <= kinds
    assert any("dask-features extract" in c for c in _commands())


def test_shell_commands(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ran = 0
    for line in _commands():
        words = shlex.split(line, comments=True)
        if not words or words[0] in SKIP_LINES:
            continue
        if words[0] == "dask-features" and "|" not in line:
            assert main(words[1:]) == 0, (line, capsys.readouterr())
        else:
            done = subprocess.run(
                ["bash", "-c", line], capture_output=True, text=True, env=env, timeout=300, check=False
            )
            assert done.returncode == 0, (line, done.stderr)
            assert "Traceback" not in done.stderr, line
        ran += 1
    assert ran >= 8
    assert len(dfe.read_features("features", "v2_mixed")) == 40
    assert len(dfe.read_features("features", "my_features")) == 40


def _python_blocks() -> Iterator[object]:
    for kind, code in BLOCKS:
        if kind != "python":
            continue
        marks = [pytest.mark.slow] if "local_cluster()" in code else []  # starts its own LocalCluster
        yield pytest.param(code, marks=marks, id=code.strip().splitlines()[0][:40])


@pytest.mark.parametrize("code", list(_python_blocks()))
def test_python_snippet(code: str, sandbox: Path) -> None:
    for marker, module in NEEDS.items():
        if marker in code and importlib.util.find_spec(module) is None:
            # Cannot run here (e.g. SLURM): it must still be valid Python using names that exist.
            compile(code, "README.md", "exec")
            assert "dfe.extract(" in code or "knn_store." in code
            return
    prelude = ""
    if "data/raw" in code:
        dfe.synth.generate_dataset(
            "data/raw", n_experiments=2, n_steps=6, sweep_points=41, transient_samples=400
        )
    if "knn_store.grid_search" in code:
        prelude = KNN_PRELUDE
    namespace: dict[str, object] = {"__name__": "__readme__"}
    exec(compile(prelude + code, "README.md", "exec"), namespace)
    if "client" in namespace and hasattr(namespace["client"], "close"):
        namespace["client"].close()  # the snippet leaves it open for the reader


def test_yaml_blocks(sandbox: Path) -> None:
    for kind, code in BLOCKS:
        if kind != "yaml":
            continue
        if "features:" in code:
            path = sandbox / "c.yaml"
            path.write_text(code)
            assert dfe.load_config(path).features
        else:
            assert isinstance(yaml.safe_load(code), dict)
