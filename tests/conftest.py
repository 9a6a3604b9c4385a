"""Shared test helpers: evaluate Sigma rules written inline over events written inline."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from sigma.collection import SigmaCollection

from sigmahunt.engines.embedded.compiler import compile_rule
from sigmahunt.engines.embedded.evaluator import BatchEvaluator, RuleSetPlan
from sigmahunt.rules.loader import LoadedRule

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLES = REPO / "examples"

requires_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared is not present")


@pytest.fixture(autouse=True)
def native_matcher_on_small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests evaluate a few events at a time: let the native field matcher (where it is on)
    take them too, instead of only batches of NATIVE_MIN_ROWS rows as in a hunt."""
    from sigmahunt.engines.embedded import evaluator

    monkeypatch.setattr(evaluator, "NATIVE_MIN_ROWS", 0)


def as_string(value: Any) -> str | None:
    """Render a value the way the ingest stores it (every column is a string)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def frame_of(events: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    columns = sorted({k for e in events for k in e})
    return pl.DataFrame(
        {c: [as_string(e.get(c)) for e in events] for c in columns},
        schema={c: pl.String for c in columns},
    )


def compile_yaml(rule_yaml: str, placeholders: Mapping[str, Any] | None = None) -> Any:
    collection = SigmaCollection.from_yaml(textwrap.dedent(rule_yaml))
    rule = collection.rules[0]
    return compile_rule(LoadedRule(rule, "<inline>", ""), placeholders)


def matching(rule_yaml: str, events: Sequence[Mapping[str, Any]],
             placeholders: Mapping[str, Any] | None = None) -> list[int]:
    """Indices of ``events`` the rule detects, on the embedded engine."""
    compiled = compile_yaml(rule_yaml, placeholders)
    evaluator = BatchEvaluator(RuleSetPlan.build([compiled]))
    hits = evaluator.evaluate(frame_of(events))
    return [int(i) for i in hits.get(0, [])]


def rule(detection: str, logsource: str = "product: windows") -> str:
    """A minimal rule around a detection block (indented YAML)."""
    body = textwrap.indent(textwrap.dedent(detection).strip(), "    ")
    return f"title: t\nid: 00000000-0000-0000-0000-000000000001\nlogsource:\n    {logsource}\ndetection:\n{body}\n"
