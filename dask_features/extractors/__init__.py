"""Feature extractors and their registry.

The built-in extractors (``transfer.*``, ``transient.*``) are in :data:`REGISTRY` from the start;
the module of each family is imported when one of its names is first looked up, so a run loads only
the families its config uses. Add a feature with the :func:`register` decorator; see
:mod:`dask_features.extractors.registry`.
"""

from dask_features.extractors.registry import (
    REGISTRY,
    ExtractorSpec,
    Output,
    Ragged,
    Registry,
    get_extractor,
    list_extractors,
    register,
)

__all__ = [
    "REGISTRY",
    "ExtractorSpec",
    "Output",
    "Ragged",
    "Registry",
    "get_extractor",
    "list_extractors",
    "register",
]

#: Module of each built-in family -> the extractors it registers when imported
#: (``tests/extractors/test_registry.py`` checks the two agree).
BUILTIN = {
    "dask_features.extractors.transfer": (
        "transfer.I_max",
        "transfer.I_min",
        "transfer.Von",
        "transfer.absI_max",
        "transfer.absI_min",
        "transfer.gm_max",
        "transfer.gm_min",
    ),
    "dask_features.extractors.transfer_coords": ("transfer.Von_coords", "transfer.gm_max_coords"),
    "dask_features.extractors.transfer_currents": ("transfer.Ioff", "transfer.Ion", "transfer.on_off_ratio"),
    "dask_features.extractors.transfer_robust": (
        "transfer.Vth",
        "transfer.gm",
        "transfer.gm_norm",
        "transfer.hysteresis",
        "transfer.subthreshold_swing",
    ),
    "dask_features.extractors.transient": (
        "transient.cycles",
        "transient.decay_time",
        "transient.peak_current",
    ),
    "dask_features.extractors.tau": ("transient.tau_on_off",),
}
for _module, _names in BUILTIN.items():
    REGISTRY.defer(_names, _module)
