"""The generated feature catalogue and the command that prints it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from dask_features.extractors.catalogue import render_markdown
from dask_features.extractors.registry import REGISTRY, Output, Registry, register


def test_catalogue_lists_every_extractor_with_params_and_unit() -> None:
    text = render_markdown()
    for name, spec in REGISTRY.items():
        assert f"## `{name}`" in text
        for param in spec.defaults:
            assert f"| `{param}` |" in text, (name, param)
    assert "| `form` | `'linear'` | `'linear'`, `'saturation'` |" in text
    assert "Vth = Vg* - Id(Vg*) / gm(Vg*)" in text  # the definition, from the docstring
    assert "chunk : TransferChunk" not in text


def test_catalogue_of_a_custom_registry() -> None:
    reg = Registry()

    @register("demo.double", source="transfer", output=Output.scalar(), unit="A", registry=reg)
    def double(chunk: object, *, factor: float | None = 2.0) -> np.ndarray:
        """Twice the current [A].

        More text.
        """
        return np.zeros(0)

    text = render_markdown(reg)
    assert text.count("## `") == 1  # one section (the contents heading has no backtick)
    assert "- unit: A" in text
    assert "| `factor` | `2.0` | float \\| None |" in text
    assert text.endswith("More text.\n")


def test_cli_prints_the_catalogue() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dask_features", "extractors", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert out.startswith("# Feature catalogue")
    assert "## `transfer.subthreshold_swing`" in out
