"""Sigma regular expressions -> Lucene's regular-expression dialect (``regexp`` queries).

The embedded engine *searches* a value with a Rust-regex-compatible pattern (the match may
be anywhere unless anchored). Lucene's ``RegExp`` always matches the *whole* term and has no
anchors, no ``(?i)``, no ``\\d``/``\\w``/``\\s`` before Lucene 9 (Elasticsearch 7 is Lucene 8),
no lookarounds or backreferences, treats ``.`` as any character (newline included) and
reserves ``# @ & < > ~ "`` as operators. So every pattern is translated:

* parsed with Python's own regex parser (``re._parser``), so escapes, classes and
  quantifiers are understood, not pattern-matched as text;
* unanchored ends become ``.*``; ``^``/``$`` at either end (also inside a leading or
  trailing alternation such as ``(?:^|\\\\)``) are resolved into the ``.*`` they replace;
  ``(?m)`` anchors become "at the start or after a newline";
* ``.`` becomes "any character but newline" unless ``(?s)``; ``\\d \\w \\s`` and their
  negations become explicit ASCII classes;
* every literal character that is not a letter or digit is escaped (``\\x`` is always the
  literal ``x`` in Lucene), so no Lucene operator can be triggered by accident;
* ``(?i)`` (the whole pattern) is returned as ``case_insensitive``: the caller queries the
  lowercase-normalised field with ``case_insensitive: true``, and the literal letters are
  lowercased here so that the pattern also matches lowercase-normalised terms exactly.

What cannot be expressed is refused with the reason (:class:`RegexNotTranslatable`):
lookarounds, backreferences, word boundaries, anchors in the middle of a pattern, scoped
flag groups, atomic groups and possessive quantifiers, conditionals.

Known approximations, documented rather than hidden: the classes are ASCII (Rust's ``\\d``,
``\\w``, ``\\s`` also match other Unicode digits, letters and spaces).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

try:  # Python 3.11+
    from re import _constants as C  # type: ignore[attr-defined]
    from re import _parser as P  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as P  # type: ignore[no-redef]


class RegexNotTranslatable(ValueError):
    """The pattern has no equivalent in Lucene's regular expressions."""


@dataclass(frozen=True)
class LuceneRegex:
    pattern: str
    case_insensitive: bool


NEWLINE = "\n"
_DIGIT = ["0-9"]
_WORD = ["a-z", "A-Z", "0-9", "_"]
_SPACE = [" ", "\t", "\n", "\r", "\f", "\v"]
_PCRE_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")


def _escape(ch: str) -> str:
    if ch.isascii() and ch.isalnum():
        return ch
    if not ch.isascii() and ch.isalnum():
        return ch
    return "\\" + ch


def translate(pattern: str) -> LuceneRegex:
    """Translate a search pattern (inline flags allowed) into a whole-term Lucene regex."""
    source = _PCRE_NAMED_GROUP.sub("(?P<", pattern)  # PCRE/Rust (?<name>...) -> Python's syntax
    try:
        parsed = P.parse(source)
    except (re.error, OverflowError, RecursionError) as error:
        raise RegexNotTranslatable(f"not a valid regular expression: {error}") from error
    flags = parsed.state.flags
    if flags & re.VERBOSE:
        raise RegexNotTranslatable("verbose (?x) patterns are not supported")
    ci = bool(flags & re.IGNORECASE)
    translator = _Translator(ci=ci, dotall=bool(flags & re.DOTALL), multiline=bool(flags & re.MULTILINE))
    text = translator.edges(list(parsed), left_open=True, right_open=True)
    return LuceneRegex(text or "()", ci)


class _Translator:
    def __init__(self, ci: bool, dotall: bool, multiline: bool) -> None:
        self.ci = ci
        self.dotall = dotall
        self.multiline = multiline

    # -- anchors at the edges ---------------------------------------------------------------

    def _begin_anchor(self, item: tuple) -> bool:
        op, av = item
        return op is C.AT and av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING)

    def _end_anchor(self, item: tuple) -> bool:
        op, av = item
        return op is C.AT and av in (C.AT_END, C.AT_END_STRING)

    def _line_anchor(self, item: tuple) -> bool:
        """Whether a begin/end anchor means 'at a line boundary' (multiline ^/$)."""
        return self.multiline and item[1] in (C.AT_BEGINNING, C.AT_END)

    def edges(self, items: list, left_open: bool, right_open: bool) -> str:
        """A sequence searched inside a term: ``left_open`` means anything may precede it."""
        if len(items) == 1 and items[0][0] is C.BRANCH:
            return self._branch_edges(items[0][1][1], left_open, right_open)
        if len(items) == 1 and items[0][0] is C.SUBPATTERN and _contains_edge_anchor(items[0]):
            _, (_, add, remove, inner) = items[0]
            self._check_flags(add, remove)
            return self.edges(list(inner), left_open, right_open)
        items = list(items)
        prefix = ".*" if left_open else ""
        suffix = ".*" if right_open else ""
        while items and self._begin_anchor(items[0]):
            item = items.pop(0)
            if left_open:
                prefix = f"(.*{_escape(NEWLINE)})?" if self._line_anchor(item) else ""
                left_open = False
        while items and self._end_anchor(items[-1]):
            item = items.pop()
            if right_open:
                suffix = f"({_escape(NEWLINE)}.*)?" if self._line_anchor(item) else ""
                right_open = False
        if items and left_open and _starts_with_anchor(items[0]):
            first = items.pop(0)
            prefix = "(" + self._group_edges(first, left_open=True, right_open=False) + ")"
            if not items and right_open:  # the group was the whole pattern
                return "(" + self._group_edges(first, left_open=True, right_open=True) + ")"
        last = ""
        if items and right_open and _ends_with_anchor(items[-1]):
            tail = items.pop()
            last = "(" + self._group_edges(tail, left_open=False, right_open=True) + ")"
            suffix = ""
        middle = "".join(self.emit(item) for item in items)
        return prefix + middle + last + suffix

    def _group_edges(self, item: tuple, left_open: bool, right_open: bool) -> str:
        op, av = item
        if op is C.SUBPATTERN:
            _, add, remove, inner = av
            self._check_flags(add, remove)
            inner = list(inner)
            if len(inner) == 1 and inner[0][0] is C.BRANCH:
                return self._branch_edges(inner[0][1][1], left_open, right_open)
            return self.edges(inner, left_open, right_open)
        if op is C.BRANCH:
            return self._branch_edges(av[1], left_open, right_open)
        return self.edges([item], left_open, right_open)

    def _branch_edges(self, alternatives: list, left_open: bool, right_open: bool) -> str:
        parts = [self.edges(list(alt), left_open, right_open) or "()" for alt in alternatives]
        return "|".join(f"({p})" if "|" in p else p for p in parts)

    # -- everything else --------------------------------------------------------------------

    def _check_flags(self, add: int, remove: int) -> None:
        if add or remove:
            raise RegexNotTranslatable("scoped flag groups such as (?i:...) are not supported")

    def emit(self, item: tuple) -> str:
        op, av = item
        if op is C.LITERAL:
            return _escape(self._fold(chr(av)))
        if op is C.NOT_LITERAL:
            return "[^" + self._class_literal(chr(av)) + "]"
        if op is C.ANY:
            return "." if self.dotall else "[^" + _escape(NEWLINE) + "]"
        if op is C.IN:
            return self._class(av)
        if op is C.BRANCH:
            return "(" + "|".join(self._seq(alt) or "()" for alt in av[1]) + ")"
        if op is C.SUBPATTERN:
            _, add, remove, inner = av
            self._check_flags(add, remove)
            return "(" + (self._seq(inner) or "()") + ")"
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            low, high, inner = av
            body = self._seq(inner)
            if not _atomic(body):
                body = f"({body})"
            return body + _quantifier(low, high)
        if op is C.AT:
            if av in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY):
                raise RegexNotTranslatable("word boundaries (\\b, \\B) have no Lucene equivalent")
            raise RegexNotTranslatable("an anchor (^, $) inside the pattern has no Lucene equivalent")
        if op in (C.ASSERT, C.ASSERT_NOT):
            raise RegexNotTranslatable("lookarounds have no Lucene equivalent")
        if op in (C.GROUPREF, C.GROUPREF_EXISTS):
            raise RegexNotTranslatable("backreferences and conditionals have no Lucene equivalent")
        name = str(op)
        if name in ("ATOMIC_GROUP", "POSSESSIVE_REPEAT"):
            raise RegexNotTranslatable("atomic groups and possessive quantifiers are not supported")
        raise RegexNotTranslatable(f"regex construct {name} is not supported")

    def _seq(self, items: list) -> str:
        return "".join(self.emit(item) for item in items)

    def _fold(self, ch: str) -> str:
        return ch.lower() if self.ci else ch

    # -- character classes ------------------------------------------------------------------

    def _class_literal(self, ch: str) -> str:
        ch = self._fold(ch)
        return ch if ch.isascii() and ch.isalnum() else "\\" + ch

    def _class(self, items: list) -> str:
        negate = False
        parts: list[str] = []
        negated_categories: list[str] = []
        for op, av in items:
            if op is C.NEGATE:
                negate = True
            elif op is C.LITERAL:
                parts.append(self._class_literal(chr(av)))
            elif op is C.RANGE:
                parts.extend(self._range(av[0], av[1]))
            elif op is C.CATEGORY:
                positive, members = _category(av)
                if positive:
                    parts.extend(self._category_members(members))
                else:
                    negated_categories.append("".join(self._category_members(members)))
            else:
                raise RegexNotTranslatable(f"character class item {op} is not supported")
        if negated_categories:
            if negate or parts or len(negated_categories) > 1:
                raise RegexNotTranslatable("a negated class (\\D, \\W, \\S) combined with other class items "
                                           "is not supported")
            return "[^" + negated_categories[0] + "]"
        if not parts:
            raise RegexNotTranslatable("an empty character class is not supported")
        return ("[^" if negate else "[") + "".join(parts) + "]"

    def _category_members(self, members: list[str]) -> list[str]:
        out = []
        for member in members:
            if len(member) == 3 and member[1] == "-":
                out.extend(self._range(ord(member[0]), ord(member[2])))
            else:
                out.append(self._class_literal(member))
        return out

    def _range(self, low: int, high: int) -> list[str]:
        parts = [f"{self._raw(chr(low))}-{self._raw(chr(high))}"]
        if not self.ci:
            return parts
        # Case-insensitive: the lowercase forms of the range's letters belong to the class too.
        extra = set()
        for code in range(low, min(high, 0xFFFF) + 1):
            lower = chr(code).lower()
            if len(lower) == 1 and lower != chr(code) and not low <= ord(lower) <= high:
                extra.add(ord(lower))
        return parts + _compress(extra)

    @staticmethod
    def _raw(ch: str) -> str:
        return ch if ch.isascii() and ch.isalnum() else "\\" + ch


def _compress(codes: set[int]) -> list[str]:
    """Class items for a set of code points, runs written as ranges."""
    out: list[str] = []
    ordered = sorted(codes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        first, last = chr(ordered[i]), chr(ordered[j])
        raw = _Translator._raw
        out.append(raw(first) if i == j else f"{raw(first)}-{raw(last)}")
        i = j + 1
    return out


def _category(code: object) -> tuple[bool, list[str]]:
    table = {
        C.CATEGORY_DIGIT: (True, _DIGIT),
        C.CATEGORY_NOT_DIGIT: (False, _DIGIT),
        C.CATEGORY_WORD: (True, _WORD),
        C.CATEGORY_NOT_WORD: (False, _WORD),
        C.CATEGORY_SPACE: (True, _SPACE),
        C.CATEGORY_NOT_SPACE: (False, _SPACE),
    }
    if code not in table:
        raise RegexNotTranslatable(f"character category {code} is not supported")
    return table[code]


def _quantifier(low: int, high: int) -> str:
    unbounded = high == C.MAXREPEAT
    if low == 0 and unbounded:
        return "*"
    if low == 1 and unbounded:
        return "+"
    if low == 0 and high == 1:
        return "?"
    if unbounded:
        return f"{{{low},}}"
    if low == high:
        return f"{{{low}}}"
    return f"{{{low},{high}}}"


def _atomic(body: str) -> bool:
    """Whether a translated piece can take a quantifier without parentheses."""
    if len(body) == 1:
        return True
    if len(body) == 2 and body[0] == "\\":
        return True
    if body.startswith("[") and body.endswith("]") and _single_class(body):
        return True
    if body.startswith("(") and body.endswith(")") and _balanced_group(body):
        return True
    return False


def _single_class(body: str) -> bool:
    i = 1
    while i < len(body):
        if body[i] == "\\":
            i += 2
            continue
        if body[i] == "]":
            return i == len(body) - 1
        i += 1
    return False


def _balanced_group(body: str) -> bool:
    depth = 0
    i = 0
    in_class = False
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i != len(body) - 1:
                return False
        i += 1
    return depth == 0


def _starts_with_anchor(item: tuple) -> bool:
    """A group or alternation one of whose alternatives begins with ^."""
    op, av = item
    if op is C.SUBPATTERN:
        inner = list(av[3])
        return bool(inner) and (_starts_with_anchor(inner[0]) or _is_begin(inner[0]))
    if op is C.BRANCH:
        return any(alt and (_is_begin(alt[0]) or _starts_with_anchor(alt[0])) for alt in av[1])
    return False


def _ends_with_anchor(item: tuple) -> bool:
    op, av = item
    if op is C.SUBPATTERN:
        inner = list(av[3])
        return bool(inner) and (_ends_with_anchor(inner[-1]) or _is_end(inner[-1]))
    if op is C.BRANCH:
        return any(alt and (_is_end(alt[-1]) or _ends_with_anchor(alt[-1])) for alt in av[1])
    return False


def _contains_edge_anchor(item: tuple) -> bool:
    return _starts_with_anchor(item) or _ends_with_anchor(item)


def _is_begin(item: tuple) -> bool:
    return item[0] is C.AT and item[1] in (C.AT_BEGINNING, C.AT_BEGINNING_STRING)


def _is_end(item: tuple) -> bool:
    return item[0] is C.AT and item[1] in (C.AT_END, C.AT_END_STRING)
