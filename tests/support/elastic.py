"""Clusters for the Elasticsearch/OpenSearch engine tests.

``SIGMAHUNT_ES_URL`` (with ``SIGMAHUNT_ES_USER``/``_PASSWORD`` or ``_API_KEY``) names a
real cluster to test against; otherwise the embedded OpenSearch (or Elasticsearch 7.17)
node from :mod:`tests.support.opensearch_node` is built if needed and started. The tests
skip, saying why, only when Java (or, for an unbuilt node, Maven) is missing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.opensearch_node import ElasticsearchNode, OpenSearchNode, find_java

ENV_URL = "SIGMAHUNT_ES_URL"


class Unavailable(Exception):
    """No cluster can be had here (the message says why)."""


@dataclass
class ClusterUnderTest:
    url: str
    flavor: str | None  # None: detected by the engine
    external: bool
    prefix: str  # index names the tests create start with this (deleted afterwards)


def external_url() -> str | None:
    return os.environ.get(ENV_URL) or None


def _check_tools(node: OpenSearchNode | ElasticsearchNode) -> None:
    try:
        find_java()
    except FileNotFoundError as error:
        raise Unavailable(f"no Java to run the embedded {node.flavor} node: {error}") from error
    if not node.is_built() and not (os.environ.get("SIGMAHUNT_MVN") or shutil.which("mvn")):
        raise Unavailable(f"the embedded {node.flavor} node is not built ({node.module_dir}/target) and there "
                          "is no mvn to build it")


@contextmanager
def embedded_cluster(flavor: str = "opensearch") -> Iterator[ClusterUnderTest]:
    """Build (if needed) and start one embedded node; stop it at the end."""
    node = OpenSearchNode() if flavor == "opensearch" else ElasticsearchNode()
    _check_tools(node)
    node.build()
    node.start(timeout=180)
    try:
        yield ClusterUnderTest(node.url or "", flavor, False, _prefix())
    finally:
        node.stop()


def _prefix() -> str:
    return f"sigmahunt-test-{uuid.uuid4().hex[:8]}"


@contextmanager
def cluster_under_test() -> Iterator[ClusterUnderTest]:
    """``$SIGMAHUNT_ES_URL`` if set, else the embedded OpenSearch node."""
    url = external_url()
    if url:
        yield ClusterUnderTest(url, None, True, _prefix())
        return
    with embedded_cluster("opensearch") as cluster:
        yield cluster


def cleanup(cluster: object, prefix: str) -> None:
    """Delete the indices and templates a test run created (by their unique prefix)."""
    from sigmahunt.engines.elastic.client import ClusterError

    try:
        indices = cluster.call("list indices", cluster.client.indices.get, index=f"*{prefix}*")  # type: ignore[attr-defined]
    except ClusterError:
        indices = {}
    for name in indices:
        try:
            cluster.delete_index(name)  # type: ignore[attr-defined]
        except ClusterError:
            pass
    try:
        templates = cluster.call("list templates", cluster.client.indices.get_index_template,  # type: ignore[attr-defined]
                                 name=f"*{prefix}*")
    except ClusterError:
        templates = {}
    for item in templates.get("index_templates", []):
        try:
            cluster.delete_index_template(item["name"])  # type: ignore[attr-defined]
        except ClusterError:
            pass
