"""Real components for the fleet tests: an S3 API server process (moto's standalone server,
``moto[server]`` from the ``test`` extra) on a free loopback port, a fresh bucket per test,
and one local-mode SparkSession shared by every Spark test (skipped without Java).

Import the fixtures into a test module: ``from fleet_fixtures import s3_server, s3_bucket``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from processes import free_port, stop_process

#: Credentials the server accepts (any); set for the test process and its children.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "xcomlog-test",
    "AWS_SECRET_ACCESS_KEY": "xcomlog-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class S3Server:
    """A moto S3 server process on 127.0.0.1 and how to reach it with pyarrow."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        exe = shutil.which("moto_server", path=os.path.dirname(sys.executable))
        cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
        self.proc = subprocess.Popen(
            [*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **S3_ENV},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{self.endpoint}/", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.1)

    def uri(self, bucket: str, prefix: str = "") -> str:
        """An s3:// URI of ``bucket/prefix`` on this server, as a user would write it."""
        path = f"{bucket}/{prefix}".rstrip("/")
        return f"s3://{path}?endpoint_override={self.endpoint}&scheme=http&region=us-east-1"

    def filesystem(self):
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            endpoint_override=self.endpoint,
            scheme="http",
            region="us-east-1",
            allow_bucket_creation=True,
            **_keys(),
        )

    def stop(self) -> None:
        stop_process(self.proc, 10)


def _keys() -> dict:
    return {
        "access_key": S3_ENV["AWS_ACCESS_KEY_ID"],
        "secret_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="session")
def s3_server():
    pytest.importorskip("moto", reason="moto[server] (the test extra) runs the S3 API server")
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A new empty bucket on the server; returns its name."""
    name = f"xcomlog-{uuid.uuid4().hex[:12]}"
    s3_server.filesystem().create_dir(name)
    return name


def java_missing_reason() -> str | None:
    """Why Spark cannot run here (None when it can)."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return (
            "Spark needs Java: no `java` on PATH and no JAVA_HOME "
            "(`make test-spark` or tools/ensure_java.sh installs it from Debian)"
        )
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "PySpark is not installed (pip install 'xcomlog[spark]')"
    return None


@pytest.fixture(scope="session")
def spark():
    """One local-mode SparkSession for every Spark test (starting one costs seconds)."""
    reason = java_missing_reason()
    if reason:
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("xcomlog-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
