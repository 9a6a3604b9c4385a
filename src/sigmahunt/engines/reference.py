"""A deliberately plain reference evaluator: pySigma's condition tree, one Python dict at a time.

It shares nothing with the embedded engine but pySigma and the log-source table: no
predicate deduplication, no distinct-value cache, no Aho-Corasick, no vectorised regex.
Its only job is to be obviously right, so the fast engine can be checked against it
(property tests, and the benchmark's "same hits" check). It is slow by design.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from sigmahunt.logsources import LogsourceVariant, resolve_logsource

Event = Mapping[str, str | None]


def rule_matches(rule: SigmaRule, event: Event) -> bool:
    """Does ``rule`` detect ``event`` (string values, as the store holds them)?"""
    resolution = resolve_logsource(rule.logsource)
    if resolution.inapplicable:
        return False
    for variant in resolution.variants:
        if _selected(variant, event):
            field_map = dict(variant.field_map)
            for condition in rule.detection.parsed_condition:
                if _node(condition.parse(), event, field_map):
                    return True
    return False


def _get(event: Event, name: str) -> str | None:
    if name in event:
        return event[name]
    lowered = name.lower()
    for key, value in event.items():
        if key.lower() == lowered:
            return value
    return None


def _selected(variant: LogsourceVariant, event: Event) -> bool:
    if variant.channels is not None:
        channel = _get(event, "Channel")
        if channel is None or channel.lower() not in {c.lower() for c in variant.channels}:
            return False
    if variant.event_ids is not None:
        if _get(event, "EventID") not in {str(e) for e in variant.event_ids}:
            return False
    for name, value in variant.conditions:
        actual = _get(event, name)
        if actual is None or actual.lower() != value.lower():
            return False
    return True


def _node(node: Any, event: Event, field_map: dict[str, str]) -> bool:
    if node is None:
        return False
    if isinstance(node, ConditionAND):
        return all(_node(a, event, field_map) for a in node.args)
    if isinstance(node, ConditionOR):
        return any(_node(a, event, field_map) for a in node.args)
    if isinstance(node, ConditionNOT):
        return not _node(node.args[0], event, field_map)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        name = field_map.get(node.field, node.field)
        return _field_value(name, node.value, event, field_map)
    if isinstance(node, ConditionValueExpression):
        return any(
            value is not None and _keyword(node.value, value)
            for key, value in event.items()
            if not key.startswith("_")
        )
    raise TypeError(type(node).__name__)


def _keyword(value: Any, text: str) -> bool:
    if isinstance(value, SigmaExpansion):
        return any(_keyword(v, text) for v in value.values)
    if isinstance(value, SigmaString):
        parts = [SpecialChars.WILDCARD_MULTI, *value.s, SpecialChars.WILDCARD_MULTI]
        return _glob(parts, text, isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaRegularExpression):
        return _regex(value, text)
    if isinstance(value, (SigmaNumber, SigmaBool)):
        return _scalar_text(value) in text.lower()
    raise TypeError(type(value).__name__)


def _scalar_text(value: SigmaNumber | SigmaBool) -> str:
    if isinstance(value, SigmaBool):
        return "true" if value.boolean else "false"
    return str(value.number)


def _field_value(name: str, value: Any, event: Event, field_map: dict[str, str]) -> bool:
    actual = _get(event, name)
    if isinstance(value, SigmaExpansion):
        return any(_field_value(name, v, event, field_map) for v in value.values)
    if isinstance(value, SigmaNull):
        return actual is None
    if isinstance(value, SigmaExists):
        return (actual is not None) == value.exists
    if actual is None:
        return False
    if isinstance(value, SigmaString):
        return _glob(list(value.s), actual, isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaTimestampPart):
        return _time_part(actual, value)
    if isinstance(value, (SigmaBool, SigmaNumber)):
        return actual.lower() == _scalar_text(value)
    if isinstance(value, SigmaRegularExpression):
        return _regex(value, actual)
    if isinstance(value, SigmaCIDRExpression):
        return _in_network(actual, value.network)
    if isinstance(value, SigmaCompareExpression):
        return _compare(actual, value)
    if isinstance(value, SigmaFieldReference):
        other = _get(event, field_map.get(value.field, value.field))
        if other is None:
            return False
        a, b = actual.lower(), other.lower()
        return a.startswith(b) if value.starts_with else a.endswith(b) if value.ends_with else a == b
    raise TypeError(type(value).__name__)


def _glob(parts: list[Any], text: str, cased: bool) -> bool:
    """Sigma wildcard match, written as the spec reads: * any run, ? one character."""
    fold = (lambda t: t) if cased else str.lower
    pattern = "".join(
        ".*" if p is SpecialChars.WILDCARD_MULTI
        else "." if p is SpecialChars.WILDCARD_SINGLE
        else re.escape(fold(p))
        for p in parts
    )
    return re.fullmatch(pattern, fold(text), re.DOTALL) is not None


_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


def _regex(value: SigmaRegularExpression, text: str) -> bool:
    flags = 0
    for flag in value.flags:
        flags |= _FLAGS[flag]
    return re.search(str(value.regexp), text, flags) is not None


def _in_network(text: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    text = text.strip()
    if text.startswith("::ffff:") and "." in text:
        text = text[7:]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return address.version == network.version and address in network


def _compare(text: str, value: SigmaCompareExpression) -> bool:
    try:
        number = float(text.strip())
    except ValueError:
        try:
            number = float(int(text.strip(), 0))
        except ValueError:
            return False
    ref = float(value.number.number)
    return {
        CompareOperators.LT: number < ref,
        CompareOperators.LTE: number <= ref,
        CompareOperators.GT: number > ref,
        CompareOperators.GTE: number >= ref,
        CompareOperators.NEQ: number != ref,
    }[value.op]


def _time_part(text: str, value: SigmaTimestampPart) -> bool:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return False
    part = value.timestamp_part.name.lower()
    actual = moment.isocalendar().week if part == "week" else getattr(moment, part)
    return bool(actual == value.number)
