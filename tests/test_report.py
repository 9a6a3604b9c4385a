"""The HTML report: content, escaping, determinism, size cap; rendered in headless Chromium.

Chromium tests load the page from a file (``--dump-dom`` gives the DOM after the page's
script ran) and skip cleanly where Debian's ``chromium`` is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sigmahunt.hunting import run_hunt
from sigmahunt.report.html import render_report, script_json, write_report
from sigmahunt.results import to_dataframe

FIXTURES = Path(__file__).parent / "fixtures" / "report"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _synthetic() -> Any:
    spec = importlib.util.spec_from_file_location("report_synthetic", FIXTURES / "synthetic.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


synthetic = _synthetic()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")


def chromium(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="sigmahunt-chromium-")
    try:
        return subprocess.run(
            [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args, url],
            capture_output=True, text=True, timeout=120, check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def dump_dom(path: Path, fragment: str = "") -> str:
    result = chromium(["--dump-dom"], path.resolve().as_uri() + fragment)
    assert "data-ready" in result.stdout, result.stderr[-2000:]
    return result.stdout


class Dom(HTMLParser):
    """Every element's tag and attributes, and the text inside elements with an id or class."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self._stack: list[tuple[str, dict[str, str], list[str]]] = []
        self.texts: list[tuple[str, dict[str, str], str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag not in ("br", "meta", "input", "img", "hr", "link", "col", "circle", "rect", "line"):
            self._stack.append((tag, attributes, []))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            name, attributes, parts = self._stack.pop()
            text = "".join(parts)
            self.texts.append((name, attributes, text))
            if self._stack:
                self._stack[-1][2].append(text)
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._stack:
            self._stack[-1][2].append(data)

    def find(self, tag: str | None = None, **attrs: str) -> list[tuple[str, dict[str, str], str]]:
        out = []
        for name, attributes, text in self.texts:
            if tag and name != tag:
                continue
            if all(v in (attributes.get(k.replace("_", "-")) or "").split() for k, v in attrs.items()):
                out.append((name, attributes, text))
        return out

    def rows(self) -> list[tuple[str, dict[str, str], str]]:
        return [t for t in self.texts if t[0] == "tr" and "det" in t[1].get("class", "").split()]

    def matching(self) -> int:
        status = [a for name, a, _ in self.texts if a.get("id") == "det-status"]
        return int(status[0]["data-matching"])


@pytest.fixture(scope="module")
def fixture_result() -> Any:
    return run_hunt([FIXTURES / "logs"], [FIXTURES / "rules"], cache_dir=False)


@pytest.fixture(scope="module")
def fixture_report(fixture_result: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(fixture_result, path, title="Fixture hunt")
    return path


# -- without a browser ---------------------------------------------------------------------------

def test_script_json_cannot_close_the_script_or_open_a_comment() -> None:
    value = {"a": "</script><script>alert(1)</script>", "b": "<!-- x -->", "c": "]]> & \u2028", "</": ["<"]}
    text = script_json(value)
    assert "</" not in text and "<!--" not in text and "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == value


def test_report_is_self_contained_and_escapes_everything(fixture_report: Path) -> None:
    html = fixture_report.read_text(encoding="utf-8")
    # nothing loaded from anywhere: no src/href to a URL, no @import, no url(...) in styles
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert "Content-Security-Policy" in html
    # the payloads never appear as markup: only escaped (markup) or \u003c-escaped (JSON)
    for payload in ("<script>document", "<img src=x", "<b>bold</b>", "<svg onload"):
        assert payload not in html
    assert "WS03&lt;b&gt;bold&lt;/b&gt;" in html  # host label in the SVG and hosts table, escaped
    assert html.count("<script") == 2  # the data block and the page's own script, nothing else
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert data is not None
    table = json.loads(data.group(1))
    assert table["total"] == table["shown"] == 9
    commands = [row[10].get("CommandLine", "") for row in table["rows"]]
    assert any("<script>document.documentElement" in c for c in commands)  # kept intact as data


def test_report_content(fixture_result: Any) -> None:
    html = render_report(fixture_result, title="Fixture hunt")
    dom = Dom(html)
    cards = {a["id"]: text for _, a, text in dom.texts if a.get("id", "").startswith("level-")}
    assert "2" in cards["level-critical"] and "3" in cards["level-low"] and "0" in cards["level-informational"]
    total = [t for _, a, t in dom.texts if a.get("id") == "total-detections"]
    assert total == ["9"]
    # timeline: one marker per (host, bin) with detections; markers carry host and time range
    markers = [a for tag, a in dom.elements if tag == "circle" and "mk" in a.get("class", "")]
    assert {m["data-host"] for m in markers} == {"WS01", "WS02", "WS03<b>bold</b>", "DC01"}
    assert sum(int(m["data-count"]) for m in markers) == 9
    assert all(m["data-from"] < m["data-to"] for m in markers)
    ticks = [t for _, a, t in dom.texts if a.get("class") == "tick"]
    assert len(ticks) >= 4  # a labelled time axis (top and bottom)
    # heatmap: tactics in kill-chain order, techniques under the tactics ATT&CK gives them
    tactics = [a["data-tactic"] for tag, a in dom.elements if "data-tactic" in a]
    assert tactics == ["execution", "defense-evasion", "credential-access", "discovery"]
    cells = {a["data-technique"]: int(a["data-count"]) for tag, a in dom.elements if "data-technique" in a}
    assert cells == {"T1059.001": 2, "T1059.003": 2, "T1027": 2, "T1110.001": 3, "T1003.003": 2,
                     "T1033": 2, "T1069.002": 2}  # a rule counts under each of its techniques
    assert "Windows Command Shell" in html and "Password Guessing" in html  # names from the local table
    # top rules and hosts
    top = [a["data-rule"] for tag, a in dom.elements if tag == "tr" and "data-rule" in a]
    assert top[0] == "8d1c0a6e-0f3c-4c55-9c61-2f3b7c1e0a04"  # 3 detections
    assert len(top) == 4


def test_report_is_deterministic() -> None:
    records = synthetic.make_records(400, hosts=9, rules=12, seed=7)
    first = render_report(to_dataframe(records), generated_at="2026-11-28 10:00 UTC")
    again = render_report(to_dataframe(list(reversed(records))), generated_at="2026-11-28 10:00 UTC")
    assert first == again
    assert "2026-11-28 10:00 UTC" in first
    assert "generated" not in render_report(to_dataframe(records)).split("<main>")[0]  # no clock without it


def test_report_caps_the_table_and_says_so() -> None:
    records = synthetic.make_records(300, hosts=5, rules=10, seed=3)
    html = render_report(to_dataframe(records), max_rows=50)
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert data["shown"] == 50 and data["total"] == 300 and len(data["rows"]) == 50
    assert 'id="truncated-note"' in html and "50 most severe of 300" in html
    ranks = {"critical": 4, "high": 3, "medium": 2, "low": 1, "informational": 0}
    shown = [ranks[row[1]] for row in data["rows"]]
    assert shown == sorted(shown, reverse=True)  # the most severe are kept
    dom = Dom(html)
    markers = [a for tag, a in dom.elements if tag == "circle" and "mk" in a.get("class", "")]
    assert sum(int(m["data-count"]) for m in markers) == 300  # the charts count everything


def test_report_handles_correlations_and_empty_results(tmp_path: Path) -> None:
    result = run_hunt([EXAMPLES / "logs"], [EXAMPLES / "rules"], cache_dir=False)
    html = render_report(result)
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    correlations = [row for row in data["rows"] if row[11]]
    assert {row[11]["type"] for row in correlations} == {"value_count", "temporal_ordered", "event_count"}
    assert all(row[11]["count"] >= len(row[11]["events"]) > 0 for row in correlations)
    assert all(row[5] and "." not in row[5] for row in data["rows"])  # EventIDs as integers, never 4625.0
    empty = render_report(to_dataframe([]))
    assert "No detection has a timestamp" in empty and '"total":0' in empty


def test_large_result_renders_in_reasonable_time() -> None:
    import time

    frame = to_dataframe(synthetic.make_records(20_000, hosts=70, rules=30, seed=5))
    started = time.perf_counter()
    html = render_report(frame, max_hosts=40)
    assert time.perf_counter() - started < 30
    dom = Dom(html.split('<script type="application/json"')[0])
    rows = {a["data-host"] for tag, a in dom.elements if tag == "circle" and "mk" in a.get("class", "")}
    assert len(rows) == 40  # host rows capped
    assert "30 more hosts are in the table below" in html


# -- in the browser ------------------------------------------------------------------------------

@needs_chromium
def test_browser_builds_the_table_and_no_payload_runs(fixture_report: Path, fixture_result: Any) -> None:
    raw = dump_dom(fixture_report)
    dom = Dom(raw)
    html_tag = [a for tag, a in dom.elements if tag == "html"][0]
    assert html_tag.get("data-ready") == "1"
    assert "data-pwned" not in html_tag  # no script from an event or rule ran
    assert not [tag for tag, _ in dom.elements if tag == "img"]
    assert not [a for _, a in dom.elements if any(k.startswith("on") for k in a)]  # no event-handler attributes
    assert "<title>Fixture hunt</title>" in raw
    rows = dom.rows()
    assert len(rows) == 9 and dom.matching() == 9
    keys = [text for _, a, text in dom.texts if a.get("class") == "key"]
    assert any("<script>document.documentElement.setAttribute('data-pwned','script')</script>" in k for k in keys)
    assert any("<img src=x onerror=" in k for k in keys)  # the payload is there, as text
    titles = " ".join(text for _, _, text in rows)
    assert "Shell Echoing Markup </script><script>" in titles


@needs_chromium
def test_browser_expanded_details_show_fields_as_text(fixture_report: Path) -> None:
    data = json.loads(re.search(r'id="report-data">(.*?)</script>',  # type: ignore[union-attr]
                                fixture_report.read_text(encoding="utf-8"), re.S).group(1))
    hostile = next(i for i, row in enumerate(data["rows"]) if row[3].startswith("WS03"))
    dom = Dom(dump_dom(fixture_report, f"#open={hostile}"))
    assert "data-pwned" not in [a for tag, a in dom.elements if tag == "html"][0]
    assert not [tag for tag, _ in dom.elements if tag == "img"]
    assert not [text for tag, _, text in dom.texts if tag == "b" and text == "bold"]  # WS03<b>bold</b> is text
    cells = [text for tag, a, text in dom.texts if tag == "td"]
    assert "</script><svg onload=alert(1)>" in cells  # a field *name* payload, shown as text
    assert "field name payload" in cells
    assert any("setAttribute('data-pwned','user')" in c for c in cells)
    links = [a for tag, a in dom.elements if tag == "a"]
    assert [a["href"] for a in links] == ["https://example.org/ref"]  # javascript: reference stays text
    assert "javascript:alert(1)" in [text for tag, _, text in dom.texts if tag == "div"]


@needs_chromium
def test_browser_search_filters_and_sorting(fixture_report: Path) -> None:
    assert Dom(dump_dom(fixture_report, "#q=powershell")).matching() == 2
    assert Dom(dump_dom(fixture_report, "#q=computer%3Adc01%20-ntdsutil")).matching() == 3
    assert Dom(dump_dom(fixture_report, "#q=%22domain%20admins%22")).matching() == 1
    assert Dom(dump_dom(fixture_report, "#level=critical,high")).matching() == 4
    assert Dom(dump_dom(fixture_report, "#technique=T1110.001")).matching() == 3
    assert Dom(dump_dom(fixture_report, "#host=WS02")).matching() == 2
    dom = Dom(dump_dom(fixture_report, "#rule=8d1c0a6e-0f3c-4c55-9c61-2f3b7c1e0a03&sort=-time"))
    assert dom.matching() == 2
    times = [text for _, a, text in dom.texts if a.get("class") == "time when"]
    assert times == sorted(times, reverse=True) and len(times) == 2
    chips = [text for _, a, text in dom.texts if a.get("class") == "chip"]
    assert chips and "Domain Discovery or NTDS Dump" in chips[0]


@needs_chromium
def test_browser_pages_and_notes_a_capped_table(tmp_path: Path) -> None:
    path = tmp_path / "big.html"
    write_report(to_dataframe(synthetic.make_records(500, hosts=6, rules=10, seed=11)), path, max_rows=300)
    dom = Dom(dump_dom(path))
    assert len(dom.rows()) == 100  # first page
    status = [t for _, a, t in dom.texts if a.get("id") == "det-status"][0]
    assert "Showing 1–100 of 300 matching detections" in status and "300 most severe of 500" in status
    assert [t for _, a, t in dom.texts if a.get("id") == "det-page"] == ["page 1 of 3"]


@needs_chromium
def test_browser_screenshot_has_content(fixture_report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    chromium([f"--screenshot={shot}", "--window-size=1400,2000", "--hide-scrollbars"],
             fixture_report.resolve().as_uri())
    assert shot.exists() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_report_is_atomic_and_utf8(fixture_result: Any, tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.html"
    write_report(fixture_result, target)
    text = target.read_bytes().decode("utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert not [p for p in target.parent.iterdir() if p.name != "r.html"]
    assert os.path.getsize(target) > 10_000


def test_run_summary_for_scripts(fixture_result: Any) -> None:
    import io

    from sigmahunt.report.summary import print_summary_json, run_summary

    summary = run_summary(fixture_result, outputs={"report": "r.html"})
    assert summary["detections"] == 9 and summary["detections_by_level"] == {
        "critical": 2, "high": 2, "medium": 2, "low": 3}
    assert summary["hosts"] == 4 and summary["rules_fired"] == 4
    assert summary["first"] == "2026-11-20T08:00:00.000000Z" and summary["last"] == "2026-11-21T10:00:00.000000Z"
    assert summary["techniques"] == ["T1003.003", "T1027", "T1033", "T1059.001", "T1059.003", "T1069.002",
                                     "T1110.001"]
    buffer = io.BytesIO()
    print_summary_json(fixture_result, buffer)
    assert json.loads(buffer.getvalue())["events_read"] == 9


def test_rule_meta_attack_tags_are_parsed_once_and_handed_out_as_copies() -> None:
    from sigmahunt.engines.embedded.ir import RuleMeta

    meta = RuleMeta("id", "t", "high", "test", ["attack.execution", "attack.t1059.001", "attack.Defense_Evasion",
                                               "attack.g0001", "cve.2021-1"], "p.yml")
    assert meta.techniques == ["T1059.001"]
    assert meta.tactics == ["execution", "defense-evasion"]
    meta.techniques.append("T0000")  # a record's list is its own
    meta.tactics.clear()
    assert meta.techniques == ["T1059.001"] and meta.tactics == ["execution", "defense-evasion"]
