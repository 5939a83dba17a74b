# xcomlog developer commands. On a fresh machine `make test` and `make demo` do all the setup.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PY      = $(BIN)/python
BASE    = $(VENV)/.base
STAMP   = $(VENV)/.installed
BUILT   = $(VENV)/.built
ANALYSIS = $(VENV)/.analysis
CODEC_SO = $(wildcard xcomlog/_codec.*.so)
DEMO_OUT ?= demo-data
PYTEST_ARGS ?=

.PHONY: all venv install build brokers test test-c test-py test-spark demo bench lint catalog clean fuzz FORCE

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

# Editable install of the package alone (runtime dependencies) with the compiled codec.
$(BASE): $(PY) pyproject.toml setup.py xcomlog/_codec.pyx
	$(PY) -m pip install --quiet cython numpy
	$(PY) -m pip install --quiet -e .
	$(PY) setup.py --quiet build_ext --inplace
	touch $(BASE)

# ... plus the test and dev extras; rebuilt when the build inputs change.
$(STAMP): $(BASE)
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

venv install: $(STAMP)

# The compiled codec, rebuilt only when its inputs change (or the module is missing):
# a second `make build`, `make test` or `make demo` on an unchanged checkout runs no compiler.
$(BUILT): $(BASE) setup.py xcomlog/_codec.pyx $(if $(CODEC_SO),,FORCE)
	$(PY) setup.py --quiet build_ext --inplace
	touch $@

build: $(STAMP) $(BUILT)

# pandas and matplotlib for the demo's plot, installed once (pip is not run again);
# the demo needs neither the test nor the dev extras.
$(ANALYSIS): $(BASE)
	$(PY) -m pip install --quiet -e '.[analysis]'
	touch $@

FORCE:

# The real servers the integration tests start: Mosquitto from Debian when it is missing
# (the S3 server, moto, comes with the test extra). Without root or apt-get it says so and
# the MQTT tests skip with the reason; under CI it fails instead.
brokers:
	bash tools/ensure_mosquitto.sh

# The whole suite twice: once on the compiled codec, once on the pure-Python twin.
test: build brokers
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

demo: $(BUILT) $(ANALYSIS)
	$(BIN)/xcomlog demo --out $(DEMO_OUT)

# The fleet benchmark's Spark queries need PySpark and Java: both are installed when
# possible; without Java those rows say "skipped" and the rest still runs.
bench: build
	$(PY) -m pip install --quiet -e '.[bench,spark]'
	-sh tools/ensure_java.sh
	$(PY) -m benchmarks

lint: build
	$(BIN)/ruff check xcomlog tests benchmarks tools
	$(BIN)/ruff format --check xcomlog tests benchmarks tools

# Differential fuzz of the two codecs, longer than in `make test`, against a compiled codec
# built once with AddressSanitizer in build/asan (the in-place build is left alone): a read
# or write out of bounds aborts the run with ASan's report (PYTHONMALLOC=malloc, so that
# Python's own small-object allocator does not hide the bounds of small buffers).
# FUZZ_EXAMPLES inputs per property.
FUZZ_EXAMPLES ?= 2000
ASAN_DIR = build/asan
ASAN_STAMP = $(ASAN_DIR)/.built
$(ASAN_STAMP): $(STAMP) setup.py xcomlog/_codec.pyx
	rm -rf $(ASAN_DIR) && mkdir -p $(ASAN_DIR)
	CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" \
		$(PY) setup.py --quiet build_ext --build-lib $(ASAN_DIR)/lib --build-temp $(ASAN_DIR)/tmp
	touch $(ASAN_STAMP)

fuzz: build $(ASAN_STAMP)
	rm -f $(ASAN_DIR)/calls.txt
	PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" \
		XCOMLOG_FUZZ_EXTENSION="$$(ls $(ASAN_DIR)/lib/xcomlog/_codec*.so)" \
		XCOMLOG_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) XCOMLOG_FUZZ_REPORT=$(ASAN_DIR)/calls.txt \
		$(PY) -m pytest -q --capture=sys --timeout=0 -p no:cacheprovider tests/test_codec_fuzz.py \
		$(PYTEST_ARGS)
	@awk '{n += $$2; print "  " $$1 ": " $$2} END {print "fuzz: " n " calls compared on both codecs (AddressSanitizer build)"}' $(ASAN_DIR)/calls.txt

# Regenerate the datapoint catalog from the official appendix in ../shared/reference.
catalog: build
	$(PY) tools/build_catalog.py

clean:
	rm -rf build $(VENV) xcomlog/*.so xcomlog/_codec.c *.egg-info
