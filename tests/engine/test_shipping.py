"""Configs travel to a cluster's processes as bytes and are unpickled once per process."""

from __future__ import annotations

import pickle

import numpy as np

import dask_features as dfe
from dask_features.engine.shipping import PackedConfig, call_with_config
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
