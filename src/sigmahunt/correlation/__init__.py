"""Sigma correlation rules (all eight types) over the detections of any engine.

* :func:`build_plan` resolves pySigma correlation rules against the loaded rules (by id
  or name, chains of correlations, aliases) into a :class:`CorrelationPlan`;
* :func:`correlate` runs a plan over detection records (sliding windows per group) and
  returns correlation records; :func:`apply_plan` also drops the detections the plan
  hides (``generate: false``);
* :func:`correlation_support` says whether an engine can run a correlation, and why not.

Importing this package also teaches pySigma the specification's range conditions
(``gt`` + ``lte`` in one condition), see :mod:`sigmahunt.correlation.conditions`. The
rest is imported lazily, so ``sigmahunt.correlation.conditions`` can be imported by the
rule loader without an import cycle.
"""

from __future__ import annotations

from typing import Any

from sigmahunt.correlation import conditions as _conditions  # noqa: F401  (installs range conditions)

_EXPORTS = {
    "CORRELATION_KEYS": "engine",
    "apply_plan": "engine",
    "correlate": "engine",
    "correlate_one": "engine",
    "CorrelationPlan": "plan",
    "CorrelationSpec": "plan",
    "build_plan": "plan",
    "record_key": "plan",
    "rule_key": "plan",
    "correlation_support": "support",
    "unsupported": "support",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sigmahunt.correlation' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"sigmahunt.correlation.{module}"), name)
