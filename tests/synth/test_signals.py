"""Noise and true windows of the synthetic square-wave response (the tau tests' ground truth)."""

from __future__ import annotations

import numpy as np
import pytest

from dask_features.synth.signals import noisy_square_wave, square_wave_response, true_windows


@pytest.mark.parametrize("noise", ["constant", "proportional"])
def test_noise_sd_at_the_high_level_gives_the_step_snr(noise: str) -> None:
    t = np.arange(200_000) * 1e-4
    wave = {"period": 0.02, "tau_on": 1e-4, "tau_off": 1e-4, "i_low": 1e-4, "i_high": 1e-3}
    y, clean = noisy_square_wave(t, **wave, snr_db=30, noise=noise, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(clean, square_wave_response(t, **wave))
    high, low = clean > 0.999e-3, clean < 1.001e-4
    sd_high = 0.9e-3 * 10 ** (-30 / 20)
    assert np.std(y[high] - clean[high]) == pytest.approx(sd_high, rel=0.02)
    ratio = 0.1 if noise == "proportional" else 1.0
    assert np.std(y[low] - clean[low]) == pytest.approx(ratio * sd_high, rel=0.02)
    with pytest.raises(ValueError, match="noise"):
        noisy_square_wave(t, **wave, snr_db=30, noise="pink")


def test_true_windows_run_from_each_edge_to_the_next() -> None:
    # Period 10 samples, duty 0.3, first rising edge at 2.5 samples: rises at 2.5, 12.5, 22.5, falls at
    # 5.5, 15.5, 25.5 (the last beyond the 25 samples).
    wins = true_windows(25, 1.0, period=10.0, duty=0.3, phase=2.5)
    assert wins == [("on", 3, 6), ("off", 6, 13), ("on", 13, 16), ("off", 16, 23)]
