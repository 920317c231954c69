"""Accuracy and speed of ``transient.tau_on_off`` on synthetic traces with known tau, and on real data.

Run ``.venv/bin/python benchmarks/bench_tau.py [--quick] [--no-autotau] [--grid-only] [--noise KINDS]``.
Every figure of one report comes from one process run; all timings are CPU time of one thread (BLAS
limited to 1 thread), so "cycles/s" is per core, and each timing is the best of several repeats, ours
and curve_fit's interleaved. The machine is shared and noisy: compare ratios, not absolute times.

Sections
--------
1. Accuracy grid (the targets of the tau issue): SNR 20/30/40/60 dB x 30-30,000 samples per period x
   tau 1-40 % of the half-period, for constant and for current-proportional noise, SNR = 20 log10(step
   swing / noise sd at the high level). Per cell, ours (default settings, status 0 only) next to a
   per-half-cycle ``scipy.optimize.curve_fit`` on the TRUE windows (first sample at or after each edge
   to the last before the next): median and p90 |relative error|, fitted fraction, and the count of
   fitted half-cycles more than 20 % off. Targets: our median within 1.2x of curve_fit's in every cell,
   no OK half-cycle more than 20 % off at SNR >= 30 dB.
2. Speed and accuracy against the same curve_fit on our windows, in the same process: single steps,
   then chunks of many steps (the shape the engine gives a task; target >= 50x including all checks).
   SNR here is the power ratio (signal variance / noise variance; 20 dB = noise sd swing/20).
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
from dask_features.synth.signals import grid_step, square_wave_response

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


def _exp(u: np.ndarray, a: float, tau: float, c: float) -> np.ndarray:
    return c + a * np.exp(-u / tau)


def curve_fit_all(wins: list[tuple[str, np.ndarray, np.ndarray]]) -> np.ndarray:
    """tau [s] of every window with one curve_fit each (the loop the extractor replaces).

    Model ``c + a exp(-u / tau)`` in samples (the same least-squares optimum as ``A (1 - e^..) + C`` for a
    rise), unbounded Levenberg-Marquardt from a data-driven start: ``c`` the mean of the last tenth,
    ``a`` the first sample minus ``c``, tau the first 1/e crossing of a 5-sample running mean.
    """
    taus = np.full(len(wins), np.nan)
    for i, (_, tt, yy) in enumerate(wins):
        m = yy.size
        if m < 4:
            continue
        dt = tt[1] - tt[0]
        u = np.arange(m, dtype=np.float64)
        c0 = yy[-max(1, m // 10) :].mean()
        a0 = yy[0] - c0
        smooth = np.convolve(yy - c0, np.ones(5) / 5, mode="same") / a0 if a0 != 0 else np.zeros(m)
        below = np.flatnonzero(smooth < np.exp(-1))
        tau0 = float(max(0.5, below[0] if below.size else m / 3))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)  # overflow while LM explores tau < 0
                popt, _ = curve_fit(_exp, u, yy, p0=(a0, tau0, c0))
            taus[i] = abs(popt[1]) * dt
        except (RuntimeError, ValueError):
            pass
    return taus


GRID_SPP = (30, 300, 3000, 30000)
GRID_FRAC = (0.01, 0.05, 0.15, 0.40)
GRID_SNR = (20.0, 30.0, 40.0, 60.0)
GRID_DT = 1e-4  # s; the period is spp * dt


def _cell_stats(err: np.ndarray, n_windows: int) -> tuple[float, float, float, int]:
    """Median and p90 |relative error| [%], fitted fraction [%] and the count off by more than 20 %."""
    err = err[np.isfinite(err)]
    if err.size == 0:
        return np.nan, np.nan, 0.0, 0
    return (
        100 * float(np.median(err)),
        100 * float(np.percentile(err, 90)),
        100 * err.size / n_windows,
        int((err > 0.2).sum()),
    )


def grid_cell(
    spp: int,
    frac: float,
    snr: float,
    noise: str,
    rng: np.random.Generator,
    *,
    steps: int = 1,
    max_rel_se: float = 0.05,
) -> dict[str, tuple[float, float, float, int]]:
    """Per-half-cycle accuracy of ours and of curve_fit on the true windows for one grid cell."""
    ours_err, cf_err, n_win = [], [], 0
    for _ in range(steps):
        t, y, period, tau, wins = grid_step(spp, frac, snr, noise, rng, GRID_DT)
        f = tau_on_off(chunk_of(t, y, period, 1 / GRID_DT), max_rel_se=max_rel_se).fields
        ours = np.r_[f["tau_on"][f["status_on"] == 0], f["tau_off"][f["status_off"] == 0]]
        ours_err.append(np.abs(ours / tau - 1))
        cf = curve_fit_all([(name, t[a:b] - t[a], y[a:b]) for name, a, b in wins])
        cf_err.append(np.abs(cf / tau - 1))
        n_win += len(wins)
    return {
        "ours": _cell_stats(np.concatenate(ours_err), n_win),
        "curve_fit": _cell_stats(np.concatenate(cf_err), n_win),
    }


def accuracy_grid(quick: bool, rng: np.random.Generator, noises: tuple[str, ...], max_rel_se: float) -> None:
    spps, fracs, snrs, min_halves = GRID_SPP, GRID_FRAC, GRID_SNR, 200
    if quick:
        spps, fracs, snrs, min_halves = (30, 3000), (0.05, 0.40), (20.0, 40.0), 48
    print(
        f"\n## 1. Accuracy grid: ours (max_rel_se={max_rel_se:g}) vs curve_fit per half-cycle on the TRUE windows\n"
    )
    print(
        "Per cell: median / p90 |relative error| of tau per half-cycle [%] over the fitted (status 0) "
        "half-cycles, the fitted fraction [%] of the complete half-cycles, and how many fitted ones are more "
        "than 20 % off. ratio = our median / curve_fit's (target <= 1.2; nan when fewer than 30 fitted); "
        "OK>20% must be 0 at SNR >= 30.\n"
    )
    print(
        "| noise | spp | tau/half % | SNR dB | ours med | ours p90 | ours fitted % | ours OK>20% "
        "| cf med | cf p90 | cf fitted % | cf >20% | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    worst_ratio, bad_ok = 0.0, 0
    for noise in noises:
        for spp in spps:
            for frac in fracs:
                for snr in snrs:
                    # At least ~200 complete half-cycles per cell: the median of n per-cycle errors scatters
                    # by ~1.25 / sqrt(n) of itself, and ours and curve_fit's decorrelate where windows differ.
                    steps = int(np.ceil(min_halves / (2 * np.clip(200_000 // spp, 6, 60) - 2)))
                    r = grid_cell(spp, frac, snr, noise, rng, steps=steps, max_rel_se=max_rel_se)
                    o, c = r["ours"], r["curve_fit"]
                    # The median of a handful of fitted half-cycles says little: compare from 30 on.
                    n_fit = o[2] / 100 * steps * (2 * np.clip(200_000 // spp, 6, 60) - 2)
                    ratio = o[0] / c[0] if np.isfinite(o[0]) and c[0] > 0 and n_fit >= 30 else np.nan
                    if np.isfinite(ratio):
                        worst_ratio = max(worst_ratio, ratio)
                    if snr >= 30:
                        bad_ok += o[3]
                    print(
                        f"| {noise} | {spp} | {100 * frac:g} | {snr:g} | {o[0]:.2f} | {o[1]:.2f} | {o[2]:.0f} | "
                        f"{o[3]} | {c[0]:.2f} | {c[1]:.2f} | {c[2]:.0f} | {c[3]} | {ratio:.2f} |"
                    )
    print(
        f"\nWorst median ratio ours / curve_fit: {worst_ratio:.2f}; OK-flagged > 20 % off at SNR >= 30: {bad_ok}"
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
            err_ours = (
                f"{100 * np.median(np.abs(ours / ours_truth - 1)):.2f} ({100 * ours.size / len(wins):.0f} % fitted)"
                if ours.size
                else "all flagged IMPRECISE"
            )
            cycles = res.counts.sum()
            print(
                f"| {tau * 1e3:g} | {period:g} | {fs / 1e3:g} | {snr:g} | {cycles} | {1e3 * t_ours:.2f} | {1e3 * t_cf:.0f} | "
                f"{t_cf / t_ours:.0f}x | {cycles / t_ours:,.0f} | {err_ours} | "
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
    parser.add_argument("--noise", default="constant,proportional", help="noise kinds of the grid")
    parser.add_argument("--grid-only", action="store_true", help="stop after the accuracy grid")
    parser.add_argument(
        "--max-rel-se", type=float, default=0.05, help="precision gate of the grid (inf: estimator alone)"
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with threadpool_limits(1):
        accuracy_grid(args.quick, rng, tuple(args.noise.split(",")), args.max_rel_se)
        if args.grid_only:
            return 0
        speed(args.quick, rng)
        speed_chunk(args.quick, rng)
        real_trace()
        if not args.no_autotau:
            autotau_part(args.quick, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
