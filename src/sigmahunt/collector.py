"""Keeping Python's cyclic garbage collector off the compiled rule set while it is built.

Why: loading the cached rule set and laying out its plan create a few hundred thousand
long-lived objects in a burst, and CPython starts a full collection whenever the objects
that survived since the last one reach a quarter of those that survived it. A CLI start
made four such collections, each walking everything built so far (0.06-0.10 s apiece,
~0.3 s of a ~2 s start). What is built here is kept, not garbage; what is dropped (JSON
documents, scratch lists) reference counting frees with the collector paused, and a cycle
among it stays in the youngest generation (nothing is promoted while paused) until the
next collection of it: the one every hunt makes before freezing the plan
(``hunting._rule_plan_frozen``) at the latest.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Automatic collections off inside, back to the state found on leaving (nestable)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
