"""Where on the sweep the transfer extremes lie: ``transfer.gm_max_coords`` and ``transfer.Von_coords``.

Each gives the ``(Vg [V], Id [A])`` point of a sweep half at which ``transfer.gm_max`` or
``transfer.Von`` (:mod:`dask_features.extractors.transfer`) is found, or one of its two coordinates.
The point is a measured sample of the sweep (first occurrence on ties), not an interpolation.

They read the same per-chunk extremes as those features (:func:`~.transfer.extreme_feature`,
:func:`~.transfer.onset`), so a config that asks for a value and its point pays for the search
once, and a half without a value gives NaN coordinates with the same error record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from dask_features.extractors.registry import Output, register
from dask_features.extractors.transfer import DeviceType, extreme_feature, onset
from dask_features.io.chunks import TransferChunk

__all__ = ["Von_coords", "gm_max_coords"]

Half = Literal["forward", "reverse"]


def _coords_output(params: Mapping[str, Any]) -> Output:
    return (
        Output.scalar() if params.get("return_vg_only") or params.get("return_id_only") else Output.vector(2)
    )


def _check_coords(params: Mapping[str, Any]) -> None:
    if params["return_vg_only"] and params["return_id_only"]:
        raise ValueError("return_vg_only and return_id_only cannot both be true")


def _coords_part(return_vg_only: bool, return_id_only: bool) -> Literal["vg", "id", "coords"]:
    return "vg" if return_vg_only else "id" if return_id_only else "coords"


@register("transfer.gm_max_coords", source="transfer", output=_coords_output, check=_check_coords)
def gm_max_coords(
    chunk: TransferChunk,
    *,
    direction: Half = "forward",
    device_type: DeviceType = "N",
    return_vg_only: bool = False,
    return_id_only: bool = False,
) -> np.ndarray:
    """``(Vg [V], Id [A])`` at the first point of maximum ``|gm|`` of a half (see :func:`gm_max`).

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"forward", "reverse"}, default "forward"
        Half of the sweep.
    device_type : {"N", "P", "auto"}, default "N"
        Accepted for config compatibility; unused.
    return_vg_only, return_id_only : bool, default False
        Return only the Vg or only the Id column (not both at once).

    Returns
    -------
    ndarray of float64, shape (n, 2) or (n,)
    """
    return extreme_feature(chunk, "gm", direction, "absmax", _coords_part(return_vg_only, return_id_only))


@register("transfer.Von_coords", source="transfer", output=_coords_output, check=_check_coords)
def Von_coords(
    chunk: TransferChunk,
    *,
    direction: Half = "forward",
    device_type: DeviceType = "N",
    return_vg_only: bool = False,
    return_id_only: bool = False,
) -> np.ndarray:
    """``(Vg [V], Id [A])`` at :func:`Von` of a half.

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"forward", "reverse"}, default "forward"
        Half of the sweep.
    device_type : {"N", "P", "auto"}, default "N"
        As for :func:`Von`.
    return_vg_only, return_id_only : bool, default False
        Return only the Vg or only the Id column (not both at once).

    Returns
    -------
    ndarray of float64, shape (n, 2) or (n,)
    """
    return onset(chunk, direction, device_type, _coords_part(return_vg_only, return_id_only))
