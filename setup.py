"""The compiled twins of tlsgate's hot paths, built by ``pip install`` (everything else about the
package is in pyproject.toml; setuptools reads both).

Each extension is a Cython module beside the pure-Python module it mirrors, and
``src/tlsgate/compiled.py`` picks one of the two at import. C warnings are all on (``-Wall``): the
build log must stay free of them. Cython's directives are set here for every module; a module
turns ``boundscheck``/``wraparound`` off only where it proves its bounds by hand, and says so.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

EXTENSIONS = [
    Extension(
        "tlsgate.http.fast_events",
        ["src/tlsgate/http/fast_events.pyx"],
        extra_compile_args=["-Wall", "-O2"],
    ),
    Extension(
        "tlsgate.http._fast",
        ["src/tlsgate/http/_fast.pyx"],
        extra_compile_args=["-Wall", "-O2"],
    ),
    Extension(
        "tlsgate.proxy._fast",
        ["src/tlsgate/proxy/_fast.pyx"],
        extra_compile_args=["-Wall", "-O2"],
        # OpenSSL on the socket (_fast_tls.pxi): the system libssl, the one Python's ssl uses.
        libraries=["ssl", "crypto"],
    ),
    Extension(
        "tlsgate.http._h2",
        ["src/tlsgate/http/_h2.pyx"],
        extra_compile_args=["-Wall", "-O2"],
        # HTTP/2 at the edge: the system libnghttp2 (libnghttp2-dev), driven sans-IO.
        libraries=["nghttp2"],
    ),
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives={"language_level": "3", "embedsignature": True, "binding": True},
        # (the proxy cimports the http events' declarations, src/tlsgate/http/_fast.pxd)
        include_path=["src"],
    ),
)
