"""Where sigmahunt keeps derived artefacts that are expensive to rebuild.

Everything here is keyed by a hash of its inputs, so a stale entry is never used, and
everything can be deleted at any time (it only costs the time to rebuild). Entries are
JSON or Hyperscan's own serialised databases, never pickle.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Set to a folder to move the cache, or to "off" to disable it.
CACHE_ENV = "SIGMAHUNT_CACHE_DIR"


def cache_root() -> Path | None:
    configured = os.environ.get(CACHE_ENV)
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sigmahunt"
