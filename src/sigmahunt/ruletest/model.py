"""The vocabulary of a rule test run: what is tested (cases) and what came out (results).

Every check, positive or negative, ends as one :class:`CaseResult`, so the table, the JSON
and the JUnit XML are three renderings of the same list and cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

#: Rule statuses for which SigmaHQ requires a regression test (its runner's rule).
STATUSES_REQUIRING_TESTS = frozenset({"test", "stable"})


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


class Kind(StrEnum):
    """Which question a result answers."""

    REGRESSION = "regression"  # does the rule fire on the attack it describes?
    BASELINE = "baseline"  # does it stay quiet on normal activity?
    VALIDATION = "validation"  # does a test/stable rule have a regression test at all?


@dataclass(frozen=True)
class RuleInfo:
    """A rule as its YAML says (the compiled form does not keep ``regression_tests_path``)."""

    rule_id: str
    title: str
    status: str
    level: str
    path: str
    regression_tests_path: str | None = None

    @property
    def requires_regression_test(self) -> bool:
        return self.status in STATUSES_REQUIRING_TESTS

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "title": self.title, "status": self.status, "level": self.level,
                "rule_path": self.path}


@dataclass(frozen=True)
class RegressionCase:
    """One entry of an info.yml ``regression_tests_info`` list, resolved to a sample file."""

    rule: RuleInfo
    info_path: Path
    number: int  # 1-based position in regression_tests_info (SigmaHQ's "test_number")
    name: str
    test_type: str
    provider: str
    match_count: int | None
    sample: Path  # the file that will be read (the .json rendering when asked for)
    declared: str  # the path as written in info.yml

    @property
    def label(self) -> str:
        return f"{self.name} #{self.number}" if self.number > 1 else self.name


@dataclass
class CaseResult:
    """The outcome of one check of one rule (one sample, one baseline, or the status rule)."""

    kind: Kind
    outcome: Outcome
    rule: RuleInfo
    reason: str
    test_name: str = ""
    target: str | None = None  # sample file or baseline path
    info_file: str | None = None  # the info.yml a regression result comes from
    expected: int | None = None  # match_count from info.yml
    matches: int | None = None  # detections of this rule on the target
    known_fps: int = 0
    unlisted_fps: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value, "result": self.outcome.value, **self.rule.to_dict(),
                               "reason": self.reason}
        if self.test_name:
            out["test_name"] = self.test_name
        if self.target is not None:
            out["sample" if self.kind is Kind.REGRESSION else "baseline"] = self.target
        if self.kind is Kind.REGRESSION:
            out["info_file"] = self.info_file
            out["expected"] = self.expected
            out["matches"] = self.matches
        if self.kind is Kind.BASELINE:
            out.update(matches=self.matches, known_fps=self.known_fps, unlisted_fps=self.unlisted_fps,
                       examples=self.examples)
        if self.notes:
            out["notes"] = self.notes
        out["seconds"] = round(self.seconds, 4)
        return out


@dataclass
class BaselineRun:
    """One ``--baseline`` argument: which rules ran over it and how much was read."""

    path: str
    rules: list[RuleInfo]
    events_read: int = 0
    events_unreadable: int = 0
    seconds: float = 0.0

    def to_dict(self, fired: int) -> dict[str, Any]:
        return {"baseline": self.path, "rules_run": len(self.rules), "rules_fired": fired,
                "events_read": self.events_read, "events_unreadable": self.events_unreadable,
                "seconds": round(self.seconds, 3)}


@dataclass
class RuleTestReport:
    """Everything ``sigmahunt test`` found; the source of every output format."""

    results: list[CaseResult] = field(default_factory=list)
    missing_tests: list[RuleInfo] = field(default_factory=list)  # test/stable rules without a test
    require_tests: bool = False  # are missing tests failures (SigmaHQ's default) or warnings?
    baselines: list[BaselineRun] = field(default_factory=list)
    load_failures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unused_known_fps: list[dict[str, Any]] = field(default_factory=list)
    rules_loaded: int = 0
    samples_run: int = 0
    seconds: float = 0.0

    def of_kind(self, kind: Kind) -> list[CaseResult]:
        return [r for r in self.results if r.kind is kind]

    def counts(self, kind: Kind) -> dict[str, int]:
        results = self.of_kind(kind)
        return {o.value: sum(r.outcome is o for r in results) for o in Outcome}

    @property
    def failed(self) -> bool:
        return any(r.outcome is Outcome.FAIL for r in self.results)

    @property
    def exit_code(self) -> int:
        """1 when a positive test fails or an unlisted false positive appears, else 0."""
        return 1 if self.failed else 0

    def totals(self) -> dict[str, Any]:
        return {
            "rules_loaded": self.rules_loaded,
            "rules_failed_to_load": len(self.load_failures),
            "samples_run": self.samples_run,
            "regression": self.counts(Kind.REGRESSION),
            "baseline": self.counts(Kind.BASELINE),
            "missing_regression_tests": len(self.missing_tests),
            "failed": sum(r.outcome is Outcome.FAIL for r in self.results),
            "seconds": round(self.seconds, 3),
        }
