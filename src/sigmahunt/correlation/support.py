"""Which engine can run which correlation, with a reason when it cannot.

Every engine can run every correlation the same way: the engine evaluates the Sigma
rules a correlation refers to and returns their detections (with their events), and
:func:`sigmahunt.correlation.correlate` windows them in Python. The results are then
identical across engines, and no engine ever answers a correlation with fixed time
buckets or a partial type. What can still stop a correlation on an engine is the engine
not being able to run one of the rules it refers to, or not returning the fields the
correlation needs: engines pass those facts in and get a per-rule reason back, to report
instead of a silent partial answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sigmahunt.correlation.plan import TYPES, CorrelationSpec

#: Engines whose detections sigmahunt correlates (all of them, through ``correlate``).
ENGINES = frozenset({"embedded", "elasticsearch", "opensearch", "spark"})


def correlation_support(
    engine: str,
    correlation: CorrelationSpec,
    rule_reason: Callable[[str], str | None] | Mapping[str, str] | None = None,
    *,
    returns_events: bool = True,
) -> str | None:
    """None when ``engine`` can run ``correlation``; else why not (one line, for the user).

    ``rule_reason`` gives, for a referenced rule's key (see
    :func:`~sigmahunt.correlation.plan.rule_key`), why the engine cannot run that rule.
    ``returns_events=False`` says the engine returns detections without their event's
    fields, so group-by / value fields cannot be read.
    """
    name = engine.lower()
    if name not in ENGINES:
        return f"correlation rules are not supported on engine '{engine}'"
    if correlation.type not in TYPES:
        return f"correlation type '{correlation.type}' is not supported"
    needs_fields = bool(correlation.group_by) or bool(correlation.value_field)
    if needs_fields and not returns_events:
        return (f"engine '{engine}' does not return the events' fields, which this correlation's "
                f"group-by / field needs")
    if rule_reason is not None:
        lookup = rule_reason.get if isinstance(rule_reason, Mapping) else rule_reason
        for ref in dict.fromkeys(correlation.refs):
            reason = lookup(ref)
            if reason:
                return f"referenced rule {ref} cannot run on engine '{engine}': {reason}"
    return None


def unsupported(engine: str, correlations: Any, **kwargs: Any) -> dict[str, str]:
    """{correlation key: reason} for every correlation of a plan ``engine`` cannot run.

    A correlation that refers to an unsupported correlation is unsupported too.
    """
    specs = getattr(correlations, "correlations", correlations)
    out: dict[str, str] = {}
    for spec in specs:  # dependency order
        reason = correlation_support(engine, spec, **kwargs)
        if reason is None:
            blocked = [r for r in spec.correlation_refs if r in out]
            if blocked:
                reason = f"refers to correlation {blocked[0]}, which is not supported: {out[blocked[0]]}"
        if reason:
            out[spec.key] = reason
    return out
