"""``sigmahunt notebook``: one Jupyter notebook per rule, runnable headless.

The project began from a HELK notebook (a rule, its ``query_string``, a scan of every hit
into pandas). Each generated notebook keeps that shape, through sigmahunt's Python API:

1. the rule: title, metadata and description (markdown), and its YAML;
2. the query: the Lucene string and query DSL for the cluster engines (or, for the
   embedded engine, the compiled tests it evaluates);
3. a ``parameters`` cell (logs path, or cluster URL/index/pipeline; credentials stay in
   the environment), then the hunt through :func:`sigmahunt.hunt` or
   :func:`sigmahunt.engines.elastic.hunt`, and the DataFrame's head.

Everything taken from a rule is escaped for where it goes: HTML-escaped in markdown (a
title ``<script>`` shows as text), fenced with a longer fence than any backtick run
inside, and passed to code cells as Python literals (``repr``), never pasted as code.
``nbformat`` writes the files; ``--execute`` runs them with ``nbclient``.
"""

from __future__ import annotations

import argparse
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENGINES = ("embedded", "elasticsearch", "opensearch")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|~>$-])")


def md_text(value: Any) -> str:
    """Text shown as-is in a markdown cell: HTML-escaped, markdown syntax neutralised."""
    text = html.escape(" ".join(str(value).split()), quote=True)
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def fenced(text: str, language: str = "") -> str:
    """A fenced code block whose fence no backtick run inside the text can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


@dataclass
class NotebookOptions:
    engine: str = "embedded"
    logs: str | None = None
    url: str | None = None
    index: str | None = None
    pipeline: str = "raw"


def slug(text: str, limit: int = 60) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return cleaned[:limit] or "rule"


def rule_notebook(rule: Any, options: NotebookOptions) -> Any:
    """The notebook (an ``nbformat`` node) for one compiled rule."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    meta = rule.meta
    cells = [new_markdown_cell(_header(meta)),
             new_markdown_cell("## Rule\n\n" + fenced(_rule_source(meta.path), "yaml"))]
    cells.append(new_markdown_cell(_query_markdown(rule, options)))
    cells.append(new_code_cell(_parameters(meta, options), metadata={"tags": ["parameters"]}))
    cells.append(new_code_cell(_hunt_code(options)))
    cells.append(new_code_cell("df.head(20)"))
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "sigmahunt": {"rule_id": meta.rule_id, "engine": options.engine},
    })
    nbformat.validate(notebook)
    return notebook


def _header(meta: Any) -> str:
    rows = [
        ("id", meta.rule_id), ("level", meta.level), ("status", meta.status), ("author", meta.author),
        ("log source", meta.logsource), ("tags", ", ".join(meta.tags)), ("file", meta.path),
    ]
    lines = [f"# {md_text(meta.title or 'untitled rule')}", "", "| | |", "|---|---|"]
    lines.extend(f"| {name} | {md_text(value)} |" for name, value in rows if value)
    if meta.description:
        lines += ["", md_text(meta.description)]
    if meta.falsepositives:
        lines += ["", "**False positives:** " + "; ".join(md_text(f) for f in meta.falsepositives)]
    if meta.references:
        lines += ["", "**References:**", ""] + [f"* {md_text(r)}" for r in meta.references]
    return "\n".join(lines)


def _rule_source(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return f"# rule file not readable: {error}"


def _query_markdown(rule: Any, options: NotebookOptions) -> str:
    from sigmahunt.engines.elastic.query import convert, dsl_json
    from sigmahunt.pipelines import get_pipeline

    pipeline = get_pipeline(options.pipeline)
    lucene = convert(rule, pipeline, "lucene", index=options.index)
    parts = ["## Query", ""]
    if options.engine == "embedded":
        parts.append("The embedded engine evaluates the compiled tests below (Sigma's meaning: "
                     "case-insensitive unless `|cased`, absent fields fail their test).")
        parts.append("")
        tests = "\n".join(f"{i}: {p.describe()}" for i, p in enumerate(rule.predicates)) or "(none)"
        parts.append(fenced(tests))
        parts.append("")
        parts.append("The same rule as a Lucene `query_string` for a cluster "
                     f"(pipeline `{md_text(pipeline.name)}`):")
    else:
        parts.append(f"Lucene `query_string` (pipeline `{md_text(pipeline.name)}`):")
    parts.append("")
    if lucene.refused:
        parts.append(f"Not expressible in Lucene: {md_text(lucene.refused)}")
    else:
        parts.append(f"Index: `{md_text(','.join(lucene.indices))}`")
        parts.append("")
        parts.append(fenced(str(lucene.query)))
        for note in lucene.notes:
            parts.append("")
            parts.append(f"*Note:* {md_text(note)}")
    if options.engine != "embedded":
        dsl = convert(rule, pipeline, "es-dsl", index=options.index)
        parts += ["", "Query DSL:", ""]
        parts.append(fenced(dsl_json(dsl.query), "json") if not dsl.refused else
                     f"Not expressible in the query DSL: {md_text(dsl.refused)}")
    return "\n".join(parts)


def _parameters(meta: Any, options: NotebookOptions) -> str:
    lines = ["# Parameters (papermill-compatible): change them, or pass them with papermill -p NAME VALUE",
             f"rule_path = {str(Path(meta.path).resolve())!r}"]
    if options.engine == "embedded":
        lines.append(f"logs = {str(Path(options.logs).resolve()) if options.logs else ''!r}")
    else:
        lines.append("import os")
        lines.append(f"url = os.environ.get('SIGMAHUNT_ES_URL', {options.url or ''!r})  "
                     "# credentials: SIGMAHUNT_ES_USER/_PASSWORD or _API_KEY in the environment")
        lines.append(f"engine = {options.engine!r}")
        lines.append(f"index = {options.index!r}")
        lines.append(f"pipeline = {options.pipeline!r}")
    return "\n".join(lines)


def _hunt_code(options: NotebookOptions) -> str:
    if options.engine == "embedded":
        return ("import sigmahunt\n\n"
                "df = sigmahunt.hunt(logs, rules=rule_path)\n"
                "summary = df.attrs['summary']\n"
                "print(f\"{summary['detections']} detections in {summary['events_read']} events\")")
    return ("from sigmahunt.engines.elastic import hunt as cluster_hunt\n\n"
            "df = cluster_hunt(url, rules=rule_path, engine=engine, index=index, pipeline=pipeline)\n"
            "summary = df.attrs['summary']\n"
            "print(f\"{summary['detections']} detections in {summary['events_read']} events\")\n"
            "for failure in summary['failed_rules']:\n"
            "    print('rule failed:', failure['reason'])")


def write_notebooks(rules: Sequence[Any], out_dir: str | Path, options: NotebookOptions) -> list[Path]:
    """One ``.ipynb`` per rule in ``out_dir``; returns the paths."""
    import nbformat

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    used: set[str] = set()
    for rule in rules:
        base = f"{slug(rule.meta.title)}_{slug(rule.meta.rule_id or 'noid')[:8]}"
        name = base
        n = 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        path = folder / f"{name}.ipynb"
        nbformat.write(rule_notebook(rule, options), str(path))
        written.append(path)
    return written


def execute_notebook(path: str | Path, timeout: int = 600, cwd: str | Path | None = None) -> Any:
    """Run a notebook headless (nbclient) and save its outputs in place; returns the notebook."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(str(path), as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd or Path(path).parent)}})
    client.execute()
    nbformat.write(notebook, str(path))
    return notebook


# -- command line ----------------------------------------------------------------------------------------

def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from sigmahunt.pipelines import PIPELINES

    parser = subparsers.add_parser(
        "notebook", help="write one Jupyter notebook per rule (rule, query, hunt, DataFrame)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rules", nargs="+", metavar="RULES", help="Sigma rule files or folders")
    parser.add_argument("--output", "-o", required=True, metavar="DIR", help="folder for the notebooks")
    parser.add_argument("--engine", choices=ENGINES, default="embedded",
                        help="what the notebooks hunt with (default embedded)")
    parser.add_argument("--logs", help="embedded engine: the logs the notebooks hunt (a parameter cell)")
    parser.add_argument("--url", help="cluster engines: URL (default in the notebook: $SIGMAHUNT_ES_URL)")
    parser.add_argument("--index", help="cluster engines: index pattern (default: the pipeline's)")
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), default="raw", help="field names in the index")
    parser.add_argument("--execute", action="store_true", help="also run each notebook headless (nbclient)")
    parser.add_argument("--placeholders", help="YAML file of placeholder values for |expand")
    parser.set_defaults(handler=cmd_notebook)
    return parser


def cmd_notebook(args: argparse.Namespace, err: Any) -> int:
    from sigmahunt.rules.prepare import load_placeholders, prepare_rules

    try:
        import nbformat  # noqa: F401
    except ImportError:
        err.print("[bold red]sigmahunt notebook:[/] needs nbformat: pip install 'sigmahunt[notebooks]'")
        return EXIT_USAGE
    prepared = prepare_rules(args.rules, load_placeholders(args.placeholders))
    for failure in prepared.failures:
        err.print(f"[red]rule failed to load[/] {failure.path}: {failure.reason}")
    if not prepared.compiled:
        err.print("[bold red]sigmahunt notebook:[/] no usable rule was loaded")
        return EXIT_USAGE
    options = NotebookOptions(engine=args.engine, logs=args.logs, url=args.url, index=args.index,
                              pipeline=args.pipeline)
    written = write_notebooks(prepared.compiled, args.output, options)
    err.print(f"wrote {len(written)} notebooks to {args.output}")
    if args.execute:
        failed = 0
        for path in written:
            try:
                execute_notebook(path)
            except Exception as error:  # noqa: BLE001 - report each notebook and go on
                failed += 1
                err.print(f"[red]notebook failed[/] {path}: {str(error).splitlines()[-1] if str(error) else error}")
        err.print(f"executed {len(written) - failed} notebooks, {failed} failed")
        if failed:
            return EXIT_FAILED
    return EXIT_OK
