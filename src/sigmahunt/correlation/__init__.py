"""Sigma correlation rules (all eight types) over the detections of any engine.

* :func:`build_plan` resolves pySigma correlation rules against the loaded rules (by id
  or name, chains of correlations, aliases) into a :class:`CorrelationPlan`;
* :func:`correlate` runs a plan over detection records (sliding windows per group) and
  returns correlation records; :func:`apply_plan` also drops the detections the plan
  hides (``generate: false``);
* :func:`correlation_support` says whether an engine can run a correlation, and why not.

Importing this package also teaches pySigma the specification's range conditions
(``gt`` + ``lte`` in one condition), see :mod:`sigmahunt.correlation.conditions`.
"""

from __future__ import annotations

from sigmahunt.correlation import conditions as _conditions  # noqa: F401  (installs range conditions)
from sigmahunt.correlation.engine import (
    CORRELATION_KEYS,
    apply_plan,
    correlate,
    correlate_one,
)
from sigmahunt.correlation.plan import (
    CorrelationPlan,
    CorrelationSpec,
    build_plan,
    record_key,
    rule_key,
)
from sigmahunt.correlation.support import correlation_support, unsupported

__all__ = [
    "CORRELATION_KEYS",
    "CorrelationPlan",
    "CorrelationSpec",
    "apply_plan",
    "build_plan",
    "correlate",
    "correlate_one",
    "correlation_support",
    "record_key",
    "rule_key",
    "unsupported",
]
