"""Fixtures of the io tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.io._chunked import values, write


@pytest.fixture
def lab_file(tmp_path: Path) -> Path:
    """A dataset stored as oect-infra stores transfer data (gzip, shuffle, fletcher32)."""
    path = tmp_path / "lab.h5"
    write(path, values((60, 2, 45)), chunks=(8, 1, 10), compression="gzip", shuffle=True, fletcher32=True)
    return path
