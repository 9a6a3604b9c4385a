"""A real single-node OpenSearch (or Elasticsearch 7.17) for integration tests.

The node is the server code from Maven Central, embedded in a tiny Java launcher
(``tests/opensearch-node``, ``tests/elasticsearch-node``); no Docker, no
distribution download. Standard library only.

    from tests.support.opensearch_node import OpenSearchNode

    with OpenSearchNode() as node:          # build() if needed, then start()
        node.request("PUT", "/idx", {"mappings": {...}})
        print(node.url)                      # http://127.0.0.1:PORT

Java: ``$SIGMAHUNT_JAVA_HOME``, else ``$JAVA_HOME``, else ``java`` on PATH
(OpenSearch 2.19 and Elasticsearch 7.17 both run on Java 17). Maven: ``mvn``
on PATH or ``$SIGMAHUNT_MVN``; only needed when ``target/`` is missing or older
than the module's sources (the first build downloads ~80 MB from Maven Central).

Smoke test (no pytest needed)::

    python -m tests.support.opensearch_node [--flavor opensearch|elasticsearch|both]
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1]

__all__ = [
    "ElasticsearchNode",
    "HTTPStatusError",
    "NodeBuildError",
    "NodeStartError",
    "OpenSearchNode",
    "find_java",
]


class NodeBuildError(RuntimeError):
    """``mvn package`` of the launcher module failed."""


class NodeStartError(RuntimeError):
    """The node did not come up (the message holds the tail of its stderr)."""


class HTTPStatusError(RuntimeError):
    """A request to the node answered with status >= 400."""

    def __init__(self, method: str, url: str, status: int, body: Any):
        self.method, self.url, self.status, self.body = method, url, status, body
        text = body if isinstance(body, str) else json.dumps(body)
        super().__init__(f"{method} {url} -> HTTP {status}: {text[:2000]}")


def find_java() -> str:
    """The java binary: $SIGMAHUNT_JAVA_HOME, $JAVA_HOME, then PATH."""
    for var in ("SIGMAHUNT_JAVA_HOME", "JAVA_HOME"):
        home = os.environ.get(var)
        if home:
            java = Path(home) / "bin" / "java"
            if java.is_file() and os.access(java, os.X_OK):
                return str(java)
            raise FileNotFoundError(f"${var}={home} has no executable bin/java")
    java = shutil.which("java")
    if not java:
        raise FileNotFoundError("no java: set SIGMAHUNT_JAVA_HOME or JAVA_HOME, or put java on PATH")
    return java


# One opener for all requests: never route loopback traffic through an
# http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _decode(raw: bytes, content_type: str | None) -> Any:
    text = raw.decode("utf-8", errors="replace")
    if content_type and "json" in content_type and text:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


class _EmbeddedNode:
    """Shared machinery; use OpenSearchNode or ElasticsearchNode."""

    flavor = ""
    module = ""  # directory under tests/
    main_class = ""
    url_prefix = ""

    def __init__(
        self,
        *,
        heap: str = "768m",
        settings: Mapping[str, Any] | None = None,
        jvm_args: Sequence[str] = (),
        module_dir: str | os.PathLike[str] | None = None,
        keep_home: bool = False,
    ) -> None:
        """
        heap: -Xmx value (-Xms stays 256m from jvm.options).
        settings: extra node settings, passed as -Ekey=value (override defaults).
        jvm_args: extra JVM options (after jvm.options, so they win).
        keep_home: keep the temp dir (data + stderr log) after stop(), for debugging.
        """
        self.module_dir = Path(module_dir) if module_dir else TESTS_DIR / self.module
        self.heap = heap
        self.settings = dict(settings or {})
        self.jvm_args = list(jvm_args)
        self.keep_home = keep_home
        self.url: str | None = None
        self.tmpdir: Path | None = None
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stderr_file = None

    # ------------------------------------------------------------------ build
    @property
    def _target(self) -> Path:
        return self.module_dir / "target"

    @property
    def _stamp(self) -> Path:
        return self._target / ".sigmahunt-build-stamp"

    def _source_mtime(self) -> float:
        files = [self.module_dir / "pom.xml"]
        files += [p for p in (self.module_dir / "src").rglob("*") if p.is_file()]
        return max(p.stat().st_mtime for p in files)

    def is_built(self) -> bool:
        lib = self._target / "lib"
        return (
            self._stamp.is_file()
            and (self._target / "classes").is_dir()
            and lib.is_dir()
            and any(lib.glob("*.jar"))
            and self._stamp.stat().st_mtime >= self._source_mtime()
        )

    def build(self, force: bool = False, timeout: float = 1800) -> None:
        """Run ``mvn package`` unless target/ is present and newer than the sources.

        Safe to call from parallel test workers (serialised by a file lock)."""
        if not force and self.is_built():
            return
        self._target.mkdir(parents=True, exist_ok=True)
        with open(self._target / ".build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not force and self.is_built():  # another worker built it meanwhile
                return
            mvn = os.environ.get("SIGMAHUNT_MVN") or shutil.which("mvn")
            if not mvn:
                raise NodeBuildError(
                    f"{self._target} is missing or outdated and there is no mvn on PATH "
                    "(set SIGMAHUNT_MVN)"
                )
            env = dict(os.environ)
            java_home = os.environ.get("SIGMAHUNT_JAVA_HOME")
            if java_home:
                env["JAVA_HOME"] = java_home
            cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(self.module_dir / "pom.xml"), "package"]
            started = time.monotonic()
            proc = subprocess.run(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, timeout=timeout,
            )
            if proc.returncode != 0:
                out = proc.stdout.decode("utf-8", errors="replace")
                raise NodeBuildError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-6000:]}")
            self._stamp.write_text(f"built in {time.monotonic() - started:.1f}s\n")

    # ------------------------------------------------------------ lifecycle
    def command(self, home: Path, delete_on_exit: Path | None = None) -> list[str]:
        cp = os.pathsep.join([str(self._target / "classes"), str(self._target / "lib" / "*")])
        cmd = [find_java(), "@" + str(self.module_dir / "jvm.options"), f"-Xmx{self.heap}"]
        cmd += self.jvm_args
        cmd += ["-cp", cp, self.main_class, str(home)]
        if delete_on_exit is not None:
            cmd += ["--delete-on-exit", str(delete_on_exit)]
        for key, value in self.settings.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            cmd.append(f"-E{key}={value}")
        return cmd

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def stderr_path(self) -> Path | None:
        return self.tmpdir / "node.stderr.log" if self.tmpdir else None

    def stderr_tail(self, chars: int = 6000) -> str:
        p = self.stderr_path
        if p and p.is_file():
            return p.read_text(errors="replace")[-chars:]
        return ""

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 120.0) -> str:
        """Spawn the node, wait for its URL line and for cluster health >= yellow.

        Returns the base URL (also in ``.url``). Raises NodeStartError."""
        if self._proc is not None:
            raise RuntimeError("node already started")
        self.build()
        began = time.monotonic()
        deadline = began + timeout
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"sigmahunt-{self.flavor}-"))
        home = self.tmpdir / "home"
        self._stderr_file = open(self.stderr_path, "wb")
        urls: queue.Queue[str] = queue.Queue()
        try:
            self._proc = subprocess.Popen(
                # the node removes the temp dir itself even if we die without stop()
                self.command(home, None if self.keep_home else self.tmpdir),
                stdin=subprocess.PIPE,  # EOF on our side (even if we die) stops the node
                stdout=subprocess.PIPE,
                stderr=self._stderr_file,
                start_new_session=True,  # terminal Ctrl-C goes to us; we stop the node
            )
            atexit.register(self.stop)
            self._reader = threading.Thread(
                target=self._read_stdout, args=(self._proc, urls), daemon=True,
                name=f"{self.flavor}-stdout",
            )
            self._reader.start()
            while True:
                try:
                    self.url = urls.get(timeout=0.2)
                    break
                except queue.Empty:
                    pass
                if self._proc.poll() is not None:
                    raise NodeStartError(
                        f"{self.flavor} node exited with {self._proc.returncode} before printing "
                        f"its URL:\n{self.stderr_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise NodeStartError(
                        f"{self.flavor} node printed no URL within {timeout}s:\n{self.stderr_tail()}"
                    )
            self._wait_for_health(deadline)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self.url

    def _read_stdout(self, proc: subprocess.Popen[bytes], urls: queue.Queue[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").strip()
            if line.startswith(self.url_prefix):
                urls.put(line[len(self.url_prefix):])
            elif line:
                sys.stderr.write(f"[{self.flavor} stdout] {line}\n")

    def _wait_for_health(self, deadline: float) -> None:
        last: object = None
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise NodeStartError(f"{self.flavor} node died during startup:\n{self.stderr_tail()}")
            remaining = max(1, int(deadline - time.monotonic()))
            try:
                health = self.request(
                    "GET", "/_cluster/health",
                    params={"wait_for_status": "yellow", "timeout": f"{min(remaining, 10)}s"},
                    timeout=min(remaining, 10) + 5,
                )
                if health.get("status") in ("yellow", "green"):
                    return
                last = health
            except (HTTPStatusError, urllib.error.URLError, OSError) as exc:
                last = exc
            time.sleep(0.2)
        raise NodeStartError(f"{self.flavor} cluster not yellow before timeout (last: {last}):\n"
                             f"{self.stderr_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the node (clean shutdown), kill it after ``timeout``, remove the temp dir.

        Idempotent. Returns the exit code (143 after SIGTERM), or None if never started."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream:
                        stream.close()
                except OSError:
                    pass
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        if self.tmpdir is not None and not self.keep_home:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        self.url = None
        return code

    def __enter__(self):
        self.build()
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --------------------------------------------------------------- client
    def request_raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, Mapping[str, str], Any]:
        """HTTP request to the node: (status, headers, decoded body). Never raises on status.

        body: dict/list -> JSON; list of dicts with path ending in _bulk or _msearch
        -> NDJSON; str/bytes -> sent as is."""
        if not self.url:
            raise RuntimeError("node not started")
        url = self.url + (path if path.startswith("/") else "/" + path)
        if params:
            url += "?" + urllib.parse.urlencode(
                {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}
            )
        data = None
        hdrs = {"Accept": "application/json"}
        if body is not None:
            ndjson = path.rstrip("/").endswith(("_bulk", "_msearch"))
            if isinstance(body, bytes):
                data = body
            elif isinstance(body, str):
                data = body.encode("utf-8")
            elif ndjson and isinstance(body, (list, tuple)):
                data = "".join(json.dumps(x) + "\n" for x in body).encode("utf-8")
            else:
                data = json.dumps(body).encode("utf-8")
            hdrs["Content-Type"] = "application/x-ndjson" if ndjson else "application/json"
        hdrs.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method.upper(), headers=hdrs)
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return resp.status, resp.headers, _decode(resp.read(), resp.headers.get("Content-Type"))
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, err.headers, _decode(raw, err.headers.get("Content-Type"))

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """Like request_raw but returns only the decoded body; raises HTTPStatusError on >= 400."""
        status, _, data = self.request_raw(method, path, body, **kwargs)
        if status >= 400:
            raise HTTPStatusError(method.upper(), path, status, data)
        return data

    # Point-in-time: the one API whose paths differ between the two engines.
    def open_pit(self, index: str, keep_alive: str = "1m") -> str:
        raise NotImplementedError

    def close_pit(self, pit_id: str) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} url={self.url!r} pid={self.pid}>"


class OpenSearchNode(_EmbeddedNode):
    """OpenSearch 2.19 (Lucene 9), with transport-netty4 and analysis-common."""

    flavor = "opensearch"
    module = "opensearch-node"
    main_class = "io.sigmahunt.testsupport.EmbeddedOpenSearch"
    url_prefix = "SIGMAHUNT_OPENSEARCH_URL="

    def open_pit(self, index: str, keep_alive: str = "1m") -> str:
        r = self.request("POST", f"/{index}/_search/point_in_time", params={"keep_alive": keep_alive})
        return r["pit_id"]

    def close_pit(self, pit_id: str) -> None:
        self.request("DELETE", "/_search/point_in_time", {"pit_id": [pit_id]})


class ElasticsearchNode(_EmbeddedNode):
    """Elasticsearch 7.17 (Lucene 8), transport-netty4 only (no analysis-common on
    Maven Central: "lowercase" works, "asciifolding" etc. do not). Indices default
    to 1 replica here, so health is yellow unless you set number_of_replicas: 0."""

    flavor = "elasticsearch"
    module = "elasticsearch-node"
    main_class = "io.sigmahunt.testsupport.EmbeddedElasticsearch"
    url_prefix = "SIGMAHUNT_ELASTICSEARCH_URL="

    def open_pit(self, index: str, keep_alive: str = "1m") -> str:
        return self.request("POST", f"/{index}/_pit", params={"keep_alive": keep_alive})["id"]

    def close_pit(self, pit_id: str) -> None:
        self.request("DELETE", "/_pit", {"id": pit_id})


# ---------------------------------------------------------------- smoke test
SMOKE_INDEX = "sigmahunt-smoke"
SMOKE_DOCS = [
    {"seq": 1, "event_id": 4688, "path": r"C:\Users\Public\x.exe"},
    {"seq": 2, "event_id": 4688, "path": r"c:\users\public\y.exe"},
    {"seq": 3, "event_id": 1, "path": r"C:\Users\Publicity\z.exe"},
]


def _ids(resp: Mapping[str, Any]) -> list[str]:
    return [h["_id"] for h in resp["hits"]["hits"]]


def smoke(node: _EmbeddedNode, out=print) -> None:
    info = node.request("GET", "/")
    out(f"{node.flavor} {info['version']['number']} (lucene {info['version']['lucene_version']}) "
        f"at {node.url}, pid {node.pid}, started in {node.start_seconds:.1f}s")
    node.request("PUT", f"/{SMOKE_INDEX}", {
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "analysis": {"normalizer": {"lc": {"type": "custom", "filter": ["lowercase"]}}},
        },
        "mappings": {"properties": {
            "seq": {"type": "long"},
            "event_id": {"type": "long"},
            "path": {"type": "keyword", "normalizer": "lc", "fields": {"raw": {"type": "keyword"}}},
        }},
    })
    node.request("POST", "/_bulk", [
        x for i, d in enumerate(SMOKE_DOCS, 1) for x in ({"index": {"_index": SMOKE_INDEX, "_id": str(i)}}, d)
    ], params={"refresh": "true"})
    node.request("POST", f"/{SMOKE_INDEX}/_refresh")
    count = node.request("GET", f"/{SMOKE_INDEX}/_count")["count"]
    out(f"indexed {count} docs: " + ", ".join(f"{i}={d['path']}" for i, d in enumerate(SMOKE_DOCS, 1)))

    def search(label: str, query: Mapping[str, Any]) -> None:
        r = node.request("POST", f"/{SMOKE_INDEX}/_search", {"query": query, "sort": [{"seq": "asc"}]})
        out(f"{label}: hits={_ids(r)}  query={json.dumps(query)}")

    pattern = r"*\\users\\public\\*"  # wildcard syntax: "\\" is one literal backslash
    search("(a) wildcard case_insensitive on normalized keyword",
           {"wildcard": {"path": {"value": pattern, "case_insensitive": True}}})
    search("(a+) wildcard case-sensitive, UPPER pattern, on normalized keyword",
           {"wildcard": {"path": {"value": pattern.upper()}}})
    search("(a') wildcard case_insensitive on raw keyword",
           {"wildcard": {"path.raw": {"value": pattern, "case_insensitive": True}}})
    search("(a'') wildcard case-sensitive on raw keyword",
           {"wildcard": {"path.raw": {"value": pattern}}})
    search("(b) query_string",
           {"query_string": {"query": r"path:*\\users\\public\\* AND event_id:4688"}})
    search("(c) term on number field", {"term": {"event_id": 4688}})

    pit = node.open_pit(SMOKE_INDEX, "1m")
    pages: list[list[str]] = []
    after = None
    while True:
        body: dict[str, Any] = {
            "size": 1,
            "pit": {"id": pit, "keep_alive": "1m"},
            "sort": [{"event_id": "asc"}, {"seq": "asc"}],
        }
        if after is not None:
            body["search_after"] = after
        r = node.request("POST", "/_search", body)
        hits = r["hits"]["hits"]
        if not hits:
            break
        pit = r.get("pit_id", pit)
        pages.append(_ids(r))
        after = hits[-1]["sort"]
    node.close_pit(pit)
    out(f"(d) point-in-time + search_after, size=1: pages={pages}")


def _opensearch_py_check(node: _EmbeddedNode, out=print) -> None:
    """Optional: only if opensearch-py happens to be installed."""
    try:
        import opensearchpy  # type: ignore[import-not-found]
    except ImportError:
        out("(opensearch-py not installed; skipped client check)")
        return
    client = opensearchpy.OpenSearch(node.url)
    out(f"opensearch-py {opensearchpy.__versionstr__}: info={client.info()['version']['number']}, "
        f"count={client.count(index=SMOKE_INDEX)['count']}")


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flavor", choices=("opensearch", "elasticsearch", "both"), default="opensearch")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    classes = {"opensearch": [OpenSearchNode], "elasticsearch": [ElasticsearchNode],
               "both": [OpenSearchNode, ElasticsearchNode]}[args.flavor]
    for cls in classes:
        node = cls()
        t0 = time.monotonic()
        node.build()
        if time.monotonic() - t0 > 1:
            print(f"built {node.module_dir} in {time.monotonic() - t0:.1f}s")
        node.start(timeout=args.timeout)
        try:
            smoke(node)
            if node.flavor == "opensearch":
                _opensearch_py_check(node)
        finally:
            t0 = time.monotonic()
            code = node.stop()
            print(f"stopped {node.flavor} (exit {code}) in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
