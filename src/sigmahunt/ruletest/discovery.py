"""From rule files to regression cases: ``regression_tests_path`` -> info.yml -> samples.

The layout is SigmaHQ's (``tests/regression_tests_runner.py`` reads it the same way): a rule
names ``regression_tests_path: regression_data/<...>/info.yml``, relative to the root of the
sigma repository; the info file lists samples under ``regression_tests_info``, each with a
``type``, a ``path`` (again relative to the repository root) and an optional ``match_count``.
The same problems SigmaHQ's runner stops on are reported here, one result each, so one run
shows all of them at once: a missing info file or sample, a rule id that disagrees with the
info file or the sample's file name, an unknown test type.

Difference on purpose: a rule whose whole regression folder is absent is *skipped*, not
failed. Rule repositories are often copied without ``regression_data`` (this project's
snapshot carries 96 of the ~200 folders), and "no data here" is not "the rule is broken".
``require_data=True`` restores SigmaHQ's strictness for a complete checkout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

from sigmahunt.engines.embedded.ir import CompiledRule, RuleMeta
from sigmahunt.rules.loader import iter_rule_files
from sigmahunt.ruletest.model import CaseResult, Kind, Outcome, RegressionCase, RuleInfo

try:  # libyaml: ~9x faster than the pure-Python parser (0.5 s vs 4 s for all of SigmaHQ)
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

#: Sample types SigmaHQ's runner knows; all are read by :mod:`sigmahunt.ingest`.
KNOWN_TEST_TYPES = frozenset({"evtx", "json", "ndjson", "jsonl"})
#: Test-file suffixes whose stem must be the rule id (SigmaHQ's naming check).
NAMED_SAMPLE_SUFFIXES = (".evtx", ".json")

SampleFormat = Literal["evtx", "json"]
_ATTRIBUTE = b"regression_tests_path"


@dataclass
class Discovery:
    """Cases to run, and results already decided without running anything."""

    rules: list[RuleInfo] = field(default_factory=list)
    cases: list[RegressionCase] = field(default_factory=list)
    decided: list[CaseResult] = field(default_factory=list)
    missing_tests: list[RuleInfo] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)


# -- rule files -------------------------------------------------------------------------------


def read_rule_infos(
    paths: Sequence[str | Path], compiled: Mapping[str, Sequence[RuleMeta]] | None = None
) -> tuple[list[RuleInfo], list[dict[str, str]]]:
    """Every detection rule below ``paths`` as its YAML says; files that are not YAML are listed.

    The compiled rules do not carry ``regression_tests_path`` (an attribute SigmaHQ added for
    its CI), so files that mention it are read again here. Others are described from their
    compiled metadata (``compiled``: rule file -> metas) when given: parsing SigmaHQ's 3,750
    files again would cost more than running all 96 regression samples.
    """
    infos: list[RuleInfo] = []
    unreadable: list[dict[str, str]] = []
    for path in iter_rule_files(paths):
        try:
            raw = path.read_bytes()
            metas = (compiled or {}).get(str(path))
            if metas and _ATTRIBUTE not in raw:
                infos.extend(_info_of_meta(meta) for meta in metas)
                continue
            documents = list(yaml.load_all(raw.decode("utf-8-sig"), Loader=_Loader))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            unreadable.append({"path": str(path), "reason": " ".join(str(error).split())})
            continue
        infos.extend(_rule_info(doc, str(path)) for doc in documents if _is_detection_rule(doc))
    return infos, unreadable


def _info_of_meta(meta: RuleMeta) -> RuleInfo:
    return RuleInfo(meta.rule_id, meta.title, meta.status.lower(), meta.level.lower(), meta.path)


def _is_detection_rule(document: Any) -> bool:
    return isinstance(document, dict) and "detection" in document


def _rule_info(document: dict[str, Any], path: str) -> RuleInfo:
    regression = document.get("regression_tests_path")
    return RuleInfo(
        rule_id=str(document.get("id") or ""),
        title=str(document.get("title") or ""),
        status=str(document.get("status") or "").lower(),
        level=str(document.get("level") or "").lower(),
        path=path,
        regression_tests_path=str(regression) if regression else None,
    )


# -- paths ----------------------------------------------------------------------------------


def _posix(relative: str) -> PurePosixPath:
    return PurePosixPath(relative.replace("\\", "/"))


def guess_regression_root(rule_path: Path, relative: str) -> Path | None:
    """The nearest folder above the rule holding the first part of ``relative``.

    For SigmaHQ that is the repository root: the folder that contains ``regression_data``.
    ``None`` when no ancestor has it (rules copied without their regression data).
    """
    first = _posix(relative).parts[0]
    for folder in rule_path.resolve().parents:
        if (folder / first).is_dir():
            return folder
    return None


def _under(root: Path | None, relative: str) -> Path | None:
    posix = _posix(relative)
    if posix.is_absolute():
        return Path(relative)
    return None if root is None else root.joinpath(*posix.parts)


def resolve_sample(declared: str, root: Path | None, info_dir: Path, sample_format: SampleFormat) -> Path:
    """Where a listed sample is: under the repository root, else beside the info file.

    With ``sample_format="json"`` an ``.evtx`` is replaced by the evtx_dump rendering SigmaHQ
    keeps next to it (``<rule id>.json``); a sample listed as ``.json`` is read as it is.
    """
    candidates = [p for p in (_under(root, declared), info_dir.joinpath(*_posix(declared).parts)) if p]
    if sample_format == "json":
        candidates = [p.with_suffix(".json") if p.suffix.lower() == ".evtx" else p for p in candidates]
    return next((p for p in candidates if p.exists()), candidates[0])


# -- info.yml ----------------------------------------------------------------------------------


def discover(
    rule_paths: Sequence[str | Path],
    regression_root: str | Path | None = None,
    sample_format: SampleFormat = "evtx",
    require_data: bool = False,
    compiled: Mapping[str, Sequence[RuleMeta]] | None = None,
) -> Discovery:
    """Read every rule's regression metadata; nothing is run here."""
    out = Discovery()
    out.rules, out.unreadable = read_rule_infos(rule_paths, compiled)
    root = Path(regression_root) if regression_root is not None else None
    for rule in out.rules:
        if rule.regression_tests_path is None:
            if rule.requires_regression_test:
                out.missing_tests.append(rule)
            continue
        cases, decided = plan_rule(rule, root, sample_format, require_data)
        out.cases.extend(cases)
        out.decided.extend(decided)
    return out


def plan_rule(
    rule: RuleInfo, root: Path | None, sample_format: SampleFormat, require_data: bool
) -> tuple[list[RegressionCase], list[CaseResult]]:
    """The cases of one rule with a ``regression_tests_path``, or why it cannot be tested."""
    assert rule.regression_tests_path is not None
    relative = rule.regression_tests_path
    root = root or guess_regression_root(Path(rule.path), relative)
    info_path = _under(root, relative)
    if info_path is None or not info_path.parent.exists():
        return [], [_absent_data(rule, relative, info_path, require_data)]
    if not info_path.exists():
        return [], [_decided(rule, Outcome.FAIL, f"missing regression test info file: {info_path}", str(info_path))]
    try:
        info = yaml.load(info_path.read_text(encoding="utf-8-sig"), Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        reason = f"could not parse info file {info_path}: {' '.join(str(error).split())}"
        return [], [_decided(rule, Outcome.FAIL, reason, str(info_path))]
    return _cases_of(rule, info, info_path, root, sample_format)


def _absent_data(rule: RuleInfo, relative: str, info_path: Path | None, require_data: bool) -> CaseResult:
    """The whole regression folder is missing: no data in this checkout (a skip, unless required)."""
    shown = str(info_path or relative)
    if require_data:
        return _decided(rule, Outcome.FAIL, f"missing regression test info file: {shown}", shown)
    where = f"{_posix(relative).parent}/" + ("" if info_path else " (no folder above the rule has it)")
    return _decided(rule, Outcome.SKIP, f"regression data not present: {where}", shown)


def _cases_of(
    rule: RuleInfo, info: Any, info_path: Path, root: Path | None, sample_format: SampleFormat
) -> tuple[list[RegressionCase], list[CaseResult]]:
    if not isinstance(info, dict) or not info.get("regression_tests_info"):
        return [], [_decided(rule, Outcome.FAIL, f"no regression_tests_info found in {info_path}", str(info_path))]
    problem = _metadata_problem(rule, info)
    if problem:
        return [], [_decided(rule, Outcome.FAIL, problem, str(info_path))]
    cases: list[RegressionCase] = []
    decided: list[CaseResult] = []
    tests = [t for t in info["regression_tests_info"] if isinstance(t, dict)]
    for number, test in enumerate(tests, 1):
        case = _case(rule, test, number, info_path, root, sample_format)
        problem = _case_problem(case, test)
        if problem:
            decided.append(CaseResult(Kind.REGRESSION, Outcome.FAIL, rule, problem, case.label, str(case.sample),
                                      info_file=str(info_path), expected=case.match_count))
        else:
            cases.append(case)
    return cases, decided


def _case(rule: RuleInfo, test: dict[str, Any], number: int, info_path: Path, root: Path | None,
          sample_format: SampleFormat) -> RegressionCase:
    declared = str(test.get("path") or "")
    count = test.get("match_count")
    return RegressionCase(
        rule=rule,
        info_path=info_path,
        number=number,
        name=str(test.get("name") or f"Test {number}"),
        test_type=str(test.get("type") or "unknown").lower(),
        provider=str(test.get("provider") or ""),
        match_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        sample=resolve_sample(declared, root, info_path.parent, sample_format) if declared else info_path.parent,
        declared=declared,
    )


def _metadata_problem(rule: RuleInfo, info: dict[str, Any]) -> str | None:
    """SigmaHQ's consistency check: the info file must name the rule it tests."""
    metadata = info.get("rule_metadata") or []
    ids = [str(m.get("id")) for m in metadata if isinstance(m, dict) and m.get("id")]
    if not ids:
        return "info.yml is missing rule_metadata or rule_metadata[0].id"
    if rule.rule_id.lower() not in {i.lower() for i in ids}:
        return f"rule id {rule.rule_id} does not match info.yml rule_metadata id {ids[0]}"
    return None


def _case_problem(case: RegressionCase, test: dict[str, Any]) -> str | None:
    """What stops a case from running: each is a failure in SigmaHQ's runner too."""
    if not case.declared:
        return "regression test lists no path"
    if case.test_type not in KNOWN_TEST_TYPES:
        return f"unknown test type '{case.test_type}' (known: {', '.join(sorted(KNOWN_TEST_TYPES))})"
    count = test.get("match_count")
    if count is not None and (case.match_count is None or case.match_count < 0):
        return f"invalid match_count {count!r} (a whole number >= 0)"
    name = PurePosixPath(_posix(case.declared).name)
    if name.suffix.lower() in NAMED_SAMPLE_SUFFIXES and name.stem.lower() != case.rule.rule_id.lower():
        return f"test file name {name} does not match the rule id (expected {case.rule.rule_id}{name.suffix})"
    if not case.sample.exists():
        return f"missing test data file: {case.sample}" + _json_hint(case)
    return None


def _json_hint(case: RegressionCase) -> str:
    """Point at the other rendering when only it is present."""
    listed_evtx = _posix(case.declared).suffix.lower() == ".evtx"
    if listed_evtx and case.sample.suffix.lower() == ".json":
        return " (the evtx_dump rendering of the listed .evtx; read the .evtx with --samples evtx)"
    if listed_evtx and case.sample.with_suffix(".json").exists():
        return f" (its evtx_dump rendering {case.sample.with_suffix('.json').name} is there: --samples json)"
    return ""


def _decided(rule: RuleInfo, outcome: Outcome, reason: str, info_file: str) -> CaseResult:
    return CaseResult(Kind.REGRESSION, outcome, rule, reason, info_file=info_file)


def rules_by_key(rules: Iterable[RuleInfo]) -> dict[tuple[str, str], RuleInfo]:
    return {rule_key(r.path, r.rule_id): r for r in rules}


def rule_key(path: str, rule_id: str) -> tuple[str, str]:
    """How a YAML rule and its compiled form are matched: file and (case-folded) id."""
    return (path, rule_id.lower())


def info_of(rule: CompiledRule, infos: Mapping[tuple[str, str], RuleInfo]) -> RuleInfo:
    """The YAML view of a compiled rule (rebuilt from its metadata when the YAML had no id)."""
    return infos.get(rule_key(rule.meta.path, rule.meta.rule_id)) or _info_of_meta(rule.meta)


def metas_by_file(rules: Iterable[CompiledRule]) -> dict[str, list[RuleMeta]]:
    out: dict[str, list[RuleMeta]] = {}
    for rule in rules:
        out.setdefault(rule.meta.path, []).append(rule.meta)
    return out
