"""The cycles extractor's peak finder against ``scipy.signal.find_peaks`` (whose peaks it reproduces)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

import dask_features as dfe
from dask_features import synth
from dask_features.errors import InvalidArgumentError
from dask_features.extractors import _peaks, transient
from dask_features.synth.signals import noisy_square_wave
from tests.extractors.test_transient import make_chunk


def scipy_peaks(x: np.ndarray, distance: float, prominence: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference: SciPy's indices and prominences, as the extractor used them before."""
    idx, props = signal.find_peaks(x, distance=distance, prominence=prominence)
    return idx, props["prominences"]


def assert_same_peaks(x: np.ndarray, distance: float, prominence: float) -> None:
    """Same peaks and prominences as SciPy, with the prominences from the walks and from the linear pass."""
    ref_idx, ref_prom = scipy_peaks(x, distance, prominence)
    for budget in (40.0, 0.0):
        idx, prom = _peaks.find_peaks(x, distance, prominence, walk_budget=budget)
        assert idx.dtype == ref_idx.dtype
        assert prom.dtype == ref_prom.dtype
        np.testing.assert_array_equal(idx, ref_idx)
        assert prom.tobytes() == ref_prom.tobytes()  # bit for bit


distances = st.one_of(st.integers(1, 60), st.floats(1.0, 60.0))
prominences = st.one_of(st.just(0.0), st.floats(0.0, 4.0), st.integers(0, 3))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.integers(0, 4), max_size=200),  # few levels: many ties and plateaus
    distances,
    prominences,
)
def test_small_integer_signals_match_scipy(values: list[int], distance: float, prominence: float) -> None:
    assert_same_peaks(np.array(values, dtype=np.float64), distance, prominence)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([0.0, -0.0, 1.0, 1.5, -2.0, 1e300, -1e300, 5e-324]),
            st.floats(-1e3, 1e3, allow_nan=False),
        ),
        max_size=200,
    ),
    distances,
    prominences,
)
def test_float_signals_match_scipy(values: list[float], distance: float, prominence: float) -> None:
    assert_same_peaks(np.array(values, dtype=np.float64), distance, prominence)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, np.nan]), max_size=60), distances)
def test_nan_samples_are_treated_as_scipy_does(values: list[float], distance: float) -> None:
    # The extractor drops NaN before the search; outside it, the finder still agrees with SciPy.
    assert_same_peaks(np.array(values), distance, 0.0)


@pytest.mark.parametrize(
    "x",
    [[], [1], [1, 2], [2, 1], [0, 1, 0], [0, 1, 1], [1, 1, 0], [0, 2, 2, 2, 2, 0], [0, 2, 2, 2, 0]],
    ids=[
        "empty",
        "one",
        "rise",
        "fall",
        "spike",
        "plateau-at-end",
        "plateau-at-start",
        "flat-even",
        "flat-odd",
    ],
)
@pytest.mark.parametrize("distance", [1, 2, 7.5])
def test_short_and_flat_signals_match_scipy(x: list[float], distance: float) -> None:
    assert_same_peaks(np.array(x, dtype=np.float64), distance, 0.0)


def test_equal_peaks_within_the_distance_keep_scipys_choice() -> None:
    # Thousands of peaks of three heights: numpy's (unstable) argsort decides which survive, in both.
    x = np.random.default_rng(0).integers(0, 3, 20_000).astype(np.float64)
    for distance in (2, 3, 4, 7):
        assert_same_peaks(x, distance, 0.0)


def test_growing_peaks_match_scipy() -> None:
    # Every peak's walk to the left crosses all earlier ones (quadratic): the linear pass takes over.
    x = np.tile([0.0, 1.0], 2000) * np.repeat(np.arange(1.0, 2001.0), 2)
    for distance in (1, 5):
        assert_same_peaks(x, distance, 0.0)
        assert_same_peaks(x[::-1].copy(), distance, 0.0)


def _transient(seed: int, n: int, quantum: float, snr_db: float | None = None) -> np.ndarray:
    """|I| of a square-wave OECT transient with noise, rounded to an ammeter's resolution [A].

    ``snr_db``: the step's SNR [dB]; default a random one between 15 and 60.
    """
    rng = np.random.default_rng(seed)
    period = int(rng.integers(40, 400))
    tau = float(rng.uniform(0.02, 0.3)) * period
    y, _ = noisy_square_wave(
        np.arange(n, dtype=np.float64),
        period=float(period),
        tau_on=tau,
        tau_off=tau * float(rng.uniform(0.5, 2.0)),
        i_low=1e-7,
        i_high=1e-6,
        snr_db=float(rng.uniform(15, 60)) if snr_db is None else snr_db,
        phase=float(rng.uniform(0, period)),
        rng=rng,
    )
    return np.round(y / quantum) * quantum if quantum else y


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [2000, 20_000])
@pytest.mark.parametrize("quantum", [0.0, 1e-9], ids=["exact", "quantised"])
def test_transients_match_scipy(seed: int, n: int, quantum: float) -> None:
    x, preset_prominence = transient.peak_search_input(_transient(seed, n, quantum), None)  # as the extractor
    for distance in (1, 10, 37):
        for prominence in (0.0, preset_prominence, 3e-7):
            assert_same_peaks(x, distance, prominence)


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 6.0])
@pytest.mark.parametrize("quantum", [0.0, 1e-8], ids=["exact", "quantised"])
def test_strong_noise_matches_scipy(snr_db: float, quantum: float) -> None:
    # Noise as large as the swing: a local maximum every few samples, many of equal height when quantised.
    x, preset_prominence = transient.peak_search_input(_transient(3, 5000, quantum, snr_db), None)
    assert _peaks.local_maxima(x, np.empty(len(x) // 2 + 1, np.int64)) > len(x) // 5
    assert x[-1] < x[:-1].min()
    for distance in (1, 10, 37):
        for prominence in (0.0, preset_prominence):
            assert_same_peaks(x, distance, prominence)


def test_arguments_scipy_rejects_are_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="distance"):
        _peaks.find_peaks(np.arange(5.0), 0.5)
    with pytest.raises(ValueError, match="distance"):
        signal.find_peaks(np.arange(5.0), distance=0.5)
    with pytest.raises(InvalidArgumentError, match="1-D"):
        _peaks.find_peaks(np.zeros((2, 3)))


def test_other_input_types_are_converted() -> None:
    x = np.array([0, 3, 1, 4, 1, 5, 9, 2, 6], dtype=np.int32)
    read_only = x.astype(np.float64)
    read_only.flags.writeable = False
    for arg in (x, x.astype(">f8"), read_only, np.repeat(read_only, 2)[::2], x.tolist()):
        idx, prom = _peaks.find_peaks(arg, 2, 0.0)  # type: ignore[arg-type]
        ref_idx, ref_prom = scipy_peaks(np.asarray(x, np.float64), 2, 0.0)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(prom, ref_prom)


# --- the extractor with this finder and with SciPy's (as before) ------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"min_distance": 1},
        {"min_distance": 37, "n_cycles": 3},
        {"prominence": 0},
        {"prominence": 2e-7, "n_cycles": 50},
    ],
    ids=["preset", "distance-1", "distance-37", "prominence-0", "prominence-abs"],
)
def test_cycles_are_unchanged(monkeypatch: pytest.MonkeyPatch, params: dict[str, Any]) -> None:
    rng = np.random.default_rng(7)
    quanta = (0.0, 1e-9, 2e-8)  # ammeter resolutions: coarse ones make equal peaks
    traces = [-_transient(seed, int(rng.integers(2, 6000)), quanta[seed % 3]) for seed in range(12)]
    traces[3][rng.integers(0, len(traces[3]), 50)] = np.nan  # dropped by the extractor first
    traces += [np.array([5e-7]), np.array([1e-7, 2e-7]), np.full(300, 4e-7), np.array([np.nan])]
    ours = transient.cycles(make_chunk(traces, 100.0, 1.0), **params)
    monkeypatch.setattr(_peaks, "find_peaks", scipy_peaks)  # the extractor as it was, on SciPy
    theirs = transient.cycles(make_chunk(traces, 100.0, 1.0), **params)
    assert ours.shape == theirs.shape
    assert ours.tobytes() == theirs.tobytes()


def _tables(folder: Path) -> dict[str, Any]:
    return {str(f.relative_to(folder)): pq.read_table(f) for f in sorted(folder.rglob("*.parquet"))}


def test_preset_outputs_are_unchanged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = synth.write_experiment(
        tmp_path, n_transfer=0, n_transient=6, transient_samples=5000, defects={"nan_samples": 0.5}, seed=11
    )
    dfe.extract(path, "v2_transient_cycles", tmp_path / "ours", progress=False, scheduler="sync")
    monkeypatch.setattr(_peaks, "find_peaks", scipy_peaks)
    dfe.extract(path, "v2_transient_cycles", tmp_path / "scipy", progress=False, scheduler="sync")
    ours, theirs = _tables(tmp_path / "ours"), _tables(tmp_path / "scipy")
    assert ours
    assert ours.keys() == theirs.keys()
    for name, table in ours.items():
        assert table.equals(theirs[name]), name
