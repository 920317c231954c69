"""Reading feature matrices and labels from ``.npy``, ``.npz``, Zarr and Parquet files (CLI input)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from knn_store.errors import InvalidFeaturesError

__all__ = ["read_features", "read_labels", "read_mask"]

_LABEL_COLUMNS = ("label", "labels")
_MASK_COLUMNS = ("labeled", "labeled_mask")


def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or (path.is_dir() and (path / "zarr.json").exists())


def _read_table(path: Path) -> dict[str, np.ndarray]:
    """Every array a file holds, by name (a bare array is called ``features``)."""
    if not path.exists():
        raise InvalidFeaturesError(f"input file {path} does not exist")
    try:
        if path.suffix == ".npy":
            return {"features": np.load(path, allow_pickle=False)}
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return {name: z[name] for name in z.files}
        if _is_zarr(path):
            import zarr

            node = zarr.open(str(path), mode="r")
            if isinstance(node, zarr.Array):
                return {"features": np.asarray(node[...])}
            return {name: np.asarray(arr[...]) for name, arr in node.arrays()}
        if path.suffix in (".parquet", ".pq"):
            import pandas as pd

            df = pd.read_parquet(path)
            out = {c: df.pop(c).to_numpy() for c in (*_LABEL_COLUMNS, *_MASK_COLUMNS) if c in df.columns}
            numeric = df.select_dtypes("number")
            if numeric.shape[1]:
                out["features"] = numeric.to_numpy(dtype=np.float32)
            return out
    except InvalidFeaturesError:
        raise
    except Exception as exc:
        raise InvalidFeaturesError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    raise InvalidFeaturesError(
        f"unsupported input format {path.suffix!r} for {path}: use .npy, .npz, .zarr or .parquet"
    )


def _pick(table: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray | None:
    for name in names:
        if name in table:
            return table[name]
    return None


def read_features(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read ``(features, labels or None, labeled_mask or None)`` from one file.

    ``.npy`` holds the (n, d) matrix only; ``.npz`` and Zarr groups hold arrays ``features`` and optionally
    ``labels``/``labeled_mask``; a Zarr array is the matrix; Parquet uses its numeric columns as features and
    optional columns ``label`` and ``labeled``.
    """
    table = _read_table(Path(path))
    x = _pick(table, ("features", "x", "X"))
    if x is None:
        raise InvalidFeaturesError(f"{path} holds no 'features' array (found {sorted(table)})")
    return x, _pick(table, ("labels", "label", "y")), _pick(table, _MASK_COLUMNS)


def read_labels(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``(labels, labeled_mask or None)``; a ``.npy`` file is the labels vector alone."""
    table = _read_table(Path(path))
    if Path(path).suffix == ".npy":
        return table["features"], None
    labels = _pick(table, ("labels", "label", "y"))
    if labels is None:
        raise InvalidFeaturesError(
            f"{path} holds no 'labels' array or 'label' column (found {sorted(table)})"
        )
    return labels, _pick(table, _MASK_COLUMNS)


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a labeled mask; a ``.npy`` file is the mask vector alone."""
    table = _read_table(Path(path))
    if Path(path).suffix == ".npy":
        return table["features"]
    mask = _pick(table, _MASK_COLUMNS)
    if mask is None:
        raise InvalidFeaturesError(
            f"{path} holds no 'labeled_mask' array or 'labeled' column (found {sorted(table)})"
        )
    return mask
