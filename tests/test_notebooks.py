"""``sigmahunt notebook``: one notebook per rule, executed headless, content escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from sigmahunt import cli
from tests.conftest import EXAMPLES

nbformat = pytest.importorskip("nbformat", reason="the notebook command needs nbformat (extra 'notebooks')")

SEED = EXAMPLES / "rules" / "seed_susp_prog_location_network_connection.yml"
FIXTURES = Path(__file__).parent / "fixtures" / "elastic"
HTML_RULE = FIXTURES / "rules" / "html_title.yml"


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    if "sigmahunt.notebooks" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "sigmahunt.notebooks"))


def _outside_fences(markdown: str) -> str:
    import re

    return re.sub(r"(`{3,})[^\n]*\n.*?\n\1", "", markdown, flags=re.S)


def _cells(path: Path) -> list:
    return nbformat.read(str(path), as_version=4).cells


def test_one_notebook_per_rule_with_rule_query_and_hunt(tmp_path: Path) -> None:
    assert cli.main(["notebook", str(EXAMPLES / "rules"), "-o", str(tmp_path), "--logs", str(EXAMPLES / "logs")]) == 0
    notebooks = sorted(tmp_path.glob("*.ipynb"))
    assert len(notebooks) >= 6
    seed = next(p for p in notebooks if p.name.startswith("suspicious_program_location"))
    cells = _cells(seed)
    assert [c.cell_type for c in cells] == ["markdown", "markdown", "markdown", "code", "code", "code"]
    assert cells[0].source.startswith("# Suspicious Program Location with Network Connections")
    assert "```yaml\ntitle: Suspicious Program Location" in cells[1].source
    assert "Image contains '\\\\users\\\\public\\\\'" in cells[2].source  # the compiled tests
    assert "parameters" in cells[3].metadata["tags"]
    assert "sigmahunt.hunt(logs, rules=rule_path)" in cells[4].source


def test_generated_notebook_runs_headless_on_the_embedded_engine(tmp_path: Path) -> None:
    pytest.importorskip("nbclient", reason="executing notebooks needs nbclient and ipykernel (extra 'notebooks')")
    pytest.importorskip("ipykernel", reason="executing notebooks needs ipykernel (extra 'notebooks')")
    from sigmahunt.notebooks import execute_notebook

    assert cli.main(["notebook", str(SEED), "-o", str(tmp_path), "--logs", str(EXAMPLES / "logs")]) == 0
    path = next(tmp_path.glob("*.ipynb"))
    notebook = execute_notebook(path)
    printed = "".join(o.get("text", "") for o in notebook.cells[4].outputs)
    assert "detections in" in printed and not printed.startswith("0 detections")
    head = notebook.cells[5].outputs[0]["data"]
    assert "7b434893-c57d-4f41-908d-6a17bf1ae98f" in head["text/plain"]
    assert "<table" in head["text/html"]
    # saved with outputs
    assert nbformat.read(str(path), as_version=4).cells[5].outputs


def test_rule_and_event_content_cannot_inject_html(tmp_path: Path) -> None:
    pytest.importorskip("nbclient", reason="executing notebooks needs nbclient and ipykernel (extra 'notebooks')")
    from sigmahunt.notebooks import execute_notebook

    assert cli.main(["notebook", str(HTML_RULE), "-o", str(tmp_path), "--logs", str(FIXTURES / "events.jsonl")]) == 0
    path = next(tmp_path.glob("*.ipynb"))
    cells = _cells(path)
    title = cells[0].source.splitlines()[0]
    assert "<script>" not in title and "&lt;script&gt;" in title and "&lt;b&gt;" in title
    for cell in cells[:3]:  # outside fenced code (shown verbatim by renderers) no raw HTML at all
        assert "<" not in _outside_fences(cell.source), cell.source
    notebook = execute_notebook(path)
    html = notebook.cells[5].outputs[0]["data"]["text/html"]
    assert "<script>" not in html and "&lt;script&gt;" in html  # the event's value, escaped by pandas


def test_fences_outlast_backticks_and_code_cells_take_literals(tmp_path: Path) -> None:
    from sigmahunt.notebooks import fenced, md_text

    assert fenced("a ``` b").startswith("````\n")
    assert md_text("<img src=x onerror=alert(1)> [x](javascript:y)") == (
        "&lt;img src=x onerror=alert\\(1\\)&gt; \\[x\\]\\(javascript:y\\)")
    weird = tmp_path / "we'ird \"rule\".yml"
    weird.write_text(HTML_RULE.read_text(encoding="utf-8"), encoding="utf-8")
    assert cli.main(["notebook", str(weird), "-o", str(tmp_path / "out"), "--logs", "x'y"]) == 0
    cells = _cells(next((tmp_path / "out").glob("*.ipynb")))
    namespace: dict = {}
    exec(cells[3].source, namespace)  # the parameter cell is valid Python holding the literal paths
    assert namespace["rule_path"].endswith("we'ird \"rule\".yml")
    assert namespace["logs"].endswith("x'y")


def test_elastic_notebook_has_lucene_and_dsl(tmp_path: Path) -> None:
    assert cli.main(["notebook", str(SEED), "-o", str(tmp_path), "--engine", "opensearch", "--pipeline", "helk"]) == 0
    cells = _cells(next(tmp_path.glob("*.ipynb")))
    query = cells[2].source
    assert "logs\\-endpoint\\-winevent\\-sysmon\\-\\*" in query
    assert "event_id:3 AND (process_path:" in query
    assert '"case_insensitive": true' in query
    assert "cluster_hunt(url, rules=rule_path, engine=engine, index=index, pipeline=pipeline)" in cells[4].source
    assert "os.environ.get('SIGMAHUNT_ES_URL'" in cells[3].source  # credentials stay in the environment
    assert "password" not in cells[3].source.lower().replace("_password", "")
