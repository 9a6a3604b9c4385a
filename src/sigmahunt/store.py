"""The embedded event store: normalised events as Parquet parts plus a JSON manifest.

Why Parquet rather than DuckDB: the engine consumes columnar batches and never needs SQL;
Parquet parts stream back batch by batch in bounded memory, each part may have its own
columns (Sysmon and Security events share few fields), and the very same files are what
Spark reads for the scale-out engine. A DuckDB file would add a single-writer lock and a
schema to migrate without buying the evaluator anything.

Consistency: a source's parts are written first, then the manifest is replaced
atomically. An interrupted ingest leaves orphan parts that are not in the manifest;
they are ignored and removed by the next run, which re-reads that source. A source is
identified by its path and content hash, so ingesting the same file twice stores it once
and a changed file is re-read.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from sigmahunt.results import write_atomically

MANIFEST = "manifest.json"
PARTS = "parts"
FORMAT_VERSION = 1


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class StoredSource:
    path: str
    sha256: str
    events: int
    unreadable: list[dict[str, str]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)


class EventStore:
    """A folder of Parquet parts; ``temporary=True`` removes it on :meth:`close`."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.temporary = root is None
        self.root = Path(tempfile.mkdtemp(prefix="sigmahunt-store-")) if root is None else Path(root)
        (self.root / PARTS).mkdir(parents=True, exist_ok=True)
        self.sources: dict[str, StoredSource] = {}
        self._load_manifest()
        self._remove_orphans()

    # -- manifest -------------------------------------------------------------------------

    def _load_manifest(self) -> None:
        path = self.root / MANIFEST
        if not path.exists():
            return
        data = orjson.loads(path.read_bytes())
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: store format {data.get('version')} is not {FORMAT_VERSION}")
        for item in data["sources"]:
            source = StoredSource(**item)
            self.sources[source.path] = source

    def _save_manifest(self) -> None:
        data: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "sources": [s.__dict__ for s in sorted(self.sources.values(), key=lambda s: s.path)],
        }
        write_atomically(self.root / MANIFEST, orjson.dumps(data, option=orjson.OPT_INDENT_2))

    def _remove_orphans(self) -> None:
        known = {part for s in self.sources.values() for part in s.parts}
        for part in (self.root / PARTS).glob("*.parquet"):
            if part.name not in known:
                part.unlink(missing_ok=True)

    # -- writing --------------------------------------------------------------------------

    def is_current(self, path: str, sha256: str) -> bool:
        stored = self.sources.get(path)
        return stored is not None and stored.sha256 == sha256

    def begin_source(self, path: str, sha256: str) -> SourceWriter:
        return SourceWriter(self, path, sha256)

    def _commit(self, source: StoredSource) -> None:
        old = self.sources.get(source.path)
        self.sources[source.path] = source
        self._save_manifest()
        if old is not None:
            for part in set(old.parts) - set(source.parts):
                (self.root / PARTS / part).unlink(missing_ok=True)

    # -- reading --------------------------------------------------------------------------

    def iter_batches(self, paths: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """Stored events, one part at a time, in source order (all sources when ``paths`` is None)."""
        selected = sorted(self.sources) if paths is None else [p for p in paths if p in self.sources]
        for source_path in selected:
            for part in self.sources[source_path].parts:
                yield pl.read_parquet(self.root / PARTS / part)

    def events(self, paths: list[str] | None = None) -> int:
        selected = self.sources.values() if paths is None else [self.sources[p] for p in paths if p in self.sources]
        return sum(s.events for s in selected)

    def close(self) -> None:
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SourceWriter:
    """Collects one source's batches; nothing is visible in the store until :meth:`commit`."""

    def __init__(self, store: EventStore, path: str, sha256: str) -> None:
        self.store = store
        self.source = StoredSource(path=path, sha256=sha256, events=0)
        self._prefix = hashlib.sha1(f"{path}\0{sha256}".encode()).hexdigest()[:16]

    def add_batch(self, frame: pl.DataFrame) -> None:
        name = f"{self._prefix}-{len(self.source.parts):05d}.parquet"
        frame.write_parquet(self.store.root / PARTS / name, compression="zstd", compression_level=1)
        self.source.parts.append(name)
        self.source.events += frame.height

    def add_unreadable(self, position: str, reason: str, source: str) -> None:
        self.source.unreadable.append({"source": source, "position": position, "reason": reason})

    def commit(self) -> None:
        self.store._commit(self.source)
