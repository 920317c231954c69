"""Transfer kernels: the shortcuts for clean symmetric chunks give exactly what the general path gives.

The column-slice extremes (:attr:`Sweeps.common_turn`), the flat in-place derivative and the
sum-based clean-chunk test are compared bit for bit with the masked path and with a per-row
2-D implementation, on data made to hit their edge cases: ties, zeros of both signs, repeated gate
voltages, overflowing slopes, non-contiguous inputs.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pytest

from dask_features.extractors import _slope_kernels as sk
from dask_features.extractors import _transfer_extremes as te
from dask_features.extractors import _transfer_math as tm
from dask_features.extractors import transfer
from dask_features.io.chunks import TransferChunk

REDUCTIONS = ["max", "min", "absmax", "absmin"]
DIRECTIONS = ["forward", "reverse", "raw"]


def symmetric(n: int, half: int, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` identical up-down sweeps of ``2 * half + 1`` points and currents of the given ``kind``."""
    rng = np.random.default_rng(seed)
    up = np.linspace(-0.6, 0.6, half + 1)
    if kind == "fine":
        # Steps on either side of the 1e-12 V floor: the falling half's tiny negative steps become +1e-12.
        # The first is exactly the floor both ways (0 -> 1e-12 and back): |dx| == floor is kept.
        steps = np.resize([1e-12, 0.5e-12, 0.95e-12, 0.999e-12, 1.001e-12, 1.5e-12], half)
        up = np.concatenate([[0.0], np.cumsum(steps)])
    vg = np.tile(np.concatenate([up, up[-2::-1]]), (n, 1))
    shape = vg.shape
    id_ = {
        "smooth": 1e-6 / (1 + np.exp(-vg / 0.05)) + rng.normal(0, 1e-9, shape),
        "ties": rng.integers(-2, 3, shape) * 1e-6,  # repeated extremes: first occurrence decides
        "zeros": rng.choice([0.0, -0.0, 1e-13, -1e-13], shape),  # signed zeros, sub-clip currents
        "overflow": rng.choice([1e308, -1e308, 0.0], shape),  # inf and NaN slopes: general path
        "fine": 1e-6 + rng.normal(0, 1e-9, shape),
        # ln|Id| linear in Vg: a flat log derivative, every column within rounding of the extreme
        "exponential": np.exp(8.0 * vg) * 1e-9,
        # ... then lifted by less than the rough logarithm's error: near-ties it must not decide
        "near_ties": np.exp(8.0 * vg) * 1e-9 * (1.0 + rng.uniform(-1e-8, 1e-8, shape)),
        "noisy": np.exp(8.0 * vg)
        * 1e-9
        * (1.0 + rng.normal(0, 1e-3, shape))
        * rng.choice([1.0, -1.0], shape),
    }[kind]
    if kind == "ties":
        vg = np.round(vg * 2) / 2  # repeated Vg: the 1e-12 V floor
    return vg, id_


def as_general(sw: tm.Sweeps) -> tm.Sweeps:
    """The same sweeps without the common-turn shortcut."""
    return dataclasses.replace(sw, common_turn=None)


def assert_identical(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8))


@pytest.mark.parametrize("kind", ["smooth", "ties", "zeros", "overflow", "fine"])
@pytest.mark.parametrize("half", [0, 1, 2, 7])
def test_prepare_finds_the_common_turn(kind: str, half: int) -> None:
    vg, id_ = symmetric(5, half, kind)
    sw = tm.prepare(vg, id_, np.full(5, vg.shape[1]))
    if vg.shape[1] < 2:
        assert not sw.full
        return
    assert sw.full
    assert sw.id is id_
    first_max = int(np.argmax(vg[0]))  # the turning point (rounded grids reach it early)
    assert sw.common_turn == first_max
    assert (sw.turn == first_max).all()


def test_overflowing_sum_still_gives_full_sweeps() -> None:
    vg, _ = symmetric(3, 4, "smooth")
    id_ = np.full(vg.shape, 1e308)
    with np.errstate(over="ignore"):
        assert not np.isfinite(id_.sum())  # the quick test fails: the exact path must agree
    sw = tm.prepare(vg, id_, np.full(3, vg.shape[1]))
    assert sw.full
    assert sw.common_turn == 4
    assert sw.id is id_


def test_rows_turning_at_different_points_have_no_common_turn() -> None:
    vg = np.array([[0.0, 1.0, 2.0, 1.0], [0.0, 1.0, 0.5, 0.0]])
    sw = tm.prepare(vg, np.ones_like(vg), np.full(2, 4))
    assert sw.full
    assert sw.common_turn is None


@pytest.mark.parametrize("kind", ["smooth", "ties", "zeros", "overflow", "fine"])
@pytest.mark.parametrize("half", [1, 3, 10])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("quantity", ["I", "gm", "dlog"])
def test_column_slice_extremes_match_the_masked_path(
    kind: str, half: int, reduction: tm.Reduction, direction: tm.Direction, quantity: str
) -> None:
    vg, id_ = symmetric(6, half, kind, seed=half)
    sw = tm.prepare(vg, id_, np.full(6, vg.shape[1]))
    assert sw.common_turn is not None
    edge = None
    values = id_
    if quantity != "I":
        dx = tm.gate_steps(sw)
        y = id_ if quantity == "gm" else tm.log_abs(id_)
        deriv = tm.derivative(y, dx, sw)
        values, edge = deriv.d, deriv.edges.get(direction)
    general = as_general(sw)
    with np.errstate(invalid="ignore"):
        fast = te.extreme(values, sw, direction, reduction=reduction, edge=edge)
        masked = te.extreme(
            values,
            general,
            direction,
            reduction=reduction,
            mask=tm.segment_mask(general, direction),
            edge=edge,
        )
    assert_identical(fast, masked)


def safe_diff_rows(y: np.ndarray, vg: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """oect-infra's safe_diff of each row's valid points, one row at a time (NaN after them)."""
    out = np.full(y.shape, np.nan)
    for i, k in enumerate(n_valid):
        if k < 2:
            continue
        dx = np.diff(vg[i, :k])
        dx[np.abs(dx) < 1e-12] = 1e-12
        with np.errstate(over="ignore", invalid="ignore"):
            q = np.diff(y[i, :k]) / dx
            out[i, :k] = np.concatenate([[q[0]], (q[:-1] + q[1:]) / 2, [q[-1]]])
    return out


@pytest.mark.parametrize("kind", ["smooth", "ties", "zeros", "overflow", "fine", "ragged"])
@pytest.mark.parametrize("in_place", [False, True])
def test_flat_derivative_matches_per_row_safe_diff(kind: str, in_place: bool) -> None:
    if kind == "ragged":
        rng = np.random.default_rng(3)
        vg, id_ = symmetric(8, 6, "smooth")
        lengths = rng.integers(0, vg.shape[1] + 1, 8)
        id_[rng.random(id_.shape) < 0.1] = np.nan
    else:
        vg, id_ = symmetric(8, 6, kind)
        lengths = np.full(8, vg.shape[1])
    sw = tm.prepare(vg, id_, lengths)
    dx = tm.gate_steps(sw)
    assert np.isnan(dx[:, -1]).all()
    if kind == "fine":
        assert (dx == tm.DX_FLOOR).any()  # the floor is hit (the falling half's tiny negative steps)
    y = np.abs(sw.id)
    want = safe_diff_rows(y, sw.vg, sw.n_valid)
    if in_place:
        buffer = tm.derivative_buffer(sw.shape)
        buffer[1:] = y.reshape(-1)
        got = tm.derivative(buffer[1:].reshape(sw.shape), dx, sw, buffer=buffer).d
        assert np.shares_memory(got, buffer)
    else:
        got = tm.derivative(y, dx, sw).d
    # Past each row's points the derivative is NaN, as the reference's padding.
    np.testing.assert_array_equal(got.view(np.uint64)[~np.isnan(want)], want.view(np.uint64)[~np.isnan(want)])
    assert np.isnan(got[np.isnan(want)]).all()


def test_non_contiguous_inputs_give_the_same_derivative() -> None:
    vg, id_ = symmetric(4, 5, "smooth")
    sw = tm.prepare(vg, id_, np.full(4, vg.shape[1]))
    strided = tm.prepare(np.asfortranarray(vg), np.repeat(id_, 2, axis=1)[:, ::2], np.full(4, vg.shape[1]))
    a = tm.derivative(sw.id, tm.gate_steps(sw), sw)
    b = tm.derivative(strided.id, tm.gate_steps(strided), strided)
    np.testing.assert_array_equal(a.d.view(np.uint64), b.d.view(np.uint64))


def test_reused_buffers_give_the_same_derivative() -> None:
    vg, id_ = symmetric(5, 6, "smooth")
    sw = tm.prepare(vg, id_, np.full(5, vg.shape[1]))
    dx = tm.gate_steps(sw)
    want = tm.log_abs(id_)
    want = tm.derivative(want, dx, sw).d.copy()
    for _ in range(3):  # each result is dropped, so the next call reuses its memory
        buffer = tm.derivative_buffer(sw.shape)
        buffer[:] = np.nan
        log_id = tm.log_abs(id_, out=buffer[1:].reshape(sw.shape))
        got = tm.derivative(log_id, dx, sw, buffer=buffer).d
        np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
        del buffer, log_id, got


def _chunk(vg: np.ndarray, id_: np.ndarray) -> TransferChunk:
    n = vg.shape[0]
    return TransferChunk(step_index=np.arange(n), vg=vg, id=id_, lengths=np.full(n, vg.shape[1]))


@pytest.mark.parametrize(
    "kind", ["smooth", "ties", "zeros", "overflow", "fine", "exponential", "near_ties", "noisy"]
)
@pytest.mark.parametrize("half", [1, 2, 3, 10, 150])
@pytest.mark.parametrize("reduction", ["max", "min", "absmax"])
@pytest.mark.parametrize("quantity", ["gm", "dlog"])
def test_compiled_half_extremes_match_the_general_path(
    kind: str, half: int, reduction: tm.Reduction, quantity: Literal["gm", "dlog"]
) -> None:
    """The one-pass kernel (no derivative matrix) against the derivative + column-slice extremes."""
    vg, id_ = symmetric(6, half, kind, seed=half)
    chunk = _chunk(vg, id_)
    found = transfer._half_slope_extremes(chunk, quantity, reduction)
    if half < 2:  # a reverse half of 1 point: the kernel does not apply
        assert found is None
        return
    if kind != "overflow":
        assert found is not None
    if found is None:
        return
    sw = transfer.sweeps(chunk)
    deriv = transfer.derivative(chunk, quantity)
    for h, direction in enumerate(("forward", "reverse")):
        value, index, ok = te.extreme(
            deriv.d, sw, direction, reduction=reduction, edge=deriv.edges[direction]
        )  # type: ignore[arg-type]
        assert ok.all()
        assert_identical((found[0][:, h].copy(), found[1][:, h].copy()), (value, index))


@pytest.mark.parametrize(
    "spoil",
    [[1e308, -1e308], [-1e308, 1e308], [1e308, -1e308, 1e308]],
    ids=["inf", "-inf", "nan"],  # slopes -inf / +inf; and -inf next to +inf: a NaN derivative
)
@pytest.mark.parametrize("col", [2, 9])  # inside the forward, inside the reverse half
@pytest.mark.parametrize("reduction", ["max", "min", "absmax"])
def test_compiled_half_extremes_leave_non_finite_slopes_to_the_general_path(
    spoil: list[float], col: int, reduction: tm.Reduction
) -> None:
    vg, id_ = symmetric(4, 6, "smooth")
    assert transfer._half_slope_extremes(_chunk(vg, id_), "gm", reduction) is not None
    id_[2, col : col + len(spoil)] = spoil
    with np.errstate(over="ignore", invalid="ignore"):
        chunk = _chunk(vg, id_)
        assert transfer.sweeps(chunk).common_turn == 6
        assert transfer._half_slope_extremes(chunk, "gm", reduction) is None


def test_rough_logarithm_is_within_its_bound() -> None:
    """The screening's rough ln against glibc's, over the whole range above the 1e-12 A clip."""
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            np.exp(rng.uniform(np.log(1e-12), np.log(1.7e308), 20_000)),
            [1e-12, 1.0, 2.0, 0.5, np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 3.0), 1.7976931348623157e308],
            -np.exp(rng.uniform(-30.0, 30.0, 1000)),  # |Id|
            [0.0, -0.0, 1e-13, 5e-324],  # clipped
        ]
    )
    out, work = np.empty(x.size), np.empty(x.size)
    sk._rough_log(x[None, :], 0, int(np.full(1, tm.LOG_FLOOR).view(np.int64)[0]), out, work)
    exact = np.log(np.maximum(np.abs(x), tm.LOG_FLOOR))
    assert np.abs(out - exact).max() < sk._ROUGH_LOG_ERROR / 100
