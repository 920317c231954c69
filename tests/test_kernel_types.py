"""Argument checks of compiled kernel signatures (``dask_features._kernel_types``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dask_features._kernel_types import parse_signature
from dask_features.errors import InvalidArgumentError

SIGNATURE = "Tuple((f8[::1], i8))(f8[:, ::1], i8[:], f8, i8, b1)"


def _good() -> list[Any]:
    return [np.zeros((2, 3)), np.arange(4)[::2], 1.5, 3, True]


def test_the_declared_types_pass() -> None:
    checks = parse_signature(SIGNATURE)
    assert len(checks) == 5
    assert all(c(a) for c, a in zip(checks, _good(), strict=True))
    assert all(
        c(a)
        for c, a in zip(
            checks,
            [np.ones((0, 1)), np.zeros(1, np.int64), np.float64(2), np.int64(1), np.True_],
            strict=True,
        )
    )


def _readonly() -> np.ndarray:
    a = np.zeros((2, 3))
    a.flags.writeable = False
    return a


@pytest.mark.parametrize(
    ("position", "value"),
    [
        (0, np.zeros((2, 3), np.float32)),
        (0, np.zeros((3, 2)).T),
        (0, np.zeros((2, 6))[:, ::2]),
        (0, np.zeros(6)),
        (0, np.zeros((2, 3), ">f8")),
        (0, _readonly()),
        (0, np.ma.zeros((2, 3))),
        (0, [[0.0] * 3] * 2),
        (1, np.arange(4, dtype=np.int32)),
        (2, 1),
        (2, np.float32(1.5)),
        (3, 3.0),
        (3, True),
        (3, np.int32(3)),
        (4, 1),
        (4, None),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, int) else str(v),
)
def test_anything_else_fails_its_check(position: int, value: Any) -> None:
    args = _good()
    args[position] = value
    checks = parse_signature(SIGNATURE)
    assert not checks[position](args[position])


@pytest.mark.parametrize("signature", ["f8(f4[::1])", "f8(f8[::1, :])", "void(i4)", "f8[::1]"])
def test_unsupported_signatures_are_refused(signature: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_signature(signature)
