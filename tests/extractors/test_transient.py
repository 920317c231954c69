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


def decays(taus: list[float], amplitude: float = -1.0, noise: float = 0.0, seed: int = 0) -> TransientChunk:
    """Steps ``amplitude exp(-t / tau)`` of unequal lengths, each starting at its own time offset."""
    rng = np.random.default_rng(seed)
    traces, times = [], []
    for k, tau in enumerate(taus):
        t = np.arange(1500 + 37 * k) * DT
        traces.append(amplitude * np.exp(-t / tau) * (1 + noise * rng.standard_normal(len(t))))
        times.append(t + 3.0 * k)
    chunk = make_chunk(traces)
    chunk.time = np.concatenate(times)
    return chunk


def least_squares_tau(
    chunk: TransientChunk, row: int, tau: float, fit_range: tuple[float, float] = (0.1, 0.9)
) -> float:
    """The least-squares optimum of the step, by scipy with tight tolerances, started at ``tau``."""
    from scipy import optimize

    time, current = chunk.step(row)
    m = len(time)
    t, y = (
        time[int(fit_range[0] * m) : int(fit_range[1] * m)],
        np.abs(current[int(fit_range[0] * m) : int(fit_range[1] * m)]),
    )
    keep = np.isfinite(y) & (y > 0)
    t, y = t[keep] - t[keep][0], y[keep] / y[keep][0]
    fit = optimize.least_squares(
        lambda p: p[0] * np.exp(-t * p[1]) - y,
        [1.0, 1 / tau],
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
        x_scale="jac",
    )
    return float(1 / fit.x[1])


TAUS = [0.05, 0.2, 1.0, 5.0, 50.0]  # s; the window is ~1.2 s


@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_decay_time_matches_oect_infra(
    noise: float, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # importing infra creates ./logs
    infra = pytest.importorskip("infra.features_v2.extractors.transient")
    chunk = decays(TAUS, noise=noise, seed=1)
    chunk.current[5] = np.nan  # in the window of step 0: dropped by both
    steps = [
        dict(zip(("continuous_time", "drain_current"), chunk.step(i), strict=True)) for i in range(len(TAUS))
    ]
    theirs = infra.TransientDecayTimeExtractor.__new__(infra.TransientDecayTimeExtractor).extract(
        {"transient": steps}, {"fit_range": [0.1, 0.9], "method": "exponential"}
    )
    ours = transient.decay_time(chunk)
    # oect-infra returns float32 (relative rounding 6e-8).
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    if noise == 0:
        np.testing.assert_allclose(ours, TAUS, rtol=1e-7)
    assert chunk.issues == []


@pytest.mark.parametrize(
    ("taus", "amplitude", "noise"),
    [
        ([0.003, 0.02], 1e-6, 0.0),  # fast decays of ~1 µA: oect-infra stops at its initial guess here
        ([2e3, 1e5], -1e-6, 0.0),  # far slower than the window
        ([0.01, 0.3, 3.0], 1e-6, 0.1),  # 10 % noise
    ],
)
def test_decay_time_is_the_least_squares_optimum(taus: list[float], amplitude: float, noise: float) -> None:
    chunk = decays(taus, amplitude, noise, seed=2)
    got = transient.decay_time(chunk)
    expected = [least_squares_tau(chunk, i, tau) for i, tau in enumerate(taus)]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    if noise == 0:
        np.testing.assert_allclose(got, taus, rtol=1e-6)


def test_decay_time_of_a_decaying_square_wave() -> None:
    # Cycles on a slowly decaying envelope (oect-infra's use: one exponential over a whole step).
    trace = square_response(2000) * np.exp(-np.arange(2000) * DT / 0.8)
    chunk = make_chunk([trace, trace[:1200]])
    got = transient.decay_time(chunk, fit_range=(0.05, 0.95))
    expected = [least_squares_tau(chunk, i, 0.5, (0.05, 0.95)) for i in range(2)]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_decay_time_without_decay_is_infinite() -> None:
    t = np.arange(800) * DT
    chunk = make_chunk([1e-6 * (1 + t), np.full(800, 2e-6), -1e-6 * np.exp(-t / 0.1), np.array([1.0, 2.0])])
    got = transient.decay_time(chunk)
    assert got[0] == got[1] == np.inf  # rising or constant: the bounded fit tends to tau -> inf
    np.testing.assert_allclose(got[2], 0.1, rtol=1e-7)
    assert np.isnan(got[3])
    assert [s for s, _ in chunk.issues] == [3]


def test_decay_time_linear_matches_polyfit() -> None:
    chunk = decays(TAUS, noise=0.05, seed=3)
    got = transient.decay_time(chunk, method="linear")
    for i, value in enumerate(got):
        time, current = chunk.step(i)
        m = len(time)
        t, y = time[int(0.1 * m) : int(0.9 * m)], np.abs(current[int(0.1 * m) : int(0.9 * m)])
        np.testing.assert_allclose(value, -1 / np.polyfit(t - t[0], np.log(y), 1)[0], rtol=1e-9)


FASTER_THAN_THE_SAMPLING = {
    # A drop within one sample to a low plateau: the fitted tau is set by the plateau's level, not by the
    # decay (1e-6: 0.072 sample intervals, 1e-3: 0.145), and least squares cannot tell it from an exact
    # exponential that falls as fast (1e-3 per sample gives the same 0.145).
    "drop to 1e-9": np.r_[1.0, np.full(99, 1e-9)],
    "drop to 1e-6": np.r_[1.0, np.full(99, 1e-6)],
    "drop to 1e-3": np.r_[1.0, np.full(99, 1e-3)],
    "1e-3 per sample": 1e-3 ** np.arange(100.0),
    "tau 0.4 sample": np.exp(-np.arange(100) / 0.4),
    "underflow": np.maximum(np.exp(-np.arange(100) * DT / 1e-6), 1e-300),  # every term of the fit underflows
}


@pytest.mark.parametrize("name", FASTER_THAN_THE_SAMPLING)
def test_decay_time_faster_than_the_sampling_is_reported(name: str) -> None:
    chunk = make_chunk([np.exp(-np.arange(100) / 20.0), FASTER_THAN_THE_SAMPLING[name]])
    got = transient.decay_time(chunk, fit_range=(0.0, 1.0))
    np.testing.assert_allclose(got[0], 20 * DT, rtol=1e-7)
    assert np.isnan(got[1])
    assert [(s, "within one sample" in m) for s, m in chunk.issues] == [(1, True)]


@pytest.mark.parametrize("tau_samples", [0.6, 1.0, 2.0])
def test_decay_time_of_a_decay_the_sampling_resolves(tau_samples: float) -> None:
    chunk = make_chunk([np.exp(-np.arange(100) / tau_samples)])
    np.testing.assert_allclose(transient.decay_time(chunk, fit_range=(0.0, 1.0)), tau_samples * DT, rtol=1e-7)
    assert chunk.issues == []


def test_decay_time_too_few_samples_are_reported() -> None:
    chunk = make_chunk([np.array([1.0, 2.0]), np.zeros(50), np.array([]), np.exp(-np.arange(50) * DT / 0.01)])
    got = transient.decay_time(chunk)
    assert np.isnan(got[:3]).all()
    np.testing.assert_allclose(got[3], 0.01, rtol=1e-7)
    assert sorted(s for s, _ in chunk.issues) == [0, 1, 2]


@pytest.mark.parametrize("fit_range", [(0.9, 0.1), (0.0, 1.5), (0.5,)])
def test_decay_time_invalid_fit_range(fit_range: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fit_range"):
        REGISTRY["transient.decay_time"].resolve_params({"fit_range": fit_range})
