"""The compiled form of a rule set: predicates shared across rules, and boolean trees over them.

Every Sigma detection item becomes one or more :class:`Predicate` (a test of one field's
value). Predicates are deduplicated across the whole rule set, so 2,800 rules that test
``Image|endswith: \\cmd.exe`` cost one test per distinct ``Image`` value, not 2,800.
A rule is a tree of AND/OR/NOT over predicate ids, per log-source variant.

Everything here is plain data (strings, numbers, lists) so the compiled rule set can be
cached as JSON and shipped to Spark executors; nothing is pickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any


class Kind(StrEnum):
    """What a predicate tests. String kinds compare lowercased text unless ``cased``."""

    EQ = "eq"  # whole value equals the literal
    PREFIX = "prefix"  # value starts with the literal
    SUFFIX = "suffix"  # value ends with the literal
    CONTAINS = "contains"  # literal occurs in value
    GLOB = "glob"  # wildcard pattern with inner * or ?, as an anchored regex
    ANY = "any"  # "*": the field has a value (any, including empty)
    REGEX = "regex"  # Sigma |re, flags inline
    CIDR = "cidr"  # IP address in network
    CMP = "cmp"  # numeric lt/lte/gt/gte/neq
    EXISTS = "exists"  # field present (value may be empty)
    NULL = "null"  # field absent or null
    FIELDREF = "fieldref"  # value equals (starts/ends with) another field's value
    TIMEPART = "timepart"  # minute/hour/day/week/month/year of a timestamp field


#: Kinds matched through the literal multi-pattern matcher.
LITERAL_KINDS = frozenset({Kind.EQ, Kind.PREFIX, Kind.SUFFIX, Kind.CONTAINS})


@dataclass(frozen=True, slots=True)
class Predicate:
    """One test of one field. ``field`` None means a keyword: any field of the event.

    ``value`` holds the literal (already lowercased unless ``cased``), the glob/regex
    pattern, the CIDR, or the referenced field. ``op`` holds a comparison operator
    (``lt``..), a fieldref mode (``eq``/``startswith``/``endswith``) or a time part.
    """

    field: str | None
    kind: Kind
    value: str = ""
    cased: bool = False
    op: str = ""
    number: float = 0.0
    required: tuple[str, ...] = ()  # GLOB: literals every match contains (prefilter)

    def to_json(self) -> list[Any]:
        return [self.field, self.kind.value, self.value, self.cased, self.op, self.number, list(self.required)]

    @classmethod
    def from_json(cls, data: list[Any]) -> Predicate:
        f, kind, value, cased, op, number, required = data
        return cls(f, Kind(kind), value, cased, op, number, tuple(required))

    def describe(self) -> str:
        target = self.field if self.field is not None else "<any field>"
        extra = " (cased)" if self.cased else ""
        if self.kind in (Kind.CMP, Kind.TIMEPART):
            return f"{target} {self.kind.value} {self.op} {self.number:g}"
        if self.kind is Kind.FIELDREF:
            return f"{target} {self.op} field {self.value}"
        return f"{target} {self.kind.value} {self.value!r}{extra}"


# Boolean tree nodes: (op, payload), AND/OR payloads a tuple of children. Tuples, not
# lists: a tuple holding only ints, bools and such tuples is dropped from the garbage
# collector's lists once its items are (a nesting level per collection). SigmaHQ's
# Windows rules and their plan hold ~185,000 nodes, every one of which each full
# collection walked as a list; as tuples, 44,602 are still tracked after one collection,
# 26,122 after two. Serialised as JSON
# arrays; :func:`expr_from_json` reads them back.
AND, OR, NOT, PRED, CONST = 0, 1, 2, 3, 4
Expr = tuple[Any, ...]


def and_(children: Sequence[Expr]) -> Expr:
    return children[0] if len(children) == 1 else (AND, tuple(children))


def or_(children: Sequence[Expr]) -> Expr:
    return children[0] if len(children) == 1 else (OR, tuple(children))


def not_(child: Expr) -> Expr:
    return (NOT, child)


def pred(pid: int) -> Expr:
    return (PRED, pid)


def const(value: bool) -> Expr:
    return (CONST, value)


def expr_to_json(expr: Expr) -> list[Any]:
    """A tree as nested lists, what JSON gives back (the inverse of :func:`expr_from_json`)."""
    op, payload = expr
    if op in (AND, OR):
        return [op, [expr_to_json(child) for child in payload]]
    if op == NOT:
        return [NOT, expr_to_json(payload)]
    return [op, payload]


def expr_from_json(data: Any) -> Expr:
    """A tree read back from JSON (nested arrays) as the tuples the rest expects."""
    op, payload = data
    if op in (AND, OR):
        return (op, tuple(expr_from_json(child) for child in payload))
    if op == NOT:
        return (NOT, expr_from_json(payload))
    return (op, payload)


def predicates_of(expr: Expr) -> set[int]:
    """Every predicate id a tree refers to."""
    op, payload = expr
    if op == PRED:
        return {payload}
    if op == NOT:
        return predicates_of(payload)
    if op in (AND, OR):
        out: set[int] = set()
        for child in payload:
            out |= predicates_of(child)
        return out
    return set()


@dataclass(frozen=True, slots=True)
class Selector:
    """Which rows a log-source variant means (channels lowercased, EventIDs as strings)."""

    channels: tuple[str, ...] | None
    event_ids: tuple[str, ...] | None
    conditions: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> list[Any]:
        return [
            list(self.channels) if self.channels is not None else None,
            list(self.event_ids) if self.event_ids is not None else None,
            [list(c) for c in self.conditions],
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> Selector:
        channels, event_ids, conditions = data
        return cls(
            tuple(channels) if channels is not None else None,
            tuple(event_ids) if event_ids is not None else None,
            tuple((k, v) for k, v in conditions),
        )


@dataclass
class RuleMeta:
    """What a detection record says about its rule."""

    rule_id: str
    title: str
    level: str
    status: str
    tags: list[str]
    path: str
    description: str = ""
    author: str = ""
    falsepositives: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    logsource: str = ""
    name: str = ""

    @property
    def techniques(self) -> list[str]:
        """ATT&CK technique ids from ``attack.tNNNN[.NNN]`` tags (a fresh list each time)."""
        return list(self._attack[0])

    @property
    def tactics(self) -> list[str]:
        """ATT&CK tactics from ``attack.<tactic-name>`` tags (a fresh list each time)."""
        return list(self._attack[1])

    @cached_property
    def _attack(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Techniques and tactics, worked out once: every detection record names them
        (parsing the tags per record was a third of the records' cost on EVTX hunts)."""
        techniques, tactics = [], []
        for tag in self.tags:
            low = tag.lower()
            if low.startswith("attack.t") and low[8:9].isdigit():
                techniques.append(tag[7:].upper())
            name = low.removeprefix("attack.").replace("_", "-")
            if low.startswith("attack.") and name in ATTACK_TACTICS:
                tactics.append(name)
        return tuple(techniques), tuple(tactics)


#: ATT&CK enterprise tactics, in kill-chain order (tags name them ``attack.<tactic>``).
ATTACK_TACTICS = (
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "credential-access", "discovery",
    "lateral-movement", "collection", "command-and-control", "exfiltration", "impact",
)


@dataclass
class CompiledVariant:
    """One log-source variant of a rule: which rows, and the tree over the rule's predicates."""

    selector: Selector
    expr: Expr


@dataclass
class CompiledRule:
    """A rule compiled on its own (cacheable per file); predicate ids index ``predicates``."""

    meta: RuleMeta
    predicates: list[Predicate]
    variants: list[CompiledVariant]
    inapplicable: str | None = None  # why no Windows event can match it

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": asdict(self.meta),
            "predicates": [p.to_json() for p in self.predicates],
            "variants": [[v.selector.to_json(), expr_to_json(v.expr)] for v in self.variants],
            "inapplicable": self.inapplicable,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompiledRule:
        return cls(
            meta=RuleMeta(**data["meta"]),
            predicates=[Predicate.from_json(p) for p in data["predicates"]],
            variants=[CompiledVariant(Selector.from_json(s), expr_from_json(e)) for s, e in data["variants"]],
            inapplicable=data["inapplicable"],
        )
