"""Transfer extractors: hand-computed definitions, a transistor model with known answers, ragged and
broken steps, parity with oect-infra's ``BatchTransfer``, parameter validation."""

from __future__ import annotations

import numpy as np
import pytest

from dask_features.extractors import transfer, transfer_coords
from dask_features.extractors.registry import REGISTRY, Output
from dask_features.io.chunks import ChunkMeta, TransferChunk

FEATURES = ["gm_max", "gm_min", "Von", "absI_max", "absI_min", "I_max", "I_min"]


def make_chunk(rows: list[tuple[list[float], list[float]]], device_type: str | None = None) -> TransferChunk:
    """A chunk from per-step (vg, id) lists, NaN-padded to the longest."""
    m = max([len(v) for v, _ in rows] + [1])
    vg = np.full((len(rows), m), np.nan)
    id_ = np.full((len(rows), m), np.nan)
    for i, (v, c) in enumerate(rows):
        vg[i, : len(v)], id_[i, : len(c)] = v, c
    return TransferChunk(
        step_index=np.arange(len(rows)),
        vg=vg,
        id=id_,
        lengths=np.array([len(v) for v, _ in rows]),
        meta=ChunkMeta(device_type=device_type),
    )


def double_sweep(v_lo: float, v_hi: float, step: float) -> np.ndarray:
    up = np.arange(round((v_hi - v_lo) / step) + 1) * step + v_lo
    return np.concatenate([up, up[-2::-1]])


def sigmoid_device(vg: np.ndarray, polarity: str, v0: float = -0.1, s: float = 0.05) -> np.ndarray:
    """Id [A] of a saturating transistor: |Id| = I_off + I_on * sigmoid(±(Vg - v0) / s).

    Its transconductance peaks at Vg = v0 with |gm| = I_on / (4 s) = 5e-5 S; P-type devices conduct at
    low Vg and carry negative current.
    """
    sign = 1.0 if polarity == "N" else -1.0
    return sign * (1e-9 + 1e-5 / (1.0 + np.exp(-sign * (vg - v0) / s)))


# --- hand-computed definitions ------------------------------------------------------------------

# Up-down sweep Vg = 0,1,2,1,0 with Id = 0,1,4,2,1. Forward = points 0..2, reverse = points 3..4.
#   gm forward: slopes 1, 3 -> d = [1, 2, 3]; reverse: Vg 1->0, Id 2->1: slope 1 -> d = [1, 1].
#   log10 clip: forward [-12, 0, log10 4] -> slopes [12, 0.602] -> d = [12, 6.301, 0.602];
#               reverse [log10 2, 0] -> slope 0.301 -> d = [0.301, 0.301].
SMALL = ([0.0, 1.0, 2.0, 1.0, 0.0], [0.0, 1.0, 4.0, 2.0, 1.0])
SMALL_EXPECTED = {
    ("gm_max", "forward"): 3.0,
    ("gm_max", "reverse"): 1.0,
    ("gm_min", "forward"): 1.0,
    ("gm_min", "reverse"): 1.0,
    ("absI_max", "raw"): 4.0,
    ("absI_max", "forward"): 4.0,
    ("absI_max", "reverse"): 2.0,
    ("absI_min", "raw"): 0.0,
    ("absI_min", "reverse"): 1.0,
    ("I_max", "raw"): 4.0,
    ("I_min", "raw"): 0.0,
    ("I_min", "reverse"): 1.0,
}


@pytest.mark.parametrize(("feature", "direction"), list(SMALL_EXPECTED))
def test_small_sweep_matches_hand_computation(feature: str, direction: str) -> None:
    chunk = make_chunk([SMALL])
    got = getattr(transfer, feature)(chunk, direction=direction)
    np.testing.assert_allclose(got, [SMALL_EXPECTED[feature, direction]], rtol=1e-15)
    assert chunk.issues == []


@pytest.mark.parametrize(
    ("device_type", "direction", "expected"),
    [
        ("N", "forward", 0.0),  # argmax of [12, 6.301, 0.602] -> first point
        ("P", "forward", 2.0),  # argmin -> turning point
        ("N", "reverse", 1.0),  # tie [0.301, 0.301]: first occurrence
        ("P", "reverse", 1.0),
    ],
)
def test_small_sweep_Von(device_type: str, direction: str, expected: float) -> None:
    chunk = make_chunk([SMALL])
    assert transfer.Von(chunk, direction=direction, device_type=device_type)[0] == expected


def test_small_sweep_coordinates() -> None:
    chunk = make_chunk([SMALL])
    np.testing.assert_array_equal(transfer_coords.gm_max_coords(chunk), [[2.0, 4.0]])
    np.testing.assert_array_equal(transfer_coords.gm_max_coords(chunk, direction="reverse"), [[1.0, 2.0]])
    np.testing.assert_array_equal(transfer_coords.gm_max_coords(chunk, return_vg_only=True), [2.0])
    np.testing.assert_array_equal(transfer_coords.gm_max_coords(chunk, return_id_only=True), [4.0])
    np.testing.assert_array_equal(transfer_coords.Von_coords(chunk, device_type="P"), [[2.0, 4.0]])


def test_non_uniform_grid_averages_one_sided_slopes() -> None:
    # Vg 0,1,3: slopes 2 and 0.5; the middle derivative is their plain mean 1.25, not the
    # non-uniform central difference (3 - 0) / 3 = 1.
    chunk = make_chunk([([0.0, 1.0, 3.0, 1.0, 0.0], [0.0, 2.0, 3.0, 3.0, 3.0])])
    assert transfer.gm_min(chunk)[0] == 0.5
    chunk = make_chunk([([0.0, 1.0, 3.0], [0.0, 2.0, 3.0])])
    np.testing.assert_allclose(transfer.gm_max(chunk), [2.0])
    curve = transfer.derivative(chunk, "gm").d[0]
    np.testing.assert_allclose(curve, [2.0, 1.25, 0.5])


def test_tiny_gate_step_is_replaced_by_1e_12() -> None:
    chunk = make_chunk([([0.0, 0.0, 1.0], [0.0, 1.0, 2.0])])
    np.testing.assert_allclose(transfer.gm_max(chunk), [1e12])


def test_log_clip_at_1e_12() -> None:
    # Clipped logs [-12, -12, -6, -5]: slopes [0, 6, 1], derivative [0, 3, 3.5, 1] -> Vg 2.
    # Without the clip, [-14, -13, -6, -5] would give [1, 4, 4, 1] -> Vg 1 (first of the tie).
    chunk = make_chunk([([0.0, 1.0, 2.0, 3.0], [1e-14, 1e-13, 1e-6, 1e-5])])
    assert transfer.Von(chunk)[0] == 2.0


# --- a transistor model with a known answer --------------------------------------------------------


def dense_onset(polarity: str) -> float:
    """Vg of the steepest log10|Id| slope of the noise-free model, on a 1e-5 V grid."""
    v = np.arange(-0.6, 0.4, 1e-5)
    slope = np.gradient(np.log10(np.abs(sigmoid_device(v, polarity))), v)
    return float(v[np.argmax(slope) if polarity == "N" else np.argmin(slope)])


@pytest.mark.parametrize("polarity", ["N", "P"])
def test_against_model_ground_truth(polarity: str) -> None:
    rng = np.random.default_rng(1)
    h = 0.01
    vg = np.tile(double_sweep(-0.6, 0.4, h), (20, 1))
    id_ = sigmoid_device(vg, polarity) * (1 + rng.normal(0.0, 1e-4, vg.shape))
    chunk = TransferChunk(
        step_index=np.arange(20), vg=vg, id=id_, lengths=np.full(20, vg.shape[1]), meta=ChunkMeta()
    )
    # gm peak 5e-5 S at Vg = -0.1 V. Central differences of the sigmoid underestimate the peak by
    # about h^2 / (12 s^2) = 0.3 %; 1e-4 relative current noise adds ~0.1 % per point
    # (sqrt(2) * 5e-10 A / (2 h) over 5e-5 S), a few sigma at most over the points near the peak.
    gm = transfer.gm_max(chunk, direction="both")
    np.testing.assert_allclose(gm, 5e-5, rtol=0.01)
    np.testing.assert_allclose(transfer_coords.gm_max_coords(chunk, return_vg_only=True), -0.1, atol=h + 1e-9)
    # Von is quantised to the grid (± h/2) and the averaged derivative shifts it by at most one more
    # point; the noise (4e-5 decades over 0.01 V) is far below the 8 decades/V peak slope.
    von = transfer.Von(chunk, direction="both", device_type=polarity)
    np.testing.assert_allclose(von, dense_onset(polarity), atol=1.5 * h)


# --- ragged, NaN, empty and single-point steps --------------------------------------------------


def reference(vg: np.ndarray, id_: np.ndarray, feature: str, direction: str, device_type: str) -> float:
    """Straightforward single-step implementation of the definitions (NaN points removed)."""
    keep = np.isfinite(vg) & np.isfinite(id_)
    vg, id_ = vg[keep], id_[keep]
    if len(vg) < 2:
        return np.nan
    up = vg.max() - vg[0] >= vg[0] - vg.min()
    tp = int(np.argmax(vg) if up else np.argmin(vg))
    part = {"forward": slice(0, tp + 1), "reverse": slice(tp + 1, None), "raw": slice(None)}[direction]
    x, y = vg[part], id_[part]
    if feature.startswith(("absI", "I_")):
        if len(y) == 0:
            return np.nan
        return {"absI_max": np.abs(y).max(), "absI_min": np.abs(y).min(), "I_max": y.max(), "I_min": y.min()}[
            feature
        ]
    if len(x) < 2:
        return np.nan

    def safe_diff(f: np.ndarray) -> np.ndarray:
        dx = np.diff(x)
        dx[np.abs(dx) < 1e-12] = 1e-12
        q = np.diff(f) / dx
        return np.concatenate([[q[0]], (q[:-1] + q[1:]) / 2, [q[-1]]])

    if feature == "gm_max":
        return float(np.abs(safe_diff(y)).max())
    if feature == "gm_min":
        return float(safe_diff(y).min())
    slope = safe_diff(np.log10(np.clip(np.abs(y), 1e-12, None)))
    return float(x[np.argmax(slope) if device_type == "N" else np.argmin(slope)])


def messy_chunk(seed: int) -> TransferChunk:
    """Ragged sweeps of random length and shape with NaN gaps, empty and one-point steps."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[list[float], list[float]]] = [([], []), ([0.1], [1e-6]), ([0.1, 0.2], [1e-7, 2e-7])]
    for _ in range(40):
        n_up, n_down = rng.integers(1, 30), rng.integers(0, 30)
        lo, hi = rng.uniform(-0.8, -0.2), rng.uniform(0.0, 0.6)
        vg = np.concatenate([np.linspace(lo, hi, n_up), np.linspace(hi, lo, n_down + 1)[1:]])
        if rng.random() < 0.3:
            vg = vg[::-1]  # down-first sweep
        id_ = sigmoid_device(vg, "N", v0=rng.uniform(-0.4, 0.2)) * rng.uniform(0.5, 2.0, vg.shape)
        gaps = rng.random(vg.shape) < 0.1
        id_[gaps & (rng.random(vg.shape) < 0.5)] = np.nan
        vg[gaps & ~np.isnan(id_)] = np.nan
        rows.append((vg.tolist(), id_.tolist()))
    return make_chunk(rows)


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("direction", ["forward", "reverse", "both"])
@pytest.mark.parametrize("device_type", ["N", "P"])
def test_messy_steps_match_single_step_reference(feature: str, direction: str, device_type: str) -> None:
    chunk = messy_chunk(seed=7)
    with np.errstate(invalid="ignore"):
        got = getattr(transfer, feature)(chunk, direction=direction, device_type=device_type)
    halves = ["forward", "reverse"] if direction == "both" else [direction]
    want = np.array(
        [
            [reference(chunk.vg[i], chunk.id[i], feature, half, device_type) for half in halves]
            for i in range(chunk.n_steps)
        ]
    )
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-12)
    missing_rows = set(np.flatnonzero(np.isnan(want).any(axis=1)).tolist())
    assert {step for step, _ in chunk.issues} == missing_rows
    assert {0, 1} <= missing_rows  # the empty and the one-point step


def test_bad_step_does_not_affect_its_neighbours() -> None:
    chunk = messy_chunk(seed=3)
    together = transfer.gm_max(chunk, direction="both")
    for i in range(chunk.n_steps):
        alone = transfer.gm_max(chunk.take(np.array([i])), direction="both")
        np.testing.assert_array_equal(alone[0], together[i])


def test_empty_half_gives_nan_and_a_report() -> None:
    chunk = make_chunk([([0.0, 0.5, 1.0], [1e-9, 1e-7, 1e-6]), SMALL])  # single-direction, then double
    got = transfer.gm_max(chunk, direction="reverse")
    assert np.isnan(got[0])
    assert got[1] == 1.0
    assert [s for s, _ in chunk.issues] == [0]
    assert "reverse" in chunk.issues[0][1]


def test_asymmetric_sweep_turns_at_the_extremum() -> None:
    # 11 points up, 4 down: the positional rule (15 - 1) // 2 = 7 would split inside the up-sweep.
    vg = np.concatenate([np.linspace(0.0, 1.0, 11), [0.9, 0.8, 0.7, 0.6]])
    id_ = vg**2
    chunk = make_chunk([(vg.tolist(), id_.tolist())])
    assert transfer.I_max(chunk, direction="forward")[0] == 1.0
    np.testing.assert_allclose(transfer.I_max(chunk, direction="reverse"), [0.81])
    np.testing.assert_allclose(transfer_coords.gm_max_coords(chunk, return_vg_only=True), [1.0])


def test_steps_below_the_log_clip_have_no_onset_and_a_report() -> None:
    # ln|Id| of a step whose |Id| never exceeds 1e-12 is the flat clip: Von is NaN and reported.
    # |Id| counts both signs (a negative Id above the clip is not flat) and skips NaN samples.
    vg = [0.0, 0.5, 1.0, 0.5, 0.0]
    chunk = make_chunk(
        [
            (vg, [1e-13, -1e-12, 5e-13, 0.0, -2e-13]),  # at or below the clip: flat
            (vg, [1e-13, -2e-12, 5e-13, 0.0, -2e-13]),  # above it only as a negative current
            (vg, [1e-13, np.nan, 5e-13, 2e-12, -2e-13]),  # above it after a NaN sample
        ]
    )
    von = transfer.Von(chunk, device_type="N")
    assert np.isnan(von[0])
    assert not np.isnan(von[1:]).any()
    assert [s for s, _ in chunk.issues] == [0]
    assert "log clip" in chunk.issues[0][1]


def test_all_empty_chunk() -> None:
    chunk = make_chunk([([], []), ([], [])])
    for feature in FEATURES:
        assert np.isnan(getattr(transfer, feature)(chunk)).all()
    assert np.isnan(transfer_coords.Von_coords(chunk)).all()


# --- device type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "expected", "reported"), [("P", "P", False), ("N", "N", False), (None, "N", True)]
)
def test_device_type_auto_reads_metadata(meta: str | None, expected: str, reported: bool) -> None:
    vg = double_sweep(-0.6, 0.4, 0.02)
    chunk = make_chunk([(vg.tolist(), sigmoid_device(vg, "P").tolist())], device_type=meta)
    explicit = make_chunk([(vg.tolist(), sigmoid_device(vg, "P").tolist())])
    np.testing.assert_array_equal(
        transfer.Von(chunk, device_type="auto"), transfer.Von(explicit, device_type=expected)
    )
    assert bool(chunk.issues) is reported


# --- sharing and declarations ----------------------------------------------------------------------


@pytest.mark.parametrize("general", [False, True], ids=["one-pass", "general"])
def test_derivatives_are_computed_once_per_chunk(general: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = make_chunk([SMALL, SMALL])
    if not general:  # clean symmetric sweeps: one compiled pass per derivative and reduction
        transfer.gm_max(chunk, direction="both")
        transfer_coords.gm_max_coords(chunk)
        transfer.Von(chunk, direction="both")
        transfer_coords.Von_coords(chunk, direction="reverse")
        assert not any(k[1] == "derivative" for k in chunk.memo)
        assert [k[2:] for k in chunk.memo if k[1] == "half extremes"] == [("gm", "absmax"), ("dlog", "max")]
        return
    monkeypatch.setattr(transfer, "_half_slope_extremes", lambda *args: None)
    transfer.gm_max(chunk, direction="both")
    first = chunk.memo[("transfer", "derivative", "gm")]
    transfer_coords.gm_max_coords(chunk)
    transfer.gm_min(chunk, direction="reverse")
    assert chunk.memo[("transfer", "derivative", "gm")] is first
    transfer.Von(chunk, direction="both")
    transfer_coords.Von_coords(chunk, direction="reverse")
    assert [k[2] for k in chunk.memo if k[1] == "derivative"] == ["gm", "dlog"]


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("transfer.gm_max", {}, Output.scalar()),
        ("transfer.gm_max", {"direction": "both"}, Output.vector(2)),
        ("transfer.Von", {"direction": "both"}, Output.vector(2)),
        ("transfer.absI_max", {}, Output.scalar()),
        ("transfer.gm_max_coords", {}, Output.vector(2)),
        ("transfer.Von_coords", {"return_vg_only": True}, Output.scalar()),
    ],
)
def test_output_declarations(name: str, params: dict[str, object], expected: Output) -> None:
    spec = REGISTRY[name]
    assert spec.output_for(spec.resolve_params(params)) == expected


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("transfer.gm_max", {"direction": "sideways"}),
        ("transfer.gm_max", {"device_type": "X"}),
        ("transfer.Von", {"direction": "raw"}),
        ("transfer.gm_max_coords", {"direction": "both"}),
        ("transfer.Von_coords", {"return_vg_only": True, "return_id_only": True}),
        ("transfer.absI_max", {"polarity": "N"}),
    ],
)
def test_invalid_parameters_are_rejected(name: str, params: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=name.split(".")[1] if "polarity" not in params else "unknown"):
        REGISTRY[name].resolve_params(params)


# --- parity with oect-infra ---------------------------------------------------------------------------


@pytest.mark.parametrize("polarity", ["N", "P"])
def test_parity_with_oect_infra(polarity: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # importing infra creates ./logs
    batch = pytest.importorskip("infra.oect_transfer").BatchTransfer
    rng = np.random.default_rng(5)
    n = 12
    vg = np.tile(double_sweep(-0.6, 0.4, 0.01), (n, 1)) + rng.normal(0.0, 1e-3, (n, 1))
    id_ = sigmoid_device(vg, polarity, v0=rng.uniform(-0.3, 0.1, (n, 1)))
    id_ *= 1 + rng.normal(0.0, 1e-3, id_.shape)
    # infra's extractors round to float32 first; do the same to both sides to compare the math.
    vg, id_ = vg.astype(np.float32).astype(np.float64), id_.astype(np.float32).astype(np.float64)
    ref = batch(np.stack([vg, id_], axis=1), device_type=polarity)
    chunk = TransferChunk(step_index=np.arange(n), vg=vg, id=id_, lengths=np.full(n, vg.shape[1]))
    pairs = [
        (transfer.gm_max(chunk, direction="both"), [ref.absgm_max.forward, ref.absgm_max.reverse]),
        (transfer.gm_min(chunk, direction="both"), [ref.gm_min.forward, ref.gm_min.reverse]),
        (transfer.Von(chunk, direction="both", device_type=polarity), [ref.Von.forward, ref.Von.reverse]),
        (transfer.absI_max(chunk), [ref.absI_max.raw]),
        (transfer.absI_min(chunk), [ref.absI_min.raw]),
        (transfer.I_max(chunk), [ref.I_max.raw]),
        (transfer.I_min(chunk, direction="both"), [ref.I_min.forward, ref.I_min.reverse]),
        (transfer_coords.gm_max_coords(chunk, direction="reverse"), [ref.absgm_max.reverse_coords]),
        (transfer_coords.Von_coords(chunk, device_type=polarity), [ref.Von.forward_coords]),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.reshape(n, -1), np.column_stack(theirs), rtol=1e-5, atol=0)
