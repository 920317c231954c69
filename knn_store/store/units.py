"""Parsing of human-readable sizes ("20GB") and durations ("30d") for ``prune`` and the CLI."""

from __future__ import annotations

import re

from knn_store.errors import InvalidParameterError

__all__ = ["parse_bytes", "parse_seconds"]

_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: int | float | str) -> int:
    """Convert ``1_000``, ``"500MB"`` or ``"2GiB"`` to a byte count (decimal and binary units)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise InvalidParameterError(f"byte size must be >= 0, got {value!r}")
        return int(value)
    m = _NUMBER.match(str(value))
    if not m or m.group(2).lower() not in _BYTE_UNITS:
        raise InvalidParameterError(f"cannot parse byte size {value!r}; use e.g. 500MB, 2GiB or 1000000")
    return int(float(m.group(1)) * _BYTE_UNITS[m.group(2).lower()])


def parse_seconds(value: int | float | str) -> float:
    """Convert ``3600``, ``"90s"``, ``"12h"`` or ``"30d"`` to seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise InvalidParameterError(f"duration must be >= 0, got {value!r}")
        return float(value)
    m = _NUMBER.match(str(value))
    if not m or m.group(2).lower() not in _TIME_UNITS:
        raise InvalidParameterError(f"cannot parse duration {value!r}; use e.g. 90s, 12h, 30d or 3600")
    return float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]
