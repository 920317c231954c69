"""Every notebook under ``notebooks/`` runs top to bottom on a real Jupyter kernel of this environment.

Each notebook is executed with nbclient in a temporary working directory (the notebooks write their data
to a temporary folder and delete it in their last cell), must produce no error output and at least the
given number of figures (``image/png`` outputs). They start their own ``LocalCluster``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

#: Minimum number of image/png outputs per notebook (one per figure cell).
MIN_FIGURES = {
    "01_feature_extraction.ipynb": 4,
    "02_custom_features.ipynb": 1,
    "03_knn_grid_search.ipynb": 2,
}


def _outputs(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]


def test_every_notebook_is_covered() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(MIN_FIGURES)


@pytest.mark.parametrize("name", sorted(MIN_FIGURES))
def test_notebook_is_stored_clean(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert not _outputs(nb), "store notebooks without outputs"
    assert all(c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


@pytest.mark.cluster
# jupyter_client/zmq/tornado may warn while the kernel starts and stops (event-loop and datetime
# deprecations outside this project); they are not the notebooks' problem.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize("name", sorted(MIN_FIGURES))
def test_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    monkeypatch.chdir(tmp_path)
    # A backend chosen for the test process (e.g. MPLBACKEND=Agg) must not reach the kernel: the
    # notebooks use the inline backend, which is what turns figures into image/png outputs.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    before = set(os.listdir(NOTEBOOKS))
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0

    outputs = _outputs(nb)
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, "\n".join(f"{o.ename}: {o.evalue}" for o in errors)
    stderr = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "Traceback" not in stderr, stderr
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert figures >= MIN_FIGURES[name], f"{name}: {figures} figures, expected at least {MIN_FIGURES[name]}"
    assert set(os.listdir(NOTEBOOKS)) == before, "the notebook left files in notebooks/"
    assert not list(tmp_path.iterdir()), (
        f"the notebook left files in its working directory: {list(tmp_path.iterdir())}"
    )
    print(f"{name}: {seconds:.1f} s, {figures} figures")
