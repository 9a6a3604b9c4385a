"""The optional native readers (``native/``, the ``sigmahunt-native`` package).

Why they exist: bench/RESULTS.md measures that the Python and Polars readers alone cost
more CPU than the issue-3 targets allow (schema inference and the String re-read of JSON
lines; a Python step per EVTX field). Each native reader has a Python twin that stays the
reference: the native one returns exactly the twin's columns or declines, and the twin
runs. sigmahunt works the same without the package, only slower.

``SIGMAHUNT_NATIVE=off`` turns the native readers off (parity tests, benchmarks).
"""

from __future__ import annotations

import os
from functools import cache
from types import ModuleType

#: The ``ABI`` the Python side was written for (see native/src/lib.rs).
ABI = 8
OFF_VALUES = frozenset({"0", "off", "false", "no"})


@cache
def _imported() -> ModuleType | None:
    try:
        import sigmahunt_native  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    return sigmahunt_native if getattr(sigmahunt_native, "ABI", None) == ABI else None


def native() -> ModuleType | None:
    """The native module, or None when it is absent, stale or turned off."""
    if os.environ.get("SIGMAHUNT_NATIVE", "").strip().lower() in OFF_VALUES:
        return None
    return _imported()


def status() -> str:
    """One line for ``--version``-like reports and the benchmark header."""
    module = _imported()
    if module is None:
        return "absent (pip install ./native to build it)"
    if native() is None:
        return "off (SIGMAHUNT_NATIVE)"
    return f"on (ABI {module.ABI})"
