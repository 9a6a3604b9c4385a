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

import errno
import io
import mmap
import os
import stat
import struct
import threading
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import Generic, NamedTuple, TypeVar, cast

from ..native import OFF_VALUES, native
from .formats import (
    EVTX_MAGIC,
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


#: A leaf's bytes: read, or (large plain EVTX files) mapped; see :func:`read_file`.
LeafData = bytes | mmap.mmap


@dataclass(frozen=True)
class Leaf:
    """One readable byte stream: a plain file, a gunzipped file or a member."""

    source: str
    data: LeafData
    explicit: bool  # named by the caller: never skipped silently

    def read(self) -> bytes:
        """The bytes, for readers that take ``bytes``. A mapped leaf is an EVTX file, which
        only the EVTX readers see (a forced other format refuses it), so this copy of one
        is never made in practice; it keeps the types honest."""
        return self.data if isinstance(self.data, bytes) else self.data[:]


#: Plain EVTX files of at least this size are mapped rather than read (see read_file).
MAP_EVTX_BYTES = 1 << 20
#: ``off`` (or ``0``, ``false``, ``no``) reads every file (no mapping).
MMAP_ENV = "SIGMAHUNT_MMAP"
#: Files are opened without blocking (a named pipe would wait for a writer); see read_file.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
#: Why a path that exists is not read: a pipe, a socket, a device, a folder where a file was expected.
NOT_REGULAR = "not a regular file"


Item = Leaf | Unreadable
T = TypeVar("T")


class _Refused(Exception):
    """An archive member that must not (or cannot) be inflated."""


# --------------------------------------------------------------------------
# paths and folders


class LogFile(NamedTuple):
    """A file to read, and whether the caller named it: a file found in a folder the caller
    named that turns out not to be a log is skipped silently (see :func:`iter_files`).

    Why a type: a hunt walks its paths once and hands the files on in parts (to worker
    processes, to the event store file by file); passed as bare paths they would read as
    named, and every README or ``info.yml`` beside the logs would be reported unreadable.
    """

    path: str
    explicit: bool


def iter_files(paths: Sequence[str | Path | LogFile]) -> Iterator[LogFile | Unreadable]:
    """Files to read, in a deterministic order, with their "explicit" flag.

    Folders are walked recursively (sorted, symlinked folders not followed);
    inside them hidden/metadata files and obviously non-log extensions are
    skipped silently.  Files named by the caller are always returned.  Paths are
    written as ``str(Path(...))`` writes them. A :class:`LogFile` (a walk's file,
    handed on) is returned as it is.
    """
    for raw in paths:
        if isinstance(raw, LogFile):
            yield raw
            continue
        path = Path(raw)
        if path.is_dir():
            yield from (LogFile(p, False) for p in _walk(str(path)))
        elif path.is_file():
            yield LogFile(str(path), True)
        elif path.exists():
            yield Unreadable(str(path), "file", NOT_REGULAR)
        else:
            yield Unreadable(str(path), "file", "no such file or folder")


def _walk(root: str) -> list[str]:
    """All candidate files under ``root``, sorted by path component-wise (as ``Path``
    objects sort), as strings: a ``Path`` per file, its sorting and its formatting cost
    ~30 us per file under cProfile, in a folder of small logs (bench/RESULTS.md, session 10)."""
    found: list[tuple[tuple[str, ...], str]] = []
    prefix = "" if root == os.curdir else root  # str(Path(".") / "x") is "x"
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__MACOSX"]
        below = os.path.relpath(folder, root)
        parts = [] if below == os.curdir else below.split(os.sep)
        key = tuple(os.path.normcase(part) for part in parts)
        where = os.path.join(prefix, *parts)
        found.extend(
            ((*key, os.path.normcase(name)), os.path.join(where, name)) for name in files if not _skip_name(name)
        )
    found.sort(key=lambda entry: entry[0])
    return [path for _, path in found]


def _skip_name(name: str) -> bool:
    return is_metadata_name(name) or suffix_of(name) in NON_LOG_SUFFIXES


# --------------------------------------------------------------------------
# leaves


def iter_leaves(paths: Sequence[str | Path | LogFile], password: str | None = None) -> Iterator[Item]:
    """Every leaf byte stream under ``paths``, archives expanded in memory.

    ``password`` opens encrypted zip (ZipCrypto) and 7z (AES) members."""
    for entry in _with_contents(iter_files(paths)):
        if isinstance(entry, Unreadable):
            yield entry
            continue
        path, explicit, data = entry
        if isinstance(data, Unreadable):
            yield data
            continue
        yield from expand(path, data, explicit, password=password)


#: Files under MAP_EVTX_BYTES are read natively in groups of up to this many files, and
#: bytes (the file that reaches it ends a group): see :func:`_with_contents`. Over 9,800
#: files of ~70 KB, 4 MB groups read ~5% faster than 1 MB ones (bench/RESULTS.md, session 11).
READ_GROUP_FILES = 256
READ_GROUP_BYTES = 4 << 20


def _with_contents(
    entries: Iterator[LogFile | Unreadable],
) -> Iterator[tuple[str, bool, LeafData | Unreadable] | Unreadable]:
    """Each file with its bytes (or the report of why they cannot be read), in order.

    Why groups: in a folder of small logs, Python's ``open``, ``fstat``, ``readall`` and
    ``close`` each give up the GIL and wait to take it back from the EVTX lanes and the
    hunt; the native ``read_files`` reads a group with one release (bench/RESULTS.md,
    session 11). Without the native module, or for a file it leaves to Python (large,
    not regular, changed while read), :func:`read_file` reads it.
    """
    module = native()
    while group := list(islice(entries, READ_GROUP_FILES)):
        paths = [entry[0] for entry in group if not isinstance(entry, Unreadable)]
        contents: deque[bytes | int | None] = deque()
        for entry in group:
            if isinstance(entry, Unreadable):
                yield entry
                continue
            if module is not None and not contents:
                read = module.read_files(paths, MAP_EVTX_BYTES, READ_GROUP_BYTES)
                del paths[: len(read)]
                contents.extend(read)
            path, explicit = entry
            yield path, explicit, _contents(path, contents.popleft() if module is not None else None)


def _contents(path: str, read: bytes | int | None) -> LeafData | Unreadable:
    """A file's bytes from what ``read_files`` gave for it: the bytes, an ``errno``, or
    None (:func:`read_file` reads it)."""
    if isinstance(read, bytes):
        return read
    if isinstance(read, int):
        return _unreadable_file(path, os.strerror(read))
    try:
        return read_file(path)
    except OSError as exc:
        return _unreadable_file(path, exc.strerror or str(exc))


def _unreadable_file(path: str, reason: str) -> Unreadable:
    return Unreadable(path, "file", f"cannot read file: {reason}")


def file_size(path: str) -> int:
    """The file's size for progress and load balancing; 0 when it cannot be had (the file
    went after the walk): reading it reports why, and the hunt goes on."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def read_file(path: str | Path) -> LeafData:
    """The file's bytes; a large EVTX file mapped read-only into memory instead.

    Why: reading copies the file into a fresh allocation, whose page faults and zeroing
    cost this machine about as much as the native reader's parse of the records (0.24-0.38 s
    per 127 MB: bench/RESULTS.md, session 6), while the EVTX readers only need the bytes
    in place. Only EVTX: the other readers (JSON, XML, CSV, archives) take ``bytes``. A
    mapped file must not shrink while it is hunted (the process would get SIGBUS), as a
    live log being rotated might: ``SIGMAHUNT_MMAP=off`` reads every file instead.
    Unbuffered, sized by one ``fstat``: a folder of small logs (~70 KB) is read at ~13 us
    a file, against ~17-19 us buffered with a separate read of the signature.

    Only a regular file is read (``OSError`` "not a regular file" otherwise): opened without
    blocking, so a named pipe in a log folder is reported instead of hanging the hunt, and
    a device is not read forever.
    """
    descriptor = os.open(path, os.O_RDONLY | _NONBLOCK)
    with open(descriptor, "rb", buffering=0) as handle:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, NOT_REGULAR)
        if status.st_size >= MAP_EVTX_BYTES:
            head = handle.read(len(EVTX_MAGIC))
            if head == EVTX_MAGIC and os.environ.get(MMAP_ENV, "").strip().lower() not in OFF_VALUES:
                return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            handle.seek(0)
        return handle.readall()


def expand(source: str, data: LeafData, explicit: bool, depth: int = 0, password: str | None = None) -> Iterator[Item]:
    """Unwrap gzip/zip/7z containers (recursively) down to leaf streams."""
    if isinstance(data, mmap.mmap):  # a mapped file is EVTX (see read_file): a leaf
        yield Leaf(source, data, explicit)
        return
    kind = sniff_content(data[:SNIFF_BYTES])
    if kind not in (LogFormat.GZIP, LogFormat.ZIP, LogFormat.SEVENZIP):
        yield Leaf(source, data, explicit)
        return
    if depth >= MAX_NESTING:
        yield Unreadable(source, "file", f"archives nested deeper than {MAX_NESTING} levels")
        return
    if kind is LogFormat.GZIP:
        yield from _expand_gzip(source, data, explicit, depth, password)
    elif kind is LogFormat.ZIP:
        yield from _expand_zip(source, data, depth, password)
    else:
        yield from _expand_7z(source, data, depth, password)


def _expand_gzip(source: str, data: bytes, explicit: bool, depth: int, password: str | None) -> Iterator[Item]:
    limit = max(BOMB_BYTES, BOMB_RATIO * len(data))
    out, problem = gunzip(data, limit)
    if out:
        yield from expand(source, out, explicit, depth + 1, password)
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


def _expand_zip(source: str, data: bytes, depth: int, password: str | None) -> Iterator[Item]:
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
                content = read_member(archive, data, info, password)
            except _Refused as exc:
                yield Unreadable(name, "file", str(exc))
                continue
            yield from expand(name, content, False, depth + 1, password)


def read_member(archive: zipfile.ZipFile, data: bytes, info: zipfile.ZipInfo, password: str | None = None) -> bytes:
    """Inflate one member in memory, refusing bombs and checking the CRC."""
    encrypted = bool(info.flag_bits & 0x1)
    if encrypted and password is None:
        raise _Refused(f"{ENCRYPTED_HINT} (encrypted zip member)")
    if info.file_size > BOMB_RATIO * max(info.compress_size, 1) and info.file_size > BOMB_BYTES:
        raise _Refused(
            f"refused: declares {info.file_size} bytes from {info.compress_size} compressed "
            f"(ratio over {BOMB_RATIO} and over {BOMB_BYTES} bytes: decompression bomb guard)"
        )
    try:
        if info.compress_type == zipfile.ZIP_DEFLATED and not encrypted:
            content = _inflate_raw(_raw_member(data, info), info.file_size)
        else:
            pwd = password.encode("utf-8") if encrypted and password is not None else None
            content = _read_via_zipfile(archive, info, pwd)
    except RuntimeError as exc:  # zipfile: "Bad password for file"
        raise _Refused(f"{ENCRYPTED_HINT} (wrong password for encrypted zip member: {exc})") from exc
    except NotImplementedError as exc:
        hint = " (AES-encrypted zip is not supported; re-pack as 7z or ZipCrypto)" if encrypted else ""
        raise _Refused(f"unreadable zip member: {exc}{hint}") from exc
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        if encrypted:  # garbage from a wrong key that passed the 1-byte check
            raise _Refused(f"{ENCRYPTED_HINT} (wrong password for encrypted zip member: {exc})") from exc
        raise _Refused(f"unreadable zip member: {exc}") from exc
    if _ZLIB.crc32(content) != info.CRC:
        if encrypted:
            raise _Refused(f"{ENCRYPTED_HINT} (wrong password for encrypted zip member: CRC mismatch)")
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


def _read_via_zipfile(archive: zipfile.ZipFile, info: zipfile.ZipInfo, pwd: bytes | None = None) -> bytes:
    """Stored/bzip2/lzma (and encrypted) members: let zipfile decode, still capped."""
    with archive.open(info, pwd=pwd) as member:
        out = member.read(info.file_size + 1)
    if len(out) > info.file_size:
        raise zlib.error("member inflates beyond its declared size")
    return out


# --------------------------------------------------------------------------
# 7z (py7zr, pure Python, optional)

#: Reason prefix for members that need (another) password.
ENCRYPTED_HINT = "encrypted: pass --archive-password"


def _expand_7z(source: str, data: bytes, depth: int, password: str | None) -> Iterator[Item]:
    """7z members, read in memory like zip members (``a.7z!member``).

    The bomb guard uses the archive size as the compressed size (7z blocks
    are solid, members have no size of their own); output is capped at the
    declared size, and py7zr checks each member's CRC.
    """
    try:
        import py7zr
    except ImportError:
        yield Unreadable(source, "file", "7z archive: install py7zr to read it (pip install py7zr)")
        return
    try:
        archive = py7zr.SevenZipFile(io.BytesIO(data), mode="r", password=password)
        infos = archive.list()
    except py7zr.PasswordRequired:
        yield Unreadable(source, "file", f"{ENCRYPTED_HINT} (7z archive with encrypted file names)")
        return
    except Exception as exc:  # py7zr raises many kinds on damage and on wrong header keys
        reason = _7z_reason(exc, password)
        yield Unreadable(source, "file", reason if reason else f"unreadable 7z archive: {exc}")
        return
    with archive:
        wanted: dict[str, int] = {}
        for info in infos:
            if info.is_directory or _skip_name(info.filename):
                continue
            name = f"{source}!{info.filename}"
            declared = info.uncompressed or 0
            if declared > BOMB_RATIO * max(len(data), 1) and declared > BOMB_BYTES:
                yield Unreadable(
                    name, "file",
                    f"refused: declares {declared} bytes from a {len(data)}-byte archive "
                    f"(ratio over {BOMB_RATIO} and over {BOMB_BYTES} bytes: decompression bomb guard)",
                )  # fmt: skip
            elif archive.needs_password() and password is None:
                yield Unreadable(name, "file", f"{ENCRYPTED_HINT} (encrypted 7z member)")
            else:
                wanted[info.filename] = declared
        if not wanted:
            return
        contents: dict[str, bytes | str] = {}
        try:  # one pass over the solid blocks
            contents = _extract_7z(archive, wanted)
        except Exception:
            for member in wanted:  # one by one, so damage costs only its member
                try:
                    archive.reset()
                    contents.update(_extract_7z(archive, {member: wanted[member]}))
                except Exception as exc:
                    reason = _7z_reason(exc, password)
                    contents[member] = reason if reason else f"unreadable 7z member: {exc!r}"
    for member in wanted:
        name = f"{source}!{member}"
        content = contents.get(member, "7z member missing from its archive")
        if isinstance(content, str):
            yield Unreadable(name, "file", content)
        elif len(content) > wanted[member]:
            yield Unreadable(name, "file", "7z member inflates beyond its declared size")
        else:
            yield from expand(name, content, False, depth + 1, password)


def _extract_7z(archive: object, sizes: dict[str, int]) -> dict[str, bytes | str]:
    """Members in memory, each capped one byte past its declared size."""
    from py7zr.io import Py7zBytesIO, WriterFactory

    class _Capped(WriterFactory):  # type: ignore[misc]
        def __init__(self) -> None:
            self.products: dict[str, Py7zBytesIO] = {}

        def create(self, filename: str) -> Py7zBytesIO:
            product = Py7zBytesIO(filename, sizes.get(filename, 0) + 1)
            self.products[filename] = product
            return product

    factory = _Capped()
    archive.extract(targets=list(sizes), factory=factory)  # type: ignore[attr-defined]
    out: dict[str, bytes | str] = {}
    for member, product in factory.products.items():
        product.seek(0)
        out[member] = product.read()
    return out


def _7z_reason(exc: Exception, password: str | None) -> str | None:
    """A wrong or missing password shows up as a CRC or decoder error."""
    text = f"{type(exc).__name__}: {exc}"
    if password is None and "password" in text.lower():
        return f"{ENCRYPTED_HINT} (encrypted 7z member)"
    if password is not None and any(w in text.lower() for w in ("crc", "password", "corrupt", "lzma", "data error")):
        return f"{ENCRYPTED_HINT} (wrong password for encrypted 7z member, or corrupt data: {text})"
    return None


# --------------------------------------------------------------------------
# background prefetch


def prefetch(
    items: Iterable[T], depth: int = 1, weigh: Callable[[T], int] | None = None, budget: int = 0
) -> Iterator[T]:
    """Produce ``items`` in a worker thread, ``depth`` items ahead (see :class:`Prefetched`).

    The worker starts at the first ``next`` and stops promptly when the consumer abandons
    the iterator; exceptions raised while producing are re-raised in the consumer.
    """
    yield from Prefetched(items, depth, weigh, budget)


class Prefetched(Generic[T]):
    """``items`` produced in a worker thread started at construction, ``depth`` ahead.

    With ``weigh``, the items waiting also weigh at most ``budget`` together (bytes of
    input, say), bar one item alone: many light items may run ahead, heavy ones not.

    Why a class: the EVTX reading lanes start the next file's reading before its turn comes
    (see ``reader._outputs``), so the worker must run before anyone iterates, and a lane
    the consumer never reaches must still be stopped (:meth:`close`).
    """

    def __init__(
        self, items: Iterable[T], depth: int = 1, weigh: Callable[[T], int] | None = None, budget: int = 0
    ) -> None:
        self._slots: deque[tuple[str, object, int]] = deque()
        self._weight = 0
        self._ready = threading.Condition()
        self._depth = depth
        self._weigh = weigh
        self._budget = budget
        self._stop = threading.Event()
        self._items = items
        self._worker = threading.Thread(target=self._work, name="sigmahunt-ingest-prefetch", daemon=True)
        self._worker.start()

    def _has_room(self, weight: int) -> bool:
        if not self._slots:
            return True
        if len(self._slots) >= self._depth:
            return False
        return self._weigh is None or self._weight + weight <= self._budget

    def _put(self, kind: str, value: object, weight: int = 0) -> bool:
        with self._ready:
            while not self._stop.is_set():
                if self._has_room(weight):
                    self._slots.append((kind, value, weight))
                    self._weight += weight
                    self._ready.notify_all()
                    return True
                self._ready.wait(0.1)
        return False

    def _work(self) -> None:
        try:
            for item in self._items:
                if not self._put("item", item, self._weigh(item) if self._weigh is not None else 0):
                    return
        except BaseException as exc:
            self._put("error", exc)
            return
        self._put("done", None)

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                with self._ready:
                    while not self._slots:
                        self._ready.wait()
                    kind, value, weight = self._slots.popleft()
                    self._weight -= weight
                    self._ready.notify_all()
                if kind == "done":
                    return
                if kind == "error":
                    raise cast(BaseException, value)
                yield cast(T, value)
        finally:
            self.close()

    def close(self) -> None:
        """Stops the worker (it finishes the item in hand) and waits for it briefly."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        self._worker.join(timeout=5)
