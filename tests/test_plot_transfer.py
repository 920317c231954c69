"""Transfer-analysis and drift figures on a real generated file and a real extraction."""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np
import pytest

import dask_features as dfe

pytestmark = pytest.mark.usefixtures("agg_figures")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A P-type run whose step 2 is pure noise, extracted with transfer_robust."""
    root = tmp_path_factory.mktemp("plot_transfer")
    path = dfe.synth.write_experiment(
        root / "raw", n_transfer=6, n_transient=0, sweep_points=201, device_type="P", seed=2
    )
    with h5py.File(path, "r+") as f:
        data = f["transfer/measurement_data"]
        row = data[2]
        row[1] = -1e-9 * (1 + 0.1 * np.random.default_rng(1).standard_normal(row.shape[1]))
        data[2] = row
    result = dfe.extract(path, "transfer_robust", root / "out", scheduler="sync", progress=False)
    assert not result.failed
    return {
        "experiment": dfe.open_experiment(path),
        "steps": dfe.read_features(root / "out", "transfer_robust"),
        "errors": dfe.read_features(root / "out", "transfer_robust", table="errors"),
    }


def _legend(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_transfer_analysis_draws_every_marker(run: dict[str, Any]) -> None:
    from dask_features import plot

    ax_lin, ax_log = plot.plot_transfer_analysis(run["experiment"], 0)
    lin, log = _legend(ax_lin), _legend(ax_log)
    for half in ("forward", "reverse"):
        assert any(t.startswith(f"gm_max {half} = ") for t in lin)
        assert any(t.startswith(f"Vth {half} (ELR) = ") for t in lin)
        assert any(t.startswith(f"SS {half} = ") and t.endswith("mV/dec") for t in log)
        assert any(t.startswith(f"Von {half} = ") for t in log)
    assert ax_log.get_yscale() == "log"
    assert len(ax_lin.right_ax.get_lines()) == 4  # two gm curves, two gm maxima
    vth = run["steps"].loc[0, "Vth_forward"]
    assert any(f"{vth:.3g} V" in t for t in lin)  # the figure shows what was extracted


def test_transfer_analysis_uses_the_limits_it_is_given(run: dict[str, Any]) -> None:
    """A limit so tight that every gm peak is uncertain flags them in the figure, as in a table
    extracted with it: the figure takes the extractors' parameters and passes them on."""
    from dask_features import plot

    ax_lin, _ = plot.plot_transfer_analysis(run["experiment"], 0, max_rel_se=1e-9)
    assert "gm_max / Vth forward: flagged" in _legend(ax_lin)
    ax_lin, _ = plot.plot_transfer_analysis(run["experiment"], 0, max_rel_se=0.5)
    assert any(t.startswith("gm_max forward = ") for t in _legend(ax_lin))


def test_transfer_analysis_says_flagged(run: dict[str, Any]) -> None:
    from dask_features import plot

    ax_lin, ax_log = plot.plot_transfer_analysis(run["experiment"], 2)
    assert "gm_max / Vth forward: flagged" in _legend(ax_lin)
    assert "SS forward: flagged" in _legend(ax_log)
    with pytest.raises(IndexError):
        plot.plot_transfer_analysis(run["experiment"], 6)


def test_drift_marks_flagged_steps(run: dict[str, Any]) -> None:
    from dask_features import plot

    ax = plot.plot_drift(
        run["steps"], ["Vth_forward", "Vth_reverse"], errors=run["errors"], units={"Vth_forward": "V"}
    )
    labels = _legend(ax)
    assert {"Vth_forward", "Vth_reverse"} <= set(labels)
    assert "Vth_forward: flagged (1)" in labels
    flagged = next(line for line in ax.get_lines() if line.get_label() == "Vth_forward: flagged (1)")
    assert list(flagged.get_xdata()) == [2]
    with pytest.raises(KeyError):
        plot.plot_drift(run["steps"], "nope")
