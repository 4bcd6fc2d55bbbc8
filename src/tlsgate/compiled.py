"""One switch for every compiled module: the Cython extension, or its pure-Python twin.

Each hot path exists twice with one interface, as ``uvloop``/``aiohttp`` do it: a Cython module
(``_fast.pyx`` beside the pure one), built at install, and the pure-Python module it mirrors,
which stays the reference (the differential tests compare the two) and the fallback. A package
asks :func:`compiled_module` which one to export:

* ``TLSGATE_PURE=1`` (any value but empty or ``0``) forces the pure one, e.g. to compare figures
  or to rule the extension out when chasing a bug;
* an extension that cannot be imported (a checkout installed without a compiler, a stale build)
  falls back to pure with one warning line, so tlsgate still runs, slower;
* under CI the fallback is not silent: ``tests/test_compiled.py`` requires the compiled modules
  whenever ``CI=true`` and ``TLSGATE_PURE`` is unset.

Imports only the standard library, so that any layer may use it.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

__all__ = ["PURE_VARIABLE", "compiled_module", "pure_forced"]

PURE_VARIABLE = "TLSGATE_PURE"

_log = logging.getLogger(__name__)
#: Extensions already reported missing: one warning each, however many modules ask.
_warned: set[str] = set()


def pure_forced() -> bool:
    """``TLSGATE_PURE`` asks for the pure-Python implementations."""
    return os.environ.get(PURE_VARIABLE, "") not in ("", "0")


def compiled_module(name: str) -> ModuleType | None:
    """The extension module ``name``, or None when the pure twin is to be used instead."""
    if pure_forced():
        return None
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if name not in _warned:
            _warned.add(name)
            _log.warning(
                "%s is not built (%s): using its pure-Python twin (slower); reinstall with "
                "scripts/install.sh to build it",
                name,
                exc,
            )
        return None
