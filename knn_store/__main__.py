"""``python -m knn_store``: the ``knn-store`` command line."""

from knn_store.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
