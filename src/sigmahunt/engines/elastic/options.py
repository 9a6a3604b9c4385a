"""Command-line options shared by ``hunt --engine elasticsearch|opensearch`` and ``ingest``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from sigmahunt.engines.elastic.client import ENV_API_KEY, ENV_PASSWORD, ENV_URL, ENV_USER, ConnectionSettings

CREDENTIALS_HELP = (f"credentials only from the environment: {ENV_USER} + {ENV_PASSWORD} (basic) or "
                    f"{ENV_API_KEY} (API key)")


def add_connection_options(parser: argparse.ArgumentParser, hunt: bool, group: Any = None) -> None:
    if group is None:
        group = parser.add_argument_group(
            "Elasticsearch / OpenSearch" + (" (--engine elasticsearch|opensearch)" if hunt else ""),
            description=CREDENTIALS_HELP)
    group.add_argument("--url", default=None,
                       help=f"cluster URL, e.g. https://es.example:9200 (default: ${ENV_URL})")
    if hunt:
        from sigmahunt.pipelines import PIPELINES

        group.add_argument("--index", default=None, metavar="PATTERN",
                           help="index pattern to search (default: the pipeline's, e.g. HELK's "
                                "logs-endpoint-winevent-sysmon-* for Sysmon rules)")
        group.add_argument("--pipeline", choices=sorted(PIPELINES), default="raw",
                           help="field names in the index: raw (EVTX names, default), helk, ecs-windows")
        group.add_argument("--page-size", type=int, default=1000,
                           help="hits fetched per request while paging (default 1000)")
        group.add_argument("--layout", choices=("sigmahunt", "plain"), default="sigmahunt",
                           help="index mapping: sigmahunt (as sigmahunt ingest creates it, default) or plain "
                                "(keyword fields of another shipper)")
    group.add_argument("--ca-certs", metavar="FILE", help="CA bundle to verify the cluster's TLS certificate")
    group.add_argument("--no-verify-tls", action="store_true",
                       help="do not verify the TLS certificate (TLS is verified by default)")
    group.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    group.add_argument("--max-retries", type=int, default=3,
                       help="retries of a failed request, with exponential backoff (default 3)")


def connection_settings(args: argparse.Namespace, flavor: str | None) -> ConnectionSettings:
    url = getattr(args, "url", None) or os.environ.get(ENV_URL, "")
    return ConnectionSettings(
        url=url,
        flavor=flavor,
        ca_certs=getattr(args, "ca_certs", None),
        verify_tls=not getattr(args, "no_verify_tls", False),
        timeout=float(getattr(args, "timeout", 60.0) or 60.0),
        max_retries=max(0, int(getattr(args, "max_retries", 3))),
    )


def describe(settings: ConnectionSettings) -> dict[str, Any]:
    """Connection facts safe to print (never credentials)."""
    return {"url": settings.url, "auth": settings.auth_kind, "verify_tls": settings.verify_tls}
