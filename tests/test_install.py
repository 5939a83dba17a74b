"""Installing: ``python -m build`` makes an sdist and a wheel with the compiled codec, and the
sdist installs without a C compiler (``CC=false``) on the pure-Python codec, with a warning.

Each install goes into a fresh virtual environment in a temporary folder. The environment
borrows this one's site-packages through a ``.pth`` file (numpy, pyarrow, setuptools,
Cython) so no package index is needed; xcomlog itself comes only from the built files.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parent.parent

CHECK = "import xcomlog, xcomlog.codec as c; print(c.IMPLEMENTATION, xcomlog.__file__)"


def source_copy(tmp: Path) -> Path:
    """The repository's tracked files, without anything built in place."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False
    )
    if files.returncode != 0:
        pytest.skip("not a git checkout: cannot tell source files from built ones")
    dest = tmp / "src"
    for name in files.stdout.splitlines():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, target)
    return dest


def fresh_venv(path: Path) -> Path:
    """A new virtual environment that sees this one's packages after its own."""
    venv.EnvBuilder(with_pip=True).create(path)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (Path(purelib) / "borrowed.pth").write_text("\n".join(sorted(ours)) + "\n")
    # The bundled setuptools of an old ensurepip would shadow the borrowed, current one.
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"],
        capture_output=True,
        check=False,
    )
    return python


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """sdist and wheel from ``python -m build`` on a clean copy of the sources."""
    pytest.importorskip("build")
    tmp = tmp_path_factory.mktemp("build")
    src = source_copy(tmp)
    out = tmp / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "XCOMLOG_NO_EXTENSIONS"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_build_makes_an_sdist_and_a_wheel_with_the_compiled_codec(dist, tmp_path):
    [sdist] = dist.glob("xcomlog-*.tar.gz")
    [wheel] = dist.glob("xcomlog-*.whl")
    assert "-py3-none-any" not in wheel.name  # a platform wheel: it carries compiled code
    python = fresh_venv(tmp_path / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "XCOMLOG_NO_EXTENSIONS"}
    proc = subprocess.run(
        [str(python), "-c", CHECK], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr
    implementation, location = proc.stdout.split()
    assert implementation == "c"
    assert str(tmp_path / "venv") in location  # the installed copy, not the checkout
    assert sdist.stat().st_size > 10_000


def test_sdist_installs_without_a_compiler_on_the_pure_codec(dist, tmp_path):
    [sdist] = dist.glob("xcomlog-*.tar.gz")
    python = fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k != "XCOMLOG_NO_EXTENSIONS"}
    env["CC"] = "false"  # every compiler call fails, as on a machine without one
    proc = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-v",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--no-cache-dir",
            str(sdist),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "installing the pure-Python codec instead" in output
    assert output.count("WARNING: xcomlog: the compiled codec could not be built") == 1
    proc = subprocess.run(
        [str(python), "-c", CHECK], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr
    implementation, location = proc.stdout.split()
    assert implementation == "py"
    assert str(tmp_path / "venv") in location
    # and it works: a frame round trip on the pure codec
    proc = subprocess.run(
        [
            str(python),
            "-c",
            "from xcomlog import codec; print(codec.checksum(bytes(range(10))))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
