"""Paths as a shell user expects them, and plain errors when an output folder is not what was meant.

Relative paths are relative to the working directory (never to a catalog's or config's folder).
:func:`check_output_folder` turns "nothing found" into an error that names what *is* there, so a
misspelled config name or output folder is not mistaken for an empty result.
"""

from __future__ import annotations

import os
from pathlib import Path

from dask_features.errors import OutputNotFoundError

__all__ = ["check_output_folder", "resolve"]


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute against the working directory (``~`` expanded, symlinks resolved)."""
    return Path(path).expanduser().resolve()


def check_output_folder(out_dir: str | os.PathLike[str], folder: str) -> None:
    """Raise unless ``out_dir/folder`` is a folder of extracted features.

    Parameters
    ----------
    out_dir : str or path-like
        The ``out_dir`` an extraction wrote to.
    folder : str
        The config's folder name inside it.

    Raises
    ------
    OutputNotFoundError
        ``out_dir`` does not exist, or holds no output of that config (the message lists the configs
        it does hold and the closest match).
    """
    root = Path(out_dir)
    if not root.is_dir():
        raise OutputNotFoundError(f"{out_dir}: no such output folder (relative to {os.getcwd()})")
    if (root / folder).is_dir():
        return
    have = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "steps").is_dir())
    import difflib  # only an error message needs it

    close = difflib.get_close_matches(folder, have, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = f"it holds {', '.join(have)}" if have else "it holds no extracted features"
    raise OutputNotFoundError(f"{out_dir}: no output of config {folder!r} ({listing}){hint}")
