"""Feature configurations: YAML/dict/preset loading, validation and the safe ``func`` evaluator."""

from dask_features.config.expressions import SafeExpression, compile_expression
from dask_features.config.schema import SOURCES, FeatureConfig, FeatureSpec, list_presets, load_config

__all__ = [
    "SOURCES",
    "FeatureConfig",
    "FeatureSpec",
    "SafeExpression",
    "compile_expression",
    "list_presets",
    "load_config",
]
