"""The run summary for scripts (``--json``): the hunt's numbers plus what the detections span.

``run_summary(result)`` is :meth:`HuntSummary.to_dict` (events read and unreadable, rules
loaded/failed/inapplicable, detections and detections by level, seconds, unreadable and
failed lists) plus ``hosts`` (computers with detections), ``first``/``last`` (UTC ISO times
of the detections), ``rules_fired``, ``techniques`` (ATT&CK ids detected, sorted) and, when
given, ``outputs`` (what was written where). Deterministic apart from ``seconds``.
"""

from __future__ import annotations

import sys
from typing import IO, Any

import orjson

from sigmahunt.report.attack import normalise_technique, technique_sort_key
from sigmahunt.report.common import as_list, detections_frame, iso_utc


def run_summary(result: Any, outputs: dict[str, str] | None = None) -> dict[str, Any]:
    summary = result.summary.to_dict() if hasattr(result, "summary") else {}
    frame = detections_frame(result)
    if len(frame):
        times = frame["timestamp"].dropna()
        hosts = sorted({str(c) for c in frame["computer"].dropna() if str(c)})
        rules = {str(r) for r in frame["rule_id"].fillna(frame["rule_title"]).dropna()}
        techniques = sorted({t for v in frame["techniques"] for t in
                             (normalise_technique(str(x)) for x in as_list(v)) if t}, key=technique_sort_key)
        first = iso_utc(times.min()) if len(times) else None
        last = iso_utc(times.max()) if len(times) else None
    else:
        hosts, rules, techniques, first, last = [], set(), [], None, None
    summary.update({
        "hosts": len(hosts),
        "first": first,
        "last": last,
        "rules_fired": len(rules),
        "techniques": techniques,
    })
    if outputs:
        summary["outputs"] = dict(outputs)
    return summary


def print_summary_json(result: Any, stream: IO[bytes] | None = None, outputs: dict[str, str] | None = None) -> None:
    """Write :func:`run_summary` as one JSON document (default: to stderr, as the human summary)."""
    out = stream if stream is not None else sys.stderr.buffer
    out.write(orjson.dumps(run_summary(result, outputs), option=orjson.OPT_INDENT_2) + b"\n")
    out.flush()
