"""Build the compiled codec (``xcomlog._codec``) unless XCOMLOG_NO_EXTENSIONS is set."""

import os

import numpy
from setuptools import Extension, setup

ext_modules = []
if os.environ.get("XCOMLOG_NO_EXTENSIONS", "") in ("", "0"):
    from Cython.Build import cythonize

    ext_modules = cythonize(
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

setup(ext_modules=ext_modules)
