"""Load Sigma rule files with pySigma, one file at a time, so one bad file never stops the rest.

pySigma is the rule model (the brief: never write a Sigma parser). This module only
walks paths, feeds each YAML file to :class:`~sigma.collection.SigmaCollection`, keeps
every rule with its file, and turns every problem into a :class:`RuleFailure` naming the
file and the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.modifiers import SigmaWideModifier, modifier_mapping, reverse_modifier_mapping
from sigma.rule import SigmaRule

RULE_SUFFIXES = (".yml", ".yaml")

import sigmahunt.correlation.conditions  # noqa: E402,F401  (range conditions in correlations)

# The Sigma specification names ``utf16le`` as an alias of ``wide``; pySigma 2.0.1 knows
# only ``wide``. Registering the alias in pySigma's own modifier table keeps pySigma the
# single parser of rules.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)
reverse_modifier_mapping.setdefault(SigmaWideModifier.__name__, "wide")


@dataclass(frozen=True)
class RuleFailure:
    """A rule (or rule file) that cannot be used, and why."""

    path: str
    reason: str
    rule_id: str | None = None
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "reason": self.reason}
        if self.rule_id:
            out["rule_id"] = self.rule_id
        if self.title:
            out["title"] = self.title
        return out


@dataclass
class LoadedRule:
    """A parsed Sigma rule and where it came from."""

    rule: SigmaRule
    path: str
    digest: str  # content hash of the file: key of the compiled-rule cache

    @property
    def rule_id(self) -> str:
        return str(self.rule.id) if self.rule.id else ""


@dataclass
class LoadedCorrelation:
    rule: SigmaCorrelationRule
    path: str


@dataclass
class LoadedFilter:
    filter: SigmaFilter
    path: str


@dataclass
class RuleSet:
    """Everything loaded from the user's rule paths."""

    rules: list[LoadedRule] = field(default_factory=list)
    correlations: list[LoadedCorrelation] = field(default_factory=list)
    filters: list[LoadedFilter] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)
    files: int = 0

    def extend(self, other: RuleSet) -> None:
        self.rules.extend(other.rules)
        self.correlations.extend(other.correlations)
        self.filters.extend(other.filters)
        self.failures.extend(other.failures)
        self.files += other.files


def iter_rule_files(paths: Iterable[str | Path]) -> Iterable[Path]:
    """Files named on the command line, and every ``.yml``/``.yaml`` below named folders, sorted."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in RULE_SUFFIXES and p.is_file())
        else:
            yield path


#: libyaml's parser, when PyYAML was built with it: PyYAML's pure-Python parser takes ~6 s
#: for SigmaHQ's 3,754 rule files (half of a cold start), libyaml ~0.7 s. Same constructor
#: (SafeConstructor) and resolver, so the same Python objects.
_FAST_LOADER: type | None = getattr(yaml, "CSafeLoader", None)


def parse_yaml_documents(text: str) -> list[Any]:
    """Every YAML document of ``text``, exactly as ``yaml.safe_load_all`` reads them, but faster.

    libyaml is stricter than the pure-Python parser in a few corners (it rejects
    ``"\\ud800"`` escapes and unknown ``%`` directives that PyYAML accepts), and words its
    errors differently. So any libyaml error is settled by the pure-Python parser: the
    documents, or the error message, are always the pure-Python parser's.
    """
    if _FAST_LOADER is not None:
        try:
            return list(yaml.load_all(text, Loader=_FAST_LOADER))  # noqa: S506 - CSafeLoader is the safe loader
        except yaml.YAMLError:
            pass
    return list(yaml.safe_load_all(text))


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def load_rule_file(path: Path, content: bytes | None = None) -> RuleSet:
    """Parse one YAML file (possibly several documents) into rules, correlations and filters.

    ``content``: the file's bytes when the caller has already read them (the compiled-rule
    cache hashes them first), so a file is read once.
    """
    out = RuleSet(files=1)
    if content is not None:
        raw = content
    else:
        try:
            raw = path.read_bytes()
        except OSError as error:
            out.failures.append(RuleFailure(str(path), f"cannot read file: {_describe(error)}"))
            return out
    digest = hashlib.sha256(raw).hexdigest()
    try:
        documents = parse_yaml_documents(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        out.failures.append(RuleFailure(str(path), f"invalid YAML: {_describe(error)}"))
        return out
    documents = [d for d in documents if d is not None]
    bad = [i for i, d in enumerate(documents, 1) if not isinstance(d, dict)]
    if bad or not documents:
        reason = "empty file" if not documents else f"document {bad[0]} is not a YAML mapping"
        out.failures.append(RuleFailure(str(path), f"not a Sigma rule: {reason}"))
        return out
    try:
        collection = SigmaCollection.from_dicts(
            documents, collect_errors=True, collect_filters=True, resolve_references=False
        )
    except (SigmaError, ValueError, TypeError, KeyError, AttributeError) as error:
        out.failures.append(RuleFailure(str(path), _describe(error)))
        return out
    for problem in collection.errors:
        if not _belongs_to_a_rule(problem, collection):
            out.failures.append(RuleFailure(str(path), _describe(problem)))
    for item in collection.rules:
        if item.errors:
            out.failures.append(
                RuleFailure(
                    str(path),
                    "; ".join(_describe(e) for e in item.errors),
                    rule_id=str(item.id) if item.id else None,
                    title=item.title,
                )
            )
        elif isinstance(item, SigmaCorrelationRule):
            out.correlations.append(LoadedCorrelation(item, str(path)))
        else:
            out.rules.append(LoadedRule(item, str(path), digest))
    for sigma_filter in collection.filters:
        if sigma_filter.errors:
            out.failures.append(
                RuleFailure(str(path), "; ".join(_describe(e) for e in sigma_filter.errors))
            )
        else:
            out.filters.append(LoadedFilter(sigma_filter, str(path)))
    return out


def _belongs_to_a_rule(error: SigmaError, collection: SigmaCollection) -> bool:
    return any(error in item.errors for item in [*collection.rules, *collection.filters])


def load_rules(paths: Sequence[str | Path]) -> RuleSet:
    """Load every rule file below ``paths``; failures are collected, never raised."""
    out = RuleSet()
    for path in iter_rule_files(paths):
        if not path.exists():
            out.failures.append(RuleFailure(str(path), "no such file or folder"))
            continue
        out.extend(load_rule_file(path))
    _report_duplicate_ids(out)
    return out


def _report_duplicate_ids(rule_set: RuleSet) -> None:
    """Two rules with one id make results ambiguous: keep the first, report the others."""
    seen: dict[str, str] = {}
    kept: list[LoadedRule] = []
    for loaded in rule_set.rules:
        rule_id = loaded.rule_id
        if rule_id and rule_id in seen:
            rule_set.failures.append(
                RuleFailure(
                    loaded.path,
                    f"duplicate rule id {rule_id} (already loaded from {seen[rule_id]})",
                    rule_id=rule_id,
                    title=loaded.rule.title,
                )
            )
            continue
        if rule_id:
            seen[rule_id] = loaded.path
        kept.append(loaded)
    rule_set.rules = kept
