"""Conversion of compiled rules to Lucene, query DSL and ES|QL: no cluster needed.

The node tests (``test_elastic.py``) show the queries select exactly the embedded engine's
events; these pin down the text itself: escaping, the regex dialect, what is refused and
why, and the seed notebook's HELK query done right.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import pytest

from sigmahunt.engines.elastic.query import (
    PLAIN_LAYOUT,
    SIGMAHUNT_LAYOUT,
    Capabilities,
    ConversionRefused,
    In,
    Node,
    and_,
    convert,
    count_leaves,
    leaf,
    lower_rule,
    lucene_escape,
    not_,
    or_,
    relax,
    split_for_clauses,
    to_dsl,
    to_esql,
    to_lucene,
    wildcard_text,
)
from sigmahunt.engines.elastic.query import (
    Test as FieldTest,
)
from sigmahunt.engines.elastic.regex import RegexNotTranslatable, translate
from sigmahunt.engines.embedded.ir import Kind, Predicate
from sigmahunt.pipelines import get_pipeline
from sigmahunt.rules.prepare import prepare_rules
from tests.conftest import EXAMPLES, compile_yaml, rule

SEED = EXAMPLES / "rules" / "seed_susp_prog_location_network_connection.yml"
FIXTURE_RULES = Path(__file__).parent / "fixtures" / "elastic" / "rules"


def _seed():
    prepared = prepare_rules([SEED], cache_dir=False)
    return prepared.compiled[0]


# -- the seed: HELK's workflow, done right ----------------------------------------------------

def test_seed_rule_as_helk_lucene_selects_event_id_3_and_all_eleven_paths() -> None:
    converted = convert(_seed(), get_pipeline("helk"), "lucene")
    assert converted.refused is None
    assert converted.indices == ["logs-endpoint-winevent-sysmon-*"]
    query = converted.query
    assert query.startswith("event_id:3 AND (")
    inner = query[len("event_id:3 AND ("):-1]
    paths = [part.removeprefix("process_path:") for part in inner.split(" OR ")]
    assert len(paths) == 11 and all(part.startswith("process_path:") for part in inner.split(" OR "))
    assert ".keyword" not in query  # the seed's case-sensitive mistake
    assert r"process_path:*\\users\\all\ users\\*" in query  # space escaped, backslashes doubled
    assert r"process_path:c\:\\perflogs\\*" in query  # a prefix: reserved ':' escaped
    assert r"process_path:*\\$recycle.bin" in query
    assert all(p == p.lower() for p in paths)  # lowercase values for normalised fields
    assert any("lowercase normalizer" in note for note in converted.notes)


def test_seed_rule_as_dsl_is_case_insensitive_and_as_esql_lowercases() -> None:
    dsl = convert(_seed(), get_pipeline("helk"), "es-dsl").query
    text = json.dumps(dsl)
    assert text.count('"case_insensitive": true') == 12  # event_id and the 11 patterns
    assert '"wildcard": {"process_path": {"value": "*\\\\\\\\users\\\\\\\\public\\\\\\\\*"' in text
    esql = convert(_seed(), get_pipeline("helk"), "esql").query
    assert esql.startswith("FROM logs-endpoint-winevent-sysmon-*\n| WHERE ")
    assert 'TO_LOWER(process_path) LIKE "*\\\\\\\\users\\\\\\\\public\\\\\\\\*"' in esql


# -- escaping ------------------------------------------------------------------------------

def _lucene(detection: str, pipeline: str = "raw", logsource: str = "product: windows") -> str:
    compiled = compile_yaml(rule(detection, logsource))
    return to_lucene(lower_rule(compiled, get_pipeline(pipeline), index="x").tree)


def test_lucene_escapes_reserved_characters_spaces_and_trailing_backslashes() -> None:
    text = _lucene("""
        sel:
            CommandLine|endswith: 'a b\\'
            Image|contains: 'x"y(z)[1]{2}:/+-!^~'
        condition: sel
    """)
    assert r'CommandLine:*a\ b\\' in text
    assert r'Image:*x\"y\(z\)\[1\]\{2\}\:\/\+\-\!\^\~*' in text


def test_lucene_keeps_sigma_wildcards_and_escapes_literal_ones() -> None:
    text = _lucene("""
        sel:
            Image: 'c:\\\\*\\\\a\\*b\\?c?.exe'
        condition: sel
    """)
    # Sigma: \\* = backslash + wildcard; \* and \? = literal * and ?; ? = one character.
    assert r"Image:c\:\\*\\a\*b\?c?.exe" in text


def test_lucene_quotes_exact_values_and_anchors_negations() -> None:
    text = _lucene("""
        sel:
            User: 'NT AUTHORITY\\SYSTEM'
        filter:
            Image: ''
        condition: sel and not filter
    """)
    assert r'User:"nt authority\\system"' in text
    assert '(*:* AND NOT Image:"")' in text


def test_wildcard_text_escapes_backslash_star_question() -> None:
    from sigmahunt.engines.elastic.query import QMARK, STAR

    assert wildcard_text([STAR, "a\\b*c?", QMARK]) == "*a\\\\b\\*c\\??"
    assert lucene_escape("a b\\") == "a\\ b\\\\"


# -- the regex dialect -----------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "lucene", "ci"), [
    ("abc", ".*abc.*", False),
    ("^abc$", "abc", False),
    ("(?i)^C:\\\\Users$", "c\\:\\\\users", True),
    ("(?:^|\\\\)cmd\\.exe$", "(()|.*\\\\)cmd\\.exe", False),
    ("(^a$)|(^bb$)", "a|bb", False),
    ("\\d{2,}x", ".*[0-9]{2,}x.*", False),
    ("a.b", ".*a[^\\\n]b.*", False),
    ("(?s)a.b", ".*a.b.*", False),
    ("(?i)[A-F]+", ".*[A-Fa-f]+.*", True),
    ("a&b<c>#@~\"", ".*a\\&b\\<c\\>\\#\\@\\~\\\".*", False),
    ("(?m)^x", "(.*\\\n)?x.*", False),
    ("(?P<n>ab)+", ".*(ab)+.*", False),
    ("(?<n>ab)+", ".*(ab)+.*", False),
])
def test_regex_translation(pattern: str, lucene: str, ci: bool) -> None:
    out = translate(pattern)
    assert (out.pattern, out.case_insensitive) == (lucene, ci)


@pytest.mark.parametrize(("pattern", "reason"), [
    ("\\bword\\b", "word boundaries"),
    ("a(?=b)", "lookarounds"),
    ("(?<!x)y", "lookarounds"),
    ("(a)\\1", "backreferences"),
    ("a^b", "anchor"),
    ("(?i:a)b", "scoped flag"),
    ("[\\W_]", "negated class"),
    ("(", "not a valid regular expression"),
])
def test_untranslatable_regexes_are_refused_with_a_reason(pattern: str, reason: str) -> None:
    with pytest.raises(RegexNotTranslatable, match=re.escape(reason)):
        translate(pattern)


def test_regex_translation_agrees_with_python_on_whole_terms() -> None:
    """Lucene matches the whole term; a translated search pattern must accept the same values."""
    samples = ["abc", "xabcx", "ab", "C:\\Users", "c:\\users", "a\nb", "aXb", "12x", "x\\cmd.exe", "cmd.exe",
               "zcmd.exe", "ABCDEF", "bb", "a"]
    patterns = ["abc", "^abc", "abc$", "(?:^|\\\\)cmd\\.exe$", "(^a$)|(^bb$)", "\\d{2,}x", "a.b", "(?i)^c:\\\\users$",
                "[^a-c]+", "b?c"]
    for pattern, sample in itertools.product(patterns, samples):
        lucene = translate(pattern)
        value = sample.lower() if lucene.case_insensitive else sample
        # Lucene's dialect is close enough to Python's for these (escaped specials, plain classes).
        whole = re.fullmatch(_lucene_to_python(lucene.pattern), value, re.DOTALL) is not None
        assert whole == (re.search(pattern, sample) is not None), (pattern, sample, lucene.pattern)


def _lucene_to_python(pattern: str) -> str:
    return pattern.replace("()", "(?:)")


def test_rule_with_untranslatable_regex_is_refused_per_target() -> None:
    compiled = compile_yaml(rule("""
        sel:
            CommandLine|re: '\\bwhoami\\b'
        condition: sel
    """))
    for target in ("lucene", "es-dsl", "esql"):
        converted = convert(compiled, get_pipeline("raw"), target)
        assert converted.refused is not None and "word boundaries" in converted.refused


def test_regex_without_i_queries_the_exact_case_subfield() -> None:
    compiled = compile_yaml(rule("""
        sel:
            CommandLine|re: 'Invoke-[A-Z]'
        sel2:
            CommandLine|re|i: 'invoke'
        condition: sel and sel2
    """))
    dsl = json.dumps(to_dsl(lower_rule(compiled, get_pipeline("raw")).tree))
    assert '"regexp": {"CommandLine.cased": {"value": ".*Invoke\\\\-[A-Z].*"' in dsl
    assert '"regexp": {"CommandLine": {"value": ".*invoke.*", "flags": "ALL"' in dsl


# -- DSL semantics --------------------------------------------------------------------------------------

def test_dsl_cased_values_and_missing_field_negation() -> None:
    compiled = compile_yaml(rule("""
        sel:
            CommandLine|cased: 'MiXeD'
        filter:
            ParentImage|endswith: '\\explorer.exe'
        condition: sel and not filter
    """))
    dsl = to_dsl(lower_rule(compiled, get_pipeline("raw")).tree)
    assert dsl == {"bool": {"filter": [
        {"term": {"CommandLine.cased": {"value": "MiXeD"}}},
        {"bool": {"must_not": [{"wildcard": {"ParentImage": {"value": "*\\\\explorer.exe",
                                                             "case_insensitive": True}}}]}},
    ]}}


def test_dsl_cidr_numbers_null_exists_keywords() -> None:
    compiled = compile_yaml(rule("""
        sel:
            DestinationIp|cidr: '10.0.0.0/8'
            DestinationPort|gte: 1024
            User: null
            CommandLine|exists: true
        keywords:
            - 'mimikatz'
        condition: sel and keywords
    """))
    dsl = to_dsl(lower_rule(compiled, get_pipeline("raw")).tree)
    parts = dsl["bool"]["filter"]
    assert {"term": {"sigmahunt.ip.DestinationIp": "10.0.0.0/8"}} in parts
    assert {"range": {"sigmahunt.num.DestinationPort": {"gte": 1024.0}}} in parts
    assert {"bool": {"must_not": [{"exists": {"field": "User"}}]}} in parts
    assert {"exists": {"field": "CommandLine"}} in parts
    assert {"wildcard": {"sigmahunt.all": {"value": "*mimikatz*", "case_insensitive": True}}} in parts
    plain = json.dumps(to_dsl(lower_rule(compiled, get_pipeline("raw")).tree, PLAIN_LAYOUT))
    assert '"query_string": {"query": "*mimikatz*", "default_field": "*"' in plain
    assert '"term": {"DestinationIp": "10.0.0.0/8"}' in plain


def test_fieldref_needs_scripts() -> None:
    compiled = compile_yaml(rule("""
        sel:
            SourceImage|fieldref: TargetImage
        condition: sel
    """))
    tree = lower_rule(compiled, get_pipeline("raw")).tree
    assert "script" in json.dumps(to_dsl(tree))
    with pytest.raises(ConversionRefused, match="painless"):
        to_dsl(tree, SIGMAHUNT_LAYOUT, Capabilities(scripts=False))
    assert "Lucene" in (convert(compiled, get_pipeline("raw"), "lucene").refused or "")
    assert "STARTS_WITH" not in to_esql(lower_rule(compiled, get_pipeline("raw")))
    assert "TO_LOWER(SourceImage) == TO_LOWER(TargetImage)" in to_esql(lower_rule(compiled, get_pipeline("raw")))


# -- ES|QL: three-valued logic made two-valued -------------------------------------------------------------

def test_esql_negation_is_true_when_the_field_is_null() -> None:
    compiled = compile_yaml(rule("""
        sel:
            Image|endswith: '.exe'
        filter:
            ParentImage|endswith: '\\explorer.exe'
        condition: sel and not filter
    """, "category: process_creation\n    product: windows"))
    esql = to_esql(lower_rule(compiled, get_pipeline("raw"), index="logs"))
    assert "(ParentImage IS NULL OR NOT (ENDS_WITH(TO_LOWER(ParentImage), \"\\\\explorer.exe\")))" in esql
    assert "(ParentProcessName IS NULL OR NOT (" in esql  # the Security 4688 variant's field


def test_esql_refuses_keywords() -> None:
    compiled = compile_yaml(rule("keywords:\n    - evil\ncondition: keywords"))
    assert "keywords" in (convert(compiled, get_pipeline("raw"), "esql").refused or "")


# -- pipelines applied to rules ---------------------------------------------------------------------------

def test_helk_field_names_depend_on_the_event_id() -> None:
    compiled = compile_yaml(rule("""
        sel:
            ImageLoaded|endswith: '\\evil.sys'
        condition: sel
    """, "product: windows\n    service: sysmon"))
    text = to_lucene(lower_rule(compiled, get_pipeline("helk")).tree)
    # Sysmon 6 calls it driver_loaded, 7 module_loaded, any other event ImageLoaded.
    assert "event_id:6 AND driver_loaded:*\\\\evil.sys" in text
    assert "event_id:7 AND module_loaded:*\\\\evil.sys" in text
    assert "ImageLoaded:*\\\\evil.sys" in text
    fixed = compile_yaml(rule("""
        sel:
            ImageLoaded|endswith: '\\evil.sys'
        condition: sel
    """, "category: driver_load\n    product: windows"))
    assert to_lucene(lower_rule(fixed, get_pipeline("helk")).tree) == "event_id:6 AND driver_loaded:*\\\\evil.sys"


def test_ecs_process_creation_spans_sysmon_and_security() -> None:
    compiled = compile_yaml(rule("""
        sel:
            Image|endswith: '\\whoami.exe'
            CommandLine|contains: '/all'
        condition: sel
    """, "category: process_creation\n    product: windows"))
    text = to_lucene(lower_rule(compiled, get_pipeline("ecs-windows")).tree)
    assert 'winlog.channel:"microsoft-windows-sysmon/operational" AND event.code:1' in text
    assert "winlog.channel:security AND event.code:4688" in text
    assert text.count("process.executable:*\\\\whoami.exe") == 2
    assert text.count("process.command_line:*\\/all*") == 2


def test_helk_rule_over_two_logs_restricts_each_variant_to_its_index() -> None:
    compiled = compile_yaml(rule("""
        sel:
            Image|endswith: '\\whoami.exe'
        condition: sel
    """, "category: process_creation\n    product: windows"))
    lowered = lower_rule(compiled, get_pipeline("helk"))
    assert lowered.indices == ["logs-endpoint-winevent-sysmon-*", "logs-endpoint-winevent-security-*"]
    text = to_lucene(lowered.tree)
    assert "_index:logs\\-endpoint\\-winevent\\-sysmon\\-* AND event_id:1" in text
    assert "_index:logs\\-endpoint\\-winevent\\-security\\-* AND event_id:4688" in text


def test_inapplicable_rules_are_refused() -> None:
    compiled = compile_yaml(rule("sel:\n    a: b\ncondition: sel", "product: linux\n    category: process_creation"))
    assert "not about Windows" in (convert(compiled, get_pipeline("raw"), "lucene").refused or "")


def test_every_fixture_rule_converts_for_every_target_or_says_why() -> None:
    prepared = prepare_rules([FIXTURE_RULES], cache_dir=False)
    assert prepared.compiled and not prepared.failures
    for compiled in prepared.compiled:
        for pipeline in ("raw", "helk", "ecs-windows"):
            for target in ("lucene", "es-dsl", "esql"):
                out = convert(compiled, get_pipeline(pipeline), target)
                assert out.refused or out.query, (compiled.meta.title, pipeline, target)


# -- splitting and relaxing keep the meaning ---------------------------------------------------------------

def _random_tree(rng: random.Random, depth: int, leaves: list[Node]) -> Node:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(leaves)
    children = [_random_tree(rng, depth - 1, leaves) for _ in range(rng.randint(2, 5))]
    op = rng.choice(["and", "or", "not"])
    if op == "not":
        return not_(children[0])
    return and_(children) if op == "and" else or_(children)


def _eval(node: Node, truth: dict[str, bool]) -> bool:
    if node.op == "const":
        return node.value
    if node.op == "leaf":
        return truth[node.leaf.field]  # type: ignore[union-attr]
    if node.op == "not":
        return not _eval(node.children[0], truth)
    values = [_eval(c, truth) for c in node.children]
    return all(values) if node.op == "and" else any(values)


def test_split_for_clauses_and_relax_preserve_meaning() -> None:
    rng = random.Random(7)
    names = [f"f{i}" for i in range(6)]
    leaves = [leaf(In(name, ("x",), False)) for name in names]
    for _ in range(300):
        tree = _random_tree(rng, 4, leaves)
        pieces = split_for_clauses(tree, max(1, count_leaves(tree) // 3))
        relaxed = relax(tree, lambda t: False)
        for bits in itertools.product([False, True], repeat=len(names)):
            truth = dict(zip(names, bits))
            want = _eval(tree, truth)
            assert any(_eval(p, truth) for p in pieces) == want
            assert _eval(relaxed, truth) == want


def test_relax_gives_a_superset() -> None:
    rng = random.Random(11)
    names = [f"f{i}" for i in range(5)]
    leaves = [leaf(FieldTest(name, Predicate(name, Kind.REGEX if i % 2 else Kind.EQ, "x")))
              for i, name in enumerate(names)]
    for _ in range(300):
        tree = _random_tree(rng, 4, leaves)
        relaxed = relax(tree, lambda t: t.predicate.kind is Kind.REGEX)
        for bits in itertools.product([False, True], repeat=len(names)):
            truth = dict(zip(names, bits))
            if _eval(tree, truth):
                assert _eval(relaxed, truth)
