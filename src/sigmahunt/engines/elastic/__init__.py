"""The Elasticsearch / OpenSearch engine: Sigma rules as cluster queries, hits as detections.

* :mod:`.query` converts compiled rules (sigmahunt's IR) into query DSL, Lucene
  ``query_string`` text and ES|QL; :mod:`.regex` translates regexes into Lucene's dialect.
  pySigma-backend-elasticsearch cannot be used: it requires pySigma < 2, sigmahunt's rule
  model is pySigma 2.0.1; and converting from the IR keeps one definition of Sigma's
  meaning for every engine.
* :mod:`.template` is the index layout that makes those queries exact;
  :mod:`.ingest` loads logs with it (``sigmahunt ingest``).
* :mod:`.hunt` runs a rule set (``sigmahunt hunt --engine elasticsearch|opensearch``).
* :mod:`.client` wraps the official clients (``pip install 'sigmahunt[elastic]'``),
  imported only when a cluster is used.

Python::

    from sigmahunt.engines.elastic import hunt
    df = hunt("http://localhost:9200", rules="rules/", pipeline="helk")   # a DataFrame
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_hunt_options", "connect", "hunt", "run_engine", "run_hunt"]


def add_hunt_options(parser: argparse.ArgumentParser) -> None:
    """The CLI plug-in contract: this engine's ``hunt`` flags (added once for both products)."""
    from sigmahunt.engines.elastic.options import add_connection_options

    add_connection_options(parser, hunt=True)


def run_engine(args: argparse.Namespace, prepared: Any, progress: Any) -> Any:
    """The CLI plug-in contract: ``hunt --engine elasticsearch|opensearch`` -> HuntResult."""
    from sigmahunt.engines.elastic.client import ClusterError
    from sigmahunt.engines.elastic.hunt import ElasticHuntOptions, run_elastic_hunt
    from sigmahunt.engines.elastic.options import connection_settings
    from sigmahunt.hunting import NothingToHunt

    if getattr(args, "logs", None):
        raise NothingToHunt(f"--engine {args.engine} hunts what the cluster holds: load logs with "
                            f"'sigmahunt ingest LOGS --url URL --index NAME' (no LOGS with hunt)")
    if not prepared.compiled:
        raise NothingToHunt("no usable rule was loaded")
    try:
        from sigmahunt.engines.elastic.client import Cluster

        cluster = Cluster(connection_settings(args, args.engine))
        options = ElasticHuntOptions(index=args.index, pipeline=args.pipeline, layout=args.layout,
                                     page_size=max(1, args.page_size))
        return run_elastic_hunt(cluster, prepared, options, progress)
    except ClusterError as error:
        raise NothingToHunt(str(error)) from error


def connect(url: str | None = None, engine: str | None = None, **settings: Any) -> Any:
    """A :class:`~.client.Cluster` (credentials from the environment; ``engine`` None: ask)."""
    import os

    from sigmahunt.engines.elastic.client import ENV_URL, Cluster, ConnectionSettings

    return Cluster(ConnectionSettings(url=url or os.environ.get(ENV_URL, ""), flavor=engine, **settings))


def run_hunt(
    url: str | None = None,
    rules: str | Path | Sequence[str | Path] = (),
    *,
    engine: str | None = None,
    index: str | None = None,
    pipeline: str = "raw",
    layout: str = "sigmahunt",
    page_size: int = 1000,
    placeholders: Any = None,
    selection: Any = None,
    cache_dir: Any = None,
    prepared: Any = None,
    cluster: Any = None,
    **settings: Any,
) -> Any:
    """Hunt on a cluster; returns the :class:`~sigmahunt.hunting.HuntResult` (records + summary)."""
    from sigmahunt.engines.elastic.hunt import ElasticHuntOptions, run_elastic_hunt
    from sigmahunt.rules.prepare import prepare_rules

    if prepared is None:
        paths = [rules] if isinstance(rules, (str, Path)) else list(rules)
        prepared = prepare_rules(paths, placeholders, cache_dir, selection)
    cluster = cluster or connect(url, engine, **settings)
    options = ElasticHuntOptions(index=index, pipeline=pipeline, layout=layout, page_size=page_size)
    return run_elastic_hunt(cluster, prepared, options)


def hunt(url: str | None = None, rules: str | Path | Sequence[str | Path] = (), **options: Any) -> Any:
    """Like :func:`sigmahunt.hunt`, on a cluster: one DataFrame row per (rule, matching event)."""
    result = run_hunt(url, rules, **options)
    frame = result.dataframe
    frame.attrs["summary"] = result.summary.to_dict()
    return frame
