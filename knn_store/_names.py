"""Validation of user-supplied names that may end up in paths or file names (feature-set names)."""

from __future__ import annotations

import re

from knn_store.errors import InvalidNameError

__all__ = ["check_name"]

_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=@,-]{0,199}$")


def check_name(name: object, what: str = "feature-set name") -> str:
    """Return ``name`` if it is a safe single path component, else raise :class:`InvalidNameError`.

    Allowed: 1-200 characters from letters, digits and ``_ . + = @ , -``, not starting with a dot or dash,
    so ``..``, separators, absolute paths, NUL and hidden names are all rejected.
    """
    if not isinstance(name, str) or _SAFE.fullmatch(name) is None or name in (".", ".."):
        raise InvalidNameError(
            f"{what} {name!r} is not allowed: use 1-200 characters from letters, digits and '_.+=@,-', "
            "not starting with '.' or '-' (no path separators, '..', or NUL)"
        )
    return name
