"""``python -m dask_features.config.presets``: rewrite the parsed copy of the presets after editing one."""

from dask_features.config._presets import write_parsed

print(write_parsed())
