"""``sigmahunt explain``: why a rule matched an event — which selection, field, value, modifier.

A detection is re-evaluated, independently of the engine that found it: the rule's YAML is
loaded again with pySigma (from the detection's ``rule_path``), and each item of each named
selection (``rule.detection.detections``: selection -> SigmaDetection -> SigmaDetectionItem
with field, modifiers and values) is tested on the detection's event with the plain
reference evaluator (:mod:`sigmahunt.engines.reference`), through the field renames of the
log-source variant that selects the event (``Image`` is ``NewProcessName`` in Security
4688). The output names the condition and its verdict, each selection true or false, and
for each item the values that matched and the event's actual value.

Correlation detections are explained by their window (type, group, events, rules) and, for
their first few events, by the explanation of the base rule that matched each.

Sigma filters the hunt applied to a rule (``--filters``, or filter documents among the
rules) are applied again, by pySigma, and their selections are shown by the filter's title.
A placeholder rule needs the same ``--placeholders`` file as the hunt.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sigma.conditions import ConditionAND
from sigma.modifiers import reverse_modifier_mapping
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import (
    SigmaBool,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
)

from sigmahunt.engines import reference
from sigmahunt.logsources import resolve_logsource
from sigmahunt.report.common import as_list, clean, detections_frame, iso_utc, iter_rows

DEFAULT_LIMIT = 10
#: Constituent events explained per correlation detection.
CORRELATION_EVENTS = 3
#: Characters of an event value shown in text output.
TEXT_VALUE_CHARS = 300


class ExplainError(Exception):
    """The rule of a detection cannot be loaded again."""


# -- rule loading -------------------------------------------------------------------------------

@dataclass
class RuleLoader:
    """Loads (and caches) pySigma rules by file and id, with placeholder values applied and
    the Sigma filters the hunt applied to them (``filters``: rule key -> [(title, SigmaFilter)],
    the key being the rule id, else ``path::title``)."""

    placeholders: Mapping[str, Any] | None = None
    filters: Mapping[str, list[tuple[str, Any]]] = field(default_factory=dict)
    #: Per filtered rule (by ``id()``): pySigma's generated selection names -> shown names.
    labels: dict[int, dict[str, str]] = field(default_factory=dict)
    _files: dict[str, list[SigmaRule]] = field(default_factory=dict)
    _filtered: set[int] = field(default_factory=set)

    def rule(self, path: str | None, rule_id: str | None = None, title: str | None = None) -> SigmaRule:
        rule = self._find(path, rule_id, title)
        key = str(rule.id) if rule.id else f"{path}::{rule.title}"
        if key in self.filters and id(rule) not in self._filtered:
            self._apply_filters(rule, self.filters[key])
        return rule

    def _apply_filters(self, rule: SigmaRule, filters: list[tuple[str, Any]]) -> None:
        labels: dict[str, str] = {}
        for filter_title, sigma_filter in filters:
            before = set(rule.detection.detections)
            filtered = sigma_filter.apply_on_rule(rule)
            if filtered is not rule:  # pySigma filters the rule in place; keep the cached object current
                rule.detection = filtered.detection
            for name in rule.detection.detections:
                if name not in before:
                    shown = re.sub(r"^_filt_[a-z0-9]+_", "", name)
                    labels[name] = f"filter '{filter_title}': {shown}"
        self._filtered.add(id(rule))
        self.labels[id(rule)] = labels

    def _find(self, path: str | None, rule_id: str | None, title: str | None) -> SigmaRule:
        if not path:
            raise ExplainError("the detection names no rule file")
        rules = self._files.get(path)
        if rules is None:
            from sigmahunt.rules.loader import load_rule_file

            loaded = load_rule_file(Path(path))
            if not loaded.rules and loaded.failures:
                raise ExplainError(f"{path}: {loaded.failures[0].reason}")
            rules = [item.rule for item in loaded.rules]
            if self.placeholders:
                from sigmahunt.engines.embedded.compiler import apply_placeholders

                for rule in rules:
                    apply_placeholders(rule, self.placeholders)
            self._files[path] = rules
        for rule in rules:
            if rule_id and str(rule.id or "") == rule_id:
                return rule
        for rule in rules:
            if title and rule.title == title:
                return rule
        if len(rules) == 1 and not rule_id:
            return rules[0]
        raise ExplainError(f"{path}: no rule with id {rule_id or '?'} (the file changed since the hunt?)")


# -- values and modifiers as the rule writes them -----------------------------------------------

def modifier_names(item: SigmaDetectionItem) -> list[str]:
    return [reverse_modifier_mapping.get(m.__name__, m.__name__) for m in item.modifiers]


def show_value(value: Any) -> str:
    """A Sigma value as the rule writes it (wildcards as ``*``/``?``)."""
    if isinstance(value, SigmaNull):
        return "null"
    if isinstance(value, SigmaExists):
        return "true" if value.exists else "false"
    if isinstance(value, SigmaBool):
        return "true" if value.boolean else "false"
    if isinstance(value, SigmaNumber):
        return str(value.number)
    if isinstance(value, SigmaString):
        return str(value)
    if isinstance(value, SigmaRegularExpression):
        return str(value.regexp)
    if isinstance(value, SigmaCIDRExpression):
        return str(value.cidr)
    if isinstance(value, SigmaCompareExpression):
        return f"{value.op.name.lower()} {value.number.number}"
    if isinstance(value, SigmaFieldReference):
        return f"field {value.field}"
    if isinstance(value, SigmaExpansion):
        return " | ".join(show_value(v) for v in value.values)
    if isinstance(value, SigmaTimestampPart):
        return f"{value.timestamp_part.name.lower()} {value.number}"
    return str(value)


def _as_written(value: Any) -> str:
    """A value exactly as the rule's YAML writes it, where pySigma kept that text."""
    original = getattr(value, "original", None) if isinstance(value, SigmaString) else None
    return original if isinstance(original, str) else show_value(value)


# -- evaluation ----------------------------------------------------------------------------------

def _item(item: SigmaDetectionItem, event: Mapping[str, Any], field_map: dict[str, str]) -> dict[str, Any]:
    values = list(item.value)
    originals = list(getattr(item, "original_value", None) or [])
    shown = ([_as_written(o) for o in originals] if len(originals) == len(values)
             else [show_value(v) for v in values])
    every = item.value_linking is ConditionAND
    if item.field is None:  # keywords: any field of the event
        hits: list[int] = []
        actual_fields: dict[str, str] = {}
        for i, value in enumerate(values):
            for key, text in event.items():
                if text is not None and not str(key).startswith("_") and reference._keyword(value, str(text)):
                    hits.append(i)
                    actual_fields.setdefault(str(key), str(text))
                    break
        matched = bool(values) and (len(hits) == len(values) if every else bool(hits))
        return {"field": None, "event_field": None, "modifiers": modifier_names(item), "values": shown,
                "linking": "all" if every else "any", "matched_values": [shown[i] for i in hits],
                "matched": matched, "actual": actual_fields or None}
    name = field_map.get(item.field, item.field)
    hits = [i for i, value in enumerate(values) if reference._field_value(name, value, event, field_map)]
    matched = bool(values) and (len(hits) == len(values) if every else bool(hits))
    actual = reference._get(event, name)
    out: dict[str, Any] = {
        "field": item.field, "event_field": name, "modifiers": modifier_names(item), "values": shown,
        "linking": "all" if every else "any", "matched_values": [shown[i] for i in hits], "matched": matched,
        "actual": None if actual is None else str(actual),
    }
    references = [v.field for v in values if isinstance(v, SigmaFieldReference)]
    if references:
        other = field_map.get(references[0], references[0])
        referenced = reference._get(event, other)
        out["referenced"] = {"field": references[0], "actual": None if referenced is None else str(referenced)}
    return out


def _detection(detection: SigmaDetection, event: Mapping[str, Any], field_map: dict[str, str]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for position, item in enumerate(detection.detection_items):
        if isinstance(item, SigmaDetection):
            sub = _detection(item, event, field_map)
            sub["alternative"] = position + 1
            items.append(sub)
        else:
            items.append(_item(item, event, field_map))
    every = detection.item_linking is ConditionAND
    results = [i["matched"] for i in items]
    matched = bool(results) and (all(results) if every else any(results))
    return {"linking": "all" if every else "any", "matched": matched, "items": items}


def explain_event(rule: SigmaRule, event: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> dict[
        str, Any]:
    """The explanation of ``rule`` on one event (string values, as the store holds them).

    ``labels``: names to show for selections (a filter's, see :class:`RuleLoader`).
    """
    labels = labels or {}
    resolution = resolve_logsource(rule.logsource)
    variant = None
    if not resolution.inapplicable:
        variant = next((v for v in resolution.variants if reference._selected(v, event)), None)
    field_map = dict(variant.field_map) if variant is not None else {}
    selections = []
    for name, detection in rule.detection.detections.items():
        result = _detection(detection, event, field_map)
        result["name"] = labels.get(name, name)
        if name in labels:
            result["filter"] = True
        selections.append(result)
    conditions = [str(c) for c in rule.detection.condition]
    for generated, shown in labels.items():  # pySigma's random names -> the filter's own names
        conditions = [c.replace(generated, f"[{shown}]") for c in conditions]
    logsource = {k: v for k, v in (("product", rule.logsource.product), ("category", rule.logsource.category),
                                   ("service", rule.logsource.service)) if v}
    return {
        "condition": conditions,
        "matched": reference.rule_matches(rule, event),
        "logsource": logsource,
        "logsource_selects_event": variant is not None,
        "logsource_variant": variant.describe() if variant is not None else None,
        "field_renames": {k: v for k, v in field_map.items() if k != v},
        "selections": selections,
    }


def _header(record: Mapping[str, Any]) -> dict[str, Any]:
    ts = record.get("timestamp")
    return {
        "rule_id": clean(record.get("rule_id")), "rule_title": clean(record.get("rule_title")),
        "level": clean(record.get("level")), "rule_path": clean(record.get("rule_path")),
        "timestamp": ts if isinstance(ts, str) or ts is None else iso_utc(ts),
        "computer": clean(record.get("computer")), "channel": clean(record.get("channel")),
        "event_id": _id(record.get("event_id")), "source": clean(record.get("source")),
        "position": clean(record.get("position")),
    }


def _id(value: Any) -> Any:
    value = clean(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def explain_record(record: Mapping[str, Any], *, loader: RuleLoader | None = None,
                   rule_paths: Mapping[str, str] | None = None,
                   correlation_events: int = CORRELATION_EVENTS) -> dict[str, Any]:
    """Explain one detection record (a row of the detections DataFrame / a JSONL line).

    ``rule_paths``: rule id -> file, to explain the events of correlation detections by
    their base rules (a HuntResult knows them; see :func:`explain_result`).
    """
    loader = loader or RuleLoader()
    out = _header(record)
    if record.get("correlation_type"):
        out["correlation"] = _correlation(record, loader, rule_paths or {}, correlation_events)
        return out
    try:
        rule = loader.rule(out["rule_path"], out["rule_id"], out["rule_title"])
    except ExplainError as error:
        out["error"] = str(error)
        return out
    out.update(explain_event(rule, clean(record.get("event")) or {}, loader.labels.get(id(rule))))
    applied = [t for t, _ in loader.filters.get(str(rule.id) if rule.id else f"{rule_path_of(out)}::{rule.title}", [])]
    if applied:
        out["filters"] = applied
    return out


def rule_path_of(explanation: Mapping[str, Any]) -> str:
    return str(explanation.get("rule_path") or "")


def _correlation(record: Mapping[str, Any], loader: RuleLoader, rule_paths: Mapping[str, str],
                 limit: int) -> dict[str, Any]:
    events = [clean(e) or {} for e in as_list(record.get("events"))]
    event_rules = [[str(r) for r in as_list(rules)] for rules in as_list(record.get("event_rules"))]
    rules_seen: list[str] = []
    for rules in event_rules:
        rules_seen.extend(r for r in rules if r not in rules_seen)
    out: dict[str, Any] = {
        "type": clean(record.get("correlation_type")), "group": clean(record.get("group")),
        "window_start": clean(record.get("window_start")), "window_end": clean(record.get("window_end")),
        "value": clean(record.get("value")), "events": len(events) or len(as_list(record.get("event_ids"))),
        "rules": rules_seen, "explained_events": [],
    }
    for event, rules in list(zip(events, event_rules))[:limit]:
        for rule_id in rules[:1]:
            path = rule_paths.get(rule_id)
            entry: dict[str, Any] = {"rule_id": rule_id, "event": {k: event.get(k) for k in (
                "TimeCreated", "Computer", "EventID") if event.get(k) is not None}}
            try:
                rule = loader.rule(path, rule_id)
                entry["rule_title"] = rule.title
                entry.update(explain_event(rule, event, loader.labels.get(id(rule))))
            except ExplainError as error:
                entry["error"] = str(error)
            out["explained_events"].append(entry)
    return out


def rule_paths_of(result: Any) -> dict[str, str]:
    """Rule id -> file for every rule a HuntResult loaded (``generate: false`` ones included)."""
    prepared = getattr(result, "rules", None)
    out: dict[str, str] = {}
    for compiled in getattr(prepared, "compiled", None) or []:
        if compiled.meta.rule_id:
            out.setdefault(compiled.meta.rule_id, compiled.meta.path)
        if getattr(compiled.meta, "name", ""):
            out.setdefault(compiled.meta.name, compiled.meta.path)
    return out


def filters_of(result: Any) -> dict[str, list[tuple[str, Any]]]:
    """Rule key -> [(filter title, SigmaFilter)] the hunt applied (``PreparedRules.filtered``)."""
    prepared = getattr(result, "rules", None)
    applied = getattr(prepared, "filtered", None) or {}
    loaded = getattr(prepared, "filters", None) or []
    if not applied or not loaded:
        return {}

    def title(item: Any) -> str:  # as sigmahunt.rules.filters names them
        return item.filter.title or (str(item.filter.id) if item.filter.id else item.path)

    by_title: dict[str, Any] = {}
    for item in loaded:
        by_title.setdefault(title(item), item.filter)
    return {key: [(t, by_title[t]) for t in titles if t in by_title] for key, titles in applied.items()}


def explain_result(result: Any, *, limit: int | None = DEFAULT_LIMIT, rule_ids: Sequence[str] = (),
                   placeholders: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Explanations of a hunt's detections, most severe first (at most ``limit``), with the
    Sigma filters the hunt applied to each rule."""
    frame = detections_frame(result)
    loader = RuleLoader(placeholders, filters_of(result))
    paths = rule_paths_of(result)
    wanted = {r.lower() for r in rule_ids}
    out: list[dict[str, Any]] = []
    for record in iter_rows(frame):
        if wanted and str(record.get("rule_id") or "").lower() not in wanted:
            continue
        if limit is not None and len(out) >= limit:
            break
        out.append(explain_record(record, loader=loader, rule_paths=paths))
    return out


# -- text ----------------------------------------------------------------------------------------

def _short(text: Any, limit: int = TEXT_VALUE_CHARS) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def _item_lines(item: dict[str, Any], indent: str) -> list[tuple[str, str]]:
    mark = "✔" if item["matched"] else "✘"
    style = "green" if item["matched"] else "red"
    if "items" in item:  # an alternative (a map in a list of maps)
        lines = [(f"{indent}{mark} alternative {item.get('alternative', '')} ({item['linking']} of)", style)]
        for sub in item["items"]:
            lines.extend(_item_lines(sub, indent + "    "))
        return lines
    name = item["field"] if item["field"] is not None else "<keywords>"
    modifiers = "".join("|" + m for m in item["modifiers"])
    values = item["values"]
    if len(values) == 1:
        wanted = repr(values[0])
    elif len(values) > 6:
        wanted = f"{'all' if item['linking'] == 'all' else 'any'} of {len(values)} values"
    else:
        wanted = f"{'all' if item['linking'] == 'all' else 'any'} of [" + ", ".join(repr(v) for v in values) + "]"
    line = f"{indent}{mark} {name}{modifiers}: {_short(wanted)}"
    if item["matched_values"] and (len(values) > 1 or item["field"] is None):
        line += "  — matched " + ", ".join(repr(v) for v in item["matched_values"])
    lines = [(line, style)]
    if item["field"] is None:
        for key, value in (item.get("actual") or {}).items():
            lines.append((f"{indent}    in event field {key} = {_short(repr(value))}", "dim"))
    else:
        actual = "absent" if item["actual"] is None else _short(repr(item["actual"]))
        logged = item["event_field"]
        renamed = f" (Sigma field {item['field']})" if logged != item["field"] else ""
        lines.append((f"{indent}    event {logged}{renamed} = {actual}", "dim"))
        if item.get("referenced"):
            ref = item["referenced"]
            lines.append((f"{indent}    referenced field {ref['field']} = "
                          f"{'absent' if ref['actual'] is None else _short(repr(ref['actual']))}", "dim"))
    return lines


def _rule_lines(explanation: dict[str, Any], indent: str) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    if explanation.get("error"):
        return [(f"{indent}cannot explain: {explanation['error']}", "yellow")]
    source = ", ".join(f"{k} {v}" for k, v in explanation.get("logsource", {}).items())
    where = explanation.get("logsource_variant") or "no variant selects this event"
    lines.append((f"{indent}log source: {source or '(any)'} -> {where}", ""))
    if explanation.get("filters"):
        lines.append((f"{indent}filters applied: {', '.join(explanation['filters'])}", ""))
    for condition in explanation.get("condition", []):
        verdict = "true" if explanation.get("matched") else "false"
        lines.append((f"{indent}condition: {condition}  => {verdict}", "bold"))
    for selection in explanation.get("selections", []):
        mark = "✔" if selection["matched"] else "✘"
        count = len(selection["items"])
        how = f" ({selection['linking']} of {count})" if count > 1 else ""
        lines.append((f"{indent}{mark} {selection['name']}{how}", "bold green" if selection["matched"] else "bold red"))
        for item in selection["items"]:
            lines.extend(_item_lines(item, indent + "    "))
    return lines


def text_lines(explanations: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """Explanations as (line, rich style) pairs; the text is plain (print it without markup)."""
    lines: list[tuple[str, str]] = []
    for number, e in enumerate(explanations, 1):
        if lines:
            lines.append(("", ""))
        lines.append((f"#{number} [{e.get('level')}] {e.get('rule_title')}  ({e.get('rule_id') or 'no id'})", "bold"))
        when = (e.get("timestamp") or "").replace("T", " ").replace(".000000Z", "Z")
        lines.append((f"    event: {e.get('computer') or '(no computer)'}  {when}  {e.get('channel') or ''} "
                      f"EventID {e.get('event_id')}  ({e.get('source')}, {e.get('position')})", ""))
        lines.append((f"    rule file: {e.get('rule_path')}", "dim"))
        correlation = e.get("correlation")
        if correlation:
            lines.append((f"    correlation {correlation['type']}: {correlation['events']} events of "
                          f"{', '.join(correlation['rules'])} in {correlation['window_start']} – "
                          f"{correlation['window_end']}, group {orjson.dumps(correlation['group']).decode()}, "
                          f"value {correlation['value']}", ""))
            for k, sub in enumerate(correlation["explained_events"], 1):
                ev = sub.get("event", {})
                lines.append((f"    event {k}: {ev.get('Computer', '')} {ev.get('TimeCreated', '')} EventID "
                              f"{ev.get('EventID', '')} by rule {sub.get('rule_title') or sub['rule_id']}", ""))
                lines.extend(_rule_lines(sub, "        "))
            continue
        lines.extend(_rule_lines(e, "    "))
    return lines


def print_explanations(explanations: list[dict[str, Any]], console: Any = None, as_json: bool = False) -> None:
    """Print explanations to a rich Console (text; colours only on a terminal) or as JSON."""
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(explanations, option=orjson.OPT_INDENT_2, default=str) + b"\n")
        sys.stdout.buffer.flush()
        return
    from rich.console import Console
    from rich.text import Text

    console = console or Console(highlight=False)
    for line, style in text_lines(explanations):
        console.print(Text(line, style=style or ""), soft_wrap=True)


# -- command line --------------------------------------------------------------------------------

DESCRIPTION = """\
Hunt, then explain detections: for each, the rule's condition and verdict, each named selection
true or false, and for each detection item the field, modifiers and values, which of them
matched and the event's actual value. The rule is re-evaluated on the event by the plain
reference evaluator, independently of the engine that found it."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """The ``explain`` subcommand (registered through ``sigmahunt.cli.COMMAND_MODULES``)."""
    from sigmahunt.report.cli_common import add_hunt_options, handle_usage

    parser = subparsers.add_parser("explain", help="why each detection matched: selection, field, value, modifier",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="*", help="log files or folders")
    add_hunt_options(parser)
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                        help=f"explain at most N detections, most severe first (default {DEFAULT_LIMIT}; 0: all)")
    parser.add_argument("--json", action="store_true", help="print the explanations as JSON")
    parser.set_defaults(handler=handle_usage(cmd_explain))
    return parser


def cmd_explain(args: argparse.Namespace, err: Any) -> int:
    from sigmahunt.report.cli_common import UsageProblem, hunt_from_args
    from sigmahunt.rules.prepare import load_placeholders

    if args.limit < 0:
        raise UsageProblem("--limit must be 0 (all) or more")
    with hunt_from_args(args, err) as (result, _, _):
        explanations = explain_result(result, limit=args.limit or None,
                                      placeholders=load_placeholders(args.placeholders))
    try:
        print_explanations(explanations, as_json=args.json)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        from sigmahunt.report.cli_common import silence_stdout

        silence_stdout()
        return 0
    if not args.quiet:
        total = len(result.records)
        err.print(f"explained {len(explanations):,} of {total:,} detections"
                  + (" (use --limit N or --rule-id ID for others)" if len(explanations) < total else ""))
    return 0
