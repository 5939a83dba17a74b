"""Shared fixtures: the codec implementations and the reference material in ../shared."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
from mqtt_broker import mosquitto, mosquitto_auth, mosquitto_tls  # noqa: F401 - real brokers

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
SD_DATALOG = REFERENCE / "sd-datalog"
NO_EXTENSIONS = os.environ.get("XCOMLOG_NO_EXTENSIONS", "") not in ("", "0")

CODEC_PARAMS = [pytest.param("py", id="py")]
if not NO_EXTENSIONS:
    CODEC_PARAMS.insert(0, pytest.param("c", id="c", marks=pytest.mark.c_extension))


def load_codec(name: str):
    """Import one codec implementation by name; a missing compiled module is a failure."""
    if name == "py":
        return importlib.import_module("xcomlog._codec_py")
    try:
        module = importlib.import_module("xcomlog._codec")
    except ImportError as exc:  # never silently test Python only
        pytest.fail(f"the compiled codec xcomlog._codec is not built: {exc}")
    assert module.IMPLEMENTATION == "c"
    return module


@pytest.fixture(params=CODEC_PARAMS)
def codec(request):
    """Each codec test runs against the compiled and the pure-Python implementation."""
    return load_codec(request.param)


@pytest.fixture
def codec_pair():
    """(compiled, pure) for tests that compare the two; they run in the compiled run only.

    With XCOMLOG_NO_EXTENSIONS=1 they are skipped (the compiled run covers them); without
    it a missing compiled module fails them loudly.
    """
    if NO_EXTENSIONS:
        pytest.skip("compares the compiled codec, which XCOMLOG_NO_EXTENSIONS=1 disables")
    return load_codec("c"), load_codec("py")


@pytest.fixture
def reference_dir() -> Path:
    """The official specification folder; tests that need it skip when it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip("../shared/reference is not present")
    return REFERENCE


@pytest.fixture
def sd_datalog_dir() -> Path:
    """The real SD-card datalog samples; tests that need them skip when absent."""
    if not SD_DATALOG.is_dir():
        pytest.skip("../shared/reference/sd-datalog is not present")
    return SD_DATALOG


#: Integration tests of outside components (a package build, an MQTT broker, an S3 server,
#: Spark, the notebook) whose outcome does not depend on which codec decodes: `make test`
#: runs them once, in the compiled run; the pure-Python run covers the codec everywhere else.
ONCE_MODULES = frozenset(
    {
        "test_install",
        "test_mqtt",
        "test_mqtt_faults",
        "test_mqtt_logger",
        "test_s3_storage",
        "test_fleet_writers",
        "test_spark",
        "test_notebook",
    }
)


def pytest_collection_modifyitems(config, items):
    """In the pure-Python run, skip the ONCE_MODULES (they ran in the compiled run)."""
    if not NO_EXTENSIONS:
        return
    once = pytest.mark.skip(reason="independent of the codec: runs once, in the compiled run")
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in ONCE_MODULES:
            item.add_marker(once)
