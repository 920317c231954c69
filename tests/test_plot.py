"""dask_features.plot on real data: synthetic HDF5 files and a real extraction (scheduler="sync")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import dask_features as dfe

matplotlib = pytest.importorskip("matplotlib")


pytestmark = pytest.mark.usefixtures("agg_figures")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two experiments (one N-, one P-type), transfer features and tau cycles extracted for real."""
    root = tmp_path_factory.mktemp("plot")
    paths = dfe.synth.generate_dataset(
        root / "raw", n_experiments=2, n_steps=6, seed=3, sweep_points=101, transient_samples=1000
    )
    for config in ("v2_transfer_basic", "transient_tau"):
        result = dfe.extract(root / "raw", config, root / "out", scheduler="sync", progress=False)
        assert result.ok, result.summary()
    return {
        "experiments": [dfe.open_experiment(p) for p in paths],
        "steps": dfe.read_features(root / "out", "v2_transfer_basic"),
        "cycles": dfe.read_features(root / "out", "transient_tau", table="cycles"),
    }


def _legend(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, dask_features, knn_store; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_si_scale() -> None:
    from dask_features.plot import si_scale

    assert si_scale([2e-3, 1e-4], "S") == (1e3, "mS")
    assert si_scale([7e-4], "A") == (1e6, "µA")
    assert si_scale([0.3], "V") == (1.0, "V")
    assert si_scale([np.nan], "A") == (1.0, "A")
    assert si_scale([5.0], None) == (1.0, "")


def test_plot_transfer_marks_both_directions(extracted: dict[str, Any]) -> None:
    from dask_features.plot import plot_transfer

    exp = extracted["experiments"][0]
    ax = plot_transfer(exp, 2)
    labels = [line.get_label() for line in ax.get_lines()]
    assert {"forward", "reverse"} <= set(labels)
    legend = _legend(ax)
    for text in ("gm_max fwd", "gm_max rev", "Von fwd", "Von rev"):
        assert any(t.startswith(text) for t in legend), (text, legend)
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "gate voltage Vg [V]"
    assert ax.get_ylabel().startswith("|Id| [")
    assert "A]" in ax.get_ylabel()
    assert "transfer step 2" in ax.get_title()
    # The forward line spans the whole sweep range, reverse comes back.
    fwd = next(line for line in ax.get_lines() if line.get_label() == "forward")
    assert np.ptp(fwd.get_xdata()) > 1.0


def test_plot_transfer_recomputes_what_was_extracted(extracted: dict[str, Any]) -> None:
    """On an N-type device the recomputed markers are the stored gm_max and Von (preset uses N)."""
    from dask_features.plot import plot_transfer

    exp = next(e for e in extracted["experiments"] if e.device_type == "N")
    steps = extracted["steps"]
    row = steps[(steps.source_file == exp.path) & (steps.step_index == 4)].iloc[0]
    ax = plot_transfer(exp, 4)
    von = next(line for line in ax.get_lines() if line.get_label().startswith("Von fwd"))
    assert von.get_xdata()[0] == pytest.approx(row["Von_forward"])
    legend = " ".join(_legend(ax))
    assert f"{row['gm_max_forward'] * 1e3:.3g} mS" in legend


def test_plot_transfer_uses_feature_row(extracted: dict[str, Any]) -> None:
    from dask_features.plot import plot_transfer

    exp = extracted["experiments"][1]
    row = {"Von_forward": 0.123, "gm_max_reverse": 4.56e-3}
    _fig, ax = matplotlib.pyplot.subplots()
    out = plot_transfer(exp, 0, row, yscale="linear", ax=ax)
    assert out is ax
    assert ax.get_yscale() == "linear"
    legend = _legend(ax)
    assert "Von fwd = 0.123 V" in legend
    assert any(t.startswith("gm_max rev = 4.56 mS") for t in legend)
    with pytest.raises(IndexError):
        plot_transfer(exp, exp.n_transfer_steps)


def test_plot_feature_evolution(extracted: dict[str, Any]) -> None:
    from dask_features.plot import plot_feature_evolution

    steps = extracted["steps"]
    ax = plot_feature_evolution(steps, "gm_max_forward", unit="S")
    lines = ax.get_lines()
    assert sorted(line.get_label() for line in lines) == sorted(steps.test_id.unique())
    assert ax.get_ylabel() == "gm_max_forward [mS]"
    assert ax.get_xlabel() == "step"
    first = steps[steps.test_id == lines[0].get_label()].sort_values("step_index")
    np.testing.assert_allclose(lines[0].get_ydata(), first.gm_max_forward * 1e3)

    rel = plot_feature_evolution(steps, "absI_max", relative=True)
    for line in rel.get_lines():
        assert line.get_ydata()[0] == pytest.approx(100.0)
    assert "%" in rel.get_ylabel()

    pooled = plot_feature_evolution(steps, "Von_forward", by=None, unit="V")
    assert len(pooled.get_lines()) == 1
    assert pooled.get_ylabel() == "Von_forward [V]"
    with pytest.raises(KeyError, match="nope"):
        plot_feature_evolution(steps, "nope")


def test_plot_tau_fits_follow_the_data(extracted: dict[str, Any]) -> None:
    from dask_features.plot import plot_tau_fits

    cycles = extracted["cycles"]
    for exp in extracted["experiments"]:  # both polarities: the fits are in |I|
        ax = plot_tau_fits(exp, 1, cycles, n_cycles=2)
        lines = ax.get_lines()
        data = lines[0]
        assert data.get_label() == "data |I|"
        fits = lines[1:]
        assert len(fits) == 4  # 2 cycles x (on, off) on clean data
        assert {"fit tau_on", "fit tau_off"} <= {line.get_label() for line in fits}
        assert ax.get_xlabel() == "time since step start [s]"
        assert ax.get_ylabel().startswith("|I| [")
        t, y = np.asarray(data.get_xdata()), np.asarray(data.get_ydata())
        assert np.all(y > 0)  # |I|, whatever the polarity
        for fit in fits:
            tf, yf = np.asarray(fit.get_xdata()), np.asarray(fit.get_ydata())
            inside = (t >= tf[0]) & (t <= tf[-1])
            model = np.interp(t[inside], tf, yf)
            # Fitted exponentials sit on the measured trace: residual within a few % of the swing.
            assert np.sqrt(np.mean((y[inside] - model) ** 2)) < 0.05 * np.ptp(y)


def test_plot_tau_fits_errors(extracted: dict[str, Any]) -> None:
    from dask_features.plot import plot_tau_fits

    exp = extracted["experiments"][0]
    with pytest.raises(ValueError, match="no cycles"):
        plot_tau_fits(exp, 0, extracted["cycles"], first_cycle=1000)
    with pytest.raises(IndexError):
        plot_tau_fits(exp, 99, extracted["cycles"])


def test_plot_tau_distribution(extracted: dict[str, Any]) -> None:
    from matplotlib.collections import PolyCollection

    from dask_features.plot import plot_tau_distribution

    cycles = extracted["cycles"]
    one = cycles[cycles.source_file == extracted["experiments"][0].path]
    ax = plot_tau_distribution(one)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"tau_on", "tau_off"}
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2
    assert ax.get_ylabel() == "tau [ms]"
    medians = one.groupby("step_index")["tau_on"].median() * 1e3
    np.testing.assert_allclose(lines["tau_on"].get_ydata(), medians.to_numpy())
    np.testing.assert_array_equal(lines["tau_on"].get_xdata(), medians.index.to_numpy())

    by = plot_tau_distribution(cycles, by="test_id")
    assert len(by.get_lines()) == 2 * cycles.test_id.nunique()
    assert by.get_legend().get_title().get_text() == "test_id"


def test_plot_tau_distribution_missing_column() -> None:
    from dask_features.plot import plot_tau_distribution

    with pytest.raises(KeyError, match="tau_off"):
        plot_tau_distribution(pd.DataFrame({"step_index": [0], "tau_on": [1e-3]}))


def test_figures_render(extracted: dict[str, Any], tmp_path: Path) -> None:
    """Every figure draws without error into a PNG file (catches problems only seen at draw time)."""
    import matplotlib.pyplot as plt

    from dask_features import plot

    exp = extracted["experiments"][1]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
    plot.plot_transfer(exp, 0, ax=axes[0, 0])
    plot.plot_feature_evolution(extracted["steps"], "gm_max_forward", unit="S", ax=axes[0, 1])
    plot.plot_tau_fits(exp, 0, extracted["cycles"], ax=axes[1, 0])
    plot.plot_tau_distribution(extracted["cycles"], ax=axes[1, 1])
    fig.savefig(tmp_path / "all.png")
    assert (tmp_path / "all.png").stat().st_size > 10_000


def _flag_first_off(cycles: pd.DataFrame, test_id: str, step: int, code: int) -> pd.DataFrame:
    """A copy of the cycles table with the first complete off half-cycle of one step flagged ``code``."""
    flagged = cycles.copy()
    rows = flagged.index[
        (flagged["test_id"] == test_id) & (flagged["step_index"] == step) & (flagged["cycle"] == 0)
    ]
    flagged.loc[rows, ["status_off", "tau_off"]] = [code, np.nan]
    return flagged


def test_plot_tau_fits_grey_flagged_half_cycles_with_their_reason(extracted: dict[str, Any]) -> None:
    from dask_features.extractors.tau import TauStatus
    from dask_features.plot import plot_tau_fits

    exp = extracted["experiments"][0]
    cycles = _flag_first_off(extracted["cycles"], exp.test_id, 1, int(TauStatus.AMPLITUDE))
    ax = plot_tau_fits(exp, 1, cycles, n_cycles=2)
    # 2 cycles x (on, off) minus the flagged one are drawn as fits; the flagged one is a grey span.
    assert len(ax.get_lines()) == 1 + 3
    assert "flagged half-cycle" in _legend(ax)
    assert any("tau_off: AMPLITUDE" in t.get_text() for t in ax.texts)


def test_plot_tau_cycles_marks_flagged_half_cycles(extracted: dict[str, Any]) -> None:
    from dask_features.extractors.tau import TauStatus
    from dask_features.plot import plot_tau_cycles

    exp = extracted["experiments"][1]
    cycles = _flag_first_off(extracted["cycles"], exp.test_id, 2, int(TauStatus.MISFIT))
    ax = plot_tau_cycles(cycles, 2, test_id=exp.test_id)
    one = cycles[(cycles["test_id"] == exp.test_id) & (cycles["step_index"] == 2)].sort_values("cycle")
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["tau_on"].get_ydata(), one["tau_on"] * 1e3)
    off_flags = [label for label in lines if label.startswith("tau_off flagged")]
    assert len(off_flags) == 1
    assert "MISFIT 1" in off_flags[0]
    # The flagged cycle is marked at its cycle number.
    assert 0 in np.asarray(lines[off_flags[0]].get_xdata()).tolist()
    with pytest.raises(ValueError, match="test_id"):
        plot_tau_cycles(cycles, 2)
    with pytest.raises(ValueError, match="no cycles"):
        plot_tau_cycles(cycles, 99, test_id=exp.test_id)
