"""The feature graph of a config: input checks, cycle detection and topological layers.

Extractor features read a data source; derived (``func``) features read other features. The engine
evaluates features layer by layer (:func:`topological_layers`), so the order of the config file is
only the column order.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dask_features.config.spec import FeatureSpec

__all__ = ["check_graph", "topological_layers"]


def check_graph(
    specs: Sequence[FeatureSpec], sources: Sequence[str], invalid: Collection[str] = ()
) -> list[str]:
    """Problems of the feature graph: raw sources or unknown names as inputs, ragged inputs, cycles.

    ``invalid``: names of config entries that are not among ``specs`` because they have problems of
    their own (already reported): an input naming one is not reported again as unknown.
    """
    problems: list[str] = []
    by_name = {s.name: s for s in specs}
    for s in specs:
        if not s.is_derived:
            continue
        for inp in s.inputs:
            if inp in sources:
                problems.append(
                    f"feature {s.name!r}: a 'func' feature takes features as input, not the raw source {inp!r}"
                )
            elif inp in invalid:
                continue
            elif inp not in by_name:
                problems.append(f"feature {s.name!r}: unknown input {inp!r}")
            else:
                out = by_name[inp].output
                if out is not None and out.kind == "ragged":
                    problems.append(
                        f"feature {s.name!r}: input {inp!r} is per-cycle (ragged); derived features take per-step features"
                    )
    # Cycles among derived features (extractors only read sources, so they close no loop).
    state: dict[str, int] = {}
    stack: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for dep in by_name[n].inputs if by_name[n].is_derived else ():
            if dep not in by_name:
                continue
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    problems.append("dependency cycle: " + " -> ".join(cycle))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[n] = 2

    for s in specs:
        if s.name not in state:
            visit(s.name)
    return problems


def topological_layers(features: Sequence[FeatureSpec]) -> list[list[FeatureSpec]]:
    """``[sources, step-level features, derived depth 1, derived depth 2, ...]``, each in config order.

    The sources layer holds no FeatureSpec and is empty; it is kept so indices match the DAG depth.
    The graph must be acyclic (checked by :func:`check_graph`).
    """
    by_name = {f.name: f for f in features}
    depth: dict[str, int] = {}

    def level(f: FeatureSpec) -> int:
        if f.name not in depth:
            depth[f.name] = 1 if not f.is_derived else 1 + max(level(by_name[i]) for i in f.inputs)
        return depth[f.name]

    n_layers = max((level(f) for f in features), default=1)
    layers: list[list[FeatureSpec]] = [[] for _ in range(n_layers + 1)]
    for f in features:
        layers[level(f)].append(f)
    return layers
