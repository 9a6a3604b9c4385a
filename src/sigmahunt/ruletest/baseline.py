"""Negative tests: rules must stay quiet on benign baseline logs, except for known FPs.

The allowlist is SigmaHQ's ``known-FPs.csv`` (``.github/workflows/known-FPs.csv``):
``;``-separated, a header row (``RuleId;RuleName;MatchString`` there, ``RuleId;Comment;String``
also accepted), one row per accepted false positive. A detection is a known FP when its rule
id matches (case-insensitively) and the string occurs in the detection's text, ignoring case.
An empty string accepts every detection of the rule.

SigmaHQ's goodlog runner searches each string as a case-insensitive regular expression in
evtx-sigma-checker's JSON line (rows such as ``target\\.exe``, ``.*`` or
``Computer: (evtx-PC|Agamemnon)``), so a row matches here when the string occurs literally
*or* as such a regex, and the text searched is the detection's JSON followed by a
``Name: value`` rendering of the event: SigmaHQ's rows work unchanged, and plain strings
(``C:\\Windows\\x.exe``) need no escaping.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sigmahunt.engines.embedded.ir import CompiledRule
from sigmahunt.hunting import NothingToHunt, run_hunt
from sigmahunt.results import LEVEL_RANK
from sigmahunt.rules.prepare import PreparedRules
from sigmahunt.ruletest.discovery import info_of, rule_key
from sigmahunt.ruletest.model import BaselineRun, CaseResult, Kind, Outcome, RuleInfo

#: Detections shown per rule that fired on a baseline.
EXAMPLES = 3
_HEADER_FIRST_CELL = "ruleid"


class BaselineError(ValueError):
    """A baseline or allowlist that cannot be used at all (the command exits 2)."""


@dataclass(frozen=True)
class KnownFP:
    """One allowlist row."""

    rule_id: str  # case-folded
    comment: str
    string: str
    line: int
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, rule_id: str, comment: str, string: str, line: int) -> KnownFP:
        try:
            pattern: re.Pattern[str] | None = re.compile(string, re.IGNORECASE) if string else None
        except re.error:
            pattern = None  # not a regex: the literal test still applies
        return cls(rule_id.strip().lower(), comment.strip(), string, line, pattern)

    def accepts(self, rule_id: str, text: str, folded: str) -> bool:
        """``folded`` is ``text.casefold()``, computed once per detection."""
        if rule_id.lower() != self.rule_id:
            return False
        if not self.string or self.string.casefold() in folded:
            return True
        return self.pattern is not None and self.pattern.search(text) is not None

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "rule_id": self.rule_id, "comment": self.comment, "string": self.string}


def load_known_fps(path: str | Path) -> list[KnownFP]:
    """Rows of a known-FPs CSV; ``#`` lines and blank lines are ignored.

    Split like SigmaHQ's ``read -r id name fpstring``: the third column is everything after
    the second separator, quotes and further separators included, so a regex row needs no
    CSV quoting.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise BaselineError(f"cannot read known-FPs file {path}: {error.strerror or error}") from error
    lines = text.splitlines()
    delimiter = ";" if ";" in next((ln for ln in lines if ln.strip()), ";") else ","
    out: list[KnownFP] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = line.split(delimiter, 2)
        if cells[0].strip().lower() == _HEADER_FIRST_CELL:
            continue
        if not cells[0].strip():
            raise BaselineError(f"{path}:{number}: a row needs a rule id in its first column")
        # The string keeps inner and trailing spaces: SigmaHQ has rows ending in "msedge\\.exe ".
        string = cells[2] if len(cells) > 2 else ""
        out.append(KnownFP.of(cells[0], cells[1] if len(cells) > 1 else "", string, number))
    return out


def detection_text(record: Mapping[str, Any]) -> str:
    """What allowlist strings are searched in: the detection as JSON, then ``Name: value`` pairs."""
    event: Mapping[str, Any] = record.get("event") or {}
    finding = {"RuleId": record.get("rule_id"), "RuleTitle": record.get("rule_title"),
               "RuleLevel": record.get("level"), "File": record.get("source"), **event}
    pairs = "  ".join(f"{name}: {value}" for name, value in event.items())
    return orjson.dumps(finding, default=str).decode() + "\n" + pairs


@dataclass
class RuleHits:
    """One rule's detections on one baseline, split into accepted and unlisted."""

    known: int = 0
    unlisted: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    known_examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.known + self.unlisted


def _example(record: Mapping[str, Any], accepted_by: KnownFP | None) -> dict[str, Any]:
    out = {name: record.get(name) for name in ("source", "position", "timestamp", "computer", "event_id")}
    out["event"] = record.get("event") or {}
    if accepted_by is not None:
        out["known_fp_line"] = accepted_by.line
    return out


def classify(records: Sequence[Mapping[str, Any]], known: Sequence[KnownFP],
             used: Counter[int]) -> dict[tuple[str, str], RuleHits]:
    """Per rule, detections split by the allowlist; ``used`` counts hits per allowlist line."""
    by_rule: dict[str, list[KnownFP]] = defaultdict(list)
    for row in known:
        by_rule[row.rule_id].append(row)
    hits: dict[tuple[str, str], RuleHits] = defaultdict(RuleHits)
    for record in records:
        rule_id = str(record.get("rule_id") or "")
        entry = hits[rule_key(str(record.get("rule_path")), rule_id)]
        accepted = _accepting_row(record, rule_id, by_rule.get(rule_id.lower(), []))
        if accepted is None:
            entry.unlisted += 1
            if len(entry.examples) < EXAMPLES:
                entry.examples.append(_example(record, None))
        else:
            entry.known += 1
            used[accepted.line] += 1
            if len(entry.known_examples) < EXAMPLES:
                entry.known_examples.append(_example(record, accepted))
    return hits


def _accepting_row(record: Mapping[str, Any], rule_id: str, rows: Sequence[KnownFP]) -> KnownFP | None:
    if not rows:
        return None
    text = detection_text(record)
    folded = text.casefold()
    return next((row for row in rows if row.accepts(rule_id, text, folded)), None)


def verdict(rule: RuleInfo, hits: RuleHits, baseline: str, min_level: str | None) -> CaseResult:
    """Fail on any unlisted detection; pass when every one is a known FP.

    No per-rule time: all rules share one pass over the baseline (its time is the run's).
    """
    result = CaseResult(Kind.BASELINE, Outcome.PASS, rule, "", target=baseline, matches=hits.total,
                        known_fps=hits.known, unlisted_fps=hits.unlisted,
                        examples=hits.examples or hits.known_examples)
    known = f"{hits.known} known false positive(s)"
    if hits.unlisted:
        result.outcome = Outcome.FAIL
        result.reason = f"{hits.unlisted} unlisted false positive(s)" + (f", {known}" if hits.known else "")
    else:
        result.reason = known
    if hits.unlisted and min_level and LEVEL_RANK.get(rule.level, -1) < LEVEL_RANK[min_level]:
        result.outcome = Outcome.SKIP
        result.reason += f"; level {rule.level or 'unset'} is below --fp-min-level {min_level}, not gated"
    return result


def run_baseline(
    baseline: str | Path,
    rules: Sequence[CompiledRule],
    infos: Mapping[tuple[str, str], RuleInfo],
    known: Sequence[KnownFP],
    used: Counter[int],
    min_level: str | None = None,
) -> tuple[BaselineRun, list[CaseResult]]:
    """Run every rule over one baseline (a file or folder) once; results only for rules that fired."""
    started = time.perf_counter()
    try:
        result = run_hunt([baseline], prepared=PreparedRules(compiled=list(rules)))
    except NothingToHunt as error:
        raise BaselineError(f"baseline {baseline}: {error}") from error
    run = BaselineRun(str(baseline), [info_of(r, infos) for r in rules], result.summary.events_read,
                      result.summary.events_unreadable)
    run.seconds = time.perf_counter() - started
    by_key = {rule_key(r.path, r.rule_id): r for r in run.rules}
    hits = classify(result.records, known, used)
    results = [verdict(by_key[key], entry, str(baseline), min_level)
               for key, entry in sorted(hits.items()) if key in by_key]
    return run, results
