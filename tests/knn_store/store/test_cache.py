from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import knn_store
from knn_store import (
    CorruptEntryError,
    EntryNotFoundError,
    InvalidParameterError,
    KNNStore,
    KnnStoreError,
    load,
)
from knn_store.neighbors import exact_knn, prepare_features
from knn_store.store.keys import LAYOUT_VERSION
from knn_store.store.memo import clear_memo


def _groups(ref: knn_store.EntryRef) -> list[str]:
    return sorted(p for p in os.listdir(ref.entry_dir) if p.endswith(".zarr"))


@pytest.mark.parametrize("backend", ["numpy", "sklearn"])
@pytest.mark.parametrize("fixture", ["features", "tied_features"])
def test_slicing_equals_direct_knn_at_every_k(tmp_path: Path, backend: str, fixture: str, request) -> None:
    x = request.getfixturevalue(fixture)
    store = KNNStore(tmp_path, backend=backend)
    ref = store.ensure(x, 21)
    prepared = prepare_features(x, "euclidean")
    for k in range(1, 22):
        nb, ds = load(ref, k)
        direct_nb, direct_ds = exact_knn(prepared, k, backend=backend)
        np.testing.assert_array_equal(nb, direct_nb)
        np.testing.assert_array_equal(ds, direct_ds)
    assert _groups(ref) == ["k0021.zarr"]


def test_entry_layout_and_attributes(tmp_path: Path, features: np.ndarray) -> None:
    import zarr

    ref = KNNStore(tmp_path, backend="numpy").ensure(features, 8, source={"epoch": 3})
    g = zarr.open_group(ref.group, mode="r")
    assert g["neighbors"].dtype == np.int32
    assert g["neighbors"].shape == (300, 8)
    assert g["distances"].dtype == np.float32
    attrs = dict(g.attrs)
    assert attrs["complete"] is True
    assert attrs["k_max"] == 8
    assert attrs["n"] == 300
    assert attrs["d"] == 16
    assert attrs["conventions"]["self"] == "excluded-by-index"
    assert attrs["conventions"]["order"] == "distance,index"
    assert attrs["source"] == {"epoch": 3}
    assert attrs["key"] == ref.key


def test_smaller_k_is_a_hit_and_larger_k_supersedes(tmp_path: Path, features: np.ndarray, caplog) -> None:
    store = KNNStore(tmp_path)
    with caplog.at_level(logging.INFO, logger="knn_store.store"):
        ref10 = store.ensure(features, 10)
        assert store.ensure(features, 4) == ref10
        computed = [r for r in caplog.records if r.getMessage().startswith("computed kNN")]
        assert len(computed) == 1
        ref15 = store.ensure(features, 15)
    assert ref15.entry_dir == ref10.entry_dir
    assert _groups(ref15) == ["k0015.zarr"]
    # The old reference still works: it re-resolves to the superseding group.
    nb, _ = load(ref10, 10)
    np.testing.assert_array_equal(nb, load(ref15, 10)[0])


def test_changed_features_give_a_new_entry(tmp_path: Path, features: np.ndarray) -> None:
    store = KNNStore(tmp_path)
    ref = store.ensure(features, 5)
    retrained = features.copy()
    retrained[0, 0] += 1e-3
    ref2 = store.ensure(retrained, 5)
    assert ref2.key != ref.key
    assert ref2.entry_dir != ref.entry_dir
    assert store.ensure(features, 5, metric="cosine").key not in (ref.key, ref2.key)
    assert len(store.info()) == 3


def test_ref_is_small_and_loads_in_another_process(tmp_path: Path, features: np.ndarray) -> None:
    ref = KNNStore(tmp_path).ensure(features, 6)
    assert len(pickle.dumps(ref)) < 1000
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        nb, ds = pool.apply(load, (ref, 4))
    np.testing.assert_array_equal(nb, load(ref, 4)[0])
    np.testing.assert_array_equal(ds, load(ref, 4)[1])


def test_loaded_arrays_are_read_only(tmp_path: Path, features: np.ndarray) -> None:
    nb, ds = KNNStore(tmp_path).knn(features, 3)
    with pytest.raises(ValueError, match="read-only"):
        nb[0, 0] = 1
    assert nb.shape == ds.shape == (300, 3)


def _corrupt(group: Path, how: str) -> None:
    chunk = group / "neighbors" / "c" / "0" / "0"
    if how == "truncated-chunk":
        chunk.write_bytes(chunk.read_bytes()[:100])
    elif how == "deleted-chunk":
        (group / "distances" / "c" / "0" / "0").unlink()
    elif how == "flipped-byte":
        data = bytearray(chunk.read_bytes())
        data[10] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif how == "truncated-metadata":
        meta = group / "zarr.json"
        meta.write_bytes(meta.read_bytes()[:40])
    elif how == "incomplete":
        import zarr

        zarr.open_group(group, mode="r+").attrs["complete"] = False
    elif how == "neighbors-a-group":
        import zarr

        shutil.rmtree(group / "neighbors")
        zarr.open_group(group, mode="r+").create_group("neighbors")
    elif how == "checksums-not-a-record":
        import zarr

        zarr.open_group(group, mode="r+").attrs["checksums"] = ["not", "a", "record"]


CORRUPTIONS = [
    "truncated-chunk",
    "deleted-chunk",
    "flipped-byte",
    "truncated-metadata",
    "incomplete",
    "checksums-not-a-record",
    "neighbors-a-group",
]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupt_entry_is_detected_and_recomputed(tmp_path: Path, features: np.ndarray, how: str) -> None:
    store = KNNStore(tmp_path)
    ref = store.ensure(features, 7)
    good = [a.copy() for a in load(ref, 7)]
    clear_memo()
    _corrupt(Path(ref.group), how)
    with pytest.raises(CorruptEntryError, match=Path(ref.group).name):
        load(ref, 7)
    ref2 = store.ensure(features, 7)
    assert ref2.group == ref.group
    clear_memo()
    for a, b in zip(load(ref2, 7), good, strict=True):
        np.testing.assert_array_equal(a, b)


def test_temporary_store_is_removed_after_an_exception(features: np.ndarray) -> None:
    seen: list[Path] = []

    def failing_job() -> None:
        with KNNStore.temporary() as store:
            seen.append(store.root)
            store.ensure(features, 3)
            assert (store.root / f"v{LAYOUT_VERSION}").is_dir()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_job()
    assert len(seen) == 1
    assert not seen[0].exists()


def test_prune_is_lru_and_respects_grace(tmp_path: Path, features: np.ndarray) -> None:
    store = KNNStore(tmp_path)
    refs = [store.ensure(features + i, 5) for i in range(3)]
    now = os.path.getmtime(Path(refs[0].entry_dir) / "last_access")
    for age, ref in zip((300, 200, 100), refs, strict=True):  # refs[0] is the least recently used
        os.utime(Path(ref.entry_dir) / "last_access", (now - age, now - age))
    one_entry = max(e.bytes for e in store.info())
    assert store.prune(max_bytes=one_entry * 2, grace=1000) == []  # everything is within the grace period
    assert store.prune(max_bytes=one_entry * 2, grace=0) == [refs[0].key]
    assert store.prune(max_age=150, grace=0) == [refs[1].key]
    assert [e.key for e in store.info()] == [refs[2].key]
    with pytest.raises(EntryNotFoundError, match="evicted"):
        load(refs[0], 5)


def test_clear_and_info(tmp_path: Path, features: np.ndarray) -> None:
    store = KNNStore(f"file://{tmp_path}")
    store.ensure(features, 4)
    [info] = store.info()
    assert info.k_max == (4,)
    assert info.n == 300
    assert info.d == 16
    assert info.bytes > 300 * 4 * 8
    assert store.clear() == 1
    assert store.info() == []
    assert store.lookup(features, 4) is None


@pytest.mark.parametrize(
    ("root", "match"),
    [("nosuchproto://bucket/knn", "fsspec"), ("bad\x00root", "NUL")],
    ids=["protocol", "nul"],
)
def test_unsupported_roots(root: str, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        KNNStore(root)


def test_errors_are_both_package_and_builtin_types(tmp_path: Path, features: np.ndarray) -> None:
    store = KNNStore(tmp_path)
    with pytest.raises(KnnStoreError):
        store.ensure(features, 0)
    with pytest.raises(ValueError, match="k_max"):
        store.ensure(features, 300)
    ref = store.ensure(features, 3)
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        load(ref, 4)
    store.clear()
    with pytest.raises(FileNotFoundError):
        load(ref, 2)


def test_a_group_that_lost_its_metadata_is_recomputed(tmp_path: Path, features: np.ndarray) -> None:
    # A group directory without zarr.json (a half-deleted or half-copied entry) used to make every
    # ensure() at that k_max fail with "vanished or failed verification after publishing": the lookup
    # took it for a group being superseded, and the publish for a racing writer's group.
    store = KNNStore(tmp_path)
    ref = store.ensure(features, 7)
    good = [a.copy() for a in load(ref, 7)]
    (Path(ref.group) / "zarr.json").unlink()
    clear_memo()
    ref2 = store.ensure(features, 7)
    assert ref2.group == ref.group
    for a, b in zip(load(ref2, 7), good, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "bad", [0, -1, True, 3.0, "3", None, 10**400], ids=["0", "-1", "bool", "float", "text", "none", "huge"]
)
def test_k_and_k_max_must_be_integers_in_range(tmp_path: Path, features: np.ndarray, bad: object) -> None:
    store = KNNStore(tmp_path)
    with pytest.raises(InvalidParameterError, match=r"k_max .*must be an integer"):
        store.ensure(features, bad)  # type: ignore[arg-type]
    # knn() names the argument it was given (its errors said k_max for a bad k; k_max=0 was skipped).
    with pytest.raises(InvalidParameterError, match=r"^k( must|_max \(the largest k asked for\))"):
        store.knn(features, bad)  # type: ignore[arg-type]
    if bad is not None:
        with pytest.raises(InvalidParameterError, match=r"^k_max .*must be an integer"):
            store.knn(features, 3, k_max=bad)  # type: ignore[arg-type]
    ref = store.ensure(features, 7)
    for k in (bad, 8):
        with pytest.raises(InvalidParameterError, match="k must be an integer"):
            load(ref, k)  # type: ignore[arg-type]
    assert load(ref, np.int64(7))[0].shape == (features.shape[0], 7)


def test_a_knn_that_would_not_fit_in_memory_is_refused_before_computing(
    tmp_path: Path, features: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    n = features.shape[0]
    small = type("Memory", (), {"available": 4 * n * 5 * 24})()  # room for k_max=5, not for n - 1
    monkeypatch.setattr(psutil, "virtual_memory", lambda: small)
    store = KNNStore(tmp_path)
    with pytest.raises(InvalidParameterError, match=f"k_max={n - 1} on"):
        store.ensure(features, n - 1)
    assert store.info() == []  # nothing computed, nothing published
    ref = store.ensure(features, 5)
    assert load(ref, 5)[0].shape == (n, 5)
