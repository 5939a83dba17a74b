"""Build the compiled codec (``xcomlog._codec``) unless XCOMLOG_NO_EXTENSIONS is set.

Without a working C compiler (a bare Raspberry Pi OS, ``CC=false``) or without Cython the
build goes on with the pure-Python codec (``xcomlog._codec_py``: same results, slower)
and says so in one warning, as msgpack and yarl do. ``python -m build`` on a machine with
a compiler makes a wheel that carries the compiled codec.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

FALLBACK_WARNING = (
    "WARNING: xcomlog: the compiled codec could not be built ({reason}); "
    "installing the pure-Python codec instead (same results, slower). "
    "Install a C compiler (e.g. apt install build-essential) and reinstall for the fast one."
)


def _warn(reason: str) -> None:
    print(FALLBACK_WARNING.format(reason=reason), file=sys.stderr)


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python instead of failing the install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler at all (DistutilsPlatformError...)
            _warn(f"{type(exc).__name__}: {exc}")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # the compiler failed (CompileError, LinkError...)
            _warn(f"{type(exc).__name__}: {exc}")


def _extensions():
    if os.environ.get("XCOMLOG_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    try:
        import numpy
        from Cython.Build import cythonize
    except ImportError as exc:
        _warn(f"{exc.name} is not installed")
        return []
    return cythonize(
        [
            Extension(
                "xcomlog._codec",
                ["xcomlog/_codec.pyx"],
                include_dirs=[numpy.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=["-O3"],
            )
        ],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
