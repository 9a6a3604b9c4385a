"""``sigmahunt convert``: print each rule as an Elasticsearch/OpenSearch query.

    sigmahunt convert RULE... --target lucene|es-dsl|esql --pipeline helk|ecs-windows|raw

Targets: ``lucene`` (``query_string`` / Kibana Lucene syntax), ``es-dsl`` (the query DSL
body for ``_search``), ``esql`` (``FROM ... | WHERE ...``, Elasticsearch 8.11+). The
conversion starts from sigmahunt's compiled rules, so it means what the embedded engine
matches (see :mod:`sigmahunt.engines.elastic.query`); what a target cannot express is
refused per rule, with the reason. Each Lucene string says what the index mapping needs
for it to be case-insensitive (``sigmahunt ingest`` creates that mapping).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

TARGETS = ("lucene", "es-dsl", "esql")
EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from sigmahunt.pipelines import PIPELINES

    parser = subparsers.add_parser(
        "convert", help="print rules as Elasticsearch/OpenSearch queries (Lucene, query DSL, ES|QL)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rules", nargs="+", metavar="RULE", help="Sigma rule files or folders")
    parser.add_argument("--target", "-t", choices=TARGETS, default="lucene", help="query language (default lucene)")
    parser.add_argument("--pipeline", "-p", choices=sorted(PIPELINES), default="raw",
                        help="field and index names: raw (EVTX names, default), helk, ecs-windows")
    parser.add_argument("--index", metavar="PATTERN",
                        help="index pattern to query instead of the pipeline's (channels are then tested by field)")
    parser.add_argument("--layout", choices=("sigmahunt", "plain"), default="sigmahunt",
                        help="index mapping the query relies on: sigmahunt (as sigmahunt ingest creates it, "
                             "default) or plain (keyword fields of another shipper)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON array of {rule_id, title, path, target, index, query, notes, refused}")
    parser.add_argument("--placeholders", help="YAML file of placeholder values for |expand")
    parser.add_argument("--no-cache", action="store_true", help="do not use the compiled-rule cache")
    parser.set_defaults(handler=cmd_convert)
    return parser


def convert_rules(
    paths: list[str], target: str, pipeline: str = "raw", *, index: str | None = None,
    layout: str = "sigmahunt", placeholders: Any = None, cache_dir: Any = None,
) -> tuple[list[Any], Any]:
    """``(converted, prepared)``: one :class:`~sigmahunt.engines.elastic.query.Converted` per rule."""
    from sigmahunt.engines.elastic.query import LAYOUTS, convert
    from sigmahunt.pipelines import get_pipeline
    from sigmahunt.rules.prepare import prepare_rules

    prepared = prepare_rules(paths, placeholders, cache_dir)
    chosen = get_pipeline(pipeline)
    out = [convert(rule, chosen, target, index=index, layout=LAYOUTS[layout]) for rule in prepared.compiled]
    return out, prepared


def render_text(item: Any) -> str:
    """One rule's block: ``#`` comment lines (title, id, index, notes), then the query."""
    import json

    meta = item.rule.meta
    lines = [f"# {_one_line(meta.title)}", f"# id: {meta.rule_id or '-'}  file: {meta.path}"]
    if item.refused:
        lines.append(f"# refused: {item.refused}")
        return "\n".join(lines) + "\n"
    lines.append(f"# index: {','.join(item.indices)}")
    for note in item.notes:
        lines.append(f"# note: {note}")
    query = json.dumps(item.query, indent=2, ensure_ascii=False) if isinstance(item.query, dict) else item.query
    return "\n".join(lines) + "\n" + query + "\n"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def cmd_convert(args: argparse.Namespace, err: Any) -> int:
    import orjson

    from sigmahunt.rules.prepare import load_placeholders

    placeholders = load_placeholders(args.placeholders)
    converted, prepared = convert_rules(args.rules, args.target, args.pipeline, index=args.index,
                                        layout=args.layout, placeholders=placeholders,
                                        cache_dir=False if args.no_cache else None)
    if args.json:
        data = [{
            "rule_id": c.rule.meta.rule_id, "title": c.rule.meta.title, "path": c.rule.meta.path,
            "target": c.target, "pipeline": args.pipeline, "index": ",".join(c.indices), "query": c.query,
            "notes": c.notes, "refused": c.refused,
        } for c in converted]
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write("\n".join(render_text(c) for c in converted))
        sys.stdout.flush()
    refused = sum(1 for c in converted if c.refused)
    for failure in prepared.failures:
        err.print(f"[red]rule failed to load[/] {failure.path}: {failure.reason}")
    if getattr(prepared, "correlations", None):
        err.print(f"[yellow]{len(prepared.correlations)} correlation rules are not converted "
                  "(hunt --engine elasticsearch correlates the base rules' detections)[/]")
    err.print(f"{len(converted) - refused} rules converted to {args.target} (pipeline {args.pipeline}), "
              f"{refused} refused, {len(prepared.failures)} failed to load")
    return EXIT_OK if converted and refused < len(converted) else EXIT_USAGE
