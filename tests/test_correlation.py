"""Sigma correlation rules: every type, sliding windows, groups, conditions, chains, aliases.

Two levels: :func:`correlate` over detection records written here (exact control of
times, fields and order), and whole hunts (``run_hunt``) over the example logs and rules
(examples/logs/correlation_*, examples/rules/correlation_*.yml; the logs are written by
tests/fixtures/correlation/make_logs.py).
"""

from __future__ import annotations

import json
import random
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sigmahunt.correlation import correlate, correlation_support, unsupported
from sigmahunt.correlation.conditions import SigmaCorrelationRangeCondition
from sigmahunt.correlation.engine import percentile, timestamp_us
from sigmahunt.hunting import run_hunt
from sigmahunt.results import render
from sigmahunt.rules.prepare import RuleSelection, prepare_rules

from .conftest import EXAMPLES

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

# Base rules used by the record-level tests (ids are what records carry).
A, B, C = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002", \
    "aaaaaaaa-0000-4000-8000-000000000003"
BASES = f"""
title: Rule A
id: {A}
name: rule_a
logsource: {{product: windows, service: security}}
detection: {{sel: {{EventID: 1}}, condition: sel}}
level: low
---
title: Rule B
id: {B}
name: rule_b
logsource: {{product: windows, service: security}}
detection: {{sel: {{EventID: 2}}, condition: sel}}
level: medium
---
title: Rule C
id: {C}
name: rule_c
logsource: {{product: windows, service: security}}
detection: {{sel: {{EventID: 3}}, condition: sel}}
level: low
"""


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_positions = iter(range(1, 10**9))


def rec(rule: str, seconds: float, **event: Any) -> dict[str, Any]:
    """A detection record of base rule ``rule`` at T0 + seconds."""
    n = next(_positions)
    path, _, title = rule.rpartition("::") if "::" in rule else ("", "", "")
    return {
        "rule_id": "" if path else rule, "rule_title": title, "rule_path": path, "level": "low", "status": "",
        "tags": [],
        "timestamp": iso(seconds), "computer": event.get("Computer"), "channel": "Security",
        "event_id": 1, "source": "test.jsonl", "record_id": n, "position": f"line {n}",
        "event": {k: str(v) for k, v in event.items()},
    }


def plan(tmp_path: Path, correlation: str, bases: str = BASES, **options: Any) -> Any:
    path = tmp_path / "rules.yml"
    path.write_text(textwrap.dedent(bases).strip() + "\n---\n" + textwrap.dedent(correlation).strip() + "\n")
    prepared = prepare_rules([path], cache_dir=False, **options)
    assert not prepared.failures, prepared.failures
    return prepared.correlation_plan


def corr(kind: str, rules: str = "[rule_a]", timespan: str = "5m", group_by: str = "[]",
         condition: str = "{gte: 1}", extra: str = "") -> str:
    cond = f"\n    condition: {condition}" if condition else ""
    return f"""
title: The correlation
id: cccccccc-0000-4000-8000-000000000001
correlation:
    type: {kind}
    rules: {rules}
    group-by: {group_by}
    timespan: {timespan}{cond}
{extra}
level: high
"""


def windows(matches: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return sorted((m["window_start"], m["window_end"], m["value"]) for m in matches)


# -- windows: edges, sliding, ordering, groups -------------------------------------------

def test_events_exactly_timespan_apart_share_a_window(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("event_count", timespan="5m", condition="{gte: 2}"))
    assert windows(correlate(p, [rec(A, 0), rec(A, 300)])) == [(iso(0), iso(300), 2)]


def test_events_just_over_timespan_apart_do_not(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("event_count", timespan="5m", condition="{gte: 2}"))
    assert correlate(p, [rec(A, 0), rec(A, 300.000001)]) == []
    assert correlate(p, [rec(A, 0), rec(A, 301)]) == []


def test_window_slides_across_clock_boundaries(tmp_path: Path) -> None:
    # 09:04:40 .. 09:05:20: three events across the 5-minute (and 1-minute) boundary.
    p = plan(tmp_path, corr("event_count", timespan="1m", condition="{gte: 3}"))
    out = correlate(p, [rec(A, 280), rec(A, 300), rec(A, 320)])
    assert windows(out) == [(iso(280), iso(320), 3)]


def test_out_of_order_input_gives_the_same_result(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("event_count", timespan="1m", group_by="[Computer]", condition="{gte: 3}"))
    records = [rec(A, s, Computer=h) for h in ("WS1", "WS2") for s in (0, 10, 20, 200, 230, 500, 510, 515, 520)]
    expected = sorted(windows(correlate(p, records)))
    assert len(expected) == 4  # two bursts per host
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        assert sorted(windows(correlate(p, shuffled))) == expected


def test_hosts_interleaved_are_counted_apart(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("event_count", timespan="5m", group_by="[Computer]", condition="{gte: 3}"))
    records = []
    for i in range(3):  # WS1 and WS2 alternate; WS1 3 events, WS2 2 events, WS3 3 events
        records.append(rec(A, 10 * i, Computer="WS1"))
        if i < 2:
            records.append(rec(A, 10 * i + 5, Computer="WS2"))
        records.append(rec(A, 10 * i + 7, Computer="WS3"))
    out = correlate(p, records)
    assert sorted((m["group"]["Computer"], m["value"], m["computer"]) for m in out) == [
        ("WS1", 3, "WS1"), ("WS3", 3, "WS3")]


def test_long_burst_gives_consecutive_non_overlapping_windows(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("event_count", timespan="1m", condition="{gte: 3}"))
    records = [rec(A, 10 * i) for i in range(60)]  # one event every 10 s for 10 minutes
    out = sorted(correlate(p, records), key=lambda m: m["window_start"])
    assert [m["value"] for m in out] == [7] * 8 + [4]
    seen: set[tuple[Any, ...]] = set()
    for m in out:
        span = timestamp_us(m["window_end"]) - timestamp_us(m["window_start"])
        assert span <= 60_000_000
        ids = {tuple(i) for i in m["event_ids"]}
        assert not ids & seen
        seen |= ids
    assert len(seen) == 60


def test_a_burst_is_reported_once_with_all_its_events(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("event_count", timespan="5m", condition="{gte: 10}"))
    records = [rec(A, 3 * i) for i in range(57)]  # 57 events in under 3 minutes
    (match,) = correlate(p, records)
    assert match["value"] == 57 and len(match["events"]) == 57 and len(match["event_ids"]) == 57


def test_untimed_and_ungrouped_detections_take_no_part(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("event_count", group_by="[TargetUserName]", condition="{gte: 2}"))
    untimed = rec(A, 0, TargetUserName="bob")
    untimed["timestamp"] = None
    stats: dict[str, int] = {}
    out = correlate(p, [untimed, rec(A, 1, TargetUserName="bob"), rec(A, 2), rec(A, 3)], stats)
    assert out == [] and (stats["untimed"], stats["ungrouped"]) == (1, 2)


def test_one_event_matched_by_two_rules_counts_once(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("event_count", rules="[rule_a, rule_b]", condition="{gte: 2}"))
    first = rec(A, 0)
    same_event_other_rule = dict(first, rule_id=B)
    assert correlate(p, [first, same_event_other_rule]) == []
    (match,) = correlate(p, [first, same_event_other_rule, rec(B, 5)])
    assert match["value"] == 2
    assert match["event_rules"][0] == [A, B]  # the shared event lists both rules


# -- conditions ----------------------------------------------------------------------------

def clusters(sizes: list[int], gap: float = 1000.0) -> list[dict[str, Any]]:
    """Clusters of events (1 s apart) far apart from each other."""
    out = []
    for n, size in enumerate(sizes):
        out += [rec(A, n * gap + i) for i in range(size)]
    return out


@pytest.mark.parametrize(("condition", "expected"), [
    ("{gt: 3}", [4, 5, 10]),
    ("{gte: 3}", [3, 4, 5, 10]),
    ("{lt: 3}", [1, 2]),
    ("{lte: 3}", [1, 2, 3]),
    ("{eq: 4}", [4]),
    ("{gt: 2, lte: 4}", [3, 4]),
    ("{gte: 2, lt: 5}", [2, 3, 4]),
])
def test_condition_operators_and_ranges(tmp_path: Path, condition: str, expected: list[int]) -> None:
    p = plan(tmp_path, corr("event_count", timespan="1m", condition=condition))
    assert sorted(m["value"] for m in correlate(p, clusters([1, 2, 3, 4, 5, 10]))) == expected


def test_range_condition_is_parsed_by_pysigma(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("event_count", condition="{gt: 100, lte: 200}"))
    assert p.correlations[0].bounds == [("gt", 100), ("lte", 200)]
    from sigma.collection import SigmaCollection
    collection = SigmaCollection.from_yaml(textwrap.dedent(BASES) + "---\n" + textwrap.dedent(
        corr("event_count", condition="{gt: 100, lte: 200}")))
    condition = collection.rules[-1].condition
    assert isinstance(condition, SigmaCorrelationRangeCondition)
    assert condition.to_dict() == {"gt": 100, "lte": 200}


def test_lt_means_a_window_with_events_and_fewer_than_n(tmp_path: Path) -> None:
    # A burst of 50 never matches "fewer than 5" through its first events; isolated events do.
    p = plan(tmp_path, corr("event_count", timespan="5m", condition="{lt: 5}"))
    burst = [rec(A, 2 * i) for i in range(50)]
    isolated = [rec(A, 5000), rec(A, 9000), rec(A, 9010)]
    assert windows(correlate(p, burst)) == []
    assert windows(correlate(p, burst + isolated)) == [(iso(5000), iso(5000), 1), (iso(9000), iso(9010), 2)]


def test_upper_bound_judges_the_whole_burst(tmp_path: Path) -> None:
    # "Between 3 and 5 events in a minute": a burst of 20 in a minute is not such a window.
    p = plan(tmp_path, corr("event_count", timespan="1m", condition="{gte: 3, lte: 5}"))
    assert correlate(p, [rec(A, i) for i in range(20)]) == []
    assert [m["value"] for m in correlate(p, [rec(A, i) for i in range(4)])] == [4]


# -- value types -------------------------------------------------------------------------

def test_value_count_distinct_values_per_group(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("value_count", group_by="[IpAddress]",
                            condition="{field: TargetUserName, gte: 3}"))
    records = [rec(A, i, IpAddress="203.0.113.5", TargetUserName=f"user{i}") for i in range(3)]
    records += [rec(A, 10 + i, IpAddress="10.0.0.8", TargetUserName="alice") for i in range(5)]
    (match,) = correlate(p, records)
    assert match["group"] == {"IpAddress": "203.0.113.5"} and match["value"] == 3
    assert match["correlation_type"] == "value_count"


NUMBERS = [10, 20, 30, 40, "x", 100]  # "x" is not a number: ignored


@pytest.mark.parametrize(("kind", "condition", "value"), [
    ("value_sum", "{field: Bytes, gte: 200}", 200),
    ("value_avg", "{field: Bytes, gt: 39}", 40.0),
    ("value_median", "{field: Bytes, eq: 30}", 30),
    ("value_percentile", "{field: Bytes, percentile: 75, gte: 40}", 40.0),
    ("value_percentile", "{field: Bytes, percentile: 90, gt: 60}", 76.0),
])
def test_numeric_aggregates(tmp_path: Path, kind: str, condition: str, value: float) -> None:
    p = plan(tmp_path, corr(kind, condition=condition, group_by="[Computer]"))
    records = [rec(A, i, Computer="WS1", Bytes=v) for i, v in enumerate(NUMBERS)]
    (match,) = correlate(p, records)
    assert match["value"] == pytest.approx(value)
    assert len(match["events"]) == 6  # the non-numeric event is still in the window


@pytest.mark.parametrize("kind", ["value_sum", "value_avg", "value_median"])
def test_numeric_aggregate_below_threshold(tmp_path: Path, kind: str) -> None:
    p = plan(tmp_path, corr(kind, condition="{field: Bytes, gt: 1000}"))
    assert correlate(p, [rec(A, i, Bytes=v) for i, v in enumerate(NUMBERS)]) == []


def test_numeric_values_in_hex_and_float() -> None:
    from sigmahunt.correlation.engine import number
    assert [number(v) for v in ("0x20", "1.5", "-3", "", "abc", "nan")] == [32, 1.5, -3, None, None, None]
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([], 50) is None and percentile([7], 99) == 7


def test_value_percentile_needs_a_percentile(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(BASES + "---\n" + textwrap.dedent(corr("value_percentile", condition="{field: Bytes, gte: 4}")))
    prepared = prepare_rules([path], cache_dir=False)
    assert any("needs 'percentile'" in f.reason for f in prepared.failures)
    assert not prepared.correlation_plan.correlations


# -- temporal ----------------------------------------------------------------------------

def test_temporal_all_rules_in_any_order(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("temporal", rules="[rule_a, rule_b, rule_c]", timespan="5m",
                            group_by="[Computer]", condition=""))
    hit = [rec(C, 0, Computer="WS1"), rec(A, 60, Computer="WS1"), rec(B, 120, Computer="WS1")]
    missing = [rec(A, 0, Computer="WS2"), rec(B, 30, Computer="WS2")]
    too_slow = [rec(A, 0, Computer="WS3"), rec(B, 100, Computer="WS3"), rec(C, 400, Computer="WS3")]
    (match,) = correlate(p, hit + missing + too_slow)
    assert match["group"] == {"Computer": "WS1"} and match["value"] == 3


def test_temporal_with_count_condition(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("temporal", rules="[rule_a, rule_b, rule_c]", condition="{gte: 2}"))
    assert [m["value"] for m in correlate(p, [rec(A, 0), rec(B, 30)])] == [2]


def test_temporal_extended_condition(tmp_path: Path) -> None:
    kind = """temporal
    condition: rule_a and not rule_b"""
    p = plan(tmp_path, corr(kind, rules="[rule_a, rule_b]", condition=""))
    assert len(correlate(p, [rec(A, 0)])) == 1
    assert correlate(p, [rec(A, 0), rec(B, 10)]) == []
    assert correlate(p, [rec(B, 10)]) == []


def test_temporal_ordered_requires_the_order(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("temporal_ordered", rules="[rule_a, rule_b, rule_c]", condition="",
                            group_by="[User]"))
    in_order = [rec(A, 0, User="u1"), rec(B, 10, User="u1"), rec(C, 20, User="u1")]
    reversed_ = [rec(C, 0, User="u2"), rec(B, 10, User="u2"), rec(A, 20, User="u2")]
    mixed = [rec(B, 0, User="u3"), rec(A, 5, User="u3"), rec(C, 8, User="u3"), rec(B, 9, User="u3"),
             rec(C, 12, User="u3")]
    out = correlate(p, in_order + reversed_ + mixed)
    assert sorted(m["group"]["User"] for m in out) == ["u1", "u3"]


def test_temporal_ordered_equal_timestamps_count_as_in_order(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("temporal_ordered", rules="[rule_a, rule_b]", condition=""))
    assert len(correlate(p, [rec(B, 0), rec(A, 0)])) == 1  # same second, listed B first


def test_temporal_ordered_rejects_extended_condition(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    kind = """temporal_ordered
    condition: rule_a and rule_b"""
    path.write_text(BASES + "---\n" + textwrap.dedent(corr(kind, rules="[rule_a, rule_b]", condition="")))
    prepared = prepare_rules([path], cache_dir=False)
    assert any("extended" in f.reason for f in prepared.failures)


# -- aliases, chains, references, generate -----------------------------------------------

def test_aliases_map_a_group_to_different_fields_per_rule(tmp_path: Path) -> None:
    extra = """    aliases:
        ip:
            rule_a: IpAddress
            rule_b: SourceIp"""
    text = corr("temporal", rules="[rule_a, rule_b]", group_by="[ip]", condition="")
    p = plan(tmp_path, text.replace("    timespan", extra + "\n    timespan"))
    out = correlate(p, [rec(A, 0, IpAddress="10.1.1.1"), rec(B, 5, SourceIp="10.1.1.1"),
                        rec(A, 0, IpAddress="10.2.2.2"), rec(B, 5, SourceIp="10.3.3.3")])
    assert [m["group"] for m in out] == [{"ip": "10.1.1.1"}]


def test_correlation_of_a_correlation(tmp_path: Path) -> None:
    inner = """
title: Burst of A
id: cccccccc-0000-4000-8000-0000000000a1
name: burst_a
correlation:
    type: event_count
    rules: [rule_a]
    group-by: [User]
    timespan: 1m
    condition: {gte: 3}
"""
    outer = corr("temporal_ordered", rules="[burst_a, rule_b]", group_by="[User]", timespan="10m",
                 condition="")
    p = plan(tmp_path, outer, BASES + "---\n" + inner)
    records = [rec(A, i, User="bob") for i in range(3)] + [rec(B, 120, User="bob")]
    records += [rec(A, i, User="eve") for i in range(2)] + [rec(B, 120, User="eve")]  # 2 < 3
    records += [rec(B, 0, User="joe")] + [rec(A, 60 + i, User="joe") for i in range(3)]  # wrong order
    out = correlate(p, records)  # every correlation's matches, the inner ones included
    assert sorted(m["group"]["User"] for m in out if m["rule_title"] == "Burst of A") == ["bob", "joe"]
    (match,) = [m for m in out if m["rule_title"] == "The correlation"]
    assert match["group"] == {"User": "bob"} and match["value"] == 2
    assert match["window_start"] == iso(0) and match["window_end"] == iso(120)
    assert len(match["events"]) == 4  # the inner burst's 3 events and the B event
    assert match["level"] == "high"


def test_references_by_id_and_by_name(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("temporal", rules=f"[{A}, rule_b]", condition=""))
    assert p.correlations[0].refs == [A, B]
    assert len(correlate(p, [rec(A, 0), rec(B, 1)])) == 1


@pytest.mark.parametrize(("rules", "reason"), [
    ("[no_such_rule]", "unknown rule 'no_such_rule'"),
    ("[cccccccc-0000-4000-8000-000000000001]", "refers to itself"),
])
def test_bad_references_fail_the_correlation(tmp_path: Path, rules: str, reason: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(BASES + "---\n" + textwrap.dedent(corr("event_count", rules=rules)))
    prepared = prepare_rules([path], cache_dir=False)
    assert any(reason in f.reason for f in prepared.failures), prepared.failures
    assert len(prepared.compiled) == 3  # the rules themselves still load


def test_correlation_cycle_fails(tmp_path: Path) -> None:
    text = BASES + """
---
title: X
name: x
correlation: {type: temporal, rules: [y, rule_a], group-by: [], timespan: 1m}
---
title: Y
name: y
correlation: {type: temporal, rules: [x, rule_b], group-by: [], timespan: 1m}
"""
    path = tmp_path / "rules.yml"
    path.write_text(text)
    prepared = prepare_rules([path], cache_dir=False)
    assert sum("cycle" in f.reason for f in prepared.failures) == 2


def test_names_resolve_in_their_own_file_first(tmp_path: Path) -> None:
    # Two files each define "failed_login"; each correlation uses its own.
    for n, event_id in ((1, 4625), (2, 529)):
        (tmp_path / f"c{n}.yml").write_text(textwrap.dedent(f"""
            title: Failed {n}
            name: failed_login
            logsource: {{product: windows, service: security}}
            detection: {{sel: {{EventID: {event_id}}}, condition: sel}}
            ---
            title: Many failed {n}
            correlation: {{type: event_count, rules: [failed_login], group-by: [], timespan: 1m,
                           condition: {{gte: 2}}}}
            """))
    prepared = prepare_rules([tmp_path], cache_dir=False)
    assert not prepared.failures
    refs = sorted(c.refs[0] for c in prepared.correlation_plan.correlations)
    assert refs == [f"{tmp_path / 'c1.yml'}::Failed 1", f"{tmp_path / 'c2.yml'}::Failed 2"]
    # A third file naming failed_login finds two candidates: ambiguous, not guessed.
    (tmp_path / "c3.yml").write_text("title: Other\ncorrelation: {type: event_count, rules: [failed_login], "
                                     "group-by: [], timespan: 1m, condition: {gte: 2}}\n")
    prepared = prepare_rules([tmp_path], cache_dir=False)
    assert any("ambiguous" in f.reason for f in prepared.failures)


def test_level_inherits_the_most_severe_rule_without_level(tmp_path: Path) -> None:
    text = corr("temporal", rules="[rule_a, rule_b]", condition="").replace("level: high", "")
    p = plan(tmp_path, text)
    assert p.correlations[0].meta.level == "medium"


# -- whole hunts -------------------------------------------------------------------------

def hunt(logs: list[Path], rules: list[Path], **options: Any) -> Any:
    return run_hunt(logs, rules, cache_dir=False, **options)


EXAMPLE_LOGS = [EXAMPLES / "logs" / "correlation_security.jsonl", EXAMPLES / "logs" / "correlation_sysmon.json"]


def test_example_password_spray() -> None:
    result = hunt(EXAMPLE_LOGS, [EXAMPLES / "rules" / "correlation_password_spray.yml"])
    (match,) = result.records  # the slow spray and alice's typos do not match
    assert match["rule_title"] == "Password Spray From One Address"
    assert match["group"] == {"IpAddress": "203.0.113.50"} and match["value"] == 12
    assert (match["window_start"], match["window_end"]) == ("2026-11-21T10:00:00.000000Z",
                                                            "2026-11-21T10:01:17.000000Z")
    assert {e["TargetUserName"] for e in match["events"]} == {f"user{i:02d}" for i in range(1, 13)}
    assert match["techniques"] == ["T1110.003"] and match["computer"] == "DC01"


def test_example_brute_force_then_success() -> None:
    result = hunt(EXAMPLE_LOGS, [EXAMPLES / "rules" / "correlation_bruteforce_then_success.yml"])
    (match,) = result.records  # carol (no success), dave (wrong order), erin (too late) do not
    assert match["group"] == {"TargetUserName": "bob"}
    assert [e["EventID"] for e in match["events"]] == ["4625"] * 6 + ["4624"]
    assert match["timestamp"] == "2026-11-21T10:22:00.000000Z"


def test_example_discovery_burst_sysmon_and_security() -> None:
    result = hunt(EXAMPLE_LOGS, [EXAMPLES / "rules" / "correlation_discovery_burst.yml"])
    by_host = {m["group"]["Computer"]: m for m in result.records}
    assert set(by_host) == {"ws01.corp.example", "WS03"}  # ws02: two commands 10 minutes apart
    assert by_host["ws01.corp.example"]["value"] == 4  # notepad in the middle is not discovery
    assert by_host["WS03"]["value"] == 3  # Security 4688: NewProcessName is Image
    assert all(m["rule_title"] == "Burst of Discovery Commands on One Host" for m in result.records)


def test_example_logs_out_of_order_across_files(tmp_path: Path) -> None:
    lines = (EXAMPLES / "logs" / "correlation_security.jsonl").read_text().splitlines()
    middle = len(lines) // 2
    (tmp_path / "a_late.jsonl").write_text("\n".join(reversed(lines[middle:])) + "\n")
    (tmp_path / "b_early.jsonl").write_text("\n".join(reversed(lines[:middle])) + "\n")
    rules = [EXAMPLES / "rules" / "correlation_password_spray.yml",
             EXAMPLES / "rules" / "correlation_bruteforce_then_success.yml"]
    shuffled = hunt([tmp_path], rules)
    ordered = hunt([EXAMPLE_LOGS[0]], rules)
    key = [(m["rule_title"], json.dumps(m["group"]), m["window_start"], m["window_end"], m["value"])
           for m in (shuffled.records, ordered.records) for m in m]
    assert sorted(key[:len(shuffled.records)]) == sorted(key[len(shuffled.records):])
    assert len(shuffled.records) == 2


def test_generate_false_hides_base_detections_and_true_keeps_them(tmp_path: Path) -> None:
    source = (EXAMPLES / "rules" / "correlation_discovery_burst.yml").read_text()
    hidden = hunt(EXAMPLE_LOGS, [EXAMPLES / "rules" / "correlation_discovery_burst.yml"])
    assert {r["rule_title"] for r in hidden.records} == {"Burst of Discovery Commands on One Host"}
    assert hidden.summary.detections == 2
    (tmp_path / "gen.yml").write_text(source.replace("    timespan: 5m", "    timespan: 5m\n    generate: true"))
    shown = hunt(EXAMPLE_LOGS, [tmp_path / "gen.yml"])
    titles = [r["rule_title"] for r in shown.records]
    assert titles.count("Discovery Command") == 9 and titles.count("Burst of Discovery Commands on One Host") == 2


def test_selection_keeps_correlations_and_evaluates_their_rules() -> None:
    # --level medium: the discovery base rule (informational) is left out, yet the
    # correlation (medium) needs it, so it runs, and only the correlation is output.
    result = hunt(EXAMPLE_LOGS, [EXAMPLES / "rules"], selection=RuleSelection(min_level="medium"))
    titles = {r["rule_title"] for r in result.records}
    assert "Burst of Discovery Commands on One Host" in titles
    assert "Discovery Command" not in titles and "Failed Network Logon" not in titles
    # --rule-id of the base rule alone: no correlation is selected.
    result = hunt(EXAMPLE_LOGS, [EXAMPLES / "rules"],
                  selection=RuleSelection(rule_ids=("0c1f3e52-8a0b-4d3c-9d51-6e2f7a9b1c21",)))
    assert {r["rule_title"] for r in result.records} == {"Discovery Command"}


def test_correlation_records_in_every_output_format() -> None:
    result = hunt([EXAMPLES / "logs"], [EXAMPLES / "rules"])
    frame = result.dataframe
    spray = frame[frame["rule_title"] == "Password Spray From One Address"].iloc[0]
    assert spray["correlation_type"] == "value_count" and len(spray["events"]) == 12
    assert spray["timestamp"].isoformat() == "2026-11-21T10:01:17+00:00"
    lines = [json.loads(line) for line in render(frame, "jsonl").splitlines()]
    spray_line = next(x for x in lines if x["rule_title"] == "Password Spray From One Address")
    assert spray_line["group"] == {"IpAddress": "203.0.113.50"}
    assert len(spray_line["event_ids"]) == 12 and spray_line["event_ids"][0][0].endswith("correlation_security.jsonl")
    plain = next(x for x in lines if x["rule_title"] == "Encoded PowerShell Command Line")
    assert isinstance(plain["event_id"], int)  # single detections keep integer event ids
    for fmt in ("csv", "json", "parquet"):
        assert render(frame, fmt)


# -- the Sigma specification's examples ----------------------------------------------------
# The specification's correlation section gives one example per type plus aliases and a
# complete chained example; each is run here over events written for it.

SPEC_BASE = """
title: Failed logon (the specification's referenced rule)
id: 5638f7c0-ac70-491d-8465-2a65075e0d86
logsource: {product: windows, service: security}
detection: {sel: {EventID: 4625}, condition: sel}
"""


def spec_rec(seconds: float, **event: Any) -> dict[str, Any]:
    return rec("5638f7c0-ac70-491d-8465-2a65075e0d86", seconds, **event)


def test_spec_event_count(tmp_path: Path) -> None:
    p = plan(tmp_path, """
title: Many failed logins
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
    type: event_count
    rules: [5638f7c0-ac70-491d-8465-2a65075e0d86]
    group-by: [ComputerName]
    timespan: 1h
    condition: {gte: 100}
""", SPEC_BASE)
    records = [spec_rec(30 * i, ComputerName="SRV1") for i in range(100)]  # 100 in 49.5 min
    records += [spec_rec(30 * i, ComputerName="SRV2") for i in range(99)]  # 99
    records += [spec_rec(72 * i, ComputerName="SRV3") for i in range(100)]  # 100 over 2 hours
    (match,) = correlate(p, records)
    assert match["group"] == {"ComputerName": "SRV1"} and match["value"] == 100


def test_spec_value_count(tmp_path: Path) -> None:
    p = plan(tmp_path, """
title: Failed login
id: 0e95725d-7320-415d-80f7-004da920fc12
correlation:
    type: value_count
    rules: [5638f7c0-ac70-491d-8465-2a65075e0d86]
    group-by: [ComputerName, WorkstationName]
    timespan: 1d
    condition: {field: User, gte: 100}
""", SPEC_BASE)
    records = [spec_rec(600 * i, ComputerName="DC1", WorkstationName="W1", User=f"u{i}") for i in range(100)]
    records += [spec_rec(600 * i, ComputerName="DC1", WorkstationName="W2", User=f"u{i % 50}")
                for i in range(100)]  # 100 attempts, 50 users
    (match,) = correlate(p, records)
    assert match["group"] == {"ComputerName": "DC1", "WorkstationName": "W1"} and match["value"] == 100


RECON = "\n---\n".join(f"""
title: Recon {x}
name: recon_cmd_{x}
logsource: {{product: windows, category: process_creation}}
detection: {{sel: {{Image|endswith: '\\\\{x}.exe'}}, condition: sel}}
""" for x in "abc")


def test_spec_temporal(tmp_path: Path) -> None:
    p = plan(tmp_path, """
title: Recon commands within 5 minutes
correlation:
    type: temporal
    rules: [recon_cmd_a, recon_cmd_b, recon_cmd_c]
    group-by: [ComputerName, User]
    timespan: 5m
""", RECON)
    a, b, c = p.correlations[0].refs
    host = {"ComputerName": "WS1", "User": "bob"}
    records = [rec(c, 0, **host), rec(a, 100, **host), rec(b, 290, **host)]
    records += [rec(a, 0, ComputerName="WS1", User="eve"), rec(b, 10, ComputerName="WS1", User="eve"),
                rec(c, 20, ComputerName="WS2", User="eve")]  # one event on another host
    (match,) = correlate(p, records)
    assert match["group"] == host and match["value"] == 3


def test_spec_aliases(tmp_path: Path) -> None:
    bases = """
title: Internal error
name: internal_error
logsource: {category: webserver}
detection: {sel: {http.response.status_code: 500}, condition: sel}
---
title: New network connection
name: new_network_connection
logsource: {category: firewall}
detection: {sel: {event.category: network, event.type: connection, event.outcome: success}, condition: sel}
"""
    p = plan(tmp_path, """
title: Internal error followed by a connection back
correlation:
    type: temporal
    rules: [internal_error, new_network_connection]
    group-by: [internal_ip, remote_ip]
    timespan: 10s
    aliases:
        internal_ip:
            internal_error: destination.ip
            new_network_connection: source.ip
        remote_ip:
            internal_error: source.ip
            new_network_connection: destination.ip
""", bases)
    error, connection = p.correlations[0].refs
    records = [
        rec(error, 0, **{"source.ip": "198.51.100.9", "destination.ip": "10.0.0.5"}),
        rec(connection, 4, **{"source.ip": "10.0.0.5", "destination.ip": "198.51.100.9"}),  # reversed: match
        rec(error, 100, **{"source.ip": "198.51.100.9", "destination.ip": "10.0.0.5"}),
        rec(connection, 104, **{"source.ip": "198.51.100.9", "destination.ip": "10.0.0.5"}),  # same way: no
        rec(error, 200, **{"source.ip": "198.51.100.9", "destination.ip": "10.0.0.5"}),
        rec(connection, 211, **{"source.ip": "10.0.0.5", "destination.ip": "198.51.100.9"}),  # 11 s: no
    ]
    (match,) = correlate(p, records)
    assert match["group"] == {"internal_ip": "10.0.0.5", "remote_ip": "198.51.100.9"}
    assert match["window_start"] == iso(0) and match["window_end"] == iso(4)


SPEC_FULL_EXAMPLE = """
title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
correlation:
    type: temporal_ordered
    rules: [multiple_failed_login, successful_login]
    group-by: [User]
    timespan: 10m
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
name: multiple_failed_login
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [User]
    timespan: 10m
    condition: {gte: 10}
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource: {product: windows, service: security}
detection:
    selection: {EventID: [529, 4625]}
    condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
name: successful_login
logsource: {product: windows, service: security}
detection:
    selection: {EventID: [528, 4624]}
    condition: selection
"""


def test_spec_complete_example_over_logs(tmp_path: Path) -> None:
    (tmp_path / "mr_failed_then_success.yml").write_text(SPEC_FULL_EXAMPLE)
    events = []
    for user, failures, success_after in (("bob", 10, 120), ("eve", 9, 120), ("joe", 12, 900)):
        events += [{"EventID": 4625, "Channel": "Security", "Hostname": "DC01", "User": user,
                    "TimeCreated": (T0 + timedelta(seconds=20 * i)).strftime("%Y-%m-%d %H:%M:%S")}
                   for i in range(failures)]
        events.append({"EventID": 4624, "Channel": "Security", "Hostname": "DC01", "User": user,
                       "TimeCreated": (T0 + timedelta(seconds=20 * failures + success_after)).strftime(
                           "%Y-%m-%d %H:%M:%S")})
    random.Random(1).shuffle(events)
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    result = hunt([tmp_path / "log.jsonl"], [tmp_path / "mr_failed_then_success.yml"])
    (match,) = result.records  # eve: 9 failures; joe: success 15 minutes after the burst ended
    assert match["rule_id"] == "b180ead8-d58f-40b2-ae54-c8940995b9b6" and match["group"] == {"User": "bob"}
    assert match["level"] == "high" and len(match["events"]) == 11
    assert result.summary.detections == 1  # generate: false, the default, hides the rest


# -- engines -------------------------------------------------------------------------------

def test_correlation_support_per_engine(tmp_path: Path) -> None:
    p = plan(tmp_path, corr("value_count", group_by="[IpAddress]", condition="{field: User, gte: 3}"))
    spec = p.correlations[0]
    for engine in ("embedded", "elasticsearch", "opensearch", "spark"):
        assert correlation_support(engine, spec) is None
    assert "not supported on engine 'splunk'" in correlation_support("splunk", spec)
    assert "does not return the events" in correlation_support("spark", spec, returns_events=False)
    reason = correlation_support("elasticsearch", spec, {A: "uses |expand without values"})
    assert reason and "cannot run on engine 'elasticsearch'" in reason
    assert unsupported("spark", p, rule_reason={A: "no"}) == {spec.key: reason.replace("elasticsearch", "spark")
                                                                       .replace("uses |expand without values", "no")}


def test_chained_correlation_groups_by_a_field_its_events_share(tmp_path: Path) -> None:
    # The inner correlation groups by User; the outer by Computer, which the inner match's
    # events share (WS1) or do not (bob's second burst spans two hosts: it takes no part).
    inner = """
title: Burst of A
name: burst_a
correlation: {type: event_count, rules: [rule_a], group-by: [User], timespan: 1m, condition: {gte: 2}}
"""
    p = plan(tmp_path, corr("temporal", rules="[burst_a, rule_b]", group_by="[Computer]", condition=""),
             BASES + "---\n" + inner)
    records = [rec(A, 0, User="bob", Computer="WS1"), rec(A, 1, User="bob", Computer="WS1"),
               rec(B, 30, Computer="WS1"),
               rec(A, 1000, User="bob", Computer="WS1"), rec(A, 1001, User="bob", Computer="WS2"),
               rec(B, 1030, Computer="WS2")]
    out = [m for m in correlate(p, records) if m["rule_title"] == "The correlation"]
    assert [m["group"] for m in out] == [{"Computer": "WS1"}]
