"""The ``sigmahunt`` command line.

Data goes to stdout (the table, or ``--format jsonl|csv|json``) or to ``--output``;
progress bars and the run summary go to stderr, so scripts can pipe the data.
Exit codes: 0 a completed hunt (with or without detections), 2 bad arguments or
nothing to run (no rules, no readable logs), 1 an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from sigmahunt import __version__
from sigmahunt.cache import NO_CACHE_HELP
from sigmahunt.hunting import HuntResult, NothingToHunt, ingest_into_store, run_hunt
from sigmahunt.hunting import Progress as HuntProgress
from sigmahunt.ingest.reader import ARCHIVE_PASSWORD_ENV
from sigmahunt.native import status as native_status
from sigmahunt.results import LEVELS, level_counts, render, write_atomically
from sigmahunt.rules.prepare import RuleSelection, load_placeholders, prepare_rules
from sigmahunt.timefilter import add_filter_options
from sigmahunt.timefilter import from_args as time_filter_from_args

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
FORMATS = ("table", "jsonl", "csv", "json", "parquet")
LEVEL_STYLE = {"critical": "bold magenta", "high": "bold red", "medium": "yellow", "low": "green",
               "informational": "dim"}
#: Event fields shown in the table, first present wins (what an analyst reads first).
KEY_FIELDS = ("CommandLine", "Image", "NewProcessName", "TargetFilename", "TargetObject", "ImageLoaded",
              "QueryName", "DestinationIp", "ScriptBlockText", "ServiceName", "TargetUserName",
              "PipeName", "ObjectName", "Payload", "Details")


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigmahunt", description="Hunt Windows event logs with Sigma rules.")
    parser.add_argument("--version", action="version",
                        version=f"sigmahunt {__version__} (native parts: {native_status()})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    hunt = commands.add_parser("hunt", help="run Sigma rules over logs and report detections")
    hunt.add_argument("logs", nargs="*", help="log files or folders (EVTX, JSON, JSONL, .gz, .zip)")
    _add_rule_options(hunt)
    hunt.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    hunt.add_argument("--output", "-o", help="write detections to this file instead of stdout")
    hunt.add_argument("--summary", help="also write the run summary as JSON to this file")
    hunt.add_argument("--store", help="keep normalised events in this folder (re-hunt without re-parsing)")
    hunt.add_argument("--format-in", help="force the log format instead of detecting it per file "
                      "(evtx, evtx-json, flat-json, winlogbeat, evtx-xml, csv)")
    hunt.add_argument("--archive-password", help="password of encrypted zip/7z archives (or set "
                      "SIGMAHUNT_ARCHIVE_PASSWORD, which stays out of the shell history)")
    hunt.add_argument("--level", choices=LEVELS, help="minimum rule level")
    hunt.add_argument("--status", action="append", default=[], help="only rules with this status (repeatable)")
    hunt.add_argument("--tag", action="append", default=[], help="only rules with this tag (repeatable)")
    hunt.add_argument("--rule-id", action="append", default=[], help="only this rule id (repeatable)")
    hunt.add_argument("--filters", action="append", default=[], metavar="PATH",
                      help="Sigma filter file or folder, applied to the rules it targets (repeatable)")
    hunt.add_argument("--quiet", "-q", action="store_true", help="no progress bars, no summary on stderr")
    hunt.add_argument("--limit", type=int, default=200, help="rows shown by the table format (default 200)")
    hunt.add_argument("--report", metavar="FILE", help="also write a self-contained HTML report (works offline)")
    hunt.add_argument("--navigator", metavar="FILE",
                      help="also write an ATT&CK Navigator layer (JSON, layer format 4.5) of the detected techniques")
    hunt.add_argument("--explain", nargs="?", type=int, const=10, default=None, metavar="N",
                      help="print on stderr why the N most severe detections matched (N default 10; 0: all)")
    hunt.add_argument("--json", action="store_true",
                      help="print the run summary as JSON on stderr instead of the text summary")
    add_filter_options(hunt)
    hunt.add_argument("--engine", default="embedded", choices=sorted(ENGINE_MODULES),
                      help="where rules run: embedded (default, no server), elasticsearch, opensearch, spark")
    for module in _engine_modules():
        module.add_hunt_options(hunt)

    ingest = commands.add_parser("ingest", help="add logs to a persistent event store (idempotent)")
    ingest.add_argument("logs", nargs="+", help="log files or folders")
    ingest.add_argument("--store", required=True, help="store folder (created if absent)")
    ingest.add_argument("--format-in", help="force the log format instead of detecting it per file")
    ingest.add_argument("--json", action="store_true", help="print the ingest report as JSON")
    ingest.set_defaults(handler=cmd_ingest)

    rules = commands.add_parser("rules", help="rule utilities")
    rule_commands = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    check = rule_commands.add_parser("check", help="load rules and report which cannot be used, and why")
    check.add_argument("paths", nargs="+", help="rule files or folders")
    check.add_argument("--json", action="store_true", help="print {loaded, failed: [{path, reason}]}")
    check.add_argument("--placeholders", help="YAML file of placeholder values for |expand")
    check.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    check.add_argument("--filters", action="append", default=[], metavar="PATH", help="Sigma filter file or folder")
    check.set_defaults(handler=lambda args, err: cmd_rules_check(args))
    hunt.set_defaults(handler=cmd_hunt)
    for register in _command_modules():
        register(commands)
    return parser


def _command_modules() -> list[Any]:
    """Other concerns add their own subcommands: ``add_parser(subparsers)`` sets ``handler``.

    A handler takes ``(args, err_console)`` and returns the exit code.
    """
    registrars: list[Any] = []
    for module_name in COMMAND_MODULES:
        module = __import__(module_name, fromlist=["add_parser"])
        registrars.append(module.add_parser)
    return registrars


#: Engines other than the embedded one: each module defines ``add_hunt_options(parser)`` (its own
#: flags, added once per module) and ``run_engine(args, prepared, progress) -> HuntResult``.
ENGINE_MODULES: dict[str, str | None] = {
    "embedded": None,
    "elasticsearch": "sigmahunt.engines.elastic",
    "opensearch": "sigmahunt.engines.elastic",
    "spark": "sigmahunt.engines.spark",
}


def _engine_modules() -> list[Any]:
    names = sorted({m for m in ENGINE_MODULES.values() if m})
    return [__import__(name, fromlist=["add_hunt_options"]) for name in names]


#: Modules that contribute subcommands (each defines ``add_parser(subparsers)``).
COMMAND_MODULES: tuple[str, ...] = (
    "sigmahunt.ruletest",
    "sigmahunt.report.timeline",
    "sigmahunt.report.explain",
    "sigmahunt.engines.elastic.ingest",
    "sigmahunt.convert",
    "sigmahunt.notebooks",
)


def _add_rule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", "-r", action="append", default=[], required=False,
                        help="Sigma rule file or folder (repeatable)")
    parser.add_argument("--placeholders", help="YAML file of placeholder values for |expand")
    parser.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: stores commit only whole sources, outputs are atomic."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    parser = build_parser()
    args = parser.parse_args(argv)
    err = Console(stderr=True, highlight=False)
    try:
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(handler(args, err))
    except (UsageError, NothingToHunt) as error:
        err.print(f"[bold red]sigmahunt:[/] {error}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("[bold red]sigmahunt:[/] interrupted; no partial output was written and the store "
                  "holds only complete sources")
        return 130


def cmd_ingest(args: argparse.Namespace, err: Console) -> int:
    report = ingest_into_store(args.logs, args.store, args.format_in)
    data = {
        "files_read": report.files_read,
        "files_unchanged": report.files_unchanged,
        "events_stored": report.events_stored,
        "events_unreadable": report.events_unreadable,
        "unreadable": [u.__dict__ for u in report.unreadable],
    }
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        err.print(f"stored {report.events_stored:,} events from {report.files_read} files "
                  f"({report.files_unchanged} unchanged, skipped); unreadable {report.events_unreadable:,}")
        for item in report.unreadable[:10]:
            err.print(f"[yellow]unreadable[/] {item.source} ({item.position}): {item.reason}")
    return EXIT_OK


def cmd_rules_check(args: argparse.Namespace) -> int:
    placeholders = load_placeholders(args.placeholders)
    prepared = prepare_rules(args.paths, placeholders, cache_dir=False if args.no_cache else None,
                             filters=args.filters)
    report = {
        "loaded": len(prepared.compiled) + len(prepared.correlations),
        "failed": [f.to_dict() for f in prepared.failures],
        "inapplicable": [{"path": r.meta.path, "rule_id": r.meta.rule_id, "reason": r.inapplicable}
                         for r in prepared.inapplicable],
        "files": prepared.files,
    }
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        out = Console(highlight=False)
        out.print(f"{report['loaded']} rules usable from {prepared.files} files, "
                  f"{len(prepared.failures)} failed, {len(report['inapplicable'])} loaded but not about "
                  f"Windows event logs")
        for failure in prepared.failures:
            out.print(f"[red]FAILED[/] {failure.path}: {failure.reason}")
    return EXIT_OK if prepared.compiled or not prepared.failures else EXIT_USAGE


def _selection(args: argparse.Namespace) -> RuleSelection:
    return RuleSelection(
        min_level=args.level,
        statuses=tuple(s.lower() for s in args.status),
        tags=tuple(args.tag),
        rule_ids=tuple(args.rule_id),
    )


def cmd_hunt(args: argparse.Namespace, err: Console) -> int:
    if not args.rules:
        raise UsageError("no rules: pass --rules PATH (a Sigma rule file or folder)")
    if not args.logs and not args.store and args.engine == "embedded":
        raise UsageError("no logs: pass log files or folders, or --store of an earlier hunt")
    if args.format == "parquet" and not args.output:
        raise UsageError("--format parquet needs --output FILE")
    placeholders = load_placeholders(args.placeholders)
    try:
        time_filter = time_filter_from_args(args)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.archive_password:  # read by the log reader, inherited by worker processes
        os.environ[ARCHIVE_PASSWORD_ENV] = args.archive_password
    show_progress = not args.quiet and err.is_terminal
    engine_module = ENGINE_MODULES.get(args.engine)
    with _progress_bars(err, show_progress) as bars:
        if engine_module:
            module = __import__(engine_module, fromlist=["run_engine"])
            prepared = prepare_rules(args.rules, placeholders, cache_dir=False if args.no_cache else None,
                                     selection=_selection(args), filters=args.filters)
            result = module.run_engine(args, prepared, bars.callbacks())
            if time_filter is not None:  # these engines return detections: filter those
                records = time_filter.records(result.records)
                result.summary.detections = len(records)
                result.summary.detections_by_level = level_counts(records)
                result = HuntResult(records, result.summary, result.rules)
        else:
            result = run_hunt(
                args.logs,
                args.rules,
                store=args.store,
                placeholders=placeholders,
                selection=_selection(args),
                format_in=args.format_in,
                cache_dir=False if args.no_cache else None,
                progress=bars.callbacks(),
                filters=args.filters,
                workers=None,  # one per two cores: the console script's __main__ is guarded
                event_filter=time_filter,
            )
    _write_detections(result, args)
    outputs = {"detections": args.output or "-"}
    if args.report:
        from sigmahunt.report import write_report

        write_report(result, args.report)
        outputs["report"] = args.report
    if args.navigator:
        from sigmahunt.report import write_navigator

        write_navigator(result, args.navigator)
        outputs["navigator"] = args.navigator
    if args.summary:
        write_atomically(args.summary, orjson.dumps(result.summary.to_dict(), option=orjson.OPT_INDENT_2))
        outputs["summary"] = args.summary
    if args.explain is not None:
        from sigmahunt.report import explain_result, print_explanations

        print_explanations(explain_result(result, limit=args.explain or None, placeholders=placeholders),
                           console=err)
    if args.json:
        from sigmahunt.report import print_summary_json

        print_summary_json(result, outputs=outputs)
    elif not args.quiet:
        _print_summary(result, err)
    return EXIT_OK


def _write_detections(result: HuntResult, args: argparse.Namespace) -> None:
    frame = result.dataframe
    if args.format == "table":
        to_file = bool(args.output) or not sys.stdout.isatty()
        console = Console(file=open(args.output, "w", encoding="utf-8") if args.output else None,
                          highlight=False, width=180 if to_file else None)
        console.print(detections_table(frame, args.limit))
        if len(frame) > args.limit:
            console.print(f"... {len(frame) - args.limit} more detections (use --format jsonl for all)")
        return
    data = render(frame, args.format)
    if args.output:
        write_atomically(args.output, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def detections_table(frame: pd.DataFrame, limit: int) -> Table:
    table = Table(title=f"{len(frame)} detections", show_lines=False)
    for name in ("level", "time (UTC)", "rule", "computer", "EventID", "key field"):
        table.add_column(name, overflow="fold")
    for row in frame.head(limit).itertuples(index=False):
        level = str(row.level)
        when = "" if pd.isna(row.timestamp) else row.timestamp.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(f"[{LEVEL_STYLE.get(level, '')}]{level}[/]", when, str(row.rule_title),
                      str(row.computer or ""), str(row.event_id or ""), _key_text(row))
    return table


def _key_text(row: Any) -> str:
    if isinstance(getattr(row, "group", None), dict):  # a correlation: what was counted, over which window
        group = ", ".join(f"{k}={v}" for k, v in row.group.items()) or "all"
        return f"{row.correlation_type} {row.value:g} ({group}), {len(row.events)} events from {row.window_start}"
    return _key_field(row.event)


def _key_field(event: dict[str, Any]) -> str:
    for name in KEY_FIELDS:
        value = event.get(name)
        if value:
            text = str(value)
            return f"{name}: {text[:160]}{'…' if len(text) > 160 else ''}"
    return ""


def _print_summary(result: HuntResult, err: Console) -> None:
    s = result.summary
    levels = ", ".join(f"{n} {lvl}" for lvl, n in s.detections_by_level.items()) or "none"
    err.print(
        f"events read {s.events_read:,}, unreadable {s.events_unreadable:,}; rules loaded {s.rules_loaded:,} "
        f"(not about Windows logs {s.rules_inapplicable:,}), failed {s.rules_failed:,}; "
        f"detections {s.detections:,} ({levels}); {s.seconds:.1f} s"
    )
    for item in s.unreadable[:10]:
        err.print(f"[yellow]unreadable[/] {item.source} ({item.position}): {item.reason}")
    if len(s.unreadable) > 10:
        err.print(f"[yellow]... {len(s.unreadable) - 10} more unreadable (see --summary FILE)[/]")
    for failure in s.failed_rules[:10]:
        err.print(f"[red]rule failed[/] {failure['path']}: {failure['reason']}")
    if len(s.failed_rules) > 10:
        err.print(f"[red]... {len(s.failed_rules) - 10} more failed rules (see sigmahunt rules check)[/]")


class _ProgressBars:
    """Rich progress bars on stderr when it is a terminal; silent otherwise."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn(),
            TextColumn("{task.fields[events]:,} events"), TimeElapsedColumn(),
            console=console, transient=True, disable=not enabled,
        )
        self.task = self.progress.add_task("reading logs", total=None, events=0)

    def __enter__(self) -> _ProgressBars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def callbacks(self) -> HuntProgress:
        events = [0]

        def on_events(n: int) -> None:
            events[0] += n
            self.progress.update(self.task, events=events[0])

        return HuntProgress(
            on_rules=lambda n: self.progress.update(self.task, description=f"hunting with {n:,} rules"),
            on_file=lambda path: None,
            on_events=on_events,
            total_bytes=lambda n: self.progress.update(self.task, total=n),
            on_bytes=lambda n: self.progress.advance(self.task, n),
        )


def _progress_bars(console: Console, enabled: bool) -> _ProgressBars:
    return _ProgressBars(console, enabled)


if __name__ == "__main__":
    raise SystemExit(main())
