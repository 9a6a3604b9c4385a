"""The ``sigmahunt test`` subcommand (registered through ``sigmahunt.cli.COMMAND_MODULES``)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from sigmahunt.results import LEVELS, write_atomically
from sigmahunt.rules.prepare import load_placeholders
from sigmahunt.ruletest.report import print_report, to_json, to_junit
from sigmahunt.ruletest.runner import NothingToTest, RuleTestOptions, run_rule_tests

EXIT_USAGE = 2

DESCRIPTION = """\
Test Sigma rules the way SigmaHQ's CI does, with an open engine.
Positive: every rule with a regression_tests_path must fire on each sample its info.yml lists
(at least match_count times, at least once where none is given). Negative: rules must stay
quiet on --baseline logs, except detections listed in --known-fps.
Exit codes: 0 all passed (skips allowed), 1 a test failed or an unlisted false positive
appeared, 2 bad arguments or nothing to test."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Create the ``test`` subcommand; ``handler(args, err_console)`` returns the exit code."""
    parser = subparsers.add_parser(
        "test", help="run Sigma rules' regression tests and false-positive baselines",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rules", nargs="+", metavar="RULES", help="Sigma rule files or folders")
    parser.add_argument("--regression-root", metavar="DIR",
                        help="folder regression_tests_path is relative to (default: the nearest folder "
                             "above each rule that contains the path's first part, e.g. regression_data)")
    parser.add_argument("--baseline", action="extend", nargs="+", default=[], metavar="LOGS",
                        help="benign log files or folders the rules must stay quiet on (repeatable; "
                             "put RULES first, or end the list with --)")
    parser.add_argument("--known-fps", metavar="FILE",
                        help="allowlist CSV (SigmaHQ's known-FPs.csv format: RuleId;Comment;String)")
    parser.add_argument("--junit", metavar="FILE", help="also write JUnit XML for CI systems to FILE")
    parser.add_argument("--json", action="store_true", help="print results and totals as JSON instead of a table")
    parser.add_argument("--samples", choices=("evtx", "json"), default="evtx",
                        help="read each listed .evtx sample, or the evtx_dump .json rendering beside it")
    parser.add_argument("--require-tests", action="store_true",
                        help="fail test/stable rules without regression_tests_path (SigmaHQ's validation)")
    parser.add_argument("--require-data", action="store_true",
                        help="fail, instead of skip, rules whose regression folder is absent")
    parser.add_argument("--fp-min-level", choices=LEVELS, metavar="LEVEL",
                        help="only rules of this level or higher fail on baseline detections "
                             "(SigmaHQ's goodlog gate ignores low)")
    parser.add_argument("--placeholders", help="YAML file of placeholder values for |expand")
    parser.add_argument("--no-cache", action="store_true", help="do not use the compiled-rule cache")
    parser.set_defaults(handler=cmd_test)
    return parser


def options_from(args: argparse.Namespace) -> RuleTestOptions:
    return RuleTestOptions(
        rules=args.rules,
        regression_root=args.regression_root,
        baselines=args.baseline,
        known_fps=args.known_fps,
        sample_format=args.samples,
        require_tests=args.require_tests,
        require_data=args.require_data,
        fp_min_level=args.fp_min_level,
        placeholders=load_placeholders(args.placeholders),
        cache_dir=False if args.no_cache else None,
    )


def cmd_test(args: argparse.Namespace, err: Console) -> int:
    try:
        report = run_rule_tests(options_from(args))
    except NothingToTest as error:
        err.print(f"[bold red]sigmahunt test:[/] {error}")
        return EXIT_USAGE
    if args.junit:
        write_atomically(args.junit, to_junit(report))
    if args.json:
        sys.stdout.buffer.write(to_json(report))
        sys.stdout.buffer.flush()
        out = Console(file=sys.stderr, highlight=False, quiet=True)
    else:
        out = Console(highlight=False)
    print_report(report, out, err)
    return report.exit_code
