"""What the ``timeline`` and ``explain`` subcommands share: hunt options and running the hunt.

The options mirror ``sigmahunt hunt``'s (rules, placeholders, cache, store, input format,
rule selection, ``--since/--until/--computer``, ``--quiet``).
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import polars as pl

from sigmahunt.cache import NO_CACHE_HELP
from sigmahunt.results import LEVELS
from sigmahunt.timefilter import TimeFilter, add_filter_options, from_args


class UsageProblem(ValueError):
    """Bad arguments (the subcommand exits 2 with the message)."""


def add_hunt_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", "-r", action="append", default=[], metavar="PATH",
                        help="Sigma rule file or folder (repeatable)")
    parser.add_argument("--placeholders", help="YAML file of placeholder values for |expand")
    parser.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    parser.add_argument("--store", help="keep normalised events in this folder (re-hunt without re-parsing)")
    parser.add_argument("--format-in", help="force the log format instead of detecting it per file")
    parser.add_argument("--level", choices=LEVELS, help="minimum rule level")
    parser.add_argument("--status", action="append", default=[], help="only rules with this status (repeatable)")
    parser.add_argument("--tag", action="append", default=[], help="only rules with this tag (repeatable)")
    parser.add_argument("--rule-id", action="append", default=[], help="only this rule id (repeatable)")
    parser.add_argument("--filters", action="append", default=[], metavar="PATH",
                        help="Sigma filter file or folder, applied to the rules it targets (repeatable)")
    add_filter_options(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="nothing on stderr but errors")


def selection_of(args: argparse.Namespace) -> Any:
    from sigmahunt.rules.prepare import RuleSelection

    return RuleSelection(
        min_level=getattr(args, "level", None),
        statuses=tuple(s.lower() for s in getattr(args, "status", []) or []),
        tags=tuple(getattr(args, "tag", []) or []),
        rule_ids=tuple(getattr(args, "rule_id", []) or []),
    )


def time_filter_of(args: argparse.Namespace) -> TimeFilter | None:
    try:
        return from_args(args)
    except ValueError as error:
        raise UsageProblem(str(error)) from None


def run_filtered_hunt(logs: Sequence[str], rules: Sequence[str], time_filter: TimeFilter | None,
                      **options: Any) -> Any:
    """``run_hunt``, with events filtered before matching where ``run_hunt`` takes an
    ``event_filter`` (a batch -> batch callable); otherwise its detections are filtered."""
    from sigmahunt.hunting import HuntResult, run_hunt
    from sigmahunt.results import level_counts

    if time_filter is not None and "event_filter" in inspect.signature(run_hunt).parameters:
        return run_hunt(logs, rules, event_filter=time_filter, **options)  # type: ignore[call-arg]
    result = run_hunt(logs, rules, **options)
    if time_filter is None:
        return result
    records = time_filter.records(result.records)
    result.summary.detections = len(records)
    result.summary.detections_by_level = level_counts(records)
    return HuntResult(records, result.summary, result.rules)


@contextmanager
def hunt_from_args(args: argparse.Namespace, err: Any, keep_events: bool = False) -> Iterator[
        tuple[Any, str | None, TimeFilter | None]]:
    """Run the hunt the options describe; yields (result, store folder or None, time filter).

    ``keep_events``: the events must be readable again afterwards (``--all-events``): the
    hunt keeps them in ``--store`` or, without one, in a temporary store removed at the end.
    """
    from sigmahunt.rules.prepare import load_placeholders

    if not args.rules:
        raise UsageProblem("no rules: pass --rules PATH (a Sigma rule file or folder)")
    if not args.logs and not args.store:
        raise UsageProblem("no logs: pass log files or folders, or --store of an earlier hunt")
    time_filter = time_filter_of(args)
    temporary = None
    store = args.store
    if keep_events and not store:
        temporary = tempfile.mkdtemp(prefix="sigmahunt-events-")
        store = temporary
    try:
        show = not args.quiet and getattr(err, "is_terminal", False)
        status = err.status("hunting") if show else _nothing()
        with status:
            result = run_filtered_hunt(
                args.logs, args.rules, time_filter,
                store=store,
                placeholders=load_placeholders(args.placeholders),
                selection=selection_of(args),
                format_in=args.format_in,
                cache_dir=False if args.no_cache else None,
                filters=getattr(args, "filters", None) or (),
            )
        yield result, store, time_filter
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def stored_events(store_root: str | None, logs: Sequence[str], time_filter: TimeFilter | None) -> Iterator[
        pl.DataFrame]:
    """The hunted events again, from the store the hunt kept them in (filtered like the hunt)."""
    from sigmahunt.hunting import expand_log_paths
    from sigmahunt.store import EventStore

    if store_root is None:
        return
    store = EventStore(store_root)
    paths = [str(p) for p in expand_log_paths(logs)] if logs else None
    for batch in store.iter_batches(paths):
        if time_filter is not None:
            batch = time_filter.frame(batch)
        if batch.height:
            yield batch


def handle_usage(handler: Any) -> Any:
    """Wrap a subcommand handler: a UsageProblem prints its message and exits 2."""

    def wrapped(args: argparse.Namespace, err: Any) -> int:
        from sigmahunt.hunting import NothingToHunt

        try:
            return int(handler(args, err))
        except (UsageProblem, NothingToHunt) as error:
            from rich.markup import escape

            err.print(f"[bold red]sigmahunt {escape(str(args.command))}:[/] {escape(str(error))}")
            return 2

    return wrapped


def silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
