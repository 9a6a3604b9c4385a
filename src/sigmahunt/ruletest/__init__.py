"""``sigmahunt test``: an open test runner for Sigma rules (issue 9).

Two questions before a rule ships, answered as SigmaHQ's CI answers them but without its
closed-source checker: does the rule fire on the attack it describes (regression samples
named by ``regression_tests_path``), and does it stay quiet on normal activity (baseline
logs minus a known-FPs allowlist)?

Modules: :mod:`.discovery` (rules -> info.yml -> cases), :mod:`.positive` (samples, each
read once), :mod:`.baseline` (negative tests, allowlist), :mod:`.report` (table, JSON,
JUnit), :mod:`.runner` (the whole run), :mod:`.command` (the CLI subcommand).
"""

from sigmahunt.ruletest.command import add_parser, cmd_test
from sigmahunt.ruletest.model import (
    BaselineRun,
    CaseResult,
    Kind,
    Outcome,
    RegressionCase,
    RuleInfo,
    RuleTestReport,
)
from sigmahunt.ruletest.runner import NothingToTest, RuleTestOptions, run_rule_tests

__all__ = [
    "BaselineRun", "CaseResult", "Kind", "NothingToTest", "Outcome", "RegressionCase", "RuleInfo",
    "RuleTestOptions", "RuleTestReport", "add_parser", "cmd_test", "run_rule_tests",
]
