"""A source file that changes is never silently mixed or skipped (issue case 6)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import dask_features as dfe
from dask_features import synth
from dask_features.engine.identity import SourceIdentity, file_digest
from dask_features.engine.output import read_metadata
from dask_features.extractors import REGISTRY as GLOBAL_REGISTRY
from dask_features.extractors import Registry, register
from dask_features.io.chunks import TransferChunk

SMALL = {"n_transfer": 6, "n_transient": 0, "sweep_points": 41, "compression": None}
CONFIG = {"name": "imax", "features": [{"name": "imax", "extractor": "transfer.absI_max"}]}


def _scale_in_place(path: Path, factor: float) -> None:
    """Change the measured currents without changing the file's size, then restore its mtime."""
    st = os.stat(path)
    with h5py.File(path, "r+") as f:
        data = f["transfer/measurement_data"]
        data[:, 1, :] = data[:, 1, :] * factor  # contiguous, uncompressed: rewritten in place
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_same_size_and_restored_mtime_is_recomputed(tmp_path: Path) -> None:
    source = synth.write_experiment(tmp_path / "data" / "exp.h5", seed=3, **SMALL)
    out = tmp_path / "out"
    first = dfe.extract(source, CONFIG, out, scheduler="sync", progress=False)
    before = pd.read_parquet(first.successful[str(source)])["imax"]
    _scale_in_place(source, 2.0)
    with pytest.warns(dfe.IncompleteOutputWarning, match="1 were computed from files changed"):
        assert dfe.read_features(out, CONFIG).attrs["stale"] == [str(source)]
    again = dfe.extract(source, CONFIG, out, scheduler="sync", progress=False)
    assert list(again.successful) == [str(source)], again.summary()  # used to be "skipped (up to date)"
    after = pd.read_parquet(again.successful[str(source)])["imax"]
    np.testing.assert_allclose(after, 2 * before)
    # Unchanged content (even with new times) is still up to date.
    os.utime(source)
    assert dfe.extract(source, CONFIG, out, scheduler="sync", progress=False).skipped == [str(source)]


# An extractor that rewrites its own source file after reading the chunk: the file changes between
# the plan and the write, as when an acquisition program is still appending to it.
REGISTRY = Registry()
REGISTRY.update(GLOBAL_REGISTRY)


@register("test.rewrite_source", source="transfer", registry=REGISTRY)
def rewrite_source(chunk: TransferChunk) -> np.ndarray:
    """Valid points per sweep; scales the currents of files named ``exp.h5`` on the way."""
    if Path(chunk.meta.path).name == "exp.h5":
        _scale_in_place(Path(chunk.meta.path), 3.0)
    return chunk.lengths.astype(float)


def test_file_changed_during_extraction_is_reported_not_written(tmp_path: Path) -> None:
    source = synth.write_experiment(tmp_path / "data" / "exp.h5", seed=4, **SMALL)
    other = synth.write_experiment(tmp_path / "data" / "other.h5", seed=5, **SMALL)
    config = dfe.load_config(
        {"name": "racy", "features": [{"name": "n", "extractor": "test.rewrite_source"}]}, registry=REGISTRY
    )
    out = tmp_path / "out"
    res = dfe.extract([source, other], config, out, scheduler="sync", progress=False, chunk_steps=2)
    assert list(res.failed) == [str(source)]
    assert "changed while it was extracted" in res.failed[str(source)]
    assert list(res.successful) == [str(other)]
    assert [p.stem for p in (out / "racy").rglob("*.parquet")] == ["other"]


def test_plan_records_stat_and_the_writer_records_the_digest(tmp_path: Path) -> None:
    source = synth.write_experiment(tmp_path / "data" / "exp.h5", seed=6, **SMALL)
    planned = SourceIdentity.planned(source)
    assert planned.digest is None
    with pytest.raises(ValueError, match="no digest"):
        planned.as_metadata()
    confirmed = planned.confirmed(source)
    assert confirmed is not None
    assert confirmed.digest == file_digest(source)
    out = tmp_path / "out"
    res = dfe.extract(source, CONFIG, out, scheduler="sync", progress=False)
    meta = read_metadata(res.successful[str(source)])
    assert meta["source_digest"] == file_digest(source)
    # Without a planned digest, any move of the stat signature counts as a change.
    os.utime(source)
    assert planned.confirmed(source) is None
    assert not planned.unchanged(source)


def test_digests_are_xxh3_and_sha1_digests_of_earlier_versions_still_count(tmp_path: Path) -> None:
    import hashlib

    import xxhash

    source = synth.write_experiment(tmp_path / "data" / "exp.h5", seed=7, **SMALL)
    data = source.read_bytes()
    assert file_digest(source) == "xxh3_128:" + xxhash.xxh3_128(data).hexdigest()
    assert file_digest(source, "sha1") == hashlib.sha1(data).hexdigest()
    current = SourceIdentity.planned(source).confirmed(source)
    assert current is not None
    # An output of an earlier version recorded a bare SHA-1; unknown algorithms never match.
    earlier = replace(current, digest=hashlib.sha1(data).hexdigest())
    unknown = replace(current, digest="md5:" + hashlib.md5(data).hexdigest())
    os.utime(source, ns=(current.mtime_ns + 10**9, current.mtime_ns + 10**9))  # signature moves, content not
    assert current.unchanged(source)
    assert earlier.unchanged(source)
    assert not unknown.unchanged(source)
    _scale_in_place(source, 2.0)
    assert not current.unchanged(source)
    assert not earlier.unchanged(source)
