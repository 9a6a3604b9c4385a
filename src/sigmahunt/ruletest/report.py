"""Three renderings of one :class:`RuleTestReport`: a rich table, JSON and JUnit XML.

JUnit is what CI systems (GitHub, GitLab, Jenkins, Azure) display natively: one ``testsuite``
per question (regression samples; each baseline; status validation), one ``testcase`` per
rule per sample or baseline, with ``failure``/``skipped`` children. Rules that stayed quiet
on a baseline are passing testcases, so a CI history shows a rule *starting* to fire.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from sigmahunt.ruletest.model import BaselineRun, CaseResult, Kind, Outcome, RuleInfo, RuleTestReport

OUTCOME_STYLE = {Outcome.PASS: "green", Outcome.FAIL: "bold red", Outcome.SKIP: "yellow"}
#: Event fields shown for a baseline example, first present wins (what an analyst reads first).
KEY_FIELDS = ("CommandLine", "Image", "TargetFilename", "TargetObject", "ImageLoaded", "QueryName",
              "ScriptBlockText", "ServiceName", "TargetUserName", "PipeName", "DestinationIp", "Details")
#: Characters XML 1.0 cannot carry at all (event payloads do hold them).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SHOWN_MISSING = 10


# -- JSON ----------------------------------------------------------------------------------------


def to_json_dict(report: RuleTestReport) -> dict[str, Any]:
    """Machine-readable: every result, the totals, and what could not be tested."""
    fired = _fired_per_baseline(report)
    return {
        "totals": report.totals(),
        "results": [r.to_dict() for r in _ordered(report.results)],
        "baselines": [run.to_dict(fired.get(run.path, 0)) for run in report.baselines],
        "missing_regression_tests": [r.to_dict() for r in report.missing_tests],
        "rules_failed_to_load": report.load_failures,
        "unused_known_fps": report.unused_known_fps,
        "warnings": report.warnings,
        "exit_code": report.exit_code,
    }


def to_json(report: RuleTestReport) -> bytes:
    return orjson.dumps(to_json_dict(report), option=orjson.OPT_INDENT_2, default=str) + b"\n"


def _fired_per_baseline(report: RuleTestReport) -> dict[str, int]:
    fired: dict[str, int] = {}
    for result in report.of_kind(Kind.BASELINE):
        fired[result.target or ""] = fired.get(result.target or "", 0) + 1
    return fired


def _ordered(results: Iterable[CaseResult]) -> list[CaseResult]:
    """Failures first, then skips, then passes; stable by rule file within each."""
    rank = {Outcome.FAIL: 0, Outcome.SKIP: 1, Outcome.PASS: 2}
    kinds = {Kind.VALIDATION: 0, Kind.REGRESSION: 1, Kind.BASELINE: 2}
    return sorted(results, key=lambda r: (kinds[r.kind], rank[r.outcome], r.rule.path, r.test_name))


# -- table ---------------------------------------------------------------------------------------


def results_table(report: RuleTestReport) -> Table:
    """One row per result; the rule by file name (what an engineer edits), ids are in --json."""
    table = Table(title="sigmahunt test", show_lines=False)
    for name in ("kind", "rule", "title", "result", "reason / counts"):
        table.add_column(name, overflow="fold")
    several_baselines = len(report.baselines) > 1
    for result in _ordered(report.results):
        style = OUTCOME_STYLE[result.outcome]
        table.add_row(result.kind.value, Path(result.rule.path).name, result.rule.title,
                      f"[{style}]{result.outcome.value}[/]", _reason_cell(result, several_baselines))
    return table


def _reason_cell(result: CaseResult, several_baselines: bool) -> str:
    lines = [result.reason]
    if result.kind is Kind.REGRESSION and result.matches is not None and result.target:
        lines.append(f"[dim]{result.test_name}: {Path(result.target).name}[/]")
    if result.kind is Kind.BASELINE:
        if several_baselines:
            lines.append(f"[dim]on {result.target}[/]")
        lines.extend(f"[dim]e.g. {_example_line(example)}[/]" for example in result.examples)
    lines.extend(f"[yellow]note:[/] {note}" for note in result.notes)
    return "\n".join(lines)


def _example_line(example: dict[str, Any]) -> str:
    """``<file> <position>: <key field>``; the whole event is in --json and the JUnit file."""
    event = example.get("event") or {}
    source = str(example.get("source") or "")
    where = f"{source.replace('!', '/').rsplit('/', 1)[-1]} {example.get('position') or ''}".strip()
    for name in KEY_FIELDS:
        if event.get(name):
            text = _clean(" ".join(str(event[name]).split()))
            return f"{where}: {name}: {text[:120]}{'…' if len(text) > 120 else ''}"
    return f"{where}: EventID {example.get('event_id')}"


def print_report(report: RuleTestReport, out: Console, err: Console) -> None:
    """The table on ``out``; totals, problems and warnings on ``err`` (scripts pipe ``out``)."""
    if report.results:
        out.print(results_table(report))
    _print_missing(report, err)
    for failure in report.load_failures[:_SHOWN_MISSING]:
        err.print(f"[red]rule failed to load[/] {failure['path']}: {failure['reason']}")
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    for run in report.baselines:
        fired = sum(1 for r in report.of_kind(Kind.BASELINE) if r.target == run.path)
        err.print(f"baseline {run.path}: {run.events_read:,} events, {len(run.rules):,} rules run, "
                  f"{fired:,} fired, {len(run.rules) - fired:,} quiet")
    err.print(_totals_line(report))


def _print_missing(report: RuleTestReport, err: Console) -> None:
    if not report.missing_tests:
        return
    label = "[red]ERROR[/]" if report.require_tests else "[yellow]warning:[/]"
    err.print(f"{label} {len(report.missing_tests):,} test/stable rule(s) without regression_tests_path "
              f"(rules with status 'test' or 'stable' must have a 'regression_tests_path' field)")
    for rule in report.missing_tests[:_SHOWN_MISSING if report.require_tests else 0]:
        err.print(f"  {rule.rule_id} (status: {rule.status}) {rule.path}")
    if not report.require_tests or len(report.missing_tests) > _SHOWN_MISSING:
        err.print("  (all listed under missing_regression_tests in --json; --require-tests makes them failures)")


def _totals_line(report: RuleTestReport) -> str:
    reg, base = report.counts(Kind.REGRESSION), report.counts(Kind.BASELINE)
    parts = [f"regression: {reg['pass']} pass, {reg['fail']} fail, {reg['skip']} skip "
             f"({report.samples_run} samples read)"]
    if report.baselines:
        parts.append(f"baseline: {base['fail']} rule(s) with unlisted false positives, "
                     f"{base['pass']} with known ones only, {base['skip']} not gated")
    verdict = "[bold red]FAILED[/]" if report.failed else "[green]OK[/]"
    return f"{verdict} {'; '.join(parts)}; {report.seconds:.1f} s"


# -- JUnit ---------------------------------------------------------------------------------------


def to_junit(report: RuleTestReport) -> bytes:
    """JUnit XML (the de-facto schema CI tools read); always well-formed, whatever the events hold."""
    root = ET.Element("testsuites", name="sigmahunt test")
    _suite(root, "regression", report.of_kind(Kind.REGRESSION), [])
    for run in report.baselines:
        fired = [r for r in report.of_kind(Kind.BASELINE) if r.target == run.path]
        _suite(root, f"baseline {run.path}", fired, _quiet_rules(run, fired)).set("time", f"{run.seconds:.3f}")
    validation = report.of_kind(Kind.VALIDATION)
    if validation:
        _suite(root, "validation", validation, [])
    _sum_attributes(root, root.findall("testsuite"))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _quiet_rules(run: BaselineRun, fired: Sequence[CaseResult]) -> list[RuleInfo]:
    loud = {(r.rule.path, r.rule.rule_id) for r in fired}
    return [rule for rule in run.rules if (rule.path, rule.rule_id) not in loud]


def _suite(root: ET.Element, name: str, results: Sequence[CaseResult], quiet: Sequence[RuleInfo]) -> ET.Element:
    suite = ET.SubElement(root, "testsuite", name=_clean(name))
    for result in _ordered(results):
        _testcase(suite, result)
    for rule in quiet:
        ET.SubElement(suite, "testcase", classname=_clean(rule.path), name=_clean(_case_name(rule, name)),
                      time="0")
    _count_attributes(suite)
    return suite


def _case_name(rule: RuleInfo, detail: str) -> str:
    return f"{rule.title or rule.rule_id} [{rule.rule_id}] {detail}".strip()


def _testcase(suite: ET.Element, result: CaseResult) -> None:
    detail = _detail(result)
    case = ET.SubElement(suite, "testcase", classname=_clean(result.rule.path),
                         name=_clean(_case_name(result.rule, detail)), time=f"{result.seconds:.4f}")
    if result.outcome is Outcome.FAIL:
        failure = ET.SubElement(case, "failure", message=_clean(result.reason), type=result.kind.value)
        failure.text = _clean(_details(result))
    elif result.outcome is Outcome.SKIP:
        ET.SubElement(case, "skipped", message=_clean(result.reason))
    if result.notes or (result.outcome is not Outcome.FAIL and result.examples):
        out = ET.SubElement(case, "system-out")
        out.text = _clean(_details(result))


def _detail(result: CaseResult) -> str:
    """What distinguishes a rule's testcases: the sample's file name, the baseline, or info.yml."""
    if result.kind is Kind.BASELINE:
        return f"baseline {result.target}"
    if result.kind is Kind.VALIDATION:
        return result.test_name
    if result.target:
        return f"{result.test_name or 'regression test'}: {Path(result.target).name}"
    return Path(result.info_file).name if result.info_file else "regression test"


def _details(result: CaseResult) -> str:
    lines = [result.reason, *[f"note: {n}" for n in result.notes]]
    lines.extend(f"{label}: {value}" for label, value in (("sample", result.target), ("info file", result.info_file))
                 if value and result.kind is Kind.REGRESSION)
    for example in result.examples:
        lines.append(orjson.dumps(example, default=str).decode())
    return "\n".join(lines)


def _count_attributes(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", "0")
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    suite.set("time", f"{sum(float(c.get('time') or 0) for c in cases):.3f}")


def _sum_attributes(root: ET.Element, suites: Sequence[ET.Element]) -> None:
    for name in ("tests", "failures", "errors", "skipped"):
        root.set(name, str(sum(int(s.get(name) or 0) for s in suites)))
    root.set("time", f"{sum(float(s.get('time') or 0) for s in suites):.3f}")


def _clean(text: str) -> str:
    """Drop what XML 1.0 cannot represent (ElementTree would write it and break the file)."""
    return _XML_INVALID.sub("\ufffd", text)
