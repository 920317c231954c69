"""Configs travel to a cluster's processes as bytes and are unpickled once per process; results
the client reads travel back as bytes."""

from __future__ import annotations

import pickle

import numpy as np

import dask_features as dfe
from dask_features.engine import client_stream
from dask_features.engine.shipping import PackedConfig, PackedResult, call_packed, call_with_config, unpacked
from dask_features.engine.tasks import Failure
from dask_features.extractors import Registry, register


def _local_config() -> dfe.FeatureConfig:
    registry = Registry()

    @register("test.ship_lengths", source="transfer", registry=registry)
    def lengths(chunk):  # type: ignore[no-untyped-def]  # local: only picklable by value
        return chunk.lengths.astype(float)

    return dfe.load_config(
        {
            "name": "shipped",
            "features": [
                {"name": "n", "extractor": "test.ship_lengths"},
                {"name": "twice", "func": "lambda n: 2 * n", "input": "n"},
            ],
        },
        registry=registry,
    )


def test_a_packed_config_unpacks_to_the_same_config_once_per_process() -> None:
    for config in (dfe.load_config("v2_mixed"), _local_config()):
        packed = pickle.loads(pickle.dumps(PackedConfig.pack(config)))  # as a task argument travels
        first = packed.unpack()
        assert first.hash == config.hash
        assert [f.canonical() for f in first.features] == [f.canonical() for f in config.features]
        assert pickle.loads(pickle.dumps(packed)).unpack() is first  # unpickled once
    other = PackedConfig.pack(dfe.load_config("transient_tau"))
    assert other.digest != packed.digest
    assert other.unpack().name == "transient_tau"


def test_call_with_config_passes_the_config_second() -> None:
    config = dfe.load_config("v2_transfer_basic")
    got = call_with_config(lambda a, c, b: (a, c.name, b), 1, PackedConfig.pack(config), np.int64(2))
    assert got == (1, "v2_transfer_basic", 2)


def test_a_packed_result_is_the_value_after_its_trip() -> None:
    config = PackedConfig.pack(dfe.load_config("v2_transfer_basic"))
    value = [{"n": np.arange(3.0)}, Failure("x"), None]
    packed = call_packed(lambda first, c, *rest: [*first, c.name, *rest], value, config, 7)
    assert isinstance(packed, PackedResult)
    got = unpacked(pickle.loads(pickle.dumps(packed)))  # as distributed moves it
    assert got[0]["n"].tolist() == [0.0, 1.0, 2.0]
    assert got[1:] == [Failure("x"), None, "v2_transfer_basic", 7]
    assert unpacked(got) is got  # a value that was not packed (a task failure) is left as it is


def test_a_result_the_client_cannot_read_is_that_tasks_failure() -> None:
    broken = PackedResult(b"not a pickle")
    failure = client_stream._unpack(broken)
    assert isinstance(failure, Failure)
    assert "cannot read the task's result: UnpicklingError" in failure.reason
