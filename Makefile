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
	touch $@

# Compile the numba kernels ahead of time (dask_features/warmup.py); again whenever a kernel changes,
# since a module built from other sources is never loaded (the JIT would then run, correct but slow).
KERNELS := dask_features/_compiled.py dask_features/_build.py dask_features/_kernel_types.py \
	dask_features/extractors/_robust_kernels.py dask_features/extractors/_slope_kernels.py \
	dask_features/extractors/_peak_kernel.py \
	dask_features/extractors/_peaks.py \
	dask_features/extractors/tau/_kernels.py dask_features/extractors/tau/_locate.py \
	dask_features/extractors/tau/_anchored.py dask_features/io/_raw_kernels.py
$(VENV)/.warm: $(VENV)/.installed $(KERNELS)
	$(BIN)/python -m dask_features.warmup
	touch $@

demo: $(VENV)/.warm
	$(BIN)/dask-features demo

test: $(VENV)/.warm
	$(BIN)/python -m pytest

bench: $(VENV)/.warm
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b --quick || exit 1; done

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) dask-features-demo .pytest_cache dask_features/_dfkernels_*
