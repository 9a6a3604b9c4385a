"""Compiled rules (sigmahunt's IR) -> Elasticsearch/OpenSearch queries.

Why from the IR and not with pySigma-backend-elasticsearch: that backend requires
pySigma < 2, while sigmahunt's rule model is pySigma 2.0.1, so the two cannot be installed
together. More importantly, the IR (:mod:`sigmahunt.engines.embedded.ir`) is where
sigmahunt fixes Sigma's meaning once: modifiers expanded, wildcards classified, log sources
resolved into channel/EventID selectors with their field renames. Converting from it means
the embedded engine and the cluster answer the same question, which the differential tests
check event by event.

Two steps:

1. :func:`lower_rule` maps the rule onto an index: field names through a
   :class:`~sigmahunt.pipelines.Pipeline` (with per-EventID cases where the name depends on
   the event), log-source selectors into channel/EventID tests or into the index pattern
   itself (HELK's per-log indices), giving a small boolean tree (:class:`Node`).
2. Renderers: :func:`to_dsl` (query DSL), :func:`to_lucene` (``query_string`` text) and
   :func:`to_esql` (``FROM ... | WHERE ...``).

The index layout (:class:`Layout`) the queries assume is the one ``sigmahunt ingest``
creates (:mod:`.template`): every string field a ``keyword`` with a lowercase normalizer
(so matching is case-insensitive, as Sigma's), an exact-case ``.cased`` sub-field for
``|cased`` values and case-sensitive regexes, numeric and IP copies for comparisons and
CIDRs, and ``sigmahunt.all`` holding every value of the event for keyword searches. The
``plain`` layout targets indices mapped by someone else (keyword fields, possibly not
normalised): it relies on ``case_insensitive: true`` alone.

Missing fields follow Sigma: a test of an absent field is false, so ``not filter`` is true
(``bool.must_not`` gives exactly that; ES|QL's three-valued logic is made two-valued).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigmahunt.engines.elastic.regex import RegexNotTranslatable, translate
from sigmahunt.engines.embedded.ir import AND, CONST, NOT, OR, PRED, CompiledRule, Expr, Kind, Predicate
from sigmahunt.pipelines import Case, Pipeline, provenance_field


class ConversionRefused(Exception):
    """The rule (or this target) cannot be expressed; the message says why."""


# -- layout --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """How event fields are indexed (what the queries may rely on)."""

    name: str
    cased_suffix: str | None  # exact-case sub-field; None: the field itself is exact-case
    num_prefix: str | None  # numeric copy of numeric values; None: compare the field itself
    ip_prefix: str | None  # IP copy of address values; None: the field itself is an ip
    all_field: str | None  # every value of the event; None: query_string over all fields
    normalized: bool  # fields hold lowercase-normalised terms


SIGMAHUNT_LAYOUT = Layout("sigmahunt", ".cased", "sigmahunt.num.", "sigmahunt.ip.", "sigmahunt.all", True)
PLAIN_LAYOUT = Layout("plain", None, None, None, None, False)
LAYOUTS = {layout.name: layout for layout in (SIGMAHUNT_LAYOUT, PLAIN_LAYOUT)}


@dataclass(frozen=True)
class Capabilities:
    """What the target cluster can run (scripted queries need the painless module)."""

    scripts: bool = True


# -- the mapped tree -------------------------------------------------------------------------

@dataclass(frozen=True)
class Test:
    """A predicate on an index field; ``field`` None means any field (Sigma keywords)."""

    field: str | None
    predicate: Predicate
    ref_field: str | None = None  # FIELDREF: the other index field


@dataclass(frozen=True)
class In:
    """A selector test: the field's value is one of ``values`` (case-folded or exact)."""

    field: str
    values: tuple[str, ...]
    folded: bool


@dataclass(frozen=True)
class IndexIs:
    """The event lives in an index matching ``pattern`` (when one query spans several)."""

    pattern: str


@dataclass(frozen=True)
class Node:
    op: str  # "and" | "or" | "not" | "const" | "leaf"
    children: tuple[Node, ...] = ()
    leaf: Test | In | IndexIs | None = None
    value: bool = False


TRUE = Node("const", value=True)
FALSE = Node("const", value=False)


def leaf(item: Test | In | IndexIs) -> Node:
    return Node("leaf", leaf=item)


def and_(children: Iterable[Node]) -> Node:
    out: list[Node] = []
    for child in children:
        if child.op == "const":
            if not child.value:
                return FALSE
            continue
        out.extend(child.children if child.op == "and" else (child,))
    if not out:
        return TRUE
    return out[0] if len(out) == 1 else Node("and", tuple(out))


def or_(children: Iterable[Node]) -> Node:
    out: list[Node] = []
    for child in children:
        if child.op == "const":
            if child.value:
                return TRUE
            continue
        out.extend(child.children if child.op == "or" else (child,))
    if not out:
        return FALSE
    return out[0] if len(out) == 1 else Node("or", tuple(out))


def not_(child: Node) -> Node:
    if child.op == "const":
        return FALSE if child.value else TRUE
    if child.op == "not":
        return child.children[0]
    return Node("not", (child,))


def count_leaves(node: Node) -> int:
    if node.op == "leaf":
        return 1
    return sum(count_leaves(c) for c in node.children)


@dataclass
class LoweredRule:
    """A rule mapped onto an index: the patterns to search and the tree to match."""

    rule: CompiledRule
    indices: list[str]
    tree: Node
    pipeline: str = ""

    @property
    def index_expression(self) -> str:
        return ",".join(self.indices)


#: Maps an index field name to the names actually present (case-insensitive lookup).
Resolver = Callable[[str], Sequence[str]]


def lower_rule(
    rule: CompiledRule,
    pipeline: Pipeline,
    *,
    index: str | None = None,
    resolve: Resolver | None = None,
    provenance: bool = False,
) -> LoweredRule:
    """Map a compiled rule onto an index named by ``pipeline`` (``index`` overrides its patterns).

    ``provenance``: the index was loaded by ``sigmahunt ingest``, which records where a shared
    index name came from (``sigmahunt.from``): tests of such names then also check the source,
    so a lossy pipeline (HELK's ``process_path`` for six EVTX fields) stays exact.
    """
    if rule.inapplicable:
        raise ConversionRefused(f"not about Windows event logs: {rule.inapplicable}")
    lowering = _Lowering(rule, pipeline, resolve, provenance)
    parts: list[tuple[Node, str | None, list[str]]] = []  # (tree, implied route, patterns)
    for variant in rule.variants:
        sel = variant.selector
        conds: list[Node] = []
        implied: str | None = None
        if index is not None:
            patterns = [index]
            if sel.channels is not None:
                conds.append(lowering.in_(pipeline.channel_field, sel.channels, folded=True))
        elif sel.channels is None:
            patterns = [_default_index(pipeline)]
        else:
            routes = {pipeline.route(c) for c in sel.channels}
            if pipeline.channel_implied_by_index and None not in routes and len(routes) == 1:
                implied = routes.pop()
                patterns = [implied]  # type: ignore[list-item]
            else:
                patterns = sorted({pipeline.index_of(c) or _default_index(pipeline) for c in sel.channels})
                conds.append(lowering.in_(pipeline.channel_field, sel.channels, folded=True))
        if sel.event_ids is not None:
            conds.append(lowering.in_(pipeline.event_id_field, sel.event_ids, folded=False))
        for name, value in sel.conditions:
            conds.append(lowering.test(Predicate(name, Kind.EQ, value.lower()), sel.channels, sel.event_ids))
        conds.append(lowering.expr(variant.expr, sel.channels, sel.event_ids))
        parts.append((and_(conds), implied, patterns))
    indices: list[str] = []
    for _, _, patterns in parts:
        for pattern in patterns:
            if pattern not in indices:
                indices.append(pattern)
    trees = []
    for tree, implied, _ in parts:
        if implied is not None and len(indices) > 1:
            tree = and_([leaf(IndexIs(implied)), tree])
        trees.append(tree)
    return LoweredRule(rule, indices, or_(trees), pipeline.name)


def _default_index(pipeline: Pipeline) -> str:
    if not pipeline.default_index:
        raise ConversionRefused(f"pipeline {pipeline.name} has no default index: pass --index")
    return pipeline.default_index


class _Lowering:
    def __init__(self, rule: CompiledRule, pipeline: Pipeline, resolve: Resolver | None,
                 provenance: bool = False) -> None:
        self.rule = rule
        self.pipeline = pipeline
        self.resolve = resolve
        self.provenance = provenance

    def names(self, name: str) -> list[str]:
        if self.resolve is None:
            return [name]
        found = list(self.resolve(name))
        return found or [name]

    def in_(self, name: str, values: Iterable[str], folded: bool) -> Node:
        vals = tuple(v.lower() for v in values) if folded else tuple(values)
        return or_(leaf(In(n, vals, folded)) for n in self.names(name))

    def expr(self, expr: Expr, channels: Sequence[str] | None, event_ids: Sequence[str] | None) -> Node:
        op, payload = expr
        if op == PRED:
            return self.test(self.rule.predicates[payload], channels, event_ids)
        if op == AND:
            return and_(self.expr(c, channels, event_ids) for c in payload)
        if op == OR:
            return or_(self.expr(c, channels, event_ids) for c in payload)
        if op == NOT:
            return not_(self.expr(payload, channels, event_ids))
        if op == CONST:
            return TRUE if payload else FALSE
        raise ConversionRefused(f"unknown expression node {op}")

    def test(self, p: Predicate, channels: Sequence[str] | None, event_ids: Sequence[str] | None) -> Node:
        if p.field is None:
            return leaf(Test(None, p))
        cases = self.pipeline.cases(p.field, channels, event_ids)
        ref_cases: list[Case] | None = None
        if p.kind is Kind.FIELDREF:
            ref_cases = self.pipeline.cases(p.value, channels, event_ids)
            if len(cases) > 1 or len(ref_cases) > 1:
                raise ConversionRefused("fieldref between fields whose index name depends on the EventID")
        if len(cases) == 1:
            return self._sourced(p, cases[0].target, ref_cases[0].target if ref_cases else None)
        branches: list[Node] = []
        earlier: list[Node] = []
        for case in cases:
            cond = self._case_condition(case)
            guard = and_([*(not_(e) for e in earlier), cond])
            branches.append(and_([guard, self._sourced(p, case.target, None)]))
            earlier.append(cond)
        return or_(branches)

    def _sourced(self, p: Predicate, target: str, ref_target: str | None) -> Node:
        """The test on ``target``, restricted to values that came from ``p.field`` when shared."""
        node = self._on_names(p, target, ref_target)
        if not self.provenance or target not in self.pipeline.shared_targets or p.field is None:
            return node
        came_from = leaf(In(provenance_field(target), (p.field,), False))
        if p.kind is Kind.NULL:  # the field is absent unless a value came from it
            return not_(came_from)
        return and_([came_from, node])

    def _on_names(self, p: Predicate, target: str, ref_target: str | None) -> Node:
        refs = self.names(ref_target) if ref_target else [None]
        return or_(leaf(Test(name, p, ref)) for name in self.names(target) for ref in refs)

    def _case_condition(self, case: Case) -> Node:
        parts = []
        if case.channels is not None:
            parts.append(self.in_(self.pipeline.channel_field, sorted(case.channels), folded=True))
        if case.event_ids is not None:
            parts.append(self.in_(self.pipeline.event_id_field, sorted(case.event_ids, key=_id_order),
                                  folded=False))
        return and_(parts)


def _id_order(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (1 << 62, value)


def relax(node: Node, doubtful: Callable[[Test], bool], positive: bool = True) -> Node:
    """A tree matching a superset of ``node``: doubtful tests become "no restriction".

    A test under an even number of NOTs is replaced by TRUE, under an odd number by FALSE,
    so every event ``node`` matches still matches. The engine runs the relaxed query and
    keeps only the hits the embedded evaluator confirms, which gives exact results for tests
    the cluster cannot run (regexes too complex to determinise, lookarounds, fieldref
    without scripts).
    """
    if node.op == "leaf":
        if isinstance(node.leaf, Test) and doubtful(node.leaf):
            return TRUE if positive else FALSE
        return node
    if node.op == "not":
        return not_(relax(node.children[0], doubtful, not positive))
    if node.op == "and":
        return and_(relax(c, doubtful, positive) for c in node.children)
    if node.op == "or":
        return or_(relax(c, doubtful, positive) for c in node.children)
    return node


def untranslatable(test: Test, caps: Capabilities = Capabilities()) -> bool:
    """Tests the DSL renderer would refuse (so the engine relaxes and verifies them)."""
    p = test.predicate
    if p.kind is Kind.REGEX:
        try:
            translate(p.value)
        except RegexNotTranslatable:
            return True
        return False
    if p.kind is Kind.FIELDREF:
        return not caps.scripts
    return p.kind is Kind.TIMEPART


def is_regex(test: Test) -> bool:
    return test.predicate.kind is Kind.REGEX


# -- splitting (clause limits) -------------------------------------------------------------------

def split_for_clauses(tree: Node, max_leaves: int, max_pieces: int = 64) -> list[Node]:
    """Trees whose union of matches is ``tree``'s, each with at most ``max_leaves`` leaves if possible.

    Clusters cap the clauses of one query (OpenSearch 2 and Lucene 9 count every clause of
    the whole query, 1,024 by default). A rule such as SigmaHQ's "Vulnerable Driver Load"
    tests 4,000+ hashes. An OR that is not under a NOT distributes over the rest of the
    query, so its children are cut into chunks, one query each, and the hits are united.
    At most ``max_pieces`` queries come out; a tree that cannot be cut (its size is under
    a NOT) is returned whole, for the cluster to accept or refuse.
    """
    out: list[Node] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        sizes: dict[int, int] = {}
        if _leaves(node, sizes) <= max_leaves:
            out.append(node)
            continue
        target = _largest_positive_or(node, sizes)
        if target is None:
            out.append(node)
            continue
        budget = max(1, max_leaves - (_leaves(node, sizes) - _leaves(target, sizes)))
        chunks: list[list[Node]] = [[]]
        size = 0
        for child in target.children:
            n = _leaves(child, sizes)
            if chunks[-1] and size + n > budget:
                chunks.append([])
                size = 0
            chunks[-1].append(child)
            size += n
        if len(chunks) == 1 or len(out) + len(pending) + len(chunks) > max_pieces:
            out.append(node)
            continue
        pending.extend(_replace(node, target, or_(chunk)) for chunk in reversed(chunks))
    return out


def _leaves(node: Node, sizes: dict[int, int]) -> int:
    key = id(node)
    if key not in sizes:
        sizes[key] = 1 if node.op == "leaf" else sum(_leaves(c, sizes) for c in node.children)
    return sizes[key]


def _largest_positive_or(node: Node, sizes: dict[int, int] | None = None) -> Node | None:
    sizes = {} if sizes is None else sizes
    best: Node | None = None
    stack = [node]
    while stack:
        n = stack.pop()
        if n.op == "or" and (best is None or _leaves(n, sizes) > _leaves(best, sizes)):
            best = n
        if n.op in ("and", "or"):
            stack.extend(n.children)
    return best


def _replace(node: Node, target: Node, replacement: Node) -> Node:
    if node is target:
        return replacement
    if node.op == "and":
        return and_(_replace(c, target, replacement) for c in node.children)
    if node.op == "or":
        return or_(_replace(c, target, replacement) for c in node.children)
    return node


# -- values -------------------------------------------------------------------------------------

STAR, QMARK = object(), object()


def glob_parts(p: Predicate) -> list[Any]:
    """A string predicate as literal text and wildcards (``STAR``/``QMARK``)."""
    if p.kind is Kind.EQ:
        return [p.value] if p.value else []
    if p.kind is Kind.PREFIX:
        return [p.value, STAR]
    if p.kind is Kind.SUFFIX:
        return [STAR, p.value]
    if p.kind is Kind.CONTAINS:
        return [STAR, p.value, STAR] if p.value else [STAR]
    if p.kind is Kind.ANY:
        return [STAR]
    if p.kind is Kind.GLOB:
        return _parse_glob_regex(p.value)
    raise ValueError(f"{p.kind} is not a string pattern")


def _parse_glob_regex(pattern: str) -> list[Any]:
    """Invert the compiler's glob regex (``(?s)^`` + ``.*``/``.``/``re.escape(text)`` + ``$``)."""
    if not (pattern.startswith("(?s)^") and pattern.endswith("$")):
        raise ConversionRefused(f"unexpected glob pattern {pattern!r}")
    body = pattern[5:-1]
    out: list[Any] = []
    text: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            text.append(body[i + 1])
            i += 2
            continue
        if ch == ".":
            if text:
                out.append("".join(text))
                text = []
            if body.startswith(".*", i):
                out.append(STAR)
                i += 2
            else:
                out.append(QMARK)
                i += 1
            continue
        text.append(ch)
        i += 1
    if text:
        out.append("".join(text))
    return out


def wildcard_text(parts: Sequence[Any]) -> str:
    """Lucene ``WildcardQuery`` syntax: ``*``, ``?``, and ``\\`` escaping them and itself."""
    out = []
    for part in parts:
        if part is STAR:
            out.append("*")
        elif part is QMARK:
            out.append("?")
        else:
            out.append(re.sub(r"([\\*?])", r"\\\1", part))
    return "".join(out)


def number_text(n: float) -> str:
    if math.isfinite(n) and n == int(n) and abs(n) < 2**63:
        return str(int(n))
    return repr(n)


# -- query DSL ------------------------------------------------------------------------------------

def to_dsl(
    node: Node, layout: Layout = SIGMAHUNT_LAYOUT, caps: Capabilities = Capabilities(), *,
    explicit_case: bool = True,
) -> dict[str, Any]:
    """The tree as a query DSL ``query`` object.

    ``explicit_case``: write ``case_insensitive: true`` on every case-insensitive test
    (portable: right on any keyword field). The engine turns it off on indices it knows carry
    sigmahunt's lowercase-normalised layout, where the flag only costs time (a
    case-insensitive automaton per test, ~10x a plain term).
    """
    return _DSL(layout, caps, explicit_case or not layout.normalized).render(node)


class _DSL:
    def __init__(self, layout: Layout, caps: Capabilities, explicit_case: bool = True) -> None:
        self.layout = layout
        self.caps = caps
        self.explicit_case = explicit_case

    def render(self, node: Node) -> dict[str, Any]:
        if node.op == "const":
            return {"match_all": {}} if node.value else {"match_none": {}}
        if node.op == "and":
            return {"bool": {"filter": [self.render(c) for c in node.children]}}
        if node.op == "or":
            return {"bool": {"should": [self.render(c) for c in node.children], "minimum_should_match": 1}}
        if node.op == "not":
            return {"bool": {"must_not": [self.render(node.children[0])]}}
        item = node.leaf
        if isinstance(item, In):
            if item.folded:
                terms = [{"term": {item.field: {"value": v, "case_insensitive": True}}} for v in item.values]
                return terms[0] if len(terms) == 1 else {"bool": {"should": terms, "minimum_should_match": 1}}
            return {"terms": {item.field: list(item.values)}}
        if isinstance(item, IndexIs):
            return {"wildcard": {"_index": {"value": item.pattern}}}
        assert isinstance(item, Test)
        return self.test(item)

    def _field(self, test: Test) -> str:
        if test.field is not None:
            return test.field
        if self.layout.all_field is None:
            raise AssertionError("keywords without a catch-all field are rendered as query_string")
        return self.layout.all_field

    def _cased(self, name: str) -> str:
        return name + self.layout.cased_suffix if self.layout.cased_suffix else name

    def test(self, test: Test) -> dict[str, Any]:
        p = test.predicate
        if test.field is None and self.layout.all_field is None:
            return {"query_string": {"query": _lucene_keyword(p, self.layout), "default_field": "*",
                                     "lenient": True}}
        name = self._field(test)
        kind = p.kind
        if kind in (Kind.ANY, Kind.EXISTS):
            return {"exists": {"field": name}}
        if kind is Kind.NULL:
            return {"bool": {"must_not": [{"exists": {"field": name}}]}}
        if kind in (Kind.EQ, Kind.PREFIX, Kind.SUFFIX, Kind.CONTAINS, Kind.GLOB):
            target = self._cased(name) if p.cased else name
            # Values are lowercase (the compiler folds them): on a lowercase-normalised field
            # that alone is case-insensitive matching (see to_dsl's explicit_case).
            options: dict[str, Any] = {"case_insensitive": True} if self.explicit_case and not p.cased else {}
            if kind is Kind.EQ:
                return {"term": {target: {"value": p.value, **options}}}
            if kind is Kind.PREFIX:
                return {"prefix": {target: {"value": p.value, **options}}}
            return {"wildcard": {target: {"value": wildcard_text(glob_parts(p)), **options}}}
        if kind is Kind.REGEX:
            try:
                lucene = translate(p.value)
            except RegexNotTranslatable as error:
                raise ConversionRefused(f"regex {p.value!r}: {error}") from error
            target = name if lucene.case_insensitive else self._cased(name)
            body: dict[str, Any] = {"value": lucene.pattern, "flags": "ALL",
                                    "max_determinized_states": 100_000}
            if lucene.case_insensitive and self.explicit_case:
                body["case_insensitive"] = True  # (normalised fields: the literals are lowercased)
            return {"regexp": {target: body}}
        if kind is Kind.CIDR:
            target = self.layout.ip_prefix + name if self.layout.ip_prefix else name
            return {"term": {target: p.value}}
        if kind is Kind.CMP:
            target = self.layout.num_prefix + name if self.layout.num_prefix else name
            if p.op == "neq":
                return {"bool": {"filter": [{"exists": {"field": target}}],
                                 "must_not": [{"term": {target: p.number}}]}}
            return {"range": {target: {p.op: p.number}}}
        if kind is Kind.FIELDREF:
            if not self.caps.scripts:
                raise ConversionRefused("fieldref needs a scripted query (painless), which this cluster lacks")
            assert test.ref_field is not None
            return {"script": {"script": {"lang": "painless", "source": _FIELDREF_SCRIPT, "params": {
                "a": name if self.layout.normalized else name, "b": test.ref_field, "op": p.op,
                "fold": not self.layout.normalized}}}}
        if kind is Kind.TIMEPART:
            raise ConversionRefused("timestamp-part modifiers (|hour, |day...) are not converted to queries")
        raise ConversionRefused(f"predicate kind {kind} is not supported")


#: Both fields present, compared as strings (lowercased: the doc values of normalised keyword
#: fields already are), equal / starts with / ends with.
_FIELDREF_SCRIPT = (
    "if (!doc.containsKey(params.a) || !doc.containsKey(params.b)) { return false; } "
    "if (doc[params.a].size() == 0 || doc[params.b].size() == 0) { return false; } "
    "String x = doc[params.a].value; String y = doc[params.b].value; "
    "if (params.fold) { x = x.toLowerCase(); y = y.toLowerCase(); } "
    "if (params.op == 'startswith') { return x.startsWith(y); } "
    "if (params.op == 'endswith') { return x.endsWith(y); } "
    "return x.equals(y);"
)


def needs_scripts(node: Node) -> bool:
    if node.op == "leaf":
        return isinstance(node.leaf, Test) and node.leaf.predicate.kind is Kind.FIELDREF
    return any(needs_scripts(c) for c in node.children)


# -- Lucene query_string ----------------------------------------------------------------------------

_RESERVED = set('+-=&|><!(){}[]^"~*?:\\/')


def lucene_escape(text: str, keep_wildcards: bool = False) -> str:
    """Escape a term for ``query_string``: reserved characters and whitespace."""
    out = []
    for ch in text:
        if keep_wildcards and ch in "*?":
            out.append(ch)
        elif ch in _RESERVED or ch.isspace():
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _lucene_quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lucene_value(text: str) -> str:
    if text and re.fullmatch(r"[A-Za-z0-9_.]+", text) and text.upper() not in ("AND", "OR", "NOT", "TO"):
        return text
    return _lucene_quoted(text)


def _lucene_wildcard(parts: Sequence[Any]) -> str:
    out = []
    for part in parts:
        if part is STAR:
            out.append("*")
        elif part is QMARK:
            out.append("?")
        else:
            out.append(lucene_escape(part))
    return "".join(out)


def _lucene_keyword(p: Predicate, layout: Layout) -> str:
    """A keyword search as a bare query_string term (searched in the default fields)."""
    if p.kind is Kind.REGEX:
        try:
            lucene = translate(p.value)
        except RegexNotTranslatable as error:
            raise ConversionRefused(f"regex {p.value!r}: {error}") from error
        return "/" + lucene.pattern + "/"
    if p.kind in (Kind.EQ, Kind.PREFIX, Kind.SUFFIX, Kind.CONTAINS, Kind.GLOB, Kind.ANY):
        return _lucene_wildcard(glob_parts(p)) or '""'
    raise ConversionRefused(f"keyword predicate {p.kind} cannot be searched across all fields")


def to_lucene(node: Node, layout: Layout = SIGMAHUNT_LAYOUT) -> str:
    """The tree as ``query_string`` text (Lucene syntax)."""
    return _Lucene(layout).render(node, top=True)


class _Lucene:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def render(self, node: Node, top: bool = False) -> str:
        if node.op == "const":
            return "*:*" if node.value else "(*:* AND NOT *:*)"
        if node.op in ("and", "or"):
            joiner = " AND " if node.op == "and" else " OR "
            text = joiner.join(self.render(c) for c in node.children)
            return text if top else f"({text})"
        if node.op == "not":
            # A purely negative group matches nothing in Lucene: anchor it on all documents.
            return f"(*:* AND NOT {self.render(node.children[0])})"
        item = node.leaf
        if isinstance(item, In):
            values = [_lucene_value(v) for v in item.values]
            inner = values[0] if len(values) == 1 else "(" + " OR ".join(values) + ")"
            return f"{self.name(item.field)}:{inner}"
        if isinstance(item, IndexIs):
            return f"_index:{lucene_escape(item.pattern, keep_wildcards=True)}"
        assert isinstance(item, Test)
        return self.test(item)

    @staticmethod
    def name(field_name: str) -> str:
        return lucene_escape(field_name, keep_wildcards=False)

    def test(self, test: Test) -> str:
        p = test.predicate
        if test.field is None:
            if self.layout.all_field is None:
                return _lucene_keyword(p, self.layout)
            name = self.layout.all_field
        else:
            name = test.field
        field_name = self.name(name)
        cased = self.name(name + self.layout.cased_suffix) if self.layout.cased_suffix else field_name
        kind = p.kind
        if kind in (Kind.ANY, Kind.EXISTS):
            return f"_exists_:{field_name}"
        if kind is Kind.NULL:
            return f"(*:* AND NOT _exists_:{field_name})"
        if kind is Kind.EQ:
            return f"{cased if p.cased else field_name}:{_lucene_value(p.value)}"
        if kind in (Kind.PREFIX, Kind.SUFFIX, Kind.CONTAINS, Kind.GLOB):
            return f"{cased if p.cased else field_name}:{_lucene_wildcard(glob_parts(p))}"
        if kind is Kind.REGEX:
            try:
                lucene = translate(p.value)
            except RegexNotTranslatable as error:
                raise ConversionRefused(f"regex {p.value!r}: {error}") from error
            target = field_name if lucene.case_insensitive else cased
            return f"{target}:/{lucene.pattern.replace('/', chr(92) + '/')}/"
        if kind is Kind.CIDR:
            target = self.name(self.layout.ip_prefix + name) if self.layout.ip_prefix else field_name
            return f"{target}:{_lucene_quoted(p.value)}"
        if kind is Kind.CMP:
            target = self.name(self.layout.num_prefix + name) if self.layout.num_prefix else field_name
            number = lucene_escape(number_text(p.number))
            if p.op == "neq":
                return f"(_exists_:{target} AND NOT {target}:{number})"
            symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[p.op]
            return f"{target}:{symbol}{number}"
        if kind is Kind.FIELDREF:
            raise ConversionRefused("fieldref (comparing two fields) cannot be written in Lucene syntax")
        if kind is Kind.TIMEPART:
            raise ConversionRefused("timestamp-part modifiers (|hour, |day...) cannot be written in Lucene syntax")
        raise ConversionRefused(f"predicate kind {kind} is not supported")


def lucene_requirements(node: Node, layout: Layout = SIGMAHUNT_LAYOUT) -> list[str]:
    """What the index mapping must provide for the Lucene string to mean what Sigma means."""
    kinds: set[str] = set()

    def visit(n: Node) -> None:
        if n.op == "leaf" and isinstance(n.leaf, Test):
            p = n.leaf.predicate
            if p.kind in (Kind.EQ, Kind.PREFIX, Kind.SUFFIX, Kind.CONTAINS, Kind.GLOB):
                kinds.add("cased" if p.cased else "fold")
            elif p.kind is Kind.REGEX:
                kinds.add("regex")
            elif p.kind is Kind.CIDR:
                kinds.add("cidr")
            elif p.kind is Kind.CMP:
                kinds.add("cmp")
            if n.leaf.field is None:
                kinds.add("keyword")
        elif n.op == "leaf" and isinstance(n.leaf, In):
            kinds.add("fold")
        for c in n.children:
            visit(c)

    visit(node)
    notes = []
    if layout.normalized:
        if kinds & {"fold", "regex"}:
            notes.append("case-insensitive only where each queried field is a keyword with a lowercase "
                         "normalizer (as sigmahunt ingest maps them); values are written lowercase")
        if "cased" in kinds or "regex" in kinds:
            notes.append(f"|cased values and case-sensitive regexes query FIELD{layout.cased_suffix}, "
                         "an exact-case keyword sub-field")
        if "cidr" in kinds:
            notes.append(f"CIDRs query {layout.ip_prefix}FIELD, an ip copy of the field")
        if "cmp" in kinds:
            notes.append(f"comparisons query {layout.num_prefix}FIELD, a numeric copy of the field")
        if "keyword" in kinds:
            notes.append(f"keywords search {layout.all_field}, which holds every value of the event")
    else:
        if kinds & {"fold", "regex"}:
            notes.append("query_string has no case_insensitive option: values are written lowercase, so "
                         "matching is case-insensitive only if the fields hold lowercase-normalised terms")
    return notes


# -- ES|QL ------------------------------------------------------------------------------------------

def to_esql(lowered: LoweredRule, layout: Layout = SIGMAHUNT_LAYOUT) -> str:
    """``FROM <indices> | WHERE <condition>`` (ES|QL, Elasticsearch 8.11+)."""
    renderer = _ESQL(layout)
    condition = renderer.render(lowered.tree, negated=False)
    metadata = " METADATA _index" if renderer.uses_index else ""
    return f"FROM {lowered.index_expression}{metadata}\n| WHERE {condition}"


def esql_string(text: str) -> str:
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def esql_name(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_@][A-Za-z0-9_.@]*", name) and "@" not in name[1:]:
        return name if not name.startswith("@") else f"`{name}`"
    return "`" + name.replace("`", "``") + "`"


def _like_text(parts: Sequence[Any]) -> str:
    out = []
    for part in parts:
        if part is STAR:
            out.append("*")
        elif part is QMARK:
            out.append("?")
        else:
            out.append(re.sub(r"([\\*?])", r"\\\1", part))
    return "".join(out)


class _ESQL:
    """ES|QL is three-valued: a test of a null field is null, and ``NOT null`` is null (the
    row is dropped). The tree is put in negation normal form and every negated test
    becomes ``(field IS NULL OR NOT test)``, which is Sigma's two-valued meaning."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.uses_index = False

    def render(self, node: Node, negated: bool) -> str:
        if node.op == "const":
            return "true" if node.value != negated else "false"
        if node.op == "not":
            return self.render(node.children[0], not negated)
        if node.op in ("and", "or"):
            op = node.op if not negated else ("or" if node.op == "and" else "and")
            joiner = " AND " if op == "and" else " OR "
            return "(" + joiner.join(self.render(c, negated) for c in node.children) + ")"
        item = node.leaf
        if isinstance(item, IndexIs):
            self.uses_index = True
            text = f"_index LIKE {esql_string(item.pattern)}"
            return f"NOT ({text})" if negated else text
        if isinstance(item, In):
            name = esql_name(item.field)
            values = ", ".join(esql_string(v) for v in item.values)
            text = f"TO_LOWER({name}) IN ({values})" if item.folded else f"TO_STRING({name}) IN ({values})"
            return f"({name} IS NULL OR NOT ({text}))" if negated else text
        assert isinstance(item, Test)
        return self.test(item, negated)

    def test(self, test: Test, negated: bool) -> str:
        p = test.predicate
        if test.field is None:
            raise ConversionRefused("ES|QL cannot search every field of an event (keywords)")
        name = esql_name(test.field)
        kind = p.kind
        if kind in (Kind.ANY, Kind.EXISTS):
            return f"{name} IS NULL" if negated else f"{name} IS NOT NULL"
        if kind is Kind.NULL:
            return f"{name} IS NOT NULL" if negated else f"{name} IS NULL"
        subject = name
        if kind in (Kind.EQ, Kind.PREFIX, Kind.SUFFIX, Kind.CONTAINS, Kind.GLOB):
            if p.cased:
                subject = esql_name(test.field + self.layout.cased_suffix) if self.layout.cased_suffix else name
            else:
                subject = f"TO_LOWER({name})"
            if kind is Kind.EQ:
                text = f"{subject} == {esql_string(p.value)}"
            elif kind is Kind.PREFIX:
                text = f"STARTS_WITH({subject}, {esql_string(p.value)})"
            elif kind is Kind.SUFFIX:
                text = f"ENDS_WITH({subject}, {esql_string(p.value)})"
            else:
                text = f"{subject} LIKE {esql_string(_like_text(glob_parts(p)))}"
        elif kind is Kind.REGEX:
            try:
                lucene = translate(p.value)
            except RegexNotTranslatable as error:
                raise ConversionRefused(f"regex {p.value!r}: {error}") from error
            if lucene.case_insensitive:
                subject = f"TO_LOWER({name})"
            elif self.layout.cased_suffix:
                subject = esql_name(test.field + self.layout.cased_suffix)
            text = f"{subject} RLIKE {esql_string(lucene.pattern)}"
        elif kind is Kind.CIDR:
            subject = esql_name(self.layout.ip_prefix + test.field) if self.layout.ip_prefix else f"TO_IP({name})"
            text = f"CIDR_MATCH({subject}, {esql_string(p.value)})"
        elif kind is Kind.CMP:
            subject = (esql_name(self.layout.num_prefix + test.field) if self.layout.num_prefix
                       else f"TO_DOUBLE({name})")
            symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "neq": "!="}[p.op]
            text = f"{subject} {symbol} {number_text(p.number)}"
        elif kind is Kind.FIELDREF:
            assert test.ref_field is not None
            other = f"TO_LOWER({esql_name(test.ref_field)})"
            mine = f"TO_LOWER({name})"
            text = {"startswith": f"STARTS_WITH({mine}, {other})", "endswith": f"ENDS_WITH({mine}, {other})"}.get(
                p.op, f"{mine} == {other}")
            if negated:
                return (f"({name} IS NULL OR {esql_name(test.ref_field)} IS NULL OR NOT ({text}))")
            return text
        elif kind is Kind.TIMEPART:
            raise ConversionRefused("timestamp-part modifiers (|hour, |day...) are not converted to ES|QL")
        else:
            raise ConversionRefused(f"predicate kind {kind} is not supported")
        if negated:
            null_subject = subject if kind in (Kind.CIDR, Kind.CMP) else name
            return f"({null_subject} IS NULL OR NOT ({text}))"
        return text


# -- convenience ---------------------------------------------------------------------------------------

def dsl_json(query: dict[str, Any]) -> str:
    return json.dumps(query, indent=2, ensure_ascii=False)


@dataclass
class Converted:
    """One rule converted for one target (or refused)."""

    rule: CompiledRule
    target: str
    indices: list[str] = field(default_factory=list)
    query: Any = None
    notes: list[str] = field(default_factory=list)
    refused: str | None = None


def convert(
    rule: CompiledRule,
    pipeline: Pipeline,
    target: str,
    *,
    index: str | None = None,
    layout: Layout = SIGMAHUNT_LAYOUT,
) -> Converted:
    """Convert one compiled rule to ``lucene``, ``es-dsl`` or ``esql``; refusals carry the reason."""
    out = Converted(rule, target)
    try:
        lowered = lower_rule(rule, pipeline, index=index)
        out.indices = lowered.indices
        if target == "lucene":
            out.query = to_lucene(lowered.tree, layout)
            out.notes = lucene_requirements(lowered.tree, layout)
        elif target == "es-dsl":
            out.query = {"query": to_dsl(lowered.tree, layout)}
        elif target == "esql":
            out.query = to_esql(lowered, layout)
        else:
            raise ValueError(f"unknown target {target!r}")
    except ConversionRefused as error:
        out.refused = str(error)
    return out
