"""Where sigmahunt keeps derived artefacts that are expensive to rebuild.

Everything here is keyed by a hash of its inputs, so a stale entry is never used, and
everything can be deleted at any time (it only costs the time to rebuild). Entries are
JSON or Hyperscan's own serialised databases, never pickle.

Two caches live below :func:`cache_root`: ``rules/`` (compiled rules, one JSON entry per
rule file, :mod:`sigmahunt.rules.prepare`) and ``hyperscan/`` (serialised databases,
:mod:`sigmahunt.engines.embedded.scanners`). ``SIGMAHUNT_CACHE_DIR`` moves or disables both.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

#: Set to a folder to move the cache, or to "off" to disable it.
CACHE_ENV = "SIGMAHUNT_CACHE_DIR"
#: What ``--no-cache`` does (the command-line help says it where it is offered).
NO_CACHE_HELP = f"do not use the compiled-rule cache ({CACHE_ENV}=off also disables the Hyperscan database cache)"


def cache_root() -> Path | None:
    configured = os.environ.get(CACHE_ENV)
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sigmahunt"


def write_entry(path: Path, data: bytes) -> None:
    """Write one cache entry atomically: a temporary file beside it, then a rename.

    A reader never sees half an entry. Cheaper than :func:`sigmahunt.results.write_atomically`
    (no ``mkstemp``/``chmod``; the file gets the usual ``0o666 & ~umask``), which matters
    for the ~3,750 entries of a cold start, and importable without pandas, which matters
    for the rule-compiling worker processes. The temporary name holds the process and
    thread ids, so two writers of the same entry (the same bytes: the key is a content
    hash) never share a temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
