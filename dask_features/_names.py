"""Validation of user-supplied names, one function per kind of name.

Every check is a full match of the whole string (``re.fullmatch``): ``re.match`` with ``$`` accepts a
trailing newline, so ``"gm\\n"`` passed as a feature or config name and became a column or folder
name. Control characters, separators and ``..`` are outside every allowed alphabet.
"""

from __future__ import annotations

import re

__all__ = ["is_config_name", "is_feature_name"]

_FEATURE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONFIG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_feature_name(name: object) -> bool:
    """True for an identifier (letters, digits, ``_``; not starting with a digit): a column name."""
    return isinstance(name, str) and _FEATURE.fullmatch(name) is not None


def is_config_name(name: object) -> bool:
    """True for 1-128 letters, digits, ``.``, ``_``, ``-`` starting with a letter or digit: a folder name."""
    return isinstance(name, str) and _CONFIG.fullmatch(name) is not None and name not in (".", "..")
