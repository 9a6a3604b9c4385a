"""Compile a pySigma rule into predicates and boolean trees (see :mod:`.ir`).

pySigma has already parsed the YAML, applied the modifiers (``contains``, ``windash``,
``base64offset``, ``cidr``, ``re``...) and turned the condition into a tree of
``ConditionAND/OR/NOT`` over ``field == value`` leaves. What pySigma does not do is
*evaluate* a rule, and its backends are query emitters, not matchers; so the last step,
value types -> predicates, is written here. Each Sigma value type maps to one predicate
kind through :func:`_value_to_expr`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import re2
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import ValueListPlaceholderTransformation
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
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

from sigmahunt.engines.embedded.ir import (
    CompiledRule,
    CompiledVariant,
    Expr,
    Kind,
    Predicate,
    RuleMeta,
    Selector,
    and_,
    const,
    not_,
    or_,
    pred,
)
from sigmahunt.logsources import LogsourceVariant, resolve_logsource
from sigmahunt.rules.loader import LoadedRule


class RuleCompileError(Exception):
    """The rule is valid Sigma but cannot be evaluated (e.g. a placeholder without values)."""


COMPARE_OPS = {
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
    CompareOperators.NEQ: "neq",
}

REGEX_FLAG_LETTERS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


class _PredicateTable:
    """Deduplicates a rule's predicates; ids are local to the rule."""

    def __init__(self) -> None:
        self.items: list[Predicate] = []
        self._ids: dict[Predicate, int] = {}

    def expr(self, predicate: Predicate) -> Expr:
        pid = self._ids.get(predicate)
        if pid is None:
            pid = self._ids[predicate] = len(self.items)
            self.items.append(predicate)
        return pred(pid)


def rule_meta(loaded: LoadedRule) -> RuleMeta:
    rule = loaded.rule
    logsource = rule.logsource
    ls = "/".join(str(x) for x in (logsource.product, logsource.category, logsource.service) if x)
    return meta_of(rule, loaded.rule_id, loaded.path, ls, default_level="informational")


def meta_of(rule: Any, rule_id: str, path: str, logsource: str, default_level: str) -> RuleMeta:
    """What a detection record says about a pySigma rule or correlation rule."""
    return RuleMeta(
        rule_id=rule_id,
        title=rule.title or "",
        level=str(rule.level.name).lower() if rule.level else default_level,
        status=str(rule.status.name).lower() if rule.status else "",
        tags=[str(t) for t in (rule.tags or [])],
        path=path,
        description=rule.description or "",
        author=rule.author or "",
        falsepositives=[str(f) for f in (rule.falsepositives or [])],
        references=[str(r) for r in (rule.references or [])],
        logsource=logsource,
        name=rule.name or "",
    )


def apply_placeholders(rule: SigmaRule, placeholders: Mapping[str, Any] | None) -> None:
    """Replace ``%name%`` placeholders (``|expand``) with the user's value lists, via pySigma."""
    if not placeholders or not _has_placeholders(rule):
        return
    pipeline = ProcessingPipeline(
        name="sigmahunt placeholders",
        items=[ProcessingItem(ValueListPlaceholderTransformation(include=list(placeholders)))],
        vars=dict(placeholders),
    )
    pipeline.apply(rule)


def _has_placeholders(rule: SigmaRule) -> bool:
    for detection in rule.detection.detections.values():
        for item in _detection_items(detection):
            for value in item.value:
                if isinstance(value, SigmaString) and value.contains_placeholder():
                    return True
    return False


def _detection_items(detection: Any) -> list[Any]:
    out = []
    for item in detection.detection_items:
        if hasattr(item, "detection_items"):
            out.extend(_detection_items(item))
        else:
            out.append(item)
    return out


def compile_rule(loaded: LoadedRule, placeholders: Mapping[str, Any] | None = None) -> CompiledRule:
    """Compile one rule; raises :class:`RuleCompileError` with a reason when it cannot run."""
    try:
        apply_placeholders(loaded.rule, placeholders)
    except SigmaError as error:
        raise RuleCompileError(f"placeholder expansion failed: {error}") from error
    meta = rule_meta(loaded)
    resolution = resolve_logsource(loaded.rule.logsource)
    table = _PredicateTable()
    if resolution.inapplicable:
        # Still compile the detection so a broken rule is reported even when inapplicable.
        _compile_condition(loaded.rule, LogsourceVariant(), table)
        return CompiledRule(meta, [], [], inapplicable=resolution.inapplicable)
    variants = [
        CompiledVariant(_selector(variant), _compile_condition(loaded.rule, variant, table))
        for variant in resolution.variants
    ]
    return CompiledRule(meta, table.items, variants)


def _selector(variant: LogsourceVariant) -> Selector:
    return Selector(
        channels=tuple(c.lower() for c in variant.channels) if variant.channels else None,
        event_ids=tuple(str(e) for e in variant.event_ids) if variant.event_ids else None,
        conditions=variant.conditions,
    )


def _compile_condition(rule: SigmaRule, variant: LogsourceVariant, table: _PredicateTable) -> Expr:
    field_map = dict(variant.field_map)
    trees = []
    for condition in rule.detection.parsed_condition:
        try:
            tree = condition.parse()
        except SigmaError as error:
            raise RuleCompileError(f"condition '{condition.condition}': {error}") from error
        trees.append(_tree_to_expr(tree, field_map, table))
    return or_(trees)


def _tree_to_expr(node: Any, field_map: dict[str, str], table: _PredicateTable) -> Expr:
    if node is None:  # a detection emptied by processing matches nothing
        return const(False)
    if isinstance(node, ConditionAND):
        return and_([_tree_to_expr(a, field_map, table) for a in node.args])
    if isinstance(node, ConditionOR):
        return or_([_tree_to_expr(a, field_map, table) for a in node.args])
    if isinstance(node, ConditionNOT):
        return not_(_tree_to_expr(node.args[0], field_map, table))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        field = field_map.get(node.field, node.field)
        return _value_to_expr(field, node.value, field_map, table)
    if isinstance(node, ConditionValueExpression):
        return _value_to_expr(None, node.value, field_map, table)
    raise RuleCompileError(f"unsupported condition element {type(node).__name__}")


def _value_to_expr(field: str | None, value: Any, field_map: dict[str, str], table: _PredicateTable) -> Expr:
    if isinstance(value, SigmaExpansion):  # windash / base64offset: OR of alternatives
        return or_([_value_to_expr(field, v, field_map, table) for v in value.values])
    if isinstance(value, SigmaString):
        return _string_expr(field, value, isinstance(value, SigmaCasedString), table)
    if isinstance(value, SigmaTimestampPart):
        _require_field(field, "timestamp part")
        return table.expr(Predicate(field, Kind.TIMEPART, op=value.timestamp_part.name.lower(),
                                    number=float(value.number)))
    if isinstance(value, SigmaBool):  # before SigmaNumber: not a number in Sigma
        return _literal_expr(field, "true" if value.boolean else "false", table)
    if isinstance(value, SigmaNumber):
        return _literal_expr(field, str(value.number), table)
    if isinstance(value, SigmaNull):
        _require_field(field, "null")
        return table.expr(Predicate(field, Kind.NULL))
    if isinstance(value, SigmaExists):
        _require_field(field, "exists")
        return table.expr(Predicate(field, Kind.EXISTS)) if value.exists else not_(
            table.expr(Predicate(field, Kind.EXISTS)))
    if isinstance(value, SigmaRegularExpression):
        return table.expr(_regex_predicate(field, value))
    if isinstance(value, SigmaCIDRExpression):
        _require_field(field, "cidr")
        return table.expr(Predicate(field, Kind.CIDR, value=str(value.network)))
    if isinstance(value, SigmaCompareExpression):
        _require_field(field, "comparison")
        return table.expr(Predicate(field, Kind.CMP, op=COMPARE_OPS[value.op], number=float(value.number.number)))
    if isinstance(value, SigmaFieldReference):
        _require_field(field, "fieldref")
        mode = "startswith" if value.starts_with else "endswith" if value.ends_with else "eq"
        return table.expr(Predicate(field, Kind.FIELDREF, value=field_map.get(value.field, value.field), op=mode))
    raise RuleCompileError(f"value type {type(value).__name__} is not supported by the embedded engine")


def _require_field(field: str | None, what: str) -> None:
    if field is None:
        raise RuleCompileError(f"{what} value needs a field (keyword search cannot use it)")


def _literal_expr(field: str | None, text: str, table: _PredicateTable) -> Expr:
    kind = Kind.CONTAINS if field is None else Kind.EQ
    return table.expr(Predicate(field, kind, value=text.lower()))


def _regex_predicate(field: str | None, value: SigmaRegularExpression) -> Predicate:
    pattern = str(value.regexp)
    letters = "".join(sorted(REGEX_FLAG_LETTERS[f] for f in value.flags))
    if letters:
        pattern = f"(?{letters}){pattern}"
    return Predicate(field, Kind.REGEX, value=pattern)


def pcre_dollar(pattern: str) -> str:
    """Give ``$`` its PCRE meaning (end, or before a final newline) in Rust's regex dialect.

    Sigma regexes are PCRE; Rust's ``regex`` (the engine's linear-time matcher) reads ``$``
    as the very end only. Unescaped ``$`` outside character classes becomes ``(?:\\n?\\z)``.
    """
    out: list[str] = []
    in_class = False
    escaped = False
    for index, char in enumerate(pattern):
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            out.append(char)
            escaped = True
        elif in_class:
            out.append(char)
            if char == "]" and not (pattern[index - 1] == "[" or pattern[index - 2: index] == "[^"):
                in_class = False
        elif char == "[":
            out.append(char)
            in_class = True
        elif char == "$":
            out.append("(?:\\n?\\z)")
        else:
            out.append(char)
    return "".join(out)


def _string_expr(field: str | None, value: SigmaString, cased: bool, table: _PredicateTable) -> Expr:
    parts = list(value.s)
    for part in parts:
        if isinstance(part, Placeholder):
            raise RuleCompileError(
                f"placeholder %{part.name}% has no values (pass them with --placeholders FILE)"
            )
    if field is None:  # keywords search inside any field's value
        parts = [SpecialChars.WILDCARD_MULTI, *parts, SpecialChars.WILDCARD_MULTI]
    return table.expr(string_predicate(field, parts, cased))


def _collapse_stars(parts: list[Any]) -> list[Any]:
    out: list[Any] = []
    for part in parts:
        if part == "":
            continue
        if part is SpecialChars.WILDCARD_MULTI and out and out[-1] is SpecialChars.WILDCARD_MULTI:
            continue
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
            continue
        out.append(part)
    return out


def string_predicate(field: str | None, raw_parts: list[Any], cased: bool) -> Predicate:
    """Classify a wildcard string into the cheapest predicate that means the same."""
    parts = _collapse_stars(raw_parts)
    fold = (lambda s: s) if cased else str.lower
    star = SpecialChars.WILDCARD_MULTI
    if not parts:
        return Predicate(field, Kind.EQ, "", cased)
    if parts == [star]:
        return Predicate(field, Kind.ANY)
    if all(isinstance(p, str) or p is star for p in parts):
        lead = parts[0] is star
        trail = parts[-1] is star
        middle = parts[int(lead): len(parts) - int(trail)]
        if len(middle) == 1 and isinstance(middle[0], str):
            text = fold(middle[0])
            kind = Kind.CONTAINS if lead and trail else Kind.SUFFIX if lead else Kind.PREFIX if trail else Kind.EQ
            return Predicate(field, kind, text, cased)
    return _glob_predicate(field, parts, cased, fold)


def _glob_predicate(field: str | None, parts: list[Any], cased: bool, fold: Any) -> Predicate:
    pieces = ["(?s)^"]
    required = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            pieces.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            pieces.append(".")
        else:
            text = fold(part)
            required.append(text)
            pieces.append(re.escape(text))
    pieces.append("$")
    pattern = "".join(pieces)
    re2.compile(pattern)  # fail at compile time, not during a hunt
    # Longest first (the prefilter hint), ties by text: the same bytes in every process
    # (set order follows the string hash seed, which made cache entries differ).
    required_literals = tuple(sorted(set(required), key=lambda text: (-len(text), text)))
    return Predicate(field, Kind.GLOB, pattern, cased, required=required_literals)
