"""``python -m dask_features``: the ``dask-features`` command line."""

from dask_features.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
