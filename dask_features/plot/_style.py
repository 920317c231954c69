"""Shared look of every figure: axes, SI prefixes, unit labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dask_features.io.hdf5 import Experiment

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_PREFIXES = ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))
_DIRECTIONS = ("forward", "reverse")
_SHORT = {"forward": "fwd", "reverse": "rev"}


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7.0, 4.5)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=figsize, layout="constrained")
    return new


def si_scale(values: Any, unit: str | None) -> tuple[float, str]:
    """Factor and prefixed unit that bring ``values`` into a readable range.

    Parameters
    ----------
    values : array_like
        Values in base SI units (A, S, s...).
    unit : str or None
        Base unit. ``None`` or ``""`` (dimensionless) and ``"V"`` are never rescaled.

    Returns
    -------
    factor : float
        Multiply the values by it.
    label : str
        The prefixed unit, e.g. ``"µA"`` (``""`` when ``unit`` is empty).

    Examples
    --------
    >>> si_scale([2e-3, 1e-3], "S")
    (1000.0, 'mS')
    """
    if not unit or unit in ("V", "1"):
        return 1.0, unit or ""
    arr = np.abs(np.asarray(values, dtype=np.float64))
    arr = arr[np.isfinite(arr) & (arr > 0)]
    if arr.size == 0:
        return 1.0, unit
    top = float(np.max(arr))
    for base, prefix in _PREFIXES:
        if top >= base:
            return 1.0 / base, prefix + unit
    return 1e12, "p" + unit


def _with_unit(name: str, unit: str) -> str:
    return f"{name} [{unit}]" if unit else name


def _experiment_label(experiment: Experiment) -> str:
    polarity = f", {experiment.device_type}-type" if experiment.device_type else ""
    return f"{experiment.chip_id}-{experiment.device_id} {experiment.test_id}{polarity}"
