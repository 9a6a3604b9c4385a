"""Turn user paths into in-memory leaves: files, folders, gzip and zip.

Everything is read into memory and archives are never extracted to disk, so
a member called ``../../etc/passwd`` is only ever a display name.  Archive
handling guards against decompression bombs and checks CRCs so that damage
is reported as :class:`Unreadable` instead of silently truncating events.

A background thread produces the leaves (disk reads and inflation release
the GIL) while the caller parses the previous one: on two cores this hides
most of the decompression cost of the big zipped JSON corpora.
"""

from __future__ import annotations

import io
import os
import queue
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeVar, cast

from .formats import (
    NON_LOG_SUFFIXES,
    SNIFF_BYTES,
    LogFormat,
    is_metadata_name,
    sniff_content,
    suffix_of,
)
from .model import Unreadable

#: Zip-bomb guard: a member is refused when its size exceeds *both* limits.
BOMB_RATIO = 100
BOMB_BYTES = 1 << 30
#: Archives nested deeper than this are reported, not opened.
MAX_NESTING = 4

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_MAGIC = b"PK\x03\x04"


def _fast_zlib() -> ModuleType:
    """ISA-L inflates 2-3x faster than zlib when installed; same API subset."""
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib
    return isal_zlib


_ZLIB = _fast_zlib()


@dataclass(frozen=True)
class Leaf:
    """One readable byte stream: a plain file, a gunzipped file or a member."""

    source: str
    data: bytes
    explicit: bool  # named by the caller: never skipped silently


Item = Leaf | Unreadable
T = TypeVar("T")


class _Refused(Exception):
    """An archive member that must not (or cannot) be inflated."""


# --------------------------------------------------------------------------
# paths and folders


def iter_files(paths: Sequence[str | Path]) -> Iterator[tuple[Path, bool] | Unreadable]:
    """Files to read, in a deterministic order, with their "explicit" flag.

    Folders are walked recursively (sorted, symlinked folders not followed);
    inside them hidden/metadata files and obviously non-log extensions are
    skipped silently.  Files named by the caller are always returned.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from ((p, False) for p in _walk(path))
        elif path.is_file():
            yield path, True
        else:
            yield Unreadable(str(path), "file", "no such file or directory")


def _walk(root: Path) -> list[Path]:
    """All candidate files under ``root``, sorted by path (component-wise)."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__MACOSX"]
        found.extend(Path(folder) / name for name in files if not _skip_name(name))
    return sorted(found)


def _skip_name(name: str) -> bool:
    return is_metadata_name(name) or suffix_of(name) in NON_LOG_SUFFIXES


# --------------------------------------------------------------------------
# leaves


def iter_leaves(paths: Sequence[str | Path]) -> Iterator[Item]:
    """Every leaf byte stream under ``paths``, archives expanded in memory."""
    for entry in iter_files(paths):
        if isinstance(entry, Unreadable):
            yield entry
            continue
        path, explicit = entry
        try:
            data = path.read_bytes()
        except OSError as exc:
            yield Unreadable(str(path), "file", f"cannot read file: {exc.strerror or exc}")
            continue
        yield from expand(str(path), data, explicit)


def expand(source: str, data: bytes, explicit: bool, depth: int = 0) -> Iterator[Item]:
    """Unwrap gzip/zip containers (recursively) down to leaf streams."""
    kind = sniff_content(data[:SNIFF_BYTES])
    if kind not in (LogFormat.GZIP, LogFormat.ZIP):
        yield Leaf(source, data, explicit)
        return
    if depth >= MAX_NESTING:
        yield Unreadable(source, "file", f"archives nested deeper than {MAX_NESTING} levels")
        return
    if kind is LogFormat.GZIP:
        yield from _expand_gzip(source, data, explicit, depth)
    else:
        yield from _expand_zip(source, data, depth)


def _expand_gzip(source: str, data: bytes, explicit: bool, depth: int) -> Iterator[Item]:
    limit = max(BOMB_BYTES, BOMB_RATIO * len(data))
    out, problem = gunzip(data, limit)
    if out:
        yield from expand(source, out, explicit, depth + 1)
    if problem:
        yield Unreadable(source, "file", problem)


def gunzip(data: bytes, limit: int) -> tuple[bytes, str | None]:
    """Inflate all gzip members; return what was inflated and any problem.

    Content inflated before a corruption is kept (and read) so that a
    damaged tail loses only the damaged part.
    """
    parts: list[bytes] = []
    produced = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(31)
        pending = rest
        while pending:
            # Room is at least 1, so output reaching it means "over the limit".
            try:
                chunk = inflater.decompress(pending, limit + 1 - produced)
            except zlib.error as exc:
                return b"".join(parts), f"corrupt gzip data: {exc}"
            parts.append(chunk)
            produced += len(chunk)
            if produced > limit:
                return b"", f"refused: inflates beyond {limit} bytes (decompression bomb guard)"
            pending = inflater.unconsumed_tail
        if not inflater.eof:
            return b"".join(parts), "gzip stream is truncated; the readable part was kept"
        rest = inflater.unused_data.lstrip(b"\x00")
    return b"".join(parts), None


def _expand_zip(source: str, data: bytes, depth: int) -> Iterator[Item]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        yield Unreadable(source, "file", f"unreadable zip archive: {exc}")
        return
    with archive:
        for info in members:
            if info.is_dir() or _skip_name(info.filename):
                continue
            name = f"{source}!{info.filename}"
            try:
                content = read_member(archive, data, info)
            except _Refused as exc:
                yield Unreadable(name, "file", str(exc))
                continue
            yield from expand(name, content, False, depth + 1)


def read_member(archive: zipfile.ZipFile, data: bytes, info: zipfile.ZipInfo) -> bytes:
    """Inflate one member in memory, refusing bombs and checking the CRC."""
    if info.flag_bits & 0x1:
        raise _Refused("encrypted zip member")
    if info.file_size > BOMB_RATIO * max(info.compress_size, 1) and info.file_size > BOMB_BYTES:
        raise _Refused(
            f"refused: declares {info.file_size} bytes from {info.compress_size} compressed "
            f"(ratio over {BOMB_RATIO} and over {BOMB_BYTES} bytes: decompression bomb guard)"
        )
    try:
        if info.compress_type == zipfile.ZIP_DEFLATED:
            content = _inflate_raw(_raw_member(data, info), info.file_size)
        else:
            content = _read_via_zipfile(archive, info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        raise _Refused(f"unreadable zip member: {exc}") from exc
    if _ZLIB.crc32(content) != info.CRC:
        raise _Refused("zip member fails its CRC check (corrupt archive)")
    return content


def _raw_member(data: bytes, info: zipfile.ZipInfo) -> memoryview:
    """The compressed bytes of a member, located via its local header."""
    offset = info.header_offset
    header = data[offset : offset + _LOCAL_HEADER.size]
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
        raise zipfile.BadZipFile("bad local file header")
    fields = _LOCAL_HEADER.unpack(header)
    start = offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]
    end = start + info.compress_size
    if end > len(data):
        raise zipfile.BadZipFile("member data runs past the end of the archive")
    return memoryview(data)[start:end]


def _inflate_raw(raw: memoryview, declared: int) -> bytes:
    """One-shot raw-deflate inflation capped at the declared size."""
    inflater = _ZLIB.decompressobj(-15)
    out = inflater.decompress(raw, declared + 1)
    if len(out) > declared:
        raise zlib.error("member inflates beyond its declared size")
    if not inflater.eof:
        raise zlib.error("deflate stream is truncated")
    return bytes(out)


def _read_via_zipfile(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Stored/bzip2/lzma members: let zipfile decode, still capped."""
    with archive.open(info) as member:
        out = member.read(info.file_size + 1)
    if len(out) > info.file_size:
        raise zlib.error("member inflates beyond its declared size")
    return out


# --------------------------------------------------------------------------
# background prefetch


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Produce ``items`` in a worker thread, ``depth`` items ahead.

    The worker stops promptly when the consumer abandons the iterator, and
    exceptions raised while producing are re-raised in the consumer.
    """
    slots: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                slots.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
        except BaseException as exc:
            put("error", exc)
            return
        put("done", None)

    worker = threading.Thread(target=work, name="sigmahunt-ingest-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "done":
                return
            if kind == "error":
                raise cast(BaseException, value)
            yield cast(T, value)
    finally:
        stop.set()
        worker.join(timeout=5)
