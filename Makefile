# `make test` and `make demo` work on a fresh clone: they create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pccore-installed
OUT ?= out
DEMO_BACKEND ?= numpy

.PHONY: install test demo bench bench-quick docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

# Two workers: the suite is dominated by single-threaded work (JAX compiles, small arrays).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15

# The demo's matrices are small (64 x 128 x 128): one BLAS thread is fastest and avoids
# the heavy slow-downs of spinning BLAS threads on a busy machine.
DEMO_THREADS ?= 1

demo: $(STAMP)
	OPENBLAS_NUM_THREADS=$(DEMO_THREADS) OMP_NUM_THREADS=$(DEMO_THREADS) MKL_NUM_THREADS=$(DEMO_THREADS) \
	  $(PY) -m pccore compare --dataset digits --backend $(DEMO_BACKEND) --out $(OUT)/compare
	OPENBLAS_NUM_THREADS=$(DEMO_THREADS) OMP_NUM_THREADS=$(DEMO_THREADS) MKL_NUM_THREADS=$(DEMO_THREADS) \
	  $(PY) -m pccore energy --dataset digits --backend $(DEMO_BACKEND) --out $(OUT)/energy
	@echo "figures and summaries in $(OUT)/compare and $(OUT)/energy"

bench: $(STAMP)
	$(PY) -m benchmarks

bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick

# The guides and the API reference (from the docstrings) as a site in $(OUT)/site; strict:
# a missing object or broken reference fails (tests/test_docs.py builds it too).
docs: $(STAMP)
	$(PY) -m mkdocs build --strict -d $(OUT)/site
	@echo "documentation in $(OUT)/site: user-guide.html, API reference in api/index.html"

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
