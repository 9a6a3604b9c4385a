"""One small interface over the official clients: ``elasticsearch`` and ``opensearch-py``.

Both are optional (``pip install 'sigmahunt[elastic]'``) and imported only when a cluster
is used. The client does HTTP, TLS and authentication; this module adds what sigmahunt
needs on top: credentials only from the environment, retries with exponential backoff on
transient failures (connection errors, timeouts, 429/502/503/504), errors turned into one
:class:`ClusterError` carrying the cluster's own reason, and the few calls whose shape
differs between the two products (point in time).

Which ``elasticsearch`` client: the 8.x client talks to Elasticsearch 7.17 (it sends
``compatible-with=8`` and 7.17 accepts it), to 8.x natively and to 9.x through REST
compatibility; it refuses OpenSearch, which is why OpenSearch goes through opensearch-py.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV_URL = "SIGMAHUNT_ES_URL"
ENV_USER = "SIGMAHUNT_ES_USER"
ENV_PASSWORD = "SIGMAHUNT_ES_PASSWORD"
ENV_API_KEY = "SIGMAHUNT_ES_API_KEY"
FLAVORS = ("elasticsearch", "opensearch")
TRANSIENT_STATUS = frozenset({429, 502, 503, 504})


class ClusterError(Exception):
    """The cluster (or the connection to it) refused a request."""

    def __init__(self, message: str, status: int | None = None, error_type: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class ClientMissing(ClusterError):
    """The official client for this product is not installed."""


@dataclass
class ConnectionSettings:
    """Where and how to connect. Credentials come from the environment only, never arguments."""

    url: str
    flavor: str | None = None  # None: ask the cluster
    ca_certs: str | None = None
    verify_tls: bool = True
    timeout: float = 60.0
    max_retries: int = 3
    backoff: float = 0.5
    _credentials: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.url = normalise_url(self.url)
        if not self._credentials:
            self._credentials = credentials_from_env()

    @property
    def auth_kind(self) -> str:
        if "api_key" in self._credentials:
            return "API key"
        if "user" in self._credentials:
            return "basic"
        return "none"


def credentials_from_env() -> dict[str, str]:
    """``SIGMAHUNT_ES_API_KEY``, or ``SIGMAHUNT_ES_USER`` + ``SIGMAHUNT_ES_PASSWORD``."""
    out: dict[str, str] = {}
    api_key = os.environ.get(ENV_API_KEY)
    if api_key:
        out["api_key"] = api_key
    user = os.environ.get(ENV_USER)
    if user:
        out["user"] = user
        out["password"] = os.environ.get(ENV_PASSWORD, "")
    return out


def normalise_url(url: str) -> str:
    """``host``/``host:port``/``scheme://host[:port]`` -> a URL with scheme and port."""
    if not url:
        raise ClusterError("no cluster URL: pass --url or set SIGMAHUNT_ES_URL")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClusterError(f"not an http(s) URL: {redact(url)}")
    if parts.username or parts.password:
        raise ClusterError("put credentials in SIGMAHUNT_ES_USER / SIGMAHUNT_ES_PASSWORD, not in the URL")
    if parts.port is None:
        default = 9200 if parts.scheme == "http" else 443
        netloc = f"{parts.hostname}:{default}" if ":" not in parts.hostname else f"[{parts.hostname}]:{default}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/")))


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password or parts.username:
        host = parts.hostname or ""
        return urlunsplit(parts._replace(netloc=f"***@{host}" + (f":{parts.port}" if parts.port else "")))
    return url


class Cluster:
    """A connection to one Elasticsearch or OpenSearch cluster."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.flavor = settings.flavor or detect_flavor(settings)
        if self.flavor not in FLAVORS:
            raise ClusterError(f"unknown cluster product {self.flavor!r}")
        self.client = self._make_client()
        self._version: str | None = None

    # -- construction -------------------------------------------------------------------------

    def _make_client(self) -> Any:
        s = self.settings
        creds = s._credentials
        if self.flavor == "opensearch":
            try:
                from opensearchpy import OpenSearch
            except ImportError as error:
                raise ClientMissing("the OpenSearch engine needs opensearch-py: "
                                    "pip install 'sigmahunt[elastic]'") from error
            kwargs: dict[str, Any] = {
                "hosts": [s.url], "timeout": s.timeout, "max_retries": 0, "retry_on_timeout": False,
                "verify_certs": s.verify_tls, "ssl_show_warn": s.verify_tls,
            }
            if s.url.startswith("https"):
                kwargs["use_ssl"] = True
            if s.ca_certs:
                kwargs["ca_certs"] = s.ca_certs
            if "user" in creds:
                kwargs["http_auth"] = (creds["user"], creds.get("password", ""))
            if "api_key" in creds:
                kwargs["headers"] = {"Authorization": f"ApiKey {creds['api_key']}"}
            return OpenSearch(**kwargs)
        try:
            from elasticsearch import Elasticsearch
        except ImportError as error:
            raise ClientMissing("the Elasticsearch engine needs the elasticsearch client: "
                                "pip install 'sigmahunt[elastic]'") from error
        kwargs = {"request_timeout": s.timeout, "max_retries": 0, "retry_on_timeout": False,
                  "verify_certs": s.verify_tls}
        if not s.verify_tls:
            kwargs["ssl_show_warn"] = False
        if s.ca_certs:
            kwargs["ca_certs"] = s.ca_certs
        if "api_key" in creds:
            kwargs["api_key"] = creds["api_key"]
        elif "user" in creds:
            kwargs["basic_auth"] = (creds["user"], creds.get("password", ""))
        return Elasticsearch(s.url, **kwargs)

    # -- calls with retries -------------------------------------------------------------------------

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client call; transient failures are retried with exponential backoff."""
        attempt = 0
        while True:
            try:
                response = fn(*args, **kwargs)
                return getattr(response, "body", response)  # elasticsearch 8: ObjectApiResponse
            except Exception as error:  # noqa: BLE001 - both clients' hierarchies are handled here
                failure = to_cluster_error(error, what)
                transient = failure.status in TRANSIENT_STATUS or failure.status is None
                if not transient or attempt >= self.settings.max_retries or isinstance(failure, ClientMissing):
                    raise failure from error
                delay = self.settings.backoff * (2 ** attempt) * (1 + random.random() / 4)
                time.sleep(min(delay, 30.0))
                attempt += 1

    def info(self) -> dict[str, Any]:
        return self.call("cluster info", self.client.info)

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = str(self.info().get("version", {}).get("number", ""))
        return self._version

    def has_painless(self) -> bool:
        """Whether scripted queries can run (the lang-painless module is loaded on every node)."""
        try:
            nodes = self.call("nodes info", self.client.nodes.info, metric="plugins")
        except ClusterError:
            return True  # not allowed to ask: assume a standard distribution
        found = []
        for node in nodes.get("nodes", {}).values():
            modules = {m.get("name") for m in node.get("modules", [])}
            modules |= {p.get("name") for p in node.get("plugins", [])}
            found.append("lang-painless" in modules)
        return bool(found) and all(found)

    def search(self, index: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        return self.call(f"search {index}", self.client.search, index=index, body=body, **params)

    def msearch(self, searches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Header/body pairs flattened; returns one response (or ``{"error": ...}``) per search."""
        result = self.call("multi-search", self.client.msearch, body=searches)
        return result["responses"]

    def open_pit(self, index: str, keep_alive: str) -> str:
        if self.flavor == "opensearch":
            return self.call("open point in time", self.client.create_pit, index=index,
                             params={"keep_alive": keep_alive})["pit_id"]
        return self.call("open point in time", self.client.open_point_in_time, index=index,
                         keep_alive=keep_alive)["id"]

    def close_pit(self, pit_id: str) -> None:
        try:
            if self.flavor == "opensearch":
                self.call("close point in time", self.client.delete_pit, body={"pit_id": [pit_id]})
            else:
                self.call("close point in time", self.client.close_point_in_time, body={"id": pit_id})
        except ClusterError:
            pass  # it expires by itself

    def scroll(self, scroll_id: str, keep_alive: str) -> dict[str, Any]:
        return self.call("scroll", self.client.scroll, body={"scroll_id": scroll_id, "scroll": keep_alive})

    def clear_scroll(self, scroll_id: str) -> None:
        try:
            self.call("clear scroll", self.client.clear_scroll, body={"scroll_id": [scroll_id]})
        except ClusterError:
            pass

    def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self.call(f"index template {name}", self.client.indices.put_index_template, name=name, body=body)

    def refresh(self, index: str) -> None:
        self.call(f"refresh {index}", self.client.indices.refresh, index=index)

    def count(self, index: str) -> int:
        """Documents in the indices matching ``index`` (0 when none exists)."""
        if self.flavor == "opensearch":
            call = (self.client.count, {"index": index,
                                        "params": {"ignore_unavailable": "true", "allow_no_indices": "true"}})
        else:
            call = (self.client.count, {"index": index, "ignore_unavailable": True, "allow_no_indices": True})
        try:
            result = self.call(f"count {index}", call[0], **call[1])
        except ClusterError as error:
            if error.status == 404:
                return 0
            raise
        return int(result.get("count", 0))

    def mapping(self, index: str) -> dict[str, Any]:
        try:
            return self.call(f"mapping {index}", self.client.indices.get_mapping, index=index)
        except ClusterError as error:
            if error.status == 404:
                return {}
            raise

    def delete_index(self, index: str) -> None:
        try:
            self.call(f"delete {index}", self.client.indices.delete, index=index)
        except ClusterError as error:
            if error.status != 404:
                raise

    def delete_index_template(self, name: str) -> None:
        try:
            self.call(f"delete template {name}", self.client.indices.delete_index_template, name=name)
        except ClusterError as error:
            if error.status != 404:
                raise

    def bulk(self, actions: Iterable[dict[str, Any]], chunk_size: int = 1000) -> Iterator[tuple[bool, dict[str, Any]]]:
        """``(ok, item)`` per action, via the client's streaming bulk helper (429s retried)."""
        if self.flavor == "opensearch":
            from opensearchpy.helpers import streaming_bulk
        else:
            from elasticsearch.helpers import streaming_bulk
        try:
            yield from streaming_bulk(self.client, actions, chunk_size=chunk_size, raise_on_error=False,
                                      raise_on_exception=True, max_retries=self.settings.max_retries,
                                      initial_backoff=max(1, int(self.settings.backoff * 2)), max_backoff=30)
        except Exception as error:  # noqa: BLE001
            raise to_cluster_error(error, "bulk load") from error


def to_cluster_error(error: Exception, what: str) -> ClusterError:
    """Any client exception as a ClusterError with the cluster's reason (never credentials)."""
    if isinstance(error, ClusterError):
        return error
    status = getattr(error, "status_code", None)
    meta = getattr(error, "meta", None)
    if status is None and meta is not None:
        status = getattr(meta, "status", None)
    if not isinstance(status, int):
        status = None
    body = getattr(error, "body", None)
    if body is None:
        body = getattr(error, "info", None)
    error_type, reason = _reason(body)
    if not reason:
        reason = getattr(error, "error", "") or getattr(error, "message", "") or str(error)
    name = type(error).__name__
    if status is None:
        return ClusterError(f"{what}: {name}: {reason}"[:2000], None, error_type or name)
    return ClusterError(f"{what}: HTTP {status} {error_type}: {reason}"[:2000], status, error_type)


def _reason(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        return "", ""
    err = body.get("error", body)
    if isinstance(err, str):
        return "", err
    if not isinstance(err, dict):
        return "", ""
    error_type = str(err.get("type", ""))
    reason = str(err.get("reason", ""))
    causes = err.get("root_cause") or []
    caused = err.get("caused_by")
    details = []
    for cause in causes:
        if isinstance(cause, dict) and cause.get("reason") and cause.get("reason") != reason:
            details.append(f"{cause.get('type', '')}: {cause['reason']}")
    failed = err.get("failed_shards") or []
    for shard in failed[:1]:
        inner = shard.get("reason", {}) if isinstance(shard, dict) else {}
        if isinstance(inner, dict) and inner.get("reason"):
            details.append(f"{inner.get('type', '')}: {inner['reason']}")
            deeper = inner.get("caused_by")
            if isinstance(deeper, dict) and deeper.get("reason"):
                details.append(f"{deeper.get('type', '')}: {deeper['reason']}")
    if isinstance(caused, dict) and caused.get("reason"):
        details.append(f"{caused.get('type', '')}: {caused['reason']}")
    unique = []
    for d in details:
        if d not in unique:
            unique.append(d)
    return error_type, "; ".join([reason, *unique]) if unique else reason


def error_of_response(response: dict[str, Any]) -> ClusterError | None:
    """The error of one msearch item, if it failed."""
    if "error" not in response:
        return None
    error_type, reason = _reason(response)
    status = response.get("status")
    return ClusterError(f"HTTP {status} {error_type}: {reason}"[:2000],
                        status if isinstance(status, int) else None, error_type)


def detect_flavor(settings: ConnectionSettings) -> str:
    """Ask ``GET /`` which product answers (OpenSearch says ``distribution: opensearch``)."""
    import json
    import ssl
    import urllib.error
    import urllib.request

    request = urllib.request.Request(settings.url + "/", headers={"Accept": "application/json"})
    creds = settings._credentials
    if "api_key" in creds:
        request.add_header("Authorization", f"ApiKey {creds['api_key']}")
    elif "user" in creds:
        import base64

        token = base64.b64encode(f"{creds['user']}:{creds.get('password', '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = None
    if settings.url.startswith("https"):
        context = ssl.create_default_context(cafile=settings.ca_certs)
        if not settings.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    attempt = 0
    while True:
        try:
            with opener.open(request, timeout=settings.timeout) as response:
                info = json.loads(response.read().decode("utf-8"))
            break
        except urllib.error.HTTPError as error:
            raise ClusterError(f"cannot identify the cluster at {settings.url}: HTTP {error.code}",
                               error.code) from error
        except (OSError, ValueError) as error:
            if attempt >= settings.max_retries:
                raise ClusterError(f"cannot reach the cluster at {settings.url}: {error}") from error
            time.sleep(settings.backoff * (2 ** attempt))
            attempt += 1
    version = info.get("version", {}) if isinstance(info, dict) else {}
    return "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"
