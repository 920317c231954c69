"""The measurement workflow stored in ``raw/workflow``: parsing and loop expansion.

The hardware workflow is a JSON list of steps ``{"id", "type", "command_id", "params"}``; loops are
``{"type": "loop", "iterations": n, "steps": [...]}`` and nest. Parameters are in hardware units:
mV for voltages and ms for times.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dask_features.errors import WorkflowError

__all__ = [
    "STEP_TYPES",
    "WorkflowError",
    "WorkflowStep",
    "expand_workflow",
    "parse_workflow",
    "timing_from_ms",
    "transient_timing",
]

#: Step types the hardware writes; anything else is reported, not guessed at.
STEP_TYPES = frozenset({"transfer", "transient", "output", "loop"})


@dataclass(frozen=True)
class WorkflowStep:
    """One executed measurement step after loop expansion.

    Attributes
    ----------
    type : str
        ``"transfer"``, ``"transient"`` or ``"output"``.
    params : Mapping
        Hardware parameters (mV, ms).
    id : str
        Step id from the workflow file.
    iteration : tuple of int
        0-based iteration number of each enclosing loop, outermost first.
    """

    type: str
    params: Mapping[str, Any]
    id: str = ""
    iteration: tuple[int, ...] = ()


def parse_workflow(text: str | bytes) -> list[dict[str, Any]]:
    """Parse and check the workflow JSON.

    Raises
    ------
    WorkflowError
        Not JSON, not a list of step objects, a loop without positive ``iterations``, or a step
        ``type`` outside :data:`STEP_TYPES`.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"workflow is not valid JSON: {exc}") from None
    if not isinstance(tree, list):
        raise WorkflowError(f"workflow must be a JSON list of steps, got {type(tree).__name__}")
    _check(tree, path="workflow")
    return tree


def _check(steps: Sequence[Any], path: str) -> None:
    for i, step in enumerate(steps):
        where = f"{path}[{i}]"
        if not isinstance(step, dict):
            raise WorkflowError(f"{where} is not an object")
        kind = step.get("type")
        if kind not in STEP_TYPES:
            raise WorkflowError(f"{where} has unknown step type {kind!r} (known: {sorted(STEP_TYPES)})")
        if kind == "loop":
            n = step.get("iterations")
            if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
                raise WorkflowError(f"{where} is a loop without a positive integer 'iterations'")
            inner = step.get("steps")
            if not isinstance(inner, list):
                raise WorkflowError(f"{where} is a loop without a 'steps' list")
            _check(inner, where + ".steps")
        elif not isinstance(step.get("params", {}), dict):
            raise WorkflowError(f"{where}.params is not an object")


def expand_workflow(tree: Sequence[Mapping[str, Any]]) -> Iterator[WorkflowStep]:
    """Yield the executed steps in order, loops unrolled."""

    def walk(steps: Sequence[Mapping[str, Any]], iteration: tuple[int, ...]) -> Iterator[WorkflowStep]:
        for step in steps:
            if step["type"] == "loop":
                for k in range(int(step["iterations"])):
                    yield from walk(step["steps"], (*iteration, k))
            else:
                yield WorkflowStep(step["type"], step.get("params", {}), str(step.get("id", "")), iteration)

    yield from walk(tree, ())


def transient_timing(params: Mapping[str, Any]) -> tuple[float, float, float]:
    """``(period [s], time_step [s], duty)`` from transient hardware params; NaN where absent.

    ``period = (topTime + bottomTime) / 1000``, ``time_step = timeStep / 1000``,
    ``duty = topTime / (topTime + bottomTime)`` (the fraction of the period at the top gate voltage).
    """
    top, bottom, step = (_number(params.get(k)) for k in ("topTime", "bottomTime", "timeStep"))
    period, time_step, duty = timing_from_ms(np.array(top), np.array(bottom), np.array(step))
    return float(period), float(time_step), float(duty)


def timing_from_ms(
    top: np.ndarray, bottom: np.ndarray, step: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`transient_timing` on arrays of topTime, bottomTime, timeStep [ms]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        total = top + bottom
        ok = total > 0
        period = np.where(ok, total / 1000.0, np.nan)
        duty = np.where(ok, top / np.where(ok, total, 1.0), np.nan)
        time_step = np.where(step > 0, step / 1000.0, np.nan)
    return period, time_step, duty


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
