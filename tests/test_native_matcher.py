"""The native field matcher (native/src/matcher.rs) against the Python ValueMatcher it mirrors.

Both are built from the same compiled predicates; for every value the set of predicates
that hold must be the same. The values are made from the rules' own literals (as written,
upper-cased, embedded, cut), so each predicate is tested where it can hold and where it
nearly does; non-ASCII values are handed back to Python by design and checked too.
Skipped where the native module is not built, unless SIGMAHUNT_REQUIRE_NATIVE=1 (CI).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sigmahunt.engines.embedded.evaluator import RuleSetPlan
from sigmahunt.engines.embedded.ir import Kind
from sigmahunt.engines.embedded.matcher import ValueMatcher
from sigmahunt.native import _imported
from tests.conftest import SHARED, compile_yaml, matching, rule

if _imported() is None:
    if os.environ.get("SIGMAHUNT_REQUIRE_NATIVE") == "1":
        raise RuntimeError("SIGMAHUNT_REQUIRE_NATIVE=1 but the native module is not importable (pip install ./native)")
    pytest.skip("the native module is not built (pip install ./native)", allow_module_level=True)


def _plan(rule_yamls: Sequence[str], native: bool, monkeypatch: pytest.MonkeyPatch) -> RuleSetPlan:
    monkeypatch.setenv("SIGMAHUNT_NATIVE", "on" if native else "off")
    monkeypatch.setenv("SIGMAHUNT_CACHE_DIR", "off")
    return RuleSetPlan.build([compile_yaml(y) for y in rule_yamls])


def _native_pids(
    matcher: ValueMatcher, values: Sequence[str | None], array_type: pa.DataType, native: Any = None
) -> list[set[int]]:
    """Per value, the predicates whose native mask is set on its row (Python for non-ASCII);
    ``native``: a native matcher built apart (default: the matcher's own)."""
    native = native or matcher.native_matcher()
    assert native is not None
    array = pa.array(values, type=array_type)
    schema, data = array.__arrow_c_array__()
    found, declined = native.masks(schema, data, None)
    out: list[set[int]] = [set() for _ in values]
    for pid, mask in found:
        for row in np.flatnonzero(np.frombuffer(mask, dtype=bool)):
            out[row].add(pid)
    for (value, rows), pids in zip(declined, matcher.match_values([v for v, _ in declined])):
        assert not value.isascii()
        for row in rows:
            assert values[row] == value
            out[row].update(pids)
    return out


def _python_pids(matcher: ValueMatcher, values: Sequence[str | None]) -> list[set[int]]:
    present = [v for v in values if v is not None]
    answers = dict(zip(present, matcher.match_values(present)))
    return [set(answers[v]) if v is not None else set() for v in values]


def _variants(literal: str, rng: random.Random) -> Iterator[str]:
    """Values around one literal: itself, other case, embedded, cut, doubled."""
    yield literal
    yield literal.upper()
    yield literal.swapcase()
    yield "x" + literal
    yield literal + "y"
    yield "C:\\Prefix\\" + literal.upper() + "\\suffix.exe"
    yield literal[1:]
    yield literal[:-1]
    yield literal + literal
    yield "".join(c.upper() if rng.random() < 0.5 else c for c in literal)


def _values_for(matcher: ValueMatcher, rng: random.Random, limit: int = 400) -> list[str | None]:
    literals = [*matcher.eq_fold, *matcher.eq_cased]
    for entry in (*matcher.scan_fold, *matcher.scan_cased):
        literals.extend(entry.required if entry.kind is Kind.GLOB else (entry.text,))
    rng.shuffle(literals)
    values: list[str | None] = [None, "", " ", "-", "\\", "a\nb", "x" * 3000]
    for literal in literals[:limit]:
        values.extend(_variants(literal, rng))
    # whole-value combinations of two literals (globs, startswith + endswith, regex bodies)
    for _ in range(min(200, len(literals))):
        a, b = rng.choice(literals), rng.choice(literals)
        values.extend([a + b, a + " " + b + "\n"])
    return values


PATTERN_RULES = [
    rule(r"""
        sel:
            Image|endswith: ['\cmd.exe', '\powershell.exe']
            CommandLine|contains|all: [' -enc', 'bypass']
        sel2:
            CommandLine|startswith: 'C:\Windows\Temp\'
        sel3:
            CommandLine|re: '(?i)invoke-(expression|webrequest)\s'
        sel4:
            CommandLine|cased: 'Mimikatz'
        sel5:
            CommandLine: 'whoami*/all'
        sel6:
            CommandLine|cased|contains: 'CasedLiteral'
        sel7:
            Image: 'C:\Users\*\AppData\?ocal\x.exe'
        sel8:
            CommandLine|re: 'foo$'
        condition: 1 of sel*
    """),
    rule(r"""
        sel:
            CommandLine|contains: ['ünïcode', 'ΣΊΣΥΦΟΣ', 'İstanbul', 'ﬀ']
            Image|endswith: 'ẞ.exe'
        condition: sel
    """),
    # Regexes compiled without Unicode for ASCII values (native/src/matcher.rs compile):
    # Unicode classes over ASCII text, and (?i) with a non-ASCII letter that folds onto an
    # ASCII one, written as itself or as an escape (those must keep Unicode).
    rule(r"""
        sel:
            CommandLine|re:
                - '-k\s\w{1,64}(?:\s?(?:-p|-s))?'
                - '(?i)\x{212A}elvin'
                - '(?i)ſtop\b'
                - '^\W*\d{2,}\s.$'
                - '(?i)[a-z]+\.EXE\b'
        condition: sel
    """),
]


@pytest.mark.parametrize("array_type", [pa.string(), pa.large_string(), pa.string_view()])
def test_hand_made_rules_agree_value_by_value(array_type: pa.DataType, monkeypatch: pytest.MonkeyPatch) -> None:
    python_plan = _plan(PATTERN_RULES, native=False, monkeypatch=monkeypatch)
    native_plan = _plan(PATTERN_RULES, native=True, monkeypatch=monkeypatch)
    rng = random.Random(7)
    extra = ["C:\\Windows\\System32\\CMD.EXE", "Ünïcode -ENC bypass", "ςίσυφος", "σίσυφοσ", "İSTANBUL", "istanbul",
             "i̇stanbul", "FF", "ﬀ", "ß.exe", "ẞ.EXE", "Invoke-Expression x", "INVOKE-WEBREQUEST\t", "foo\n", "foo",
             "whoami /all", "WHOAMI  /ALL", "C:\\Users\\bob\\AppData\\Local\\x.exe",
             "c:\\users\\\\appdata\\local\\X.EXE", "svchost.exe -k netsvcs -p", "svchost -k n\u00e9tsvcs",
             "-k \u0663\u0664", "kelvin", "KELVIN", "\u212aelvin", "stop", "STOP now", "\u017ftop", "stops",
             "--12 x", "--12 \u00e9", "RUNDLL32.exe x", "r\u00fcndll.exe"]
    for name, matcher in native_plan.matchers.items():
        if matcher.native_matcher() is None:
            continue
        values = _values_for(python_plan.matchers[name], rng) + extra
        assert _native_pids(matcher, values, array_type) == _python_pids(python_plan.matchers[name], values), name


def test_positions_and_offsets_select_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(PATTERN_RULES[:1], native=True, monkeypatch=monkeypatch)
    native = plan.matchers["Image"].native_matcher()
    values = ["C:\\a\\cmd.exe", None, "d:\\x\\POWERSHELL.EXE", "C:\\b\\cmd.exe", "nothing", "C:\\c\\cmd.exe"]
    array = pa.array(["padding", *values], type=pa.string_view()).slice(1)  # an offset into the buffers
    schema, data = array.__arrow_c_array__()
    found, declined = native.masks(schema, data, np.array([0, 1, 2, 4], dtype="<i8").tobytes())
    assert declined == []
    rows = {pid: np.flatnonzero(np.frombuffer(mask, dtype=bool)).tolist() for pid, mask in found}
    assert sorted(rows.values()) == [[0], [2]]  # rows 3 and 5 match but were not asked for
    with pytest.raises(ValueError):
        native.masks(*array.__arrow_c_array__(), np.array([6], dtype="<i8").tobytes())


def test_engine_results_are_the_same_with_and_without_native(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [{"Image": v, "CommandLine": c} for v, c in [
        ("C:\\Windows\\System32\\cmd.exe", "cmd /c whoami /all"),
        ("C:\\x\\Ünïcode\\cmd.exe", "C:\\Windows\\Temp\\a.exe"),
        ("C:\\x\\ẞ.exe", "ünïcode"),
        ("C:\\x\\powershell.exe", "Invoke-Expression  -enc BYPASS"),
        ("C:\\x\\other.exe", "foo\n"),
    ]]
    results = {}
    for mode in ("off", "on"):
        monkeypatch.setenv("SIGMAHUNT_NATIVE", mode)
        results[mode] = [matching(r, events) for r in PATTERN_RULES]
    assert results["on"] == results["off"] == [[1, 3, 4], [2], [1]]


@pytest.fixture(scope="module")
def sigmahq_plans() -> tuple[RuleSetPlan, RuleSetPlan]:
    """SigmaHQ's Windows rules as a Python-only plan and a native one (built once: ~5 s)."""
    from sigmahunt.rules.prepare import prepare_rules

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGMAHUNT_CACHE_DIR", "off")
        rules = prepare_rules([SHARED / "sigma" / "rules" / "windows"]).runnable
        patch.setenv("SIGMAHUNT_NATIVE", "off")
        python_plan = RuleSetPlan.build(rules)
        patch.setenv("SIGMAHUNT_NATIVE", "on")
        native_plan = RuleSetPlan.build(rules)
    return python_plan, native_plan


@pytest.mark.skipif(not (SHARED / "sigma" / "rules").exists(), reason="../shared/sigma is not present")
@pytest.mark.parametrize("dfa_after_bytes", [None, 0, 1 << 40])
def test_every_sigmahq_field_matcher_agrees(
    dfa_after_bytes: int | None, sigmahq_plans: tuple[RuleSetPlan, RuleSetPlan]
) -> None:
    """All SigmaHQ Windows rules' field matchers, on values made from their own literals:
    as a hunt builds them (None: literal sets scan with an NFA, then a DFA once they have
    scanned enough, native/src/matcher.rs DFA_AFTER_BYTES), and with the DFA or the NFA
    from the first value on."""
    python_plan, native_plan = sigmahq_plans
    rng = random.Random(11)
    checked = 0
    for name, matcher in native_plan.matchers.items():
        native = matcher.native_matcher() if dfa_after_bytes is None else matcher._build_native(dfa_after_bytes)
        if native is None:
            continue
        values = _values_for(python_plan.matchers[name], rng, limit=150 if dfa_after_bytes is None else 60)
        expected = _python_pids(python_plan.matchers[name], values)
        assert _native_pids(matcher, values, pa.string_view(), native) == expected, name
        checked += 1
    assert checked > 100


def test_fields_with_cidr_or_numbers_stay_python(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan([rule("""
        sel:
            DestinationIp|cidr: '10.0.0.0/8'
            DestinationPort|gt: 1000
        condition: sel
    """)], native=True, monkeypatch=monkeypatch)
    assert plan.matchers["DestinationIp"].native_matcher() is None
    assert plan.matchers["DestinationPort"].native_matcher() is None


def test_native_off_builds_no_native_matcher(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(PATTERN_RULES[:1], native=False, monkeypatch=monkeypatch)
    assert all(m.native_matcher() is None for m in plan.matchers.values())


def test_repository_has_the_crate() -> None:
    crate = Path(__file__).resolve().parents[1] / "native"
    assert (crate / "Cargo.toml").exists() and (crate / "src" / "matcher.rs").exists()


def test_short_batches_keep_the_python_matcher_until_a_tall_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hunt over a few events does not pay for building native matchers; a tall batch
    builds them, and later short batches (a hunt's last one) then use them too."""
    from sigmahunt.engines.embedded import evaluator
    from sigmahunt.engines.embedded.evaluator import BatchEvaluator
    from tests.conftest import frame_of

    monkeypatch.setattr(evaluator, "NATIVE_MIN_ROWS", 100)
    plan = _plan(PATTERN_RULES[:1], native=True, monkeypatch=monkeypatch)
    engine = BatchEvaluator(plan)
    events = [{"Image": "C:\\x\\cmd.exe", "CommandLine": "a -enc bypass"}, {"Image": "C:\\x\\other.exe"}]
    short = engine.evaluate(frame_of(events))
    assert not plan.matchers["Image"].native_built
    tall = engine.evaluate(frame_of(events * 60))
    assert plan.matchers["Image"].native_built and plan.matchers["Image"].native is not None
    again = engine.evaluate(frame_of(events))
    assert {r: v.tolist() for r, v in short.items()} == {r: v.tolist() for r, v in again.items()} == {0: [0]}
    assert tall[0].tolist() == list(range(0, 120, 2))
