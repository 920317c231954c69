"""Accuracy and speed of ``transient.tau_on_off`` on synthetic traces with known tau, and on real data.

Run ``.venv/bin/python benchmarks/bench_tau.py [--quick] [--no-autotau]``. Every figure of one report comes
from one process run; all timings are CPU time of one thread (BLAS limited to 1 thread), so
"cycles/s" is per core, and each timing is the best of several repeats, ours and curve_fit's
interleaved. The machine is shared and noisy: compare ratios, not absolute times.

SNR
---
Two definitions are reported side by side, because the issue does not fix one:

* ``power`` (the conventional one, used for the targets): ``10 log10(P_signal / P_noise)`` with
  ``P_signal`` the variance of the noise-free trace (a square-wave response of swing A has variance
  ~A^2/4) and ``P_noise`` the noise variance. 20 dB means noise sd = A/20.
* ``step`` (stricter by 6 dB, the one the previous report used): ``20 log10(A / noise sd)``.
  20 dB means noise sd = A/10.

Sections
--------
1. Accuracy grid: tau 1-50 ms x period 0.2-2 s x sample rate 1-10 kHz x SNR 40/20 dB (both
   definitions). Per case: median |relative error| per cycle (tau_on and tau_off pooled), the relative
   error of the step's median tau, the fraction of clean cycles fitted (status 0), and the Cramér-Rao
   bound for the same window expressed as the median |error| an efficient unbiased estimator would
   have (0.674 sd): no method can do better per cycle.
2. Speed and accuracy against a per-half-cycle ``scipy.optimize.curve_fit`` of the same model on the
   same windows (data-driven ``p0``, default Levenberg-Marquardt), in the same process: single steps,
   then chunks of many steps (the shape the engine gives a task).
3. autotau (``CyclesAutoTauFitter``, default settings) on a few small traces: speed and accuracy ratios.
4. The real measured trace (autotau's example, tests/extractors/data/).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _worker_env import use_worker_malloc_settings
from scipy.optimize import OptimizeWarning, curve_fit
from threadpoolctl import threadpool_limits

from dask_features.engine.plan import READ_COST_NS, TARGET_TASK_SECONDS
from dask_features.extractors.registry import get_extractor
from dask_features.extractors.tau import step_edges, tau_on_off
from dask_features.extractors.tau._edges import StepEdges, segment_step
from dask_features.io.chunks import TransientChunk
from dask_features.synth.signals import square_wave_response

REAL_TRACE = (
    Path(__file__).resolve().parents[1] / "tests" / "extractors" / "data" / "autotau_example_transient.csv"
)
AMPLITUDE = 1e-3  # A; mA scale, where autotau's fixed start point works (it fails at uA scale)


def make_trace(
    tau_on: float,
    tau_off: float,
    period: float,
    fs: float,
    snr_db: float,
    n_cycles: float,
    rng: np.random.Generator,
    snr_def: str = "power",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time [s], noisy current [A] and noise-free current [A] of one step with random phase.

    ``snr_def`` is "power" (signal variance / noise variance) or "step" (swing / noise sd); see the
    module docstring.
    """
    dt = 1.0 / fs
    t = np.arange(round(n_cycles * period * fs)) * dt
    clean = square_wave_response(
        t,
        period=period,
        tau_on=tau_on,
        tau_off=tau_off,
        i_low=0.2 * AMPLITUDE,
        i_high=1.2 * AMPLITUDE,
        phase=rng.uniform(0, period),
    )
    sd = noise_sd(clean, snr_db, snr_def)
    return t, clean + rng.normal(0.0, sd, t.size), clean


def noise_sd(clean: np.ndarray, snr_db: float, snr_def: str) -> float:
    """Noise standard deviation [A] giving ``snr_db`` under definition ``snr_def``."""
    signal = np.std(clean) if snr_def == "power" else AMPLITUDE
    return float(signal * 10 ** (-snr_db / 20))


def chunk_of(t: np.ndarray, y: np.ndarray, period: float, fs: float) -> TransientChunk:
    return TransientChunk(
        step_index=np.zeros(1, np.int64),
        time=t,
        current=y,
        offsets=np.array([0, t.size]),
        period=np.array([period]),
        time_step=np.array([1.0 / fs]),
        duty=np.array([0.5]),
    )


def cpu(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """Result and best-of-``repeat`` CPU time [s] of ``fn()``."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return out, best


def crlb_median_err(k: float, a: float, m: int, sigma: float) -> float:
    """Median |relative error| of tau of an efficient estimator (0.674 x Cramér-Rao sd) for one window."""
    u = np.arange(m)
    e = np.exp(-k * u)
    jac = np.stack([np.ones(m), e, -a * u * e], axis=1)
    cov = np.linalg.inv(jac.T @ jac) * sigma**2
    return float(0.674 * np.sqrt(cov[2, 2]) / k)


def windows(
    t: np.ndarray, y: np.ndarray, period: float, fs: float
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The complete half-cycle windows the extractor fits, as (direction, t - t0, y) for curve_fit."""
    ed: StepEdges = step_edges(chunk_of(t, y, period, fs))[0]
    seg = segment_step(t.size, ed)
    halves = (
        ("on", seg.on_start, seg.on_status, seg.m_on),
        ("off", seg.off_start, seg.off_status, seg.m_off),
    )
    return [
        (name, t[s : s + m] - t[s], y[s : s + m]) for name, starts, st, m in halves for s in starts[st == 0]
    ]


def _on(t: np.ndarray, a: float, tau: float, c: float) -> np.ndarray:
    return a * (1 - np.exp(-t / tau)) + c


def _off(t: np.ndarray, a: float, tau: float, c: float) -> np.ndarray:
    return a * np.exp(-t / tau) + c


def curve_fit_all(wins: list[tuple[str, np.ndarray, np.ndarray]]) -> np.ndarray:
    """tau [s] of every window with one curve_fit each (the loop the extractor replaces)."""
    taus = np.full(len(wins), np.nan)
    for i, (name, tt, yy) in enumerate(wins):
        first, last = yy[:3].mean(), yy[-3:].mean()
        p0 = (last - first, tt[-1] / 5, first) if name == "on" else (first - last, tt[-1] / 5, last)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)  # overflow while LM explores tau < 0
                popt, _ = curve_fit(_on if name == "on" else _off, tt, yy, p0=p0)
            taus[i] = abs(popt[1])
        except (RuntimeError, ValueError):
            pass
    return taus


def accuracy_grid(quick: bool, rng: np.random.Generator) -> None:
    taus = [1e-3, 5e-3, 20e-3, 50e-3]
    periods = [0.2, 2.0]
    rates = [1e3, 1e4]
    levels = [("power", 40.0), ("power", 20.0), ("step", 40.0), ("step", 20.0)]
    if quick:
        taus, periods = [1e-3, 10e-3, 50e-3], [0.2]
    print(
        "\n## 1. Accuracy (median |rel. error| of tau per cycle, on/off pooled; CRLB = efficient-estimator floor)\n"
    )
    print(
        "| SNR def | SNR dB | tau ms | period s | fs kHz | cycles | fitted % | per-cycle err % | CRLB % | step-median err % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    pooled: dict[tuple[str, float], list[float]] = {lv: [] for lv in levels}
    pooled_step: dict[tuple[str, float], list[float]] = {lv: [] for lv in levels}
    fitted_all: dict[tuple[str, float], list[bool]] = {lv: [] for lv in levels}
    for snr_def, snr in levels:
        for tau in taus:
            for period in periods:
                for fs in rates:
                    n_cycles = 30 if period < 1 else 10
                    t, y, clean = make_trace(tau, tau, period, fs, snr, n_cycles + 0.5, rng, snr_def)
                    f = tau_on_off(chunk_of(t, y, period, fs)).fields
                    g = tau_on_off(chunk_of(t, clean, period, fs)).fields
                    # Cycles complete in the noise-free trace; noise may move a partial cycle in or out.
                    full = np.isin(f["cycle"], g["cycle"][(g["status_on"] == 0) & (g["status_off"] == 0)])
                    ok = np.r_[f["status_on"][full], f["status_off"][full]] == 0
                    est = np.r_[f["tau_on"][full], f["tau_off"][full]]
                    err = np.abs(est / tau - 1)
                    step_err = 100 * max(
                        abs(np.nanmedian(f["tau_on"]) / tau - 1), abs(np.nanmedian(f["tau_off"]) / tau - 1)
                    )
                    ed = step_edges(chunk_of(t, clean, period, fs))[0]
                    seg = segment_step(t.size, ed)
                    sigma = noise_sd(clean, snr, snr_def)
                    k = (1 / fs) / tau
                    bound = 0.5 * (
                        crlb_median_err(k, np.nanmedian(g["amp_on"]), seg.m_on, sigma)
                        + crlb_median_err(k, np.nanmedian(g["amp_off"]), seg.m_off, sigma)
                    )
                    pooled[snr_def, snr].extend(err[np.isfinite(err)])
                    pooled_step[snr_def, snr].append(step_err)
                    fitted_all[snr_def, snr].extend(ok)
                    print(
                        f"| {snr_def} | {snr:g} | {tau * 1e3:g} | {period:g} | {fs / 1e3:g} | {int(full.sum())} | "
                        f"{100 * ok.mean():.1f} | {100 * np.nanmedian(err):.2f} | {100 * bound:.2f} | {step_err:.2f} |"
                    )
    print(
        "\n| SNR def | SNR dB | per-cycle median err % (all cases pooled) | median step-median err % | fitted % |"
    )
    print("|---|---|---|---|---|")
    for lv in levels:
        print(
            f"| {lv[0]} | {lv[1]:g} | {100 * np.median(pooled[lv]):.2f} | {np.median(pooled_step[lv]):.2f} | "
            f"{100 * np.mean(fitted_all[lv]):.1f} |"
        )


def _best_interleaved(fns: list[Callable[[], Any]], repeat: int) -> tuple[list[Any], list[float]]:
    """Results and best CPU times of ``fns``, run in turn ``repeat`` times (load spikes hit all alike)."""
    outs: list[Any] = [None] * len(fns)
    best = [np.inf] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            outs[i], t = cpu(fn)
            best[i] = min(best[i], t)
    return outs, best


def speed(quick: bool, rng: np.random.Generator) -> None:
    cases = [
        (5e-3, 0.2, 1e3, 101),
        (5e-3, 0.2, 1e3, 51),
        (5e-3, 0.2, 1e3, 21),
        (20e-3, 1.0, 5e3, 21),
        (2e-3, 2.0, 1e4, 11),
    ]
    if quick:
        cases = cases[:3]
    print(
        "\n## 2. Speed and accuracy vs per-half-cycle scipy curve_fit (same windows, same process, 1 thread)\n"
    )
    print("### Single steps (tau_off = 1.5 tau_on; SNR by the power definition)\n")
    print(
        "| tau_on ms | period s | fs kHz | SNR dB | cycles | ours ms | curve_fit ms | speed-up | ours cycles/s/core | err ours % | err curve_fit % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for tau, period, fs, n_cycles in cases:
        for snr in (40.0, 20.0):
            t, y, _ = make_trace(tau, 1.5 * tau, period, fs, snr, n_cycles, rng)
            wins = windows(t, y, period, fs)
            (res, taus_cf), (t_ours, t_cf) = _best_interleaved(
                [
                    lambda t=t, y=y, period=period, fs=fs: tau_on_off(chunk_of(t, y, period, fs)),
                    lambda wins=wins: curve_fit_all(wins),
                ],
                repeat=5,
            )
            truth = np.array([tau if w[0] == "on" else 1.5 * tau for w in wins])
            f = res.fields
            ours = np.r_[f["tau_on"][f["status_on"] == 0], f["tau_off"][f["status_off"] == 0]]
            ours_truth = np.r_[
                np.full((f["status_on"] == 0).sum(), tau), np.full((f["status_off"] == 0).sum(), 1.5 * tau)
            ]
            cycles = res.counts.sum()
            print(
                f"| {tau * 1e3:g} | {period:g} | {fs / 1e3:g} | {snr:g} | {cycles} | {1e3 * t_ours:.2f} | {1e3 * t_cf:.0f} | "
                f"{t_cf / t_ours:.0f}x | {cycles / t_ours:,.0f} | {100 * np.nanmedian(np.abs(ours / ours_truth - 1)):.2f} | "
                f"{100 * np.nanmedian(np.abs(taus_cf / truth - 1)):.2f} |"
            )


def auto_steps_per_chunk(samples_per_step: int) -> int:
    """Steps per task the engine plans for a tau-only config (same formula as ``engine.plan``)."""
    cost_ns = READ_COST_NS + get_extractor("transient.tau_on_off").cost
    return int(np.ceil(TARGET_TASK_SECONDS / (2 * samples_per_step * cost_ns * 1e-9)))


def speed_chunk(quick: bool, rng: np.random.Generator) -> None:
    """The production shape: one task fits a chunk of many steps; rows of equal length form one batch."""
    auto = auto_steps_per_chunk(samples_per_step=round(50 * 0.2 * 1e3))
    shapes = [(20, 20), (auto, 50), (200, 50)] if not quick else [(20, 20), (auto, 50)]
    print("\n### Chunks of many steps (tau_on 5 ms, tau_off 7.5 ms, P 0.2 s, 1 kHz)\n")
    print(
        f"{auto} x 50 is the engine's automatic chunk for these steps (0.1 s of estimated work per task). "
        "curve_fit is timed on the windows of 5 of the chunk's steps.\n"
    )
    print(
        "| steps x cycles | SNR dB | ours ms | ours µs/cycle | curve_fit µs/cycle | speed-up | ours cycles/s/core |"
    )
    print("|---|---|---|---|---|---|---|")
    for n_steps, n_cycles in shapes:
        for snr in (40.0, 20.0):
            traces = [make_trace(5e-3, 7.5e-3, 0.2, 1e3, snr, n_cycles, rng) for _ in range(n_steps)]
            lengths = [tr[0].size for tr in traces]
            chunk = TransientChunk(
                step_index=np.arange(n_steps),
                time=np.concatenate([tr[0] for tr in traces]),
                current=np.concatenate([tr[1] for tr in traces]),
                offsets=np.r_[0, np.cumsum(lengths)],
                period=np.full(n_steps, 0.2),
                time_step=np.full(n_steps, 1e-3),
                duty=np.full(n_steps, 0.5),
            )
            wins = [w for tr in traces[:5] for w in windows(tr[0], tr[1], 0.2, 1e3)]
            (res, _), (t_ours, t_cf) = _best_interleaved(
                [
                    lambda chunk=chunk: tau_on_off(
                        TransientChunk(**{**vars(chunk), "memo": {}, "issues": []})
                    ),
                    lambda wins=wins: curve_fit_all(wins),
                ],
                repeat=3,
            )
            per_cycle_cf = t_cf / len(wins) * 2
            cycles = int(res.counts.sum())
            print(
                f"| {n_steps} x {n_cycles} | {snr:g} | {1e3 * t_ours:.1f} | {1e6 * t_ours / cycles:.1f} | "
                f"{1e6 * per_cycle_cf:.0f} | {per_cycle_cf / (t_ours / cycles):.0f}x | {cycles / t_ours:,.0f} |"
            )


def autotau_part(quick: bool, rng: np.random.Generator) -> None:
    try:
        from autotau import CyclesAutoTauFitter
    except ImportError:
        print("\n## 3. autotau: not installed (pip install autotau), skipped")
        return
    cases = [(5e-3, 0.1, 1e3, 10, 40.0), (5e-3, 0.1, 1e3, 10, 20.0)]
    if not quick:
        cases.append((10e-3, 0.2, 1e3, 10, 40.0))
    print("\n## 3. autotau CyclesAutoTauFitter (default settings) on the same traces\n")
    print(
        "| tau_on/off ms | period s | fs kHz | SNR dB | cycles a/ours | autotau s | ours ms | speed-up | err autotau % | err ours % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for tau, period, fs, n_cycles, snr in cases:
        t, y, _ = make_trace(tau, 1.5 * tau, period, fs, snr, n_cycles, rng)

        def run_autotau(t: np.ndarray = t, y: np.ndarray = y, period: float = period, fs: float = fs) -> Any:
            fitter = CyclesAutoTauFitter(t, y, period, fs)
            fitter.find_best_windows()
            fitter.fit_all_cycles()
            return fitter.get_summary_data()

        summary, t_auto = cpu(run_autotau)
        res, t_ours = cpu(
            lambda t=t, y=y, period=period, fs=fs: tau_on_off(chunk_of(t, y, period, fs)), repeat=5
        )
        f = res.fields
        err_a = np.r_[
            np.abs(summary["tau_on"].to_numpy() / tau - 1),
            np.abs(summary["tau_off"].to_numpy() / (1.5 * tau) - 1),
        ]
        err_o = np.r_[np.abs(f["tau_on"] / tau - 1), np.abs(f["tau_off"] / (1.5 * tau) - 1)]
        print(
            f"| {tau * 1e3:g}/{1.5 * tau * 1e3:g} | {period:g} | {fs / 1e3:g} | {snr:g} | {len(summary)}/{int((f['status'] == 0).sum())} | "
            f"{t_auto:.1f} | {1e3 * t_ours:.2f} | {t_auto / t_ours:,.0f}x | {100 * np.nanmedian(err_a):.2f} | {100 * np.nanmedian(err_o):.2f} |"
        )


def real_trace() -> None:
    print("\n## 4. Real trace (autotau example, -Id, P 0.2 s, 1 kHz)\n")
    if not REAL_TRACE.exists():
        print(f"{REAL_TRACE} missing, skipped")
        return
    d = np.loadtxt(REAL_TRACE, delimiter=",", skiprows=1)
    for label, sl in (("full record", slice(None)), ("first 50 ms cropped", slice(50, None))):
        t, y = d[sl, 0], d[sl, 1]
        res, t_ours = cpu(lambda t=t, y=y: tau_on_off(chunk_of(t, y, 0.2, 1e3)), repeat=5)
        f = res.fields
        ok = f["status"] == 0
        print(
            f"{label}: {res.counts.sum()} rows, {ok.sum()} ok, first row status on/off "
            f"{f['status_on'][0]}/{f['status_off'][0]}; median tau_on {1e3 * np.nanmedian(f['tau_on']):.3f} ms "
            f"(R² {np.nanmedian(f['r2_on'][ok]):.4f}, min {np.nanmin(f['r2_on'][ok]):.4f}), tau_off "
            f"{1e3 * np.nanmedian(f['tau_off']):.3f} ms (R² {np.nanmedian(f['r2_off'][ok]):.4f}, min "
            f"{np.nanmin(f['r2_off'][ok]):.4f}); {1e3 * t_ours:.1f} ms CPU"
        )


def main(argv: list[str] | None = None) -> int:
    use_worker_malloc_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small grid, two speed cases, two autotau traces"
    )
    parser.add_argument("--no-autotau", action="store_true", help="skip the autotau comparison")
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with threadpool_limits(1):
        accuracy_grid(args.quick, rng)
        speed(args.quick, rng)
        speed_chunk(args.quick, rng)
        real_trace()
        if not args.no_autotau:
            autotau_part(args.quick, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
