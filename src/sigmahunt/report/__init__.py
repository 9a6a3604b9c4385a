"""What an analyst opens after the hunt: the HTML report, timelines, the ATT&CK Navigator
layer, and explanations of why a rule matched an event.

Every output starts from the hunt's detections DataFrame (``HuntResult.dataframe``), so the
command line, the Python API and every file agree.

* :func:`render_report` / :func:`write_report`: one self-contained HTML page;
* :func:`timeline_rows` / :func:`write_timeline`: a Timesketch-ready CSV/JSONL timeline
  (``sigmahunt timeline``), with every event on request;
* :func:`navigator_layer` / :func:`write_navigator`: an ATT&CK Navigator layer (v4.5);
* :func:`explain_record` / :func:`explain_result`: which selection, field, value and
  modifier matched (``sigmahunt explain``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "explain_record",
    "explain_result",
    "navigator_layer",
    "render_report",
    "timeline_rows",
    "write_navigator",
    "write_report",
    "write_timeline",
]


def __getattr__(name: str) -> Any:  # lazy: `sigmahunt --help` should not import the report code
    if name in ("render_report", "write_report"):
        from sigmahunt.report import html

        return getattr(html, name)
    if name in ("navigator_layer", "write_navigator"):
        from sigmahunt.report import navigator

        return getattr(navigator, name)
    if name in ("timeline_rows", "write_timeline"):
        from sigmahunt.report import timeline

        return getattr(timeline, name)
    if name in ("explain_record", "explain_result"):
        from sigmahunt.report import explain

        return getattr(explain, name)
    raise AttributeError(name)
