"""Hypothesis strategies: small Sigma rules (as YAML text) and Windows events built to collide with them.

Rules are generated as plain Python data, dumped with ``yaml.safe_dump`` and parsed by
pySigma, exactly as a rule file would be. Events are then generated *from the parsed
rule*: every value the rule tests (after pySigma applied ``windash``, ``base64offset``,
``wide``...) is turned into a witness string (wildcards filled in), and events draw their
field values from those witnesses, mutated (case flipped, a character dropped, a prefix or
suffix added) -- so matches and near-misses are both common. Everything draws from one
small alphabet, so accidental collisions are frequent too.

``FEATURES`` names the generated shapes; :func:`rule_features` reports which of them a
generated rule uses (the property tests count them to show what a run covered).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from hypothesis import strategies as st
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaBool,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

import sigmahunt.rules.loader  # noqa: F401  (registers the ``utf16le`` modifier alias)

# -- vocabulary -------------------------------------------------------------------------------

#: Field names rules use: the pool plus case variants (``image`` must find ``Image``).
RULE_FIELDS = (
    "Image", "CommandLine", "User", "EventID", "DestinationIp", "Size", "ParentImage",
    "image", "commandline", "USER", "NewProcessName", "ParentProcessName",
)
#: Canonical spelling of a rule field in events.
CANONICAL = {name.lower(): name for name in RULE_FIELDS if name[0].isupper() and not name.isupper()}
#: Fields events carry besides the log-source fields (``_source`` is ingest metadata).
EVENT_FIELDS = (
    "Image", "CommandLine", "User", "DestinationIp", "Size", "ParentImage",
    "NewProcessName", "ParentProcessName", "UtcTime", "EventType", "Other", "_source",
)

#: (Channel, EventID) of generated events; None = the field is absent.
LOG_KINDS = (
    ("Microsoft-Windows-Sysmon/Operational", "1"),
    ("Microsoft-Windows-Sysmon/Operational", "1"),
    ("Microsoft-Windows-Sysmon/Operational", "3"),
    ("Security", "4688"),
    ("security", "4688"),
    ("System", "7045"),
    (None, "4688"),
    ("Microsoft-Windows-Sysmon/Operational", None),
    ("Microsoft-Windows-Sysmon/Operational", "12"),
)

#: Log sources of generated rules (mostly ``product: windows``).
LOGSOURCES: tuple[dict[str, str], ...] = (
    *([{"product": "windows"}] * 6),
    {"product": "windows", "category": "process_creation"},
    {"product": "windows", "category": "process_creation"},
    {"category": "process_creation"},
    {"product": "windows", "service": "security"},
    {"product": "windows", "service": "sysmon"},
    {"product": "windows", "category": "network_connection"},
    {"product": "windows", "service": "system"},
    {"product": "windows", "category": "registry_add"},  # Sysmon 12 with EventType=CreateKey
    {"product": "linux"},  # inapplicable: must match nothing on either side
)

#: Characters of literal text (rules and events). Frequent ones repeated; a few rare
#: non-ASCII ones (windash dashes, case-folding oddities) and a newline.
COMMON_CHARS = "aAaAbBxXiK1100  --/\\\\.:"
RARE_CHARS = "\u2013\u2014\u2015\n\u00e9\u00c9\u0130\u0131\u00df\u212a*?"
NUMBER_TEXTS = (
    "0", "1", "5", "-1", "1.5", "10", "100", "4688", "7045", " 5 ", "0x10", "1e2",
    "nan", "inf", "true", "false",
)
IP_TEXTS = (
    "10.0.0.1", "10.1.2.3", "192.168.1.5", "192.168.1.255", "192.168.2.1", "::ffff:10.0.0.1",
    "fe80::1%3", "2001:db8::1", "8.8.8.8", "0.0.0.0",
)
TIME_TEXTS = (
    "2024-01-02T03:04:05Z", "2024-01-02 03:04:05.123", "2023-12-31T23:59:59+00:00", "not a time",
)
NETWORKS = (
    "10.0.0.0/8", "10.0.0.0/24", "192.168.1.0/24", "192.168.1.5/32", "0.0.0.0/0",
    "fe80::/10", "2001:db8::/32", "::/0",
)
NUMBERS = (0, 1, 5, -1, 10, 100, 1.5, 4688)
#: Characters whose case folding differs between Python, Rust and PCRE (near-misses of a letter).
CONFUSABLE = {
    "i": "\u0130\u0131", "k": "\u212a", "s": "\u017f", "a": "\u00e0\u00c0", "b": "\u0299", "x": "\u00d7",
}
EVENT_TYPES = ("CreateKey", "createkey", "DeleteKey", "SetValue")


def _chars(common_weight: int = 6) -> st.SearchStrategy[str]:
    return st.sampled_from(list(COMMON_CHARS) * common_weight + list(RARE_CHARS))


def text(max_size: int = 6) -> st.SearchStrategy[str]:
    """Arbitrary short text over the shared alphabet."""
    return st.lists(_chars(), max_size=max_size).map("".join)


# -- values of rules --------------------------------------------------------------------------

#: Tokens of a Sigma string value: literal characters, wildcards, escapes.
_WILDCARD_TOKENS = ["*", "*", "?", "\\*", "\\?", "\\\\", "\\"]


@st.composite
def sigma_string(draw: Any, wildcards: bool = True, max_tokens: int = 6) -> str:
    """A Sigma string value as written in YAML (``*``/``?`` wildcards, ``\\`` escapes)."""
    chars = _chars()
    token = chars if not wildcards else st.one_of(chars, st.sampled_from(_WILDCARD_TOKENS))
    tokens = draw(st.lists(token, max_size=max_tokens))
    out = "".join(tokens)
    if not wildcards:
        # base64/fieldref refuse wildcards: keep only escaped ones
        out = out.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
    return out


@dataclass
class Regex:
    """A generated regular expression and strings built to match it."""

    pattern: str
    witnesses: list[str]


_REGEX_LITERALS = "aAbBiIKs1- /:"


@st.composite
def regex(draw: Any) -> Regex:
    """A small regex of the PCRE subset the Sigma spec allows, valid in Python and Rust alike."""

    def branch() -> tuple[str, str]:
        pieces, witness = [], []
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["lit", "lit", "lit", "esc", "dot", "digit", "class", "nclass"]))
            if kind == "lit":
                c = draw(st.sampled_from(_REGEX_LITERALS))
                atom, sample = c, c
            elif kind == "esc":
                c = draw(st.sampled_from(".\\*?+()[]|$^"))
                atom, sample = re.escape(c), c
            elif kind == "dot":
                atom, sample = ".", draw(st.sampled_from("xZ-"))
            elif kind == "digit":
                atom, sample = "\\d", draw(st.sampled_from("07"))
            elif kind == "class":
                atom, sample = "[a-z]", draw(st.sampled_from("aiksz"))
            else:
                atom, sample = "[^a-z]", draw(st.sampled_from("A1-"))
            quant = draw(st.sampled_from(["", "", "", "+", "*", "?", "{1,2}"]))
            reps = {"": 1, "+": draw(st.integers(1, 2)), "*": draw(st.integers(0, 2)),
                    "?": draw(st.integers(0, 1)), "{1,2}": draw(st.integers(1, 2))}[quant]
            pieces.append(atom + quant)
            witness.append(sample * reps)
        return "".join(pieces), "".join(witness)

    branches = [branch() for _ in range(draw(st.integers(1, 2)))]
    body = "|".join(p for p, _ in branches)
    if len(branches) > 1 and draw(st.booleans()):
        body = f"({body})"
    start = "^" if draw(st.integers(0, 3)) == 0 else ""
    end = "$" if draw(st.integers(0, 3)) == 0 else ""
    if len(branches) > 1 and (start or end):
        body = f"({body})" if not body.startswith("(") else body
    inline = "(?i)" if draw(st.integers(0, 5)) == 0 else ""
    return Regex(inline + start + body + end, [w for _, w in branches])


@dataclass
class Item:
    """One detection item: ``field|mod|mod: values``, plus witnesses the rule text alone can't give."""

    key: str
    value: Any
    hints: list[str] = field(default_factory=list)


def _key(field_name: str | None, modifiers: Iterable[str]) -> str:
    return (field_name or "") + "".join("|" + m for m in modifiers)


def _one_or_list(draw: Any, values: list[Any]) -> Any:
    return values[0] if len(values) == 1 and draw(st.booleans()) else values


@st.composite
def string_item(draw: Any, field_name: str | None) -> Item:
    """contains/startswith/endswith/windash/cased/all/neq on wildcard strings."""
    mods = []
    if draw(st.integers(0, 4)) == 0:
        mods.append("windash")
    position = draw(st.sampled_from(["", "", "contains", "contains", "startswith", "endswith"]))
    if position:
        mods.append(position)
    if draw(st.integers(0, 4)) == 0:
        mods.insert(draw(st.integers(0, len(mods))), "cased")
    if field_name is not None and draw(st.integers(0, 7)) == 0:
        mods.insert(draw(st.integers(0, len(mods))), "neq")
    values = draw(st.lists(sigma_string(), min_size=1, max_size=3))
    if len(values) > 1 and draw(st.integers(0, 2)) == 0:
        mods.append("all")
    return Item(_key(field_name, mods), _one_or_list(draw, values))


@st.composite
def encoded_item(draw: Any, field_name: str | None) -> Item:
    """base64 / base64offset, optionally after wide/utf16/utf16le/utf16be and windash."""
    mods = []
    if draw(st.integers(0, 5)) == 0:
        mods.append("windash")
    encoding = draw(st.sampled_from(["", "", "wide", "utf16le", "utf16", "utf16be"]))
    if encoding:
        mods.append(encoding)
    mods.append(draw(st.sampled_from(["base64", "base64offset", "base64offset"])))
    position = draw(st.sampled_from(["", "contains", "contains", "startswith", "endswith"]))
    if position:
        mods.append(position)
    if draw(st.integers(0, 5)) == 0:
        mods.append("cased")
    values = draw(st.lists(sigma_string(wildcards=False, max_tokens=5), min_size=1, max_size=2))
    return Item(_key(field_name, mods), _one_or_list(draw, values))


@st.composite
def regex_item(draw: Any, field_name: str | None) -> Item:
    mods = ["re", *draw(st.lists(st.sampled_from(["i", "m", "s"]), unique=True, max_size=3))]
    if draw(st.integers(0, 7)) == 0:
        mods.append("contains")
    regexes = draw(st.lists(regex(), min_size=1, max_size=2))
    if len(regexes) > 1 and draw(st.integers(0, 3)) == 0:
        mods.append("all")
    hints = [w for r in regexes for w in r.witnesses]
    return Item(_key(field_name, mods), _one_or_list(draw, [r.pattern for r in regexes]), hints)


@st.composite
def field_item(draw: Any, field_name: str) -> Item:
    """Every value family that needs a field."""
    family = draw(st.sampled_from([
        "string", "string", "string", "string", "encoded", "regex", "regex", "cidr", "compare",
        "compare", "exists", "fieldref", "null", "scalar", "scalar", "special", "timepart",
    ]))
    if family == "string":
        return draw(string_item(field_name))
    if family == "encoded":
        return draw(encoded_item(field_name))
    if family == "regex":
        return draw(regex_item(field_name))
    if family == "cidr":
        nets = draw(st.lists(st.sampled_from(NETWORKS), min_size=1, max_size=2, unique=True))
        return Item(_key(field_name, ["cidr"]), _one_or_list(draw, nets))
    if family == "compare":
        op = draw(st.sampled_from(["lt", "lte", "gt", "gte", "neq"]))
        return Item(_key(field_name, [op]), draw(st.sampled_from(NUMBERS)))
    if family == "exists":
        return Item(_key(field_name, ["exists"]), draw(st.booleans()))
    if family == "fieldref":
        mods = ["fieldref"]
        extra = draw(st.sampled_from(["", "", "startswith", "endswith", "contains", "neq"]))
        if extra:
            mods.append(extra)
        refs = draw(st.lists(st.sampled_from(RULE_FIELDS), min_size=1, max_size=2, unique=True))
        return Item(_key(field_name, mods), _one_or_list(draw, refs))
    if family == "null":
        others = draw(st.lists(sigma_string(), max_size=1))
        return Item(field_name, None if not others else [None, *others])
    if family == "scalar":  # YAML numbers and booleans compare as text
        values = draw(st.lists(st.sampled_from([*NUMBERS, 3, 4688, 7045, True, False]), min_size=1, max_size=2))
        return Item(field_name, _one_or_list(draw, values))
    if family == "special":  # '' and '*' and mixed lists
        values = draw(st.lists(st.sampled_from(["", "*", "?", None, 1, "a*", "\\*"]), min_size=1, max_size=3))
        return Item(field_name, _one_or_list(draw, values))
    part = draw(st.sampled_from(["minute", "hour", "day", "month", "year", "week"]))
    return Item(_key("UtcTime", [part]), draw(st.sampled_from([1, 2, 3, 4, 5, 12, 31, 2024])))


@st.composite
def keyword_selection(draw: Any) -> tuple[Any, list[str]]:
    """A keyword selection: a string, a list, or a ``'|modifier': values`` map."""
    string = sigma_string()
    shape = draw(st.sampled_from(["list", "list", "single", "modifier"]))
    if shape == "single":
        return draw(string), []
    if shape == "list":
        values = draw(st.lists(
            st.one_of(string, string, st.sampled_from([4688, 1, 5, 1.5])),
            min_size=1, max_size=3,
        ))
        return values, []
    item = draw(st.one_of(string_item(None), string_item(None), regex_item(None), encoded_item(None)))
    return {item.key: item.value}, item.hints


@st.composite
def map_selection(draw: Any) -> tuple[dict[str, Any], list[str]]:
    items = draw(st.lists(
        st.sampled_from(RULE_FIELDS).flatmap(field_item), min_size=1, max_size=3,
        unique_by=lambda i: i.key,
    ))
    return {i.key: i.value for i in items}, [h for i in items for h in i.hints]


@st.composite
def selection(draw: Any, name: str) -> tuple[Any, list[str], str]:
    if name.startswith("kw"):
        body, hints = draw(keyword_selection())
        return body, hints, "keywords"
    shape = draw(st.sampled_from(["map", "map", "map", "list_of_maps"]))
    if shape == "map":
        body, hints = draw(map_selection())
        return body, hints, "map"
    maps = draw(st.lists(map_selection(), min_size=2, max_size=3))
    return [m for m, _ in maps], [h for _, hs in maps for h in hs], "list_of_maps"


SELECTION_NAMES = ("sel", "sel2", "selection_x", "filter", "filter_b", "kw", "kw_2", "_aux")
QUANTIFIED = (("1 of sel*", "sel"), ("all of sel*", "sel"), ("1 of filter*", "filter"),
              ("all of filter*", "filter"), ("1 of kw*", "kw"))


@st.composite
def condition(draw: Any, names: list[str]) -> str:
    leaves = list(names)
    leaves += [q for q, prefix in QUANTIFIED if any(n.startswith(prefix) for n in names)]
    leaves += ["1 of them", "all of them"]
    leaf = st.sampled_from(leaves)

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            children.map(lambda c: f"not {c}"),
            st.tuples(children, children).map(lambda t: f"{t[0]} and {t[1]}"),
            st.tuples(children, children).map(lambda t: f"{t[0]} or {t[1]}"),
            children.map(lambda c: f"({c})"),
        )

    return draw(st.recursive(leaf, extend, max_leaves=5))


@dataclass
class GeneratedRule:
    """A generated rule: its YAML text, and witnesses only the generator knows (regex samples)."""

    yaml_text: str
    hints: list[str]
    shapes: set[str]


@st.composite
def rules(draw: Any) -> GeneratedRule:
    names = draw(st.lists(st.sampled_from(SELECTION_NAMES), min_size=1, max_size=4, unique=True))
    detection: dict[str, Any] = {}
    hints: list[str] = []
    shapes: set[str] = set()
    for name in names:
        body, h, shape = draw(selection(name))
        detection[name] = body
        hints += h
        shapes.add(f"selection: {shape}")
    conditions = [draw(condition(names)) for _ in range(2 if draw(st.integers(0, 4)) == 0 else 1)]
    as_list = len(conditions) > 1 or draw(st.integers(0, 5)) == 0
    detection["condition"] = conditions if as_list else conditions[0]
    document = {
        "title": "generated",
        "id": "00000000-0000-0000-0000-000000000001",
        "logsource": draw(st.sampled_from(LOGSOURCES)),
        "detection": detection,
    }
    return GeneratedRule(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), hints, shapes)


def parse(rule_yaml: str) -> SigmaRule:
    """Parse with pySigma, including the condition (raises :class:`SigmaError`)."""
    rule = SigmaRule.from_yaml(rule_yaml)
    for c in rule.detection.parsed_condition:
        c.parse()
    return rule


# -- what a parsed rule tests: witnesses and features -----------------------------------------


def detection_items(rule: SigmaRule) -> list[Any]:
    out: list[Any] = []

    def walk(node: Any) -> None:
        for item in node.detection_items:
            if hasattr(item, "detection_items"):
                walk(item)
            else:
                out.append(item)

    for detection in rule.detection.detections.values():
        walk(detection)
    return out


def _leaf_values(value: Any) -> Iterable[Any]:
    if isinstance(value, SigmaExpansion):
        for v in value.values:
            yield from _leaf_values(v)
    else:
        yield value


def _ip_witnesses(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    first = network.network_address
    last = network.broadcast_address
    out = [str(first), str(last), str(first + 1) if network.num_addresses > 1 else str(first)]
    if int(first) > 0:
        out.append(str(first - 1))
    if int(last) < (2 ** network.max_prefixlen - 1):
        out.append(str(last + 1))
    if network.version == 4:
        out.append(f"::ffff:{first}")
        out.append(f" {last} ")
    return out


def _number_text(n: float | int) -> list[str]:
    out = [str(n), str(n + 1), str(n - 1), str(n + 0.5)]
    if isinstance(n, int) and n >= 0:
        out.append(hex(n))
    return out


def witnesses(rule: SigmaRule) -> tuple[list[Callable[[Any], str]], list[tuple[str, str, str]]]:
    """Things an event value could be to satisfy (or nearly satisfy) the rule.

    Returns witness factories (``draw -> str``, so wildcards are filled differently each
    time) and field references as (field, referenced field, mode).
    """
    factories: list[Callable[[Any], str]] = []
    refs: list[tuple[str, str, str]] = []
    for item in detection_items(rule):
        for raw in item.value:
            for value in _leaf_values(raw):
                texts: list[str] = []
                if isinstance(value, SigmaString):
                    factories.append(functools.partial(_fill, parts=tuple(value.s)))
                elif isinstance(value, SigmaRegularExpression):
                    pass  # the generator's hints carry regex witnesses
                elif isinstance(value, SigmaCIDRExpression):
                    texts = _ip_witnesses(value.network)
                elif isinstance(value, SigmaCompareExpression):
                    texts = _number_text(value.number.number)
                elif isinstance(value, SigmaNumber):
                    texts = _number_text(value.number)
                elif isinstance(value, SigmaBool):
                    texts = ["true" if value.boolean else "False"]
                elif isinstance(value, SigmaFieldReference) and item.field:
                    mode = "startswith" if value.starts_with else "endswith" if value.ends_with else "eq"
                    refs.append((item.field, value.field, mode))
                elif isinstance(value, SigmaTimestampPart):
                    texts = list(TIME_TEXTS)
                factories += [functools.partial(_constant, text=t) for t in texts]
    return factories, refs


def _constant(draw: Any, text: str) -> str:
    return text


def _fill(draw: Any, parts: tuple[Any, ...]) -> str:
    out = []
    for p in parts:
        if p is SpecialChars.WILDCARD_MULTI:
            out.append(draw(st.sampled_from(["", "", "a", "X-", "\\b", "1 1"])))
        elif p is SpecialChars.WILDCARD_SINGLE:
            out.append(draw(_chars(2)))
        else:
            out.append(str(p))
    return "".join(out)


@st.composite
def mutated(draw: Any, seed: str) -> str:
    """The seed, or a near miss of it."""
    s = seed
    for _ in range(draw(st.integers(0, 2))):
        how = draw(st.sampled_from(["swapcase", "flip", "prefix", "suffix", "drop", "replace", "strip",
                                    "newline", "confusable"]))
        i = draw(st.integers(0, max(len(s) - 1, 0)))
        if how == "swapcase":
            s = s.swapcase()
        elif how == "flip" and s:
            s = s[:i] + s[i].swapcase() + s[i + 1:]
        elif how == "prefix":
            s = draw(text(3)) + s
        elif how == "suffix":
            s = s + draw(text(3))
        elif how == "drop" and s:
            s = s[:i] + s[i + 1:]
        elif how == "replace" and s:
            s = s[:i] + draw(_chars()) + s[i + 1:]
        elif how == "strip":
            s = s.strip()
        elif how == "newline":
            s = draw(st.sampled_from([s + "\n", "\n" + s, s[:i] + "\n" + s[i:]]))
        elif how == "confusable":  # a character that case-folds like an ASCII letter, or nearly
            eligible = [k for k, c in enumerate(s) if c.lower() in CONFUSABLE]
            if eligible:
                j = draw(st.sampled_from(eligible))
                s = s[:j] + draw(st.sampled_from(CONFUSABLE[s[j].lower()])) + s[j + 1:]
    return s


# -- events ---------------------------------------------------------------------------------


@dataclass
class Seeds:
    """Where event values come from for one rule set."""

    factories: list[Callable[[Any], str]] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    refs: list[tuple[str, str, str]] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)

    def add_rule(self, rule: SigmaRule, hints: list[str]) -> None:
        factories, refs = witnesses(rule)
        self.factories += factories
        self.hints += hints
        self.refs += refs
        for item in detection_items(rule):
            if item.field:
                self.fields.add(item.field)
        for _, ref, _ in refs:
            self.fields.add(ref)


def _event_key(name: str) -> str:
    return CANONICAL.get(name.lower(), name)


@st.composite
def field_value(draw: Any, seeds: Seeds) -> str:
    sources = ["random", "number", "ip", "time", "event_type"]
    if seeds.factories:
        sources += ["witness"] * 8
    if seeds.hints:
        sources += ["hint"] * 4
    source = draw(st.sampled_from(sources))
    if source == "witness":
        seed = draw(st.sampled_from(seeds.factories))(draw)
    elif source == "hint":
        seed = draw(st.sampled_from(seeds.hints))
    elif source == "number":
        seed = draw(st.sampled_from(NUMBER_TEXTS))
    elif source == "ip":
        seed = draw(st.sampled_from(IP_TEXTS))
    elif source == "time":
        seed = draw(st.sampled_from(TIME_TEXTS))
    elif source == "event_type":
        seed = draw(st.sampled_from(EVENT_TYPES))
    else:
        return draw(text())
    return draw(mutated(seed))


@dataclass(frozen=True)
class EventOptions:
    """Event shapes that can be switched off when they hit a known, pinned disagreement.

    ``mixed_key_case``: an event may spell a field ``image``/``IMAGE`` instead of ``Image``
    (so one batch holds several spellings). ``trailing_newline``: a value may end with a
    newline (``$`` in a regex without ``m``). ``turkish_i``: values may hold ``\u0130`` /
    ``\u0131`` (case-insensitive regexes). The defaults are what the agreement properties
    run with: only ``turkish_i`` is off (the reference's Python ``re`` is wrong there, see
    ``test_case_insensitive_regex_and_turkish_i``).
    """

    mixed_key_case: bool = True
    trailing_newline: bool = True
    turkish_i: bool = False


DEFAULT_EVENTS = EventOptions()


@st.composite
def event(draw: Any, seeds: Seeds, options: EventOptions = DEFAULT_EVENTS) -> dict[str, str | None]:
    """One event: log-source fields, then each field absent, null, empty or a value."""
    out: dict[str, str | None] = {}
    channel, event_id = draw(st.sampled_from(LOG_KINDS))
    variant = options.mixed_key_case and draw(st.integers(0, 5)) == 0
    if channel is not None:
        out["channel" if variant else "Channel"] = channel
    if event_id is not None:
        out["EventId" if variant else "EventID"] = event_id
    rule_keys = sorted({_event_key(f) for f in seeds.fields} - {"EventID"})
    for name in rule_keys + [f for f in EVENT_FIELDS if f not in rule_keys]:
        weight = draw(st.sampled_from(["absent", "absent", "null", "empty", "value", "value", "value", "value"]
                                      if name in rule_keys else
                                      ["absent", "absent", "absent", "absent", "null", "empty", "value"]))
        if weight == "absent":
            continue
        key = name
        if options.mixed_key_case and draw(st.integers(0, 3)) == 0:
            key = draw(st.sampled_from([name, name.lower(), name.upper()]))
        out[key] = None if weight == "null" else "" if weight == "empty" else draw(field_value(seeds))
    for fld, ref, mode in seeds.refs:  # make field references hold, or nearly
        if draw(st.integers(0, 2)) == 0:
            source = out.get(_event_key(ref))
            if source is None:
                continue
            extra = draw(text(2))
            value = {"eq": source, "startswith": source + extra, "endswith": extra + source}[mode]
            out[_event_key(fld)] = draw(mutated(value)) if draw(st.booleans()) else value
    return _restrict(out, options)


def _restrict(out: dict[str, str | None], options: EventOptions) -> dict[str, str | None]:
    """Take the known-divergent shapes out of an event's values unless ``options`` allow them."""
    for key, value in out.items():
        if value is None:
            continue
        if not options.turkish_i:
            value = value.replace("\u0130", "I").replace("\u0131", "i")
        if not options.trailing_newline and value.endswith("\n"):
            value += "."
        out[key] = value
    return out


def events(seeds: Seeds, min_size: int = 1, max_size: int = 8,
           options: EventOptions = DEFAULT_EVENTS) -> st.SearchStrategy[list[dict[str, str | None]]]:
    return st.lists(event(seeds, options), min_size=min_size, max_size=max_size)


# -- one case = a rule (or rule set) and events -----------------------------------------------


@dataclass
class Case:
    yaml_text: str
    error: str | None  # why pySigma rejected the rule
    events: list[dict[str, str | None]]
    shapes: set[str]


@st.composite
def single_cases(draw: Any, options: EventOptions = DEFAULT_EVENTS) -> Case:
    generated = draw(rules())
    try:
        rule = parse(generated.yaml_text)
    except SigmaError as error:
        return Case(generated.yaml_text, f"{type(error).__name__}: {error}", [], generated.shapes)
    seeds = Seeds()
    seeds.add_rule(rule, generated.hints)
    evs = draw(events(seeds, options=options))
    return Case(generated.yaml_text, None, evs, generated.shapes | rule_features(rule, generated.yaml_text))


@st.composite
def regex_cases(draw: Any, options: EventOptions = DEFAULT_EVENTS) -> Case:
    """One ``re`` detection item (flags i/m/s, ``contains``, ``all``), events mostly near its witnesses.

    The main rule generator covers regexes among everything else; this one concentrates on
    the boundary between the reference's Python ``re`` and the engine's Rust ``regex``.
    """
    item = draw(regex_item("CommandLine"))
    negated = draw(st.integers(0, 3)) == 0
    document = {
        "title": "regex",
        "id": "00000000-0000-0000-0000-000000000002",
        "logsource": {"product": "windows"},
        "detection": {"sel": {item.key: item.value}, "condition": "not sel" if negated else "sel"},
    }
    yaml_text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    try:
        rule = parse(yaml_text)
    except SigmaError as error:
        return Case(yaml_text, f"{type(error).__name__}: {error}", [], set())
    witness = st.sampled_from(item.hints)
    value = st.one_of(witness.flatmap(mutated), witness.flatmap(_boundary), witness.flatmap(_boundary).flatmap(mutated),
                      text(), st.none())
    values = draw(st.lists(value, min_size=1, max_size=6))
    evs = [_restrict({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": "1", "CommandLine": v}, options)
           for v in values]
    return Case(yaml_text, None, evs, rule_features(rule, yaml_text))


@st.composite
def _boundary(draw: Any, seed: str) -> str:
    """Where Python's ``re`` and Rust's ``regex`` are most likely to differ: newlines, case folding."""
    how = draw(st.sampled_from(["newline_end", "newline_start", "newline_inside", "confusables", "upper"]))
    if how == "newline_end":
        return seed + "\n"
    if how == "newline_start":
        return "\n" + seed
    if how == "newline_inside":
        i = draw(st.integers(0, len(seed)))
        return seed[:i] + "\n" + seed[i:]
    if how == "upper":
        return seed.upper()
    return "".join(draw(st.sampled_from(CONFUSABLE[c.lower()]))
                   if c.lower() in CONFUSABLE and (c.lower() == "i" or draw(st.booleans())) else c for c in seed)


@dataclass
class MultiCase:
    yaml_texts: list[str]
    errors: list[str | None]
    batches: list[list[dict[str, str | None]]]
    shapes: set[str]


@st.composite
def multi_cases(draw: Any, min_rules: int = 5, max_rules: int = 20, batches: int = 3,
                options: EventOptions = DEFAULT_EVENTS) -> MultiCase:
    generated = draw(st.lists(rules(), min_size=min_rules, max_size=max_rules))
    seeds = Seeds()
    errors: list[str | None] = []
    shapes: set[str] = set()
    for g in generated:
        try:
            rule = parse(g.yaml_text)
        except SigmaError as error:
            errors.append(f"{type(error).__name__}: {error}")
            continue
        errors.append(None)
        seeds.add_rule(rule, g.hints)
        shapes |= g.shapes | rule_features(rule, g.yaml_text)
    frames = draw(st.lists(events(seeds, max_size=12, options=options), min_size=2, max_size=batches))
    return MultiCase([g.yaml_text for g in generated], errors, frames, shapes)


# -- feature accounting -----------------------------------------------------------------------

MODIFIERS = (
    "contains", "startswith", "endswith", "all", "re", "i", "m", "s", "cased", "cidr", "lt", "lte",
    "gt", "gte", "neq", "exists", "windash", "base64", "base64offset", "wide", "utf16", "utf16le",
    "utf16be", "fieldref", "minute", "hour", "day", "week", "month", "year",
)


def rule_features(rule: SigmaRule, rule_yaml: str) -> set[str]:
    """Which generated shapes a parsed rule uses (for the coverage report)."""
    out: set[str] = set()
    document = yaml.safe_load(rule_yaml)
    detection = document["detection"]
    ls = document["logsource"]
    out.add("logsource: " + "/".join(f"{k}={v}" for k, v in ls.items()))
    conditions = detection["condition"] if isinstance(detection["condition"], list) else [detection["condition"]]
    if isinstance(detection["condition"], list):
        out.add("condition: list of conditions")
    for c in conditions:
        words = c.replace("(", " ( ").replace(")", " ) ").split()
        for word, label in (("and", "and"), ("or", "or"), ("not", "not"), ("(", "parentheses"),
                            ("them", "x of them"), ("all", "all of ...")):
            if word in words:
                out.add(f"condition: {label}")
        if re.search(r"\b1 of \w+\*", c):
            out.add("condition: 1 of pattern*")
        if re.search(r"\ball of \w+\*", c):
            out.add("condition: all of pattern*")
    for name in detection:
        if name.startswith("_"):
            out.add("selection: name starting with _")
    for item in detection_items(rule):
        if item.field is None:
            out.add("keyword")
        elif item.field != _event_key(item.field):
            out.add("field: case variant")
        for m in item.modifiers:
            name = getattr(m, "__name__", str(m))
            out.add(f"modifier class: {name}")
        for raw in item.value:
            for value in _leaf_values(raw):
                out.add(f"value: {type(value).__name__}")
                if isinstance(value, SigmaString):
                    if value.s and any(p is SpecialChars.WILDCARD_SINGLE for p in value.s):
                        out.add("value: ? wildcard")
                    if any(p is SpecialChars.WILDCARD_MULTI for p in value.s[1:-1]):
                        out.add("value: inner * wildcard")
                    plain = "".join(p for p in value.s if isinstance(p, str))
                    if "*" in plain or "?" in plain:
                        out.add("value: escaped wildcard")
                    if "\\" in plain:
                        out.add("value: backslash")
                    if not value.s:
                        out.add("value: empty string")
    for key in _all_keys(detection):
        for m in key.split("|")[1:]:
            if m in MODIFIERS:
                out.add(f"modifier: {m}")
    return out


def _all_keys(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from _all_keys(v)
    elif isinstance(node, list):
        for v in node:
            yield from _all_keys(v)


def event_features(evs: list[dict[str, str | None]]) -> set[str]:
    out: set[str] = set()
    for e in evs:
        for k, v in e.items():
            if v is None:
                out.add("event: null field")
            elif v == "":
                out.add("event: empty string")
            elif "\n" in v:
                out.add("event: newline in value")
            if k.startswith("_"):
                out.add("event: metadata field")
            if k != _event_key(k) or (k.lower() in CANONICAL and k != CANONICAL[k.lower()]):
                out.add("event: case-variant key")
        if "Channel" not in e:
            out.add("event: no Channel")
    return out


