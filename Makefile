# Two commands do all the set-up on a fresh machine with only python3:
#   make demo   -> create .venv, install, generate demo data, extract the default features
#   make test   -> create/update .venv, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m dask_features.warmup  # compile the numba kernels ahead of time (dask_features/warmup.py)
	touch $@

demo: $(VENV)/.installed
	$(BIN)/dask-features demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b --quick || exit 1; done

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) dask-features-demo .pytest_cache
