"""The whole test run: discover cases, prepare the rule set once, run samples and baselines."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigmahunt.engines.embedded.ir import RuleMeta
from sigmahunt.rules.loader import iter_rule_files
from sigmahunt.rules.prepare import PreparedRules, prepare_rules
from sigmahunt.ruletest.baseline import BaselineError, KnownFP, load_known_fps, run_baseline
from sigmahunt.ruletest.discovery import Discovery, SampleFormat, discover, metas_by_file, rules_by_key
from sigmahunt.ruletest.model import CaseResult, Kind, Outcome, RuleInfo, RuleTestReport
from sigmahunt.ruletest.positive import RuleIndex, run_regression_cases


class NothingToTest(Exception):
    """Bad arguments, or no test to run at all (the command exits 2)."""


@dataclass(frozen=True)
class RuleTestOptions:
    """What ``sigmahunt test`` was asked to do (the CLI flags, for the Python API too)."""

    rules: Sequence[str | Path]
    regression_root: str | Path | None = None
    baselines: Sequence[str | Path] = ()
    known_fps: str | Path | None = None
    sample_format: SampleFormat = "evtx"
    require_tests: bool = False  # SigmaHQ's rule: a test/stable rule without a test fails
    require_data: bool = False  # an absent regression folder fails instead of skipping
    fp_min_level: str | None = None  # baseline detections of lower-level rules are not gated
    placeholders: Mapping[str, Any] | None = field(default=None, hash=False)
    cache_dir: Path | bool | None = None  # prepare_rules' meaning: None default, False off


def run_rule_tests(options: RuleTestOptions) -> RuleTestReport:
    """Run every positive and negative test; raises :class:`NothingToTest` on unusable input."""
    started = time.perf_counter()
    _check_paths(options)
    known = _known_fps(options)
    files = list(dict.fromkeys(iter_rule_files(options.rules)))  # walked once, overlapping folders once
    prepared = prepare_rules(files, options.placeholders, options.cache_dir)
    discovery = discover(files, options.regression_root, options.sample_format, options.require_data,
                         compiled=_fully_compiled(prepared))
    _check_something_to_test(discovery, options)
    report = RuleTestReport(missing_tests=discovery.missing_tests, require_tests=options.require_tests,
                            rules_loaded=len(prepared.compiled))
    report.load_failures = [f.to_dict() for f in prepared.failures] + _unparsed(discovery, prepared)
    report.results.extend(discovery.decided)
    regression, report.samples_run = run_regression_cases(discovery.cases, RuleIndex.of(prepared))
    report.results.extend(regression)
    if options.require_tests:
        report.results.extend(_validation_failure(rule) for rule in discovery.missing_tests)
    _run_baselines(report, options, prepared, discovery, known)
    report.seconds = time.perf_counter() - started
    return report


def _check_paths(options: RuleTestOptions) -> None:
    if not options.rules:
        raise NothingToTest("no rules: pass Sigma rule files or folders")
    for label, paths in (("rules", options.rules), ("baseline", options.baselines)):
        missing = [str(p) for p in paths if not Path(p).exists()]
        if missing:
            raise NothingToTest(f"{label} not found: {', '.join(missing)}")
    if options.regression_root is not None and not Path(options.regression_root).is_dir():
        raise NothingToTest(f"--regression-root {options.regression_root} is not a folder")


def _check_something_to_test(discovery: Discovery, options: RuleTestOptions) -> None:
    if not discovery.rules:
        raise NothingToTest(f"no Sigma rule found in {', '.join(map(str, options.rules))}")
    has_positive = bool(discovery.cases or discovery.decided)
    has_validation = options.require_tests and bool(discovery.missing_tests)
    if not (has_positive or has_validation or options.baselines):
        lacking = f" ({len(discovery.missing_tests)} test/stable rule(s) lack one)" if discovery.missing_tests else ""
        raise NothingToTest(f"nothing to test: no rule has a regression_tests_path{lacking} "
                            "and no --baseline was given")


def _known_fps(options: RuleTestOptions) -> list[KnownFP]:
    if options.known_fps is None:
        return []
    try:
        return load_known_fps(options.known_fps)
    except BaselineError as error:
        raise NothingToTest(str(error)) from error


def _fully_compiled(prepared: PreparedRules) -> dict[str, list[RuleMeta]]:
    """Compiled metadata of files where every rule compiled (others are read as YAML)."""
    failed = {f.path for f in prepared.failures}
    return {path: metas for path, metas in metas_by_file(prepared.compiled).items() if path not in failed}


def _unparsed(discovery: Discovery, prepared: PreparedRules) -> list[dict[str, Any]]:
    """YAML errors the rule loader did not already report (it reads the same files)."""
    reported = {f.path for f in prepared.failures}
    return [u for u in discovery.unreadable if u["path"] not in reported]


def _validation_failure(rule: RuleInfo) -> CaseResult:
    return CaseResult(Kind.VALIDATION, Outcome.FAIL, rule,
                      f"status '{rule.status}' requires a regression test: the rule has no regression_tests_path",
                      test_name="regression test required")


def _run_baselines(report: RuleTestReport, options: RuleTestOptions, prepared: PreparedRules,
                   discovery: Discovery, known: Sequence[KnownFP]) -> None:
    if not options.baselines:
        if options.known_fps is not None:
            report.warnings.append("--known-fps has no effect without --baseline")
        return
    runnable = prepared.runnable
    if not runnable:
        raise NothingToTest("no rule that can run on Windows event logs was loaded for --baseline")
    infos = rules_by_key(discovery.rules)
    used: Counter[int] = Counter()
    for baseline in options.baselines:
        try:
            run, results = run_baseline(baseline, runnable, infos, known, used, options.fp_min_level)
        except BaselineError as error:
            raise NothingToTest(str(error)) from error
        report.baselines.append(run)
        report.results.extend(results)
        if run.events_unreadable:
            report.warnings.append(f"baseline {baseline}: {run.events_unreadable:,} record(s) unreadable")
    report.unused_known_fps = [row.to_dict() for row in known if not used[row.line]]
