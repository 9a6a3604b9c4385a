"""Keeping Python's cyclic garbage collector off the compiled rule set while it is built.

Why: loading the cached rule set and laying out its plan create a few hundred thousand
long-lived objects in a burst, and CPython starts a full collection whenever the objects
that survived since the last one reach a quarter of those that survived it. A CLI start
made four such collections, each walking everything built so far (0.06-0.10 s apiece,
~0.3 s of a ~2 s start), and the hunt then ran its own full collection before freezing the
plan (``hunting._rule_plan_frozen``). What is built here is kept, not garbage; what is
dropped (JSON documents, scratch lists) reference counting frees with the collector
paused, and a cycle among it would only wait for the next collection, which every hunt
makes before freezing the plan.
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
