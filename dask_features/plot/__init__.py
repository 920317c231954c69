"""Matplotlib figures of raw OECT data and extracted features, for notebooks and reports.

Every function takes data (an :class:`~dask_features.Experiment` and a step number, or the DataFrames
returned by :func:`~dask_features.read_features`), draws into ``ax`` (a new figure when omitted) and returns
the :class:`~matplotlib.axes.Axes`. Nothing calls ``plt.show()``; axes are labelled with units, and
currents, transconductances and times are shown with an SI prefix chosen from the data (µA, mS, ms...).

This module imports matplotlib; ``import dask_features`` does not import it.

>>> from dask_features import plot                                                # doctest: +SKIP
>>> ax = plot.plot_transfer(experiment, step=0)                                    # doctest: +SKIP
>>> ax = plot.plot_feature_evolution(steps, "gm_max_forward", unit="S")           # doctest: +SKIP
>>> ax = plot.plot_tau_fits(experiment, 0, cycles)                                 # doctest: +SKIP
>>> ax = plot.plot_tau_cycles(cycles, 0, test_id="t1")                             # doctest: +SKIP
>>> ax = plot.plot_tau_distribution(cycles)                                        # doctest: +SKIP
>>> ax = plot.plot_transfer_analysis(experiment, step=0)                           # doctest: +SKIP
>>> ax = plot.plot_drift(steps, ["Vth_forward", "Vth_reverse"])                    # doctest: +SKIP
"""

from dask_features.plot._analysis import plot_drift, plot_transfer_analysis
from dask_features.plot._style import si_scale
from dask_features.plot._sweeps import plot_feature_evolution, plot_transfer
from dask_features.plot._tau import plot_tau_cycles, plot_tau_distribution, plot_tau_fits

__all__ = [
    "plot_drift",
    "plot_feature_evolution",
    "plot_tau_cycles",
    "plot_tau_distribution",
    "plot_tau_fits",
    "plot_transfer",
    "plot_transfer_analysis",
    "si_scale",
]
