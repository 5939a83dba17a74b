# xcomlog developer commands. On a fresh machine `make test` and `make demo` do all the setup.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PY      = $(BIN)/python
STAMP   = $(VENV)/.installed
DEMO_OUT ?= demo-data
PYTEST_ARGS ?=

.PHONY: all venv install build test test-c test-py test-spark demo bench lint catalog clean

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

# Editable install with the test extras; rebuilt when the build inputs change.
$(STAMP): $(PY) pyproject.toml setup.py xcomlog/_codec.pyx
	$(PY) -m pip install --quiet cython numpy
	$(PY) -m pip install --quiet -e '.[test,dev]'
	$(PY) setup.py --quiet build_ext --inplace
	touch $(STAMP)

venv install: $(STAMP)

build: $(STAMP)
	$(PY) setup.py --quiet build_ext --inplace

# The whole suite twice: once on the compiled codec, once on the pure-Python twin.
test: build
	$(PY) -m pytest $(PYTEST_ARGS)
	XCOMLOG_NO_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_ARGS)

test-c: build
	$(PY) -m pytest $(PYTEST_ARGS)

test-py: build
	XCOMLOG_NO_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_ARGS)

# The Spark tests (PySpark in local mode; Java from Debian when it is missing).
test-spark: build
	$(PY) -m pip install --quiet -e '.[spark]'
	sh tools/ensure_java.sh
	$(PY) -m pytest -q tests/test_spark.py

demo: build
	$(PY) -m pip install --quiet -e '.[analysis]'
	$(BIN)/xcomlog demo --out $(DEMO_OUT)

bench: build
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks

lint: build
	$(BIN)/ruff check xcomlog tests benchmarks tools
	$(BIN)/ruff format --check xcomlog tests benchmarks tools

# Regenerate the datapoint catalog from the official appendix in ../shared/reference.
catalog: build
	$(PY) tools/build_catalog.py

clean:
	rm -rf build $(VENV) xcomlog/*.so xcomlog/_codec.c *.egg-info
