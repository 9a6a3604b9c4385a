"""Correlation conditions: pySigma's model, plus the specification's ranges, and their evaluation.

The Sigma specification allows a range as a correlation condition (``gt: 100`` and
``lte: 200`` in one mapping: both must hold). pySigma 2.0.1 rejects any condition with
more than one operator, and the rejection fails the whole YAML file. As the loader does
for ``utf16le``, the fix is registered in pySigma's own model so pySigma stays the one
parser of rules: :func:`install` wraps ``SigmaCorrelationCondition.from_dict`` so that a
mapping with several operators becomes a :class:`SigmaCorrelationRangeCondition` (a
subclass: ``op``/``count`` hold the first bound, ``bounds`` all of them). Every bound is
still validated by pySigma's own parser, one operator at a time.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
)

_OPERATORS = frozenset(SigmaCorrelationConditionOperator.operators())
_EXTRA_KEYS = ("field", "percentile")

#: Correlation operators as Python comparisons (value OP threshold).
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}


@dataclass
class SigmaCorrelationRangeCondition(SigmaCorrelationCondition):
    """A condition with several bounds (``gt: 100`` + ``lte: 200``), all of which must hold."""

    bounds: tuple[tuple[SigmaCorrelationConditionOperator, int | float], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {op.name.lower(): count for op, count in self.bounds}
        if self.fieldref:
            result["field"] = self.fieldref
        if self.percentile is not None:
            result["percentile"] = self.percentile
        return result


_original_from_dict = SigmaCorrelationCondition.from_dict.__func__  # type: ignore[attr-defined]


def _from_dict(cls: type[SigmaCorrelationCondition], d: dict[str, Any], source: Any = None) -> Any:
    ops = [key for key in d if key in _OPERATORS] if isinstance(d, dict) else []
    if len(ops) <= 1:
        return _original_from_dict(cls, d, source)
    extra = {key: d[key] for key in d if key not in _OPERATORS}
    parts = [_original_from_dict(SigmaCorrelationCondition, {op: d[op], **extra}, source) for op in ops]
    first = parts[0]
    return SigmaCorrelationRangeCondition(
        op=first.op,
        count=first.count,
        fieldref=first.fieldref,
        percentile=first.percentile,
        source=source,
        bounds=tuple((part.op, part.count) for part in parts),
    )


def install() -> None:
    """Let pySigma parse range conditions (idempotent)."""
    if getattr(SigmaCorrelationCondition.from_dict, "__sigmahunt__", False):
        return
    method = classmethod(_from_dict)
    _from_dict.__sigmahunt__ = True  # type: ignore[attr-defined]
    SigmaCorrelationCondition.from_dict = method  # type: ignore[method-assign, assignment]


install()


def bounds_of(condition: SigmaCorrelationCondition) -> list[tuple[str, int | float]]:
    """Every (operator, threshold) of a condition, operator names lowercased (``gte``...)."""
    if isinstance(condition, SigmaCorrelationRangeCondition) and condition.bounds:
        return [(op.name.lower(), count) for op, count in condition.bounds]
    return [(condition.op.name.lower(), condition.count)]


def holds(value: Any, bounds: Sequence[tuple[str, int | float]]) -> bool:
    """Whether an aggregated value satisfies every bound (a missing value satisfies none)."""
    if value is None:
        return False
    return all(COMPARE[op](value, threshold) for op, threshold in bounds)


def describe(bounds: Sequence[tuple[str, int | float]]) -> str:
    symbols = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "neq": "!="}
    return " and ".join(f"{symbols[op]} {threshold:g}" for op, threshold in bounds)


def upper_bounded(bounds: Sequence[tuple[str, int | float]]) -> bool:
    """True when more events can make the condition false (lt, lte, eq)."""
    return any(op in ("lt", "lte", "eq") for op, _ in bounds)
