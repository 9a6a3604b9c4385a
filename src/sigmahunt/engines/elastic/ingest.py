"""``sigmahunt ingest``: load Windows event logs into Elasticsearch/OpenSearch for hunting.

Logs are read by :func:`sigmahunt.ingest.read_logs` (every format the embedded engine
reads), renamed through a pipeline (``raw``, ``helk``, ``ecs-windows``), and bulk-loaded
under an index template (:mod:`.template`) that makes the converted rules mean what they
mean on the embedded engine. Every event read is either indexed or reported with the
cluster's reason; the counts are printed (``--json`` for a machine-readable report).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass
class IngestReport:
    """What an ingest did: every event read is indexed, or listed in ``failed``."""

    events_read: int = 0
    indexed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    values_not_searchable: int = 0
    indices: list[str] = field(default_factory=list)
    template: str = ""
    pipeline: str = ""
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.indexed == self.events_read and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "events_read": self.events_read,
            "indexed": self.indexed,
            "failed": self.failed,
            "events_unreadable": len(self.unreadable),
            "unreadable": self.unreadable,
            "values_not_searchable": self.values_not_searchable,
            "indices": self.indices,
            "template": self.template,
            "pipeline": self.pipeline,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


def concrete_indices(pipeline: Any, name: str) -> list[str]:
    """Every index an ingest of ``pipeline`` under ``name`` may write to."""
    if not pipeline.routes:
        return [name]
    out = []
    for route in pipeline.routes:
        index = pipeline.ingest_index(next(iter(route.channels)), name)
        if index not in out:
            out.append(index)
    default = pipeline.ingest_index(None, name)
    if default not in out:
        out.append(default)
    return out


def ingest_logs(
    cluster: Any,
    logs: Sequence[str | Path],
    *,
    index: str,
    pipeline: str = "raw",
    format_in: str | None = None,
    batch_size: int = 5000,
    refresh: bool = True,
    on_events: Callable[[int], None] | None = None,
) -> IngestReport:
    """Read ``logs`` and bulk-load them into ``cluster`` (a :class:`~.client.Cluster`)."""
    from sigmahunt.engines.elastic.template import DocumentBuilder, index_template
    from sigmahunt.ingest import EventBatch, Unreadable, read_logs
    from sigmahunt.pipelines import get_pipeline

    started = time.perf_counter()
    chosen = get_pipeline(pipeline)
    _check_index_name(index)
    report = IngestReport(pipeline=chosen.name)
    report.indices = concrete_indices(chosen, index)
    report.template = f"sigmahunt-{chosen.name}-{index}"
    cluster.put_index_template(report.template, index_template(report.indices))
    builder = DocumentBuilder(chosen, index)
    pending: deque[tuple[str, str]] = deque()  # (source, position) of actions in flight, in order

    def actions() -> Iterator[dict[str, Any]]:
        for item in read_logs([str(p) for p in logs], format_in=format_in, batch_size=batch_size):
            if isinstance(item, Unreadable):
                report.unreadable.append({"source": item.source, "position": item.position, "reason": item.reason})
                continue
            if not isinstance(item, EventBatch) or item.frame.height == 0:
                continue
            report.events_read += item.frame.height
            if on_events:
                on_events(item.frame.height)
            for target, doc_id, document in builder.documents(item.frame):
                meta = document["sigmahunt"]
                pending.append((meta["source"], meta["position"]))
                yield {"_op_type": "index", "_index": target, "_id": doc_id, "_source": document}

    for ok, result in cluster.bulk(actions()):
        source, position = pending.popleft() if pending else ("", "")
        if ok:
            report.indexed += 1
            continue
        info = next(iter(result.values())) if isinstance(result, dict) and result else {}
        error = info.get("error", info) if isinstance(info, dict) else info
        if isinstance(error, dict):
            reason = f"{error.get('type', '')}: {error.get('reason', '')}"
            caused = error.get("caused_by")
            if isinstance(caused, dict) and caused.get("reason"):
                reason += f" ({caused.get('type', '')}: {caused['reason']})"
        else:
            reason = str(error)
        report.failed.append({"source": source, "position": position,
                              "index": info.get("_index", "") if isinstance(info, dict) else "",
                              "status": info.get("status") if isinstance(info, dict) else None,
                              "reason": reason[:1000]})
    written = [name for name in report.indices if name in builder.indices]
    if refresh and written:
        cluster.refresh(",".join(written))
    report.values_not_searchable = builder.too_long
    if builder.too_long:
        report.warnings.append(f"{builder.too_long} values are longer than 8191 characters: stored, "
                               "and in detection records, but not searchable")
    report.warnings.extend(_foreign_mappings(cluster, written))
    report.seconds = time.perf_counter() - started
    return report


def _check_index_name(name: str) -> None:
    bad = set('\\/*?"<>| ,#:')
    if not name or name != name.lower() or any(c in bad for c in name) or name.startswith(("-", "_", "+")):
        raise ValueError(f"invalid index name {name!r}: lowercase, without \\ / * ? \" < > | , # : or spaces, "
                         "not starting with - _ +")


def _foreign_mappings(cluster: Any, indices: list[str]) -> list[str]:
    """Indices that existed before with another mapping: queries may not mean what Sigma means."""
    warnings = []
    for name in indices:
        try:
            mapping = cluster.mapping(name)
        except Exception:  # noqa: BLE001
            continue
        for index_name, body in mapping.items():
            meta = body.get("mappings", {}).get("_meta", {})
            if meta.get("sigmahunt_layout") is None:
                warnings.append(f"index {index_name} existed without sigmahunt's mapping: matching there may "
                                "be case-sensitive; load into a new index name")
    return warnings


# -- command line ----------------------------------------------------------------------------------------

def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """``sigmahunt ingest LOGS... --url URL --index NAME --pipeline helk|ecs-windows|raw``.

    The CLI already has an ``ingest`` command (into the embedded event store, ``--store``):
    then this adds the cluster options to it and routes ``--url`` (or ``$SIGMAHUNT_ES_URL``
    without ``--store``) here; otherwise it creates the command.
    """
    existing = subparsers.choices.get("ingest") if hasattr(subparsers, "choices") else None
    if existing is None:
        parser = subparsers.add_parser(
            "ingest", help="load logs into Elasticsearch/OpenSearch (for hunt --engine elasticsearch|opensearch)",
            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("logs", nargs="+", help="log files or folders (EVTX, JSON, JSONL, .gz, .zip)")
        store_handler = None
    else:
        parser = existing
        store_handler = parser.get_default("handler")
        for action in parser._actions:  # --store is one of two destinations now
            if action.dest == "store":
                action.required = False
                action.help = (action.help or "") + " (or --url: a cluster)"
    add_ingest_options(parser)

    def handler(args: argparse.Namespace, err: Any) -> int:
        import os

        from sigmahunt.engines.elastic.client import ENV_URL

        if getattr(args, "store", None) and not args.url:
            return int(store_handler(args, err)) if store_handler else EXIT_USAGE
        if not args.url and not os.environ.get(ENV_URL):
            where = "--store DIR (the embedded event store) or " if store_handler else ""
            err.print(f"[bold red]sigmahunt ingest:[/] where to? pass {where}--url URL --index NAME (a cluster)")
            return EXIT_USAGE
        return cmd_ingest(args, err)

    parser.set_defaults(handler=handler)
    return parser


def add_ingest_options(parser: argparse.ArgumentParser) -> None:
    """The cluster options of ``ingest`` (those the parser does not have already)."""
    from sigmahunt.engines.elastic.options import add_connection_options
    from sigmahunt.pipelines import PIPELINES

    have = set(parser._option_string_actions)
    from sigmahunt.engines.elastic.options import CREDENTIALS_HELP

    group = parser.add_argument_group("Elasticsearch / OpenSearch (with --url)", description=CREDENTIALS_HELP)
    group.add_argument("--index", metavar="NAME",
                       help="index name; with --pipeline helk, the suffix of HELK's per-log indices "
                            "(logs-endpoint-winevent-sysmon-NAME, ..., logs-NAME)")
    group.add_argument("--pipeline", choices=sorted(PIPELINES), default="raw",
                       help="field names in the index (default raw: as in the EVTX)")
    group.add_argument("--engine", choices=("elasticsearch", "opensearch"), default=None,
                       help="cluster product (default: ask the cluster)")
    if "--format-in" not in have:
        group.add_argument("--format-in", help="force the log format instead of detecting it per file")
    if "--json" not in have:
        group.add_argument("--json", action="store_true", help="print the report as JSON")
    if "--quiet" not in have:
        group.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    add_connection_options(parser, hunt=False, group=group)


def cmd_ingest(args: argparse.Namespace, err: Any) -> int:
    import orjson

    from sigmahunt.engines.elastic.client import Cluster, ClusterError
    from sigmahunt.engines.elastic.options import connection_settings

    if not args.index:
        err.print("[bold red]sigmahunt ingest:[/] --index NAME is required with --url")
        return EXIT_USAGE
    try:
        cluster = Cluster(connection_settings(args, args.engine))
        loaded = [0]

        def on_events(n: int) -> None:
            loaded[0] += n
            if not getattr(args, "quiet", False) and err.is_terminal:
                err.print(f"read {loaded[0]:,} events", end="\r")

        report = ingest_logs(cluster, args.logs, index=args.index, pipeline=args.pipeline,
                             format_in=args.format_in, on_events=on_events)
    except (ClusterError, ValueError) as error:
        err.print(f"[bold red]sigmahunt ingest:[/] {error}")
        return EXIT_USAGE
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        err.print(f"{cluster.flavor} {cluster.settings.url}: read {report.events_read:,} events "
                  f"({len(report.unreadable):,} unreadable), indexed {report.indexed:,}, failed "
                  f"{len(report.failed):,} into {', '.join(report.indices)} (pipeline {report.pipeline}, "
                  f"template {report.template}); {report.seconds:.1f} s")
        for item in report.failed[:20]:
            err.print(f"[red]not indexed[/] {item['source']} ({item['position']}): {item['reason']}")
        if len(report.failed) > 20:
            err.print(f"[red]... {len(report.failed) - 20} more (use --json for all)[/]")
        for item in report.unreadable[:10]:
            err.print(f"[yellow]unreadable[/] {item['source']} ({item['position']}): {item['reason']}")
        for warning in report.warnings:
            err.print(f"[yellow]warning:[/] {warning}")
    if report.events_read == 0:
        return EXIT_USAGE
    return EXIT_OK if report.complete else EXIT_FAILED
