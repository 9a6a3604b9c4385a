"""What an analyst opens after the hunt: the HTML report, timelines, the ATT&CK Navigator
layer, explanations of why a rule matched, and the run summary for scripts.

Every output starts from the hunt's detections DataFrame (``HuntResult.dataframe``), so the
command line, the Python API and every file agree.

* :func:`render_report` / :func:`write_report`: one self-contained HTML page;
* :func:`timeline_rows` / :func:`write_timeline` / :func:`timeline_frame`: a
  Timesketch-ready CSV/JSONL timeline (``sigmahunt timeline``), with every event on request;
* :func:`navigator_layer` / :func:`write_navigator`: an ATT&CK Navigator layer (v4.5);
* :func:`explain_record` / :func:`explain_result` / :func:`print_explanations`: which
  selection, field, value and modifier matched (``sigmahunt explain``);
* :func:`run_summary` / :func:`print_summary_json`: the run summary as JSON.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "render_report": "html", "write_report": "html",
    "navigator_layer": "navigator", "write_navigator": "navigator",
    "timeline_rows": "timeline", "write_timeline": "timeline", "timeline_frame": "timeline",
    "explain_record": "explain", "explain_result": "explain", "print_explanations": "explain",
    "run_summary": "summary", "print_summary_json": "summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy: `sigmahunt --help` need not import the report code
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(import_module(f"sigmahunt.report.{module}"), name)
