"""Transient extractors other than tau: peak current, cycles, whole-step decay time."""

from __future__ import annotations

import numpy as np
import pytest

from dask_features.extractors import transient
from dask_features.extractors.registry import REGISTRY, Output
from dask_features.io.chunks import TransientChunk

DT = 1e-3  # s
PERIOD = 0.1  # s


def make_chunk(traces: list[np.ndarray], period: float = PERIOD, time_step: float = DT) -> TransientChunk:
    lengths = [len(t) for t in traces]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = len(traces)
    return TransientChunk(
        step_index=np.arange(n),
        time=np.arange(offsets[-1]) * time_step,
        current=np.concatenate(traces) if traces else np.zeros(0),
        offsets=offsets,
        period=np.full(n, period),
        time_step=np.full(n, time_step),
        duty=np.full(n, 0.5),
    )


def square_response(n_samples: int, tau: float = 0.01, lo: float = 1e-7, hi: float = 1e-6) -> np.ndarray:
    """Signed current (P-type: negative) of a device driven by a 50 % square wave starting "on".

    |I| rises towards ``hi`` during the first half of each period and relaxes to ``lo`` during the
    second, so each cycle's |I| peak is its last "on" sample: index ``49 + 100 k`` here.
    """
    per_period = round(PERIOD / DT)
    phase = np.arange(n_samples) % per_period * DT  # from sample counts: no float phase jitter
    on = np.arange(n_samples) % per_period < per_period // 2
    rise = lo + (hi - lo) * (1 - np.exp(-phase / tau))
    last_on = PERIOD / 2 - DT
    top = lo + (hi - lo) * (1 - np.exp(-last_on / tau))
    fall = lo + (top - lo) * np.exp(-(phase - last_on) / tau)
    return -np.where(on, rise, fall)


# --- peak_current ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("use_abs", "expected"), [(True, [3.0, np.nan, 2.0]), (False, [1.0, np.nan, 2.0])])
def test_peak_current(use_abs: bool, expected: list[float]) -> None:
    chunk = make_chunk([np.array([1.0, -3.0, np.nan]), np.array([]), np.array([2.0])])
    np.testing.assert_array_equal(transient.peak_current(chunk, use_abs=use_abs), expected)
    assert [s for s, _ in chunk.issues] == [1]


# --- cycles --------------------------------------------------------------------------------------------


def test_cycles_auto_uses_the_period() -> None:
    trace = square_response(500)  # 5 periods
    chunk = make_chunk([trace, trace[:300]])
    got = transient.cycles(chunk)
    assert got.shape == (2, 5)
    np.testing.assert_array_equal(got[0], trace[49::100])
    np.testing.assert_array_equal(got[1, :3], trace[49:300:100])
    assert np.isnan(got[1, 3:]).all()
    assert chunk.issues == []


def test_cycles_finds_a_peak_on_the_last_sample() -> None:
    trace = square_response(450)  # ends at the top of its 5th "on" phase
    got = transient.cycles(make_chunk([trace]))
    np.testing.assert_array_equal(got[0], trace[49::100])
    assert got.shape == (1, 5)


def test_cycles_drops_spikes_rather_than_weak_cycles() -> None:
    # Cycle amplitudes drift down; a small spike on the first rise is higher than the last cycle's
    # peak. Keeping the 5 largest |I| (oect-infra) would drop the last cycle for the spike; keeping
    # the 5 most prominent keeps every cycle.
    trace = square_response(500) * np.repeat([1.5, 1.4, 1.3, 1.2, 1.1], 100)
    trace[40] = trace[41] * (1 + 1e-3)
    assert abs(trace[40]) > abs(trace[449])
    got = transient.cycles(make_chunk([trace]), min_distance=1, prominence=1e-10)
    np.testing.assert_array_equal(got[0], trace[49::100])


def test_cycles_fixed_width_pads_with_nan() -> None:
    trace = square_response(500)
    got = transient.cycles(make_chunk([trace]), n_cycles=8)
    np.testing.assert_array_equal(got[0, :5], trace[49::100])
    assert np.isnan(got[0, 5:]).all()


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("fixed_interval", [0.0, 4.0, 9.0]),  # indices linspace(0, 9, 3) -> 0, 4, 9
        ("percentile", [7.0, 8.0, 9.0]),  # |I| >= 70th percentile (6.3) -> 7, 8, 9
    ],
)
def test_cycles_sampling_methods(method: str, expected: list[float]) -> None:
    chunk = make_chunk([np.arange(10.0)])
    np.testing.assert_array_equal(transient.cycles(chunk, n_cycles=3, method=method)[0], expected)


@pytest.mark.parametrize("method", ["fixed_interval", "percentile"])
def test_cycles_auto_without_period_is_reported(method: str) -> None:
    chunk = make_chunk([np.arange(10.0)], period=np.nan)
    got = transient.cycles(chunk, method=method)
    assert np.isnan(got).all()
    assert [s for s, _ in chunk.issues] == [0]


def test_cycles_auto_without_period_keeps_every_peak() -> None:
    trace = square_response(500)
    got = transient.cycles(make_chunk([trace], period=np.nan))
    np.testing.assert_array_equal(got[0], trace[49::100])


@pytest.mark.parametrize(("n_samples", "expected"), [(500, 5), (450, 5), (503, 5), (510, 6), (10, 1)])
def test_cycles_in_step(n_samples: int, expected: int) -> None:
    assert transient.cycles_in_step(n_samples, DT, PERIOD) == expected


def test_cycles_output_declaration() -> None:
    spec = REGISTRY["transient.cycles"]
    assert spec.output_for(spec.resolve_params({})) == Output.vector(None)
    assert spec.output_for(spec.resolve_params({"n_cycles": 100})) == Output.vector(100)


@pytest.mark.parametrize(
    "params",
    [
        {"n_cycles": 0},
        {"n_cycles": "many"},
        {"n_cycles": 2.5},
        {"method": "fourier"},
        {"min_distance": 0},
        {"prominence": -1.0},
    ],
)
def test_cycles_invalid_parameters(params: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"transient\.cycles"):
        REGISTRY["transient.cycles"].resolve_params(params)


# --- decay_time ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["exponential", "linear"])
def test_decay_time_recovers_a_pure_exponential(method: str) -> None:
    t = np.arange(500) * DT
    chunk = make_chunk([-2e-6 * np.exp(-t / 0.05), np.array([1.0, 2.0])])
    got = transient.decay_time(chunk, method=method)
    np.testing.assert_allclose(got[0], 0.05, rtol=1e-6)
    assert np.isnan(got[1])
    assert [s for s, _ in chunk.issues] == [1]


@pytest.mark.parametrize("fit_range", [(0.9, 0.1), (0.0, 1.5), (0.5,)])
def test_decay_time_invalid_fit_range(fit_range: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fit_range"):
        REGISTRY["transient.decay_time"].resolve_params({"fit_range": fit_range})
