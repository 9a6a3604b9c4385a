"""Hunting on Elasticsearch/OpenSearch: every rule a query, every hit a detection record.

Flow: each runnable rule is mapped onto the index (:func:`.query.lower_rule`, with field
names resolved case-insensitively against the index mapping, as the embedded engine looks
columns up) and rendered as query DSL. Rules run in batches through ``_msearch`` (one round
trip for many rules); a rule with more hits than one page is re-run with full paging:
point in time + ``search_after`` on ``_shard_doc`` on Elasticsearch, scroll on OpenSearch
(whose point in time has no per-shard tiebreaker, so ``search_after`` could skip hits).
A rule the cluster rejects is reported in ``summary.failed_rules`` with the cluster's
reason; the others go on. Too many clauses for the cluster: the query is split along a
top-level OR and the hits united (:func:`.query.split_for_clauses`).

Hits become the embedded engine's detection records (same keys, the event's own field
names and string values, same provenance), so both engines' DataFrames compare directly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from sigmahunt.engines.elastic.client import Cluster, ClusterError, error_of_response
from sigmahunt.engines.elastic.query import (
    LAYOUTS,
    Capabilities,
    ConversionRefused,
    LoweredRule,
    Node,
    count_leaves,
    is_regex,
    lower_rule,
    needs_scripts,
    relax,
    split_for_clauses,
    to_dsl,
    untranslatable,
)
from sigmahunt.engines.embedded.ir import CompiledRule, RuleMeta
from sigmahunt.hunting import HuntResult, Progress
from sigmahunt.pipelines import Pipeline, get_pipeline
from sigmahunt.results import Detection, HuntSummary, level_counts
from sigmahunt.rules.prepare import PreparedRules

META = "sigmahunt"


@dataclass
class ElasticHuntOptions:
    index: str | None = None  # overrides the pipeline's index patterns
    pipeline: str = "raw"
    layout: str = "sigmahunt"
    page_size: int = 1000
    batch_size: int = 100  # rules per _msearch
    max_clauses: int = 1000
    keep_alive: str = "2m"


@dataclass
class ElasticHuntReport:
    """How each rule ran on the cluster (attached to the result as ``result.elastic``)."""

    flavor: str = ""
    rules: int = 0
    exact: int = 0  # ran as exact queries
    verified: dict[str, str] = field(default_factory=dict)  # rule id/path -> why relaxed + verified
    not_converted: dict[str, str] = field(default_factory=dict)  # rule -> reason
    rejected: dict[str, str] = field(default_factory=dict)  # rule -> the cluster's reason
    queries: int = 0
    hits: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "rules": self.rules, "exact": self.exact, "verified": self.verified,
                "not_converted": self.not_converted, "rejected": self.rejected, "queries": self.queries,
                "hits": self.hits}


@dataclass
class _Task:
    rule_index: int
    index: str
    tree: Node
    query: dict[str, Any]
    splits_left: int = 3  # how often a rejected (too many clauses) query may be halved again
    explicit_case: bool = True


@dataclass
class _RuleRun:
    rule: CompiledRule
    lowered: LoweredRule | None = None
    hits: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    queries: int = 0
    verify: str | None = None  # why the query is a relaxed superset, checked by the embedded evaluator


def run_elastic_hunt(
    cluster: Cluster,
    prepared: PreparedRules,
    options: ElasticHuntOptions | None = None,
    progress: Progress | None = None,
) -> HuntResult:
    """Run every runnable rule of ``prepared`` on the cluster."""
    started = time.perf_counter()
    options = options or ElasticHuntOptions()
    progress = progress or Progress()
    pipeline = get_pipeline(options.pipeline)
    layout = LAYOUTS[options.layout]
    runnable = prepared.runnable
    summary = HuntSummary(
        rules_loaded=len(prepared.compiled),
        rules_failed=len(prepared.failures),
        rules_inapplicable=len(prepared.inapplicable),
        failed_rules=[f.to_dict() for f in prepared.failures],
    )
    progress.on_rules(len(runnable))
    try:
        cluster.info()
    except ClusterError as error:
        raise ClusterError(f"cannot reach the {cluster.flavor} cluster at {cluster.settings.url}: {error}",
                           error.status, error.error_type) from error
    caps = Capabilities(scripts=cluster.has_painless())
    runs = [_RuleRun(rule) for rule in runnable]
    resolvers = _Resolvers(cluster)
    tasks: list[_Task] = []
    for i, run in enumerate(runs):
        try:
            first = lower_rule(run.rule, pipeline, index=options.index)
            resolve = resolvers.for_indices(first.index_expression)
            own = layout.normalized and resolvers.own_layout(first.index_expression)
            run.lowered = lower_rule(run.rule, pipeline, index=options.index, resolve=resolve, provenance=own)
            tree = run.lowered.tree
            if _has_test(tree, lambda t: untranslatable(t, caps)):
                if not layout.normalized:
                    if needs_scripts(tree) and not caps.scripts:
                        raise ConversionRefused("fieldref needs a scripted query (painless), which this "
                                                "cluster lacks")
                    raise ConversionRefused("a test has no query equivalent (see sigmahunt convert)")
                tree = relax(tree, lambda t: untranslatable(t, caps))
                run.verify = "tests without a query equivalent"
                if tree.op == "const":
                    raise ConversionRefused("no test of this rule can run as a query")
            explicit = not resolvers.own_layout(run.lowered.index_expression)
            for piece in split_for_clauses(tree, options.max_clauses):
                tasks.append(_Task(i, run.lowered.index_expression, piece,
                                   to_dsl(piece, layout, caps, explicit_case=explicit), explicit_case=explicit))
                run.queries += 1
        except ConversionRefused as error:
            run.error = f"not converted for {cluster.flavor}: {error}"
    progress.total_bytes(len(runs))
    _run_tasks(cluster, tasks, runs, options, progress, layout, caps)
    records: list[dict[str, Any]] = []
    for run in runs:
        if run.error is not None:
            summary.failed_rules.append({"path": run.rule.meta.path, "reason": run.error,
                                         "rule_id": run.rule.meta.rule_id, "title": run.rule.meta.title})
            continue
        found = [hit_record(run.rule.meta, hit, pipeline) for hit in run.hits.values()]
        if run.verify is not None:
            found = verified(run.rule, found)
        records.extend(found)
    report = ElasticHuntReport(flavor=cluster.flavor, rules=len(runs), queries=len(tasks))
    for run in runs:
        key = run.rule.meta.rule_id or run.rule.meta.path
        report.hits += len(run.hits)
        if run.error is None:
            if run.verify is not None:
                report.verified[key] = run.verify
            else:
                report.exact += 1
        elif run.error.startswith("not converted"):
            report.not_converted[key] = run.error
        else:
            report.rejected[key] = run.error
    plan = getattr(prepared, "correlation_plan", None)
    if plan:  # correlations over the base detections, exactly as the embedded hunt applies them
        from sigmahunt.correlation import apply_plan

        records = apply_plan(plan, records)
    summary.rules_failed = len(summary.failed_rules)
    summary.detections = len(records)
    summary.detections_by_level = level_counts(records)
    searched = sorted({run.lowered.index_expression for run in runs if run.lowered is not None})
    summary.events_read = _count(cluster, searched)
    summary.seconds = time.perf_counter() - started
    result = HuntResult(records, summary, prepared)
    result.elastic = report  # type: ignore[attr-defined]
    return result


def _count(cluster: Cluster, expressions: Sequence[str]) -> int:
    patterns = sorted({p for e in expressions for p in e.split(",") if p})
    if not patterns:
        return 0
    try:
        return cluster.count(",".join(patterns))
    except ClusterError:
        return 0


def _search_body(query: dict[str, Any], size: int) -> dict[str, Any]:
    return {"query": query, "size": size, "track_total_hits": False, "sort": ["_doc"]}


def _run_tasks(
    cluster: Cluster, tasks: list[_Task], runs: list[_RuleRun], options: ElasticHuntOptions,
    progress: Progress, layout: Any, caps: Capabilities,
) -> None:
    open_tasks: dict[int, int] = {}
    for task in tasks:
        open_tasks[task.rule_index] = open_tasks.get(task.rule_index, 0) + 1
    progress.on_bytes(sum(1 for i in range(len(runs)) if i not in open_tasks))

    def finish(rule_index: int) -> None:
        open_tasks[rule_index] -= 1
        if open_tasks[rule_index] == 0:
            progress.on_bytes(1)

    queue = list(tasks)
    while queue:
        batch, queue = queue[: options.batch_size], queue[options.batch_size:]
        for task in [t for t in batch if runs[t.rule_index].error is not None]:
            finish(task.rule_index)  # the rule already failed: its other queries need not run
        batch = [t for t in batch if runs[t.rule_index].error is None]
        if not batch:
            continue
        searches: list[dict[str, Any]] = []
        for task in batch:
            searches.append({"index": task.index, "ignore_unavailable": True, "allow_no_indices": True})
            searches.append(_search_body(task.query, options.page_size))
        try:
            responses = cluster.msearch(searches)
        except ClusterError as error:
            if error.status is not None and error.status < 500:
                # The batch as a whole was refused (too large a request): one rule at a time.
                responses = [_single(cluster, t, options) for t in batch]
            else:
                raise
        for task, response in zip(batch, responses):
            run = runs[task.rule_index]
            failure = error_of_response(response)
            if failure is not None:
                halves = _halve(task, layout, caps) if _too_many_clauses(failure) else []
                if not halves and _too_complex(failure) and layout.normalized:
                    halves = _relaxed(task, layout, caps)
                    run.verify = "regex too complex for the cluster"
                if halves:
                    open_tasks[task.rule_index] += len(halves)
                    queue.extend(halves)
                else:
                    run.error = f"rejected by {cluster.flavor}: {failure}"
                finish(task.rule_index)
                continue
            hits = response.get("hits", {}).get("hits", [])
            if len(hits) >= options.page_size:
                try:
                    hits = _all_hits(cluster, task, options)
                except ClusterError as error:
                    run.error = f"rejected by {cluster.flavor} while paging: {error}"
                    hits = []
            for hit in hits:
                run.hits[(hit.get("_index", ""), hit.get("_id", ""))] = hit
            progress.on_events(len(hits))
            finish(task.rule_index)
    for run in runs:
        if run.error is not None:
            run.hits.clear()  # a rule that failed reports no partial detections


def _single(cluster: Cluster, task: _Task, options: ElasticHuntOptions) -> dict[str, Any]:
    try:
        return cluster.search(task.index, _search_body(task.query, options.page_size),
                              **_lenient_params(cluster))
    except ClusterError as error:
        return {"error": {"type": error.error_type, "reason": str(error)}, "status": error.status}


def _lenient_params(cluster: Cluster) -> dict[str, Any]:
    if cluster.flavor == "opensearch":
        return {"params": {"ignore_unavailable": "true", "allow_no_indices": "true"}}
    return {"ignore_unavailable": True, "allow_no_indices": True}


def _too_many_clauses(error: ClusterError) -> bool:
    text = f"{error.error_type} {error}".lower()
    return "too_many_clauses" in text or "too_many_nested_clauses" in text or "maxclausecount" in text \
        or "too many clauses" in text


def _too_complex(error: ClusterError) -> bool:
    text = f"{error.error_type} {error}".lower()
    return "too_complex_to_determinize" in text or "determinizing" in text or "too complex" in text


def _relaxed(task: _Task, layout: Any, caps: Capabilities) -> list[_Task]:
    """The query without its regexes (a superset; hits are then checked by the embedded evaluator)."""
    tree = relax(task.tree, is_regex)
    if tree.op == "const" or tree == task.tree:
        return []
    return [_Task(task.rule_index, task.index, tree, to_dsl(tree, layout, caps, explicit_case=task.explicit_case),
                  task.splits_left, task.explicit_case)]


def _has_test(node: Node, predicate: Any) -> bool:
    if node.op == "leaf":
        from sigmahunt.engines.elastic.query import Test

        return isinstance(node.leaf, Test) and bool(predicate(node.leaf))
    return any(_has_test(c, predicate) for c in node.children)


def verified(rule: CompiledRule, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records whose event the embedded evaluator detects with ``rule`` (exact semantics)."""
    if not records:
        return records
    import polars as pl

    from sigmahunt.engines.embedded.evaluator import BatchEvaluator, RuleSetPlan

    columns = sorted({k for r in records for k in r["event"]})
    frame = pl.DataFrame({c: [r["event"].get(c) for r in records] for c in columns},
                         schema={c: pl.String for c in columns})
    rows = BatchEvaluator(RuleSetPlan.build([rule])).evaluate(frame).get(0)
    if rows is None:
        return []
    return [records[int(i)] for i in rows]


def _halve(task: _Task, layout: Any, caps: Capabilities) -> list[_Task]:
    """A query with too many clauses for the cluster, cut in pieces of half its size."""
    if task.splits_left <= 0:
        return []
    pieces = split_for_clauses(task.tree, max(1, count_leaves(task.tree) // 2))
    if len(pieces) <= 1:
        return []
    return [_Task(task.rule_index, task.index, p, to_dsl(p, layout, caps, explicit_case=task.explicit_case),
                  task.splits_left - 1, task.explicit_case) for p in pieces]


def _all_hits(cluster: Cluster, task: _Task, options: ElasticHuntOptions) -> list[dict[str, Any]]:
    """Every hit of one query: point in time + search_after (Elasticsearch) or scroll."""
    if cluster.flavor == "elasticsearch":
        try:
            return _pit_hits(cluster, task, options)
        except ClusterError as error:
            if error.status not in (400, 403, 404, 405):
                raise
    return _scroll_hits(cluster, task, options)


def _pit_hits(cluster: Cluster, task: _Task, options: ElasticHuntOptions) -> list[dict[str, Any]]:
    pit = cluster.open_pit(task.index, options.keep_alive)
    out: list[dict[str, Any]] = []
    try:
        after = None
        while True:
            body: dict[str, Any] = {"query": task.query, "size": options.page_size, "track_total_hits": False,
                                    "pit": {"id": pit, "keep_alive": options.keep_alive},
                                    "sort": [{"_shard_doc": "asc"}]}
            if after is not None:
                body["search_after"] = after
            response = cluster.call("search (point in time)", cluster.client.search, body=body)
            pit = response.get("pit_id", pit)
            hits = response.get("hits", {}).get("hits", [])
            out.extend(hits)
            if len(hits) < options.page_size:
                return out
            after = hits[-1]["sort"]
    finally:
        cluster.close_pit(pit)


def _scroll_hits(cluster: Cluster, task: _Task, options: ElasticHuntOptions) -> list[dict[str, Any]]:
    body = {"query": task.query, "size": options.page_size, "sort": ["_doc"]}
    if cluster.flavor == "opensearch":
        response = cluster.search(task.index, body, params={"scroll": options.keep_alive,
                                                              "ignore_unavailable": "true",
                                                              "allow_no_indices": "true"})
    else:
        response = cluster.search(task.index, body, scroll=options.keep_alive, ignore_unavailable=True,
                                  allow_no_indices=True)
    scroll_id = response.get("_scroll_id")
    out = list(response.get("hits", {}).get("hits", []))
    try:
        while scroll_id:
            response = cluster.scroll(scroll_id, options.keep_alive)
            scroll_id = response.get("_scroll_id", scroll_id)
            hits = response.get("hits", {}).get("hits", [])
            if not hits:
                break
            out.extend(hits)
    finally:
        if scroll_id:
            cluster.clear_scroll(scroll_id)
    return out


# -- field names in the index ------------------------------------------------------------------------------

class _Resolvers:
    """Per index expression: index field name -> the names present, matched case-insensitively.

    The embedded engine finds ``image`` in a batch whose column is ``Image``; Elasticsearch
    field names are case-sensitive. So a rule's field is looked up in the mapping: the exact
    name if present, else every name that differs only in case.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._cache: dict[str, Any] = {}
        self._own: dict[str, bool] = {}

    def own_layout(self, expression: str) -> bool:
        """Whether every index of the expression was created with sigmahunt's layout."""
        if expression not in self._own:
            self.for_indices(expression)
        return self._own.get(expression, False)

    def for_indices(self, expression: str) -> Any:
        if expression not in self._cache:
            names = self._field_names(expression)
            by_lower: dict[str, list[str]] = {}
            for name in sorted(names):
                by_lower.setdefault(name.lower(), []).append(name)

            def resolve(name: str, names: set[str] = names, by_lower: dict[str, list[str]] = by_lower) -> list[str]:
                if name in names:
                    return [name]
                return by_lower.get(name.lower(), [])

            self._cache[expression] = resolve
        return self._cache[expression]

    def _field_names(self, expression: str) -> set[str]:
        try:
            mapping = self.cluster.mapping(expression)
        except ClusterError:
            mapping = {}
        names: set[str] = set()
        own = bool(mapping)
        for body in mapping.values():
            mappings = body.get("mappings", {})
            own = own and mappings.get("_meta", {}).get("sigmahunt_layout") is not None
            _collect(mappings.get("properties", {}), "", names)
        self._own[expression] = own
        return names


def _collect(properties: dict[str, Any], prefix: str, out: set[str]) -> None:
    for name, spec in properties.items():
        path = prefix + name
        if path == META:
            continue
        if "properties" in spec:
            _collect(spec["properties"], path + ".", out)
        else:
            out.add(path)


# -- hits -> detection records --------------------------------------------------------------------------------

def _as_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _flatten(source: dict[str, Any], prefix: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    out = {} if out is None else out
    for key, value in source.items():
        path = prefix + key
        if isinstance(value, dict):
            _flatten(value, path + ".", out)
        elif value is not None:
            out[path] = _as_string(value)
    return out


def hit_record(meta: RuleMeta, hit: dict[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    """A detection record exactly like the embedded engine's, from one search hit."""
    source = dict(hit.get("_source") or {})
    own = source.pop(META, None)
    if isinstance(own, dict) and "source" in own:  # loaded by sigmahunt ingest
        renames = own.get("renames") or {}
        event = {renames.get(k, k): _as_string(v) for k, v in source.items() if v is not None}
        provenance = {
            "timestamp": own.get("timestamp"),
            "computer": event.get("Computer"),
            "channel": event.get("Channel"),
            "event_id": event.get("EventID"),
            "source": own.get("source"),
            "record_id": event.get("EventRecordID"),
            "position": own.get("position"),
        }
    else:  # shipped by something else: field names as indexed
        event = _flatten(source)
        provenance = {
            "timestamp": event.get("@timestamp"),
            "computer": event.get(pipeline.computer_field),
            "channel": event.get(pipeline.channel_field),
            "event_id": event.get(pipeline.event_id_field),
            "source": hit.get("_index"),
            "record_id": event.get(pipeline.record_id_field),
            "position": hit.get("_id"),
        }
    return Detection(rule=meta, event=event, **provenance).to_record()
