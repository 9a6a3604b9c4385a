"""sigmahunt: hunt Windows event logs with Sigma rules.

``sigmahunt.hunt(logs, rules=...)`` returns a pandas DataFrame of detections;
``sigmahunt.run_hunt`` returns the full :class:`~sigmahunt.hunting.HuntResult` (records,
summary, rule failures). Imports are lazy so that ``sigmahunt --version`` stays instant.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["HuntResult", "__version__", "hunt", "run_hunt"]


def __getattr__(name: str) -> Any:
    if name in ("hunt", "run_hunt", "HuntResult"):
        from sigmahunt import hunting as hunt_module

        return getattr(hunt_module, name)
    raise AttributeError(f"module 'sigmahunt' has no attribute {name!r}")
