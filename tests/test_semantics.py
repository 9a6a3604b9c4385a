"""Sigma detection semantics on the embedded engine, one behaviour per test, on inline fixtures."""

from __future__ import annotations

import base64

import pytest

from sigmahunt.engines.embedded.compiler import RuleCompileError
from sigmahunt.engines.embedded.scanners import USE_HYPERSCAN_ENV
from sigmahunt.native import _imported
from tests.conftest import compile_yaml, matching, rule


def _matchers() -> list[str]:
    return ["hyperscan", "portable"] + (["native"] if _imported() is not None else [])


@pytest.fixture(autouse=True, params=_matchers())
def scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every behaviour holds with both multi-pattern scanners (Hyperscan and Aho-Corasick+RE2),
    and with the native field matcher where it is built (its non-ASCII values: Hyperscan)."""
    monkeypatch.setenv(USE_HYPERSCAN_ENV, "0" if request.param == "portable" else "1")
    monkeypatch.setenv("SIGMAHUNT_NATIVE", "on" if request.param == "native" else "off")

PATHS = [
    {"Image": r"C:\Windows\System32\cmd.exe"},  # 0
    {"Image": r"c:\windows\system32\CMD.EXE"},  # 1
    {"Image": r"C:\Tools\cmd.exe.bak"},  # 2
    {"Image": r"D:\cmd.exe"},  # 3
    {"Other": "x"},  # 4: no Image at all
]


def test_equality_is_case_insensitive_and_whole_value() -> None:
    r = rule(r"""
        sel:
            Image: 'C:\Windows\System32\cmd.exe'
        condition: sel
    """)
    assert matching(r, PATHS) == [0, 1]


@pytest.mark.parametrize(
    ("modifier", "value", "expected"),
    [
        ("endswith", r"\cmd.exe", [0, 1, 3]),
        ("startswith", "c:\\windows", [0, 1]),
        ("contains", "system32", [0, 1]),
        ("contains", "cmd.exe", [0, 1, 2, 3]),
    ],
)
def test_string_modifiers(modifier: str, value: str, expected: list[int]) -> None:
    r = rule(f"""
        sel:
            Image|{modifier}: '{value}'
        condition: sel
    """)
    assert matching(r, PATHS) == expected


def test_wildcards_in_the_middle_and_single_char() -> None:
    r = rule(r"""
        sel:
            Image: 'c:\\*\system3?\cmd.exe'
        condition: sel
    """)
    assert matching(r, PATHS) == [0, 1]


def test_escaped_wildcards_and_backslashes_are_literal() -> None:
    events = [{"F": "a*b"}, {"F": "aXb"}, {"F": "a?b"}, {"F": "a\\b"}, {"F": "a\\\\b"}]
    star = rule(r"""
        sel:
            F: 'a\*b'
        condition: sel
    """)
    question = rule(r"""
        sel:
            F: 'a\?b'
        condition: sel
    """)
    backslash = rule(r"""
        sel:
            F: 'a\\b'
        condition: sel
    """)
    assert matching(star, events) == [0]
    assert matching(question, events) == [2]
    assert matching(backslash, events) == [3]


def test_seed_rule_patterns_with_escaped_backslash_before_wildcard() -> None:
    r = rule(r"""
        sel:
            Image:
                - '*\Users\Public\\*'
                - C:\Perflogs\\*
        condition: sel
    """)
    events = [
        {"Image": r"c:\users\public\x.exe"},
        {"Image": r"C:\Users\Publicity\x.exe"},
        {"Image": r"C:\PerfLogs\a.exe"},
        {"Image": r"D:\Perflogs\a.exe"},
    ]
    assert matching(r, events) == [0, 2]


def test_all_modifier_requires_every_value() -> None:
    r = rule("""
        sel:
            CommandLine|contains|all:
                - ' -nop '
                - ' -w hidden '
        condition: sel
    """)
    events = [{"CommandLine": "ps -NoP -W Hidden -c x"}, {"CommandLine": "ps -nop -c x"}]
    assert matching(r, events) == [0]


def test_list_of_maps_is_or_and_map_is_and() -> None:
    r = rule("""
        sel:
            - A: 1
              B: 2
            - C: 3
        condition: sel
    """)
    events = [{"A": "1", "B": "2"}, {"A": "1", "B": "9"}, {"C": "3"}, {"A": "1"}]
    assert matching(r, events) == [0, 2]


def test_numbers_match_numeric_strings() -> None:
    r = rule("""
        sel:
            EventID: 3
        condition: sel
    """)
    assert matching(r, [{"EventID": 3}, {"EventID": "3"}, {"EventID": "30"}, {"EventID": "4"}]) == [0, 1]


@pytest.mark.parametrize(
    ("modifier", "expected"),
    [("lt", [0]), ("lte", [0, 1]), ("gt", [2, 3]), ("gte", [1, 2, 3])],
)
def test_numeric_comparisons(modifier: str, expected: list[int]) -> None:
    r = rule(f"""
        sel:
            Size|{modifier}: 10
        condition: sel
    """)
    events = [{"Size": "9"}, {"Size": "10"}, {"Size": "11"}, {"Size": "0x20"}, {"Size": "big"}, {}]
    assert matching(r, events) == expected


def test_regex_is_case_sensitive_without_i_and_searches_anywhere() -> None:
    plain = rule(r"""
        sel:
            CommandLine|re: 'Invoke-[A-Z]\w+'
        condition: sel
    """)
    insensitive = rule(r"""
        sel:
            CommandLine|re|i: 'invoke-mimikatz'
        condition: sel
    """)
    events = [{"CommandLine": "x Invoke-Mimikatz y"}, {"CommandLine": "x invoke-mimikatz y"}]
    assert matching(plain, events) == [0]
    assert matching(insensitive, events) == [0, 1]


def test_regex_multiline_and_dotall_flags() -> None:
    events = [{"T": "first\nsecond line"}]
    anchored = rule(r"""
        sel:
            T|re: '^second'
        condition: sel
    """)
    multiline = rule(r"""
        sel:
            T|re|m: '^second'
        condition: sel
    """)
    dot = rule(r"""
        sel:
            T|re: 'first.second'
        condition: sel
    """)
    dotall = rule(r"""
        sel:
            T|re|s: 'first.second'
        condition: sel
    """)
    assert matching(anchored, events) == []
    assert matching(multiline, events) == [0]
    assert matching(dot, events) == []
    assert matching(dotall, events) == [0]


def test_base64_and_base64offset() -> None:
    payload = "http://evil.example/a"
    encoded = base64.b64encode(payload.encode()).decode()
    shifted = base64.b64encode(("xy" + payload).encode()).decode()
    events = [{"C": f"powershell -e {encoded}"}, {"C": f"powershell -e {shifted}"}, {"C": "nothing"}]
    plain = rule(f"""
        sel:
            C|base64|contains: '{payload}'
        condition: sel
    """)
    offset = rule(f"""
        sel:
            C|base64offset|contains: '{payload}'
        condition: sel
    """)
    assert matching(plain, events) == [0]
    assert matching(offset, events) == [0, 1]


@pytest.mark.parametrize(
    ("modifier", "encoding"),
    [("wide", "utf-16-le"), ("utf16le", "utf-16-le"), ("utf16be", "utf-16-be"), ("utf16", "utf-16")],
)
def test_utf16_encodings_with_base64(modifier: str, encoding: str) -> None:
    text = "whoami /all"
    encoded = base64.b64encode(text.encode(encoding)).decode()
    r = rule(f"""
        sel:
            C|{modifier}|base64offset|contains: '{text}'
        condition: sel
    """)
    events = [{"C": f"powershell -enc {encoded}"}, {"C": base64.b64encode(text.encode()).decode()}]
    assert matching(r, events) == [0]


def test_windash_matches_every_dash_form() -> None:
    r = rule("""
        sel:
            CommandLine|windash|contains: ' -enc '
        condition: sel
    """)
    events = [{"CommandLine": f"powershell {d}enc AAA"} for d in ("-", "/", "\u2013", "\u2014", "\u2015")]
    events.append({"CommandLine": "powershell enc AAA"})
    assert matching(r, events) == [0, 1, 2, 3, 4]


def test_cidr_ipv4_and_ipv6() -> None:
    r = rule("""
        sel:
            DestinationIp|cidr:
                - '10.0.0.0/8'
                - 'fe80::/10'
        condition: sel
    """)
    events = [{"DestinationIp": "10.2.3.4"}, {"DestinationIp": "11.0.0.1"},
              {"DestinationIp": "fe80::1%12"}, {"DestinationIp": "2001:db8::1"},
              {"DestinationIp": "::ffff:10.9.9.9"}, {"DestinationIp": "not-an-ip"}]
    assert matching(r, events) == [0, 2, 4]


def test_exists_true_and_false() -> None:
    present = rule("""
        sel:
            Hashes|exists: true
        condition: sel
    """)
    absent = rule("""
        sel:
            Hashes|exists: false
        condition: sel
    """)
    events = [{"Hashes": "MD5=1"}, {"Hashes": ""}, {"Other": "1"}]
    assert matching(present, events) == [0, 1]
    assert matching(absent, events) == [2]


def test_null_matches_absent_and_empty_string_matches_empty() -> None:
    null = rule("""
        sel:
            Description: null
        condition: sel
    """)
    empty = rule("""
        sel:
            Description: ''
        condition: sel
    """)
    events = [{"Description": None, "X": "1"}, {"Description": ""}, {"Description": "x"}, {"X": "2"}]
    assert matching(null, events) == [0, 3]
    assert matching(empty, events) == [1]


def test_cased_modifier_is_case_sensitive() -> None:
    r = rule("""
        sel:
            Name|cased: 'SeDebugPrivilege'
        condition: sel
    """)
    assert matching(r, [{"Name": "SeDebugPrivilege"}, {"Name": "sedebugprivilege"}]) == [0]


def test_fieldref_compares_two_fields() -> None:
    equal = rule("""
        sel:
            ParentImage|fieldref: Image
        condition: sel
    """)
    assert matching(equal, [{"Image": "a.exe", "ParentImage": "A.EXE"}, {"Image": "a", "ParentImage": "b"},
                            {"Image": "a"}]) == [0]


def test_expand_uses_placeholder_values_and_fails_without_them() -> None:
    r = rule("""
        sel:
            User|expand: '%admins%'
        condition: sel
    """)
    events = [{"User": "CORP\\alice"}, {"User": "CORP\\bob"}]
    assert matching(r, events, placeholders={"admins": ["CORP\\alice", "corp\\carol"]}) == [0]
    with pytest.raises(RuleCompileError, match="placeholder %admins% has no values"):
        compile_yaml(r)


def test_not_over_a_missing_field_is_true() -> None:
    r = rule(r"""
        sel:
            Image|endswith: '\cmd.exe'
        filter:
            ParentImage|endswith: '\explorer.exe'
        condition: sel and not filter
    """)
    events = [
        {"Image": r"C:\cmd.exe"},  # no ParentImage: the filter is false, so the rule fires
        {"Image": r"C:\cmd.exe", "ParentImage": r"C:\explorer.exe"},
        {"Image": r"C:\cmd.exe", "ParentImage": r"C:\svchost.exe"},
    ]
    assert matching(r, events) == [0, 2]


def test_conditions_with_parentheses_and_precedence() -> None:
    r = rule("""
        a:
            A: 1
        b:
            B: 1
        c:
            C: 1
        condition: a and (b or c) and not (b and c)
    """)
    events = [{"A": "1", "B": "1"}, {"A": "1", "C": "1"}, {"A": "1", "B": "1", "C": "1"}, {"B": "1"}]
    assert matching(r, events) == [0, 1]


def test_one_of_all_of_wildcard_names_and_them() -> None:
    events = [{"A": "1"}, {"A": "1", "B": "1"}, {"C": "1"}]
    detection = """
        sel_a:
            A: 1
        sel_b:
            B: 1
        other:
            C: 1
        condition: {cond}
    """
    assert matching(rule(detection.format(cond="1 of sel_*")), events) == [0, 1]
    assert matching(rule(detection.format(cond="all of sel_*")), events) == [1]
    assert matching(rule(detection.format(cond="1 of them")), events) == [0, 1, 2]
    assert matching(rule(detection.format(cond="all of them")), events) == []


def test_keywords_search_every_field() -> None:
    r = rule("""
        keywords:
            - 'mimikatz'
            - 'sekurlsa::*'
        condition: keywords
    """)
    events = [{"A": "run MIMIKATZ now"}, {"B": "x", "C": "sekurlsa::logonpasswords"}, {"A": "clean"}]
    assert matching(r, events) == [0, 1]


def test_neq_modifier_negates() -> None:
    r = rule("""
        sel:
            EventID: 1
            User|neq: 'SYSTEM'
        condition: sel
    """)
    assert matching(r, [{"EventID": "1", "User": "alice"}, {"EventID": "1", "User": "system"}]) == [0]


def test_wildcard_only_value_means_any_value() -> None:
    r = rule("""
        sel:
            Hashes: '*'
        condition: sel
    """)
    assert matching(r, [{"Hashes": ""}, {"Hashes": "x"}, {"Other": "y"}]) == [0, 1]


def test_field_names_resolve_case_insensitively() -> None:
    r = rule("""
        sel:
            image|endswith: '.exe'
        condition: sel
    """)
    assert matching(r, [{"Image": "a.exe"}]) == [0]


def test_process_creation_covers_sysmon_1_and_security_4688() -> None:
    r = rule(
        r"""
        sel:
            Image|endswith: '\whoami.exe'
            ParentImage|endswith: '\cmd.exe'
        condition: sel
        """,
        logsource="category: process_creation\n    product: windows",
    )
    sysmon = "Microsoft-Windows-Sysmon/Operational"
    events = [
        {"Channel": sysmon, "EventID": "1", "Image": r"C:\whoami.exe", "ParentImage": r"C:\cmd.exe"},
        {"Channel": "security", "EventID": "4688", "NewProcessName": r"C:\whoami.exe",
         "ParentProcessName": r"C:\cmd.exe"},
        {"Channel": sysmon, "EventID": "3", "Image": r"C:\whoami.exe", "ParentImage": r"C:\cmd.exe"},
        {"Channel": "Security", "EventID": "4689", "NewProcessName": r"C:\whoami.exe",
         "ParentProcessName": r"C:\cmd.exe"},
    ]
    assert matching(r, events) == [0, 1]


def test_service_selects_channel_case_insensitively() -> None:
    r = rule(
        """
        sel:
            EventID: 4625
        condition: sel
        """,
        logsource="service: security\n    product: windows",
    )
    events = [{"Channel": "security", "EventID": "4625"}, {"Channel": "Security", "EventID": "4625"},
              {"Channel": "System", "EventID": "4625"}]
    assert matching(r, events) == [0, 1]


def test_registry_add_uses_event_type_condition() -> None:
    r = rule(
        """
        sel:
            TargetObject|contains: '\\Run\\'
        condition: sel
        """,
        logsource="category: registry_add\n    product: windows",
    )
    sysmon = "Microsoft-Windows-Sysmon/Operational"
    events = [{"Channel": sysmon, "EventID": "12", "EventType": "CreateKey", "TargetObject": "HKLM\\x\\Run\\a"},
              {"Channel": sysmon, "EventID": "12", "EventType": "DeleteKey", "TargetObject": "HKLM\\x\\Run\\a"}]
    assert matching(r, events) == [0]


def test_catastrophic_regex_runs_in_linear_time() -> None:
    r = rule(r"""
        sel:
            F|re: '(a+)+$'
        condition: sel
    """)
    # A backtracking engine (Python's re) takes exponential time on this; ours is linear.
    events = [{"F": "a" * 50_000 + "!"}, {"F": "aaa"}]
    assert matching(r, events) == [1]


def test_keywords_without_log_source_scan_every_field_and_fold_case() -> None:
    r = rule("""
        keywords:
            - 'sekurlsa::'
            - 'Kiwi Legit Printer'
        condition: keywords
    """)
    events = [
        {"Channel": "Security", "A": "x", "Message": "ran SEKURLSA::logonpasswords"},
        {"Channel": "System", "B": "kiwi legit printer installed"},
        {"Channel": "System", "B": "kiwi-legit printer"},
        {"Channel": "Security", "A": "se\u212aurlsa::x"},  # KELVIN SIGN lowercases to 'k'
        {"Channel": "Security", "A": "sekurlsa", "B": "::"},  # split across fields: no match
    ]
    assert matching(r, events) == [0, 1, 3]


def test_empty_values_never_match_literals_but_match_empty_equality() -> None:
    r = rule("""
        sel:
            - F|startswith: 'a'
            - F|endswith: 'b'
            - F|contains: 'c'
            - F: 'x?y*'
        condition: sel
    """)
    assert matching(r, [{"F": ""}, {"F": "ab"}, {"F": "xzy"}]) == [1, 2]


def test_keywords_fold_case_beyond_ascii() -> None:
    r = rule("""
        keywords:
            - 'ÉVIL'
        condition: keywords
    """)
    assert matching(r, [{"A": "an évil value"}, {"A": "Évil"}, {"A": "evil"}]) == [0, 1]


def test_regex_dollar_has_its_pcre_meaning() -> None:
    r = rule(r"""
        sel:
            - F|re: 'end$'
            - G|re: 'a\$b'
        condition: sel
    """)
    events = [{"F": "the end"}, {"F": "the end\n"}, {"F": "the end\nmore"}, {"G": "a$b"}, {"G": "ab"}]
    assert matching(r, events) == [0, 1, 3]


def test_field_spelt_in_two_cases_in_one_batch() -> None:
    r = rule(r"""
        sel:
            Image|endswith: '\cmd.exe'
        condition: sel
    """)
    assert matching(r, [{"Image": r"C:\cmd.exe"}, {"image": r"D:\CMD.EXE"}, {"image": "x"}]) == [0, 1]
