"""Catalog database schema, and the JSON round trip of an Experiment stored in a row."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from dask_features.io.hdf5 import Experiment

SCHEMA_VERSION = 1
"""Stored in ``PRAGMA user_version``; a catalog written by a newer schema is refused."""

_SCHEMA = """
CREATE TABLE experiments (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    file_size INTEGER NOT NULL,
    file_mtime_ns INTEGER NOT NULL,
    format_version TEXT NOT NULL,
    chip_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    test_id TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT,
    created_at TEXT,
    completed_at TEXT,
    device_type TEXT,
    n_transfer_steps INTEGER NOT NULL,
    n_transient_steps INTEGER NOT NULL,
    transfer_max_points INTEGER NOT NULL,
    transient_total_points INTEGER NOT NULL,
    has_transient_index INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    scanned_at TEXT NOT NULL
);
CREATE INDEX experiments_chip ON experiments (chip_id, device_id);
CREATE INDEX experiments_test ON experiments (test_id);
CREATE INDEX experiments_status ON experiments (status);
CREATE TABLE unreadable (
    path TEXT PRIMARY KEY,
    file_size INTEGER NOT NULL,
    file_mtime_ns INTEGER NOT NULL,
    error TEXT NOT NULL,
    reason TEXT NOT NULL,
    scanned_at TEXT NOT NULL
);
CREATE TABLE extractions (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    config_name TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    output_path TEXT,
    status TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    seconds REAL,
    message TEXT,
    source_size INTEGER NOT NULL,
    source_mtime_ns INTEGER NOT NULL,
    UNIQUE (experiment_id, config_hash)
);
CREATE INDEX extractions_hash ON extractions (config_hash, status);
"""

# Columns of `experiments` filled from the Experiment attribute of the same name.
_COLUMNS = (
    "file_size",
    "file_mtime_ns",
    "format_version",
    "chip_id",
    "device_id",
    "test_id",
    "description",
    "status",
    "created_at",
    "completed_at",
    "device_type",
    "n_transfer_steps",
    "n_transient_steps",
    "transfer_max_points",
    "transient_total_points",
    "has_transient_index",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _to_json(exp: Experiment) -> str:
    state = {f.name: getattr(exp, f.name) for f in dataclasses.fields(exp) if f.name != "path"}
    return json.dumps(state, default=str, ensure_ascii=False)


def _tuple_fields() -> frozenset[str]:
    # JSON turns tuples into lists; these fields must come back as tuples (hashable, as the reader makes them).
    return frozenset(f.name for f in dataclasses.fields(Experiment) if str(f.type).startswith("tuple"))


def _from_json(path: str, metadata: str) -> Experiment:
    state: dict[str, Any] = json.loads(metadata)
    known = {f.name for f in dataclasses.fields(Experiment)}
    for name in _tuple_fields() & state.keys():
        if isinstance(state[name], list):
            state[name] = tuple(state[name])
    return Experiment(path=path, **{k: v for k, v in state.items() if k in known})
