"""The plateau-anchored fit of fast transitions (``tau._anchored``)."""

from __future__ import annotations

import numpy as np
import pytest

from dask_features.extractors.tau import tau_on_off
from dask_features.extractors.tau._anchored import anchored_fit, edge_delay
from dask_features.io.chunks import TransientChunk
from dask_features.synth.signals import noisy_square_wave


@pytest.mark.parametrize("delta", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("k", [0.3, 1.0, 2.5])
def test_noise_free_rows_are_recovered_exactly(delta: float, k: float) -> None:
    u = np.arange(12.0)
    plateau, c = 2.0, -1.0
    y = c + (plateau - c) * np.exp(-k * (u + delta))
    pre = np.full((1, 6), plateau)
    assert edge_delay(y, plateau) == pytest.approx((delta, k), abs=1e-9)
    kk, cc, aa, sigma, _ = anchored_fit(y[None, :], pre, np.array([delta]), np.array([k * 1.7]))
    np.testing.assert_allclose(kk, k, rtol=1e-6)
    np.testing.assert_allclose(cc, c, rtol=1e-6)
    np.testing.assert_allclose(aa, (plateau - c) * np.exp(-k * delta), rtol=1e-6)
    assert sigma[0] < 1e-6


def test_rows_without_a_start_or_a_decay_are_not_fitted() -> None:
    y = np.ones((2, 10))
    out = anchored_fit(y, np.ones((2, 4)), np.array([0.5, np.nan]), np.array([np.nan, 1.0]))
    assert all(np.isnan(v).all() for v in out)
    assert np.isnan(edge_delay(np.ones(10), 1.0)[0])


@pytest.mark.parametrize("baseline", ["flat", "drift"])
@pytest.mark.parametrize("first_edge", [4.5, 30.5])
def test_a_step_gives_the_same_taus_alone_and_after_another_step(first_edge: float, baseline: str) -> None:
    # Fast transitions (2-3 samples per tau) are refitted on the plateau before their edge. The first
    # window of a step lies less than the plateau's 64 samples after the step's start: its "plateau" was
    # taken from the end of the previous step of the chunk (here 5x higher), which moved the edge delay
    # of the whole step and every anchored tau by up to 4 %. A step's result must not depend on which
    # steps share its chunk.
    dt, period = 1e-3, 0.2
    t = np.arange(4000) * dt
    rng = np.random.default_rng(1)
    traces = [
        noisy_square_wave(
            t,
            period=period,
            tau_on=2e-3,
            tau_off=3e-3,
            i_low=lo,
            i_high=hi,
            snr_db=40.0,
            phase=phase,
            rng=rng,
        )[0]
        for lo, hi, phase in ((5e-3, 6e-3, 0.1), (1e-4, 1e-3, first_edge * dt))
    ]

    def chunk(traces: list[np.ndarray]) -> TransientChunk:
        n = len(traces)
        return TransientChunk(
            step_index=np.arange(n),
            time=np.concatenate([t + 10.0 * (i + 1 - n) for i in range(n)]),  # the last step at t
            current=np.concatenate(traces),
            offsets=np.arange(n + 1) * t.size,
            period=np.full(n, period),
            time_step=np.full(n, dt),
            duty=np.full(n, 0.5),
        )

    alone = tau_on_off(chunk(traces[1:]), baseline=baseline).fields
    res = tau_on_off(chunk(traces), baseline=baseline)
    second = {k: v[res.counts[0] :] for k, v in res.fields.items()}
    for key, values in alone.items():
        np.testing.assert_array_equal(second[key], values, err_msg=key)
