"""Positive tests: each rule must fire on its own attack sample.

Speed comes from grouping, not from processes: the rule set is prepared (loaded, compiled,
cached) once, the cases are grouped by sample file, and each sample is read once with only
the rules that claim it. Running every rule over every sample instead would rebuild a
plan of ~2,800 rules per sample (about half a second each); one small plan per sample costs
milliseconds, so SigmaHQ's whole regression set takes seconds.

The criterion is SigmaHQ's: at least ``match_count`` detections of the rule on the sample
(at least one where none is given). More than expected passes, with SigmaHQ's advice to
update ``match_count``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sigmahunt.engines.embedded.ir import CompiledRule
from sigmahunt.hunting import NothingToHunt, run_hunt
from sigmahunt.rules.loader import RuleFailure
from sigmahunt.rules.prepare import PreparedRules
from sigmahunt.ruletest.discovery import rule_key
from sigmahunt.ruletest.model import CaseResult, Kind, Outcome, RegressionCase, RuleInfo


@dataclass
class RuleIndex:
    """Compiled rules and load failures, addressable by (file, rule id) of the YAML rule."""

    compiled: dict[tuple[str, str], CompiledRule] = field(default_factory=dict)
    failures: dict[tuple[str, str], RuleFailure] = field(default_factory=dict)
    file_failures: dict[str, RuleFailure] = field(default_factory=dict)

    @classmethod
    def of(cls, prepared: PreparedRules) -> RuleIndex:
        index = cls()
        for rule in prepared.compiled:
            index.compiled[rule_key(rule.meta.path, rule.meta.rule_id)] = rule
        for failure in prepared.failures:
            if failure.rule_id:
                index.failures[rule_key(failure.path, failure.rule_id)] = failure
            else:
                index.file_failures.setdefault(failure.path, failure)
        return index

    def lookup(self, rule: RuleInfo) -> CompiledRule | str:
        """The compiled rule, or why there is none (a load failure is the rule's own fault)."""
        key = rule_key(rule.path, rule.rule_id)
        if key in self.compiled:
            return self.compiled[key]
        failure = self.failures.get(key) or self.file_failures.get(rule.path)
        return f"rule failed to load: {failure.reason}" if failure else "rule failed to load"


@dataclass
class SampleRun:
    """Detections per rule on one sample, or why the sample could not be read."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    events_read: int = 0
    events_unreadable: int = 0
    error: str | None = None
    seconds: float = 0.0


def run_sample(sample: Path, rules: Sequence[CompiledRule]) -> SampleRun:
    """Read ``sample`` once and count each rule's detections on it."""
    started = time.perf_counter()
    run = SampleRun()
    try:
        result = run_hunt([sample], prepared=PreparedRules(compiled=list(rules)))
    except NothingToHunt as error:
        run.error = f"sample unreadable: {error}"
    else:
        run.events_read = result.summary.events_read
        run.events_unreadable = result.summary.events_unreadable
        run.counts.update(rule_key(str(r["rule_path"]), str(r["rule_id"] or "")) for r in result.records)
    run.seconds = time.perf_counter() - started
    return run


def judge(case: RegressionCase, run: SampleRun) -> CaseResult:
    """SigmaHQ's verdict for one case, with its wording."""
    result = CaseResult(Kind.REGRESSION, Outcome.FAIL, case.rule, "", case.label, str(case.sample),
                        info_file=str(case.info_path), expected=case.match_count, seconds=run.seconds)
    if run.error:
        result.reason = run.error
        return result
    matches = run.counts[rule_key(case.rule.path, case.rule.rule_id)]
    result.matches = matches
    if run.events_unreadable:
        result.notes.append(f"{run.events_unreadable} record(s) of the sample were unreadable")
    expected = case.match_count
    if expected is None:
        ok = matches > 0
        result.reason = f"{matches} match(es)" if ok else f"no match on the sample ({run.events_read} events read)"
    else:
        ok = matches >= expected
        result.reason = (f"{matches} match(es), expected {expected}" if ok
                         else f"Match count too low: expected {expected}, got {matches}")
        if matches > expected:
            result.notes.append(f"Got {matches} matches but only {expected} expected - "
                                "consider updating match_count in info.yml")
    result.outcome = Outcome.PASS if ok else Outcome.FAIL
    return result


def run_regression_cases(cases: Sequence[RegressionCase], index: RuleIndex) -> tuple[list[CaseResult], int]:
    """Every case's result, reading each distinct sample once; also how many samples were read."""
    results: list[CaseResult] = []
    by_sample: dict[Path, list[tuple[RegressionCase, CompiledRule]]] = defaultdict(list)
    for case in cases:
        found = index.lookup(case.rule)
        if isinstance(found, str):
            results.append(_unrunnable(case, Outcome.FAIL, found))
        elif found.inapplicable:
            reason = f"rule is not about Windows event logs: {found.inapplicable}"
            results.append(_unrunnable(case, Outcome.SKIP, reason))
        else:
            by_sample[case.sample].append((case, found))
    for sample, group in by_sample.items():
        run = run_sample(sample, _distinct(compiled for _, compiled in group))
        run.seconds /= len(group)  # shared by the group's cases, so a sum of case times stays true
        results.extend(judge(case, run) for case, _ in group)
    return results, len(by_sample)


def _distinct(rules: Iterable[CompiledRule]) -> list[CompiledRule]:
    """A rule with several cases on one sample is evaluated once."""
    seen: dict[int, CompiledRule] = {}
    for rule in rules:
        seen.setdefault(id(rule), rule)
    return list(seen.values())


def _unrunnable(case: RegressionCase, outcome: Outcome, reason: str) -> CaseResult:
    return CaseResult(Kind.REGRESSION, outcome, case.rule, reason, case.label, str(case.sample),
                      info_file=str(case.info_path), expected=case.match_count)

