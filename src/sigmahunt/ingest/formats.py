"""Log formats, their user-facing names, and content/extension detection.

Detection policy (documented here because the engine and CLI rely on it):

* Content wins over the file name.  The first bytes decide: ``ElfFile\\0`` is
  EVTX, ``1f 8b`` is gzip, ``PK\\3\\4`` (or an empty-archive ``PK\\5\\6``) is
  zip, ``7z\xbc\xaf'\x1c`` is 7z, and, after an optional UTF-8/UTF-16
  byte-order mark and blanks, ``{`` followed by ``"`` or ``}``, or ``[``
  followed by ``{`` or ``]``, is JSON; ``<`` (or evtx_dump's ``Record N``
  line) with an ``<Event>``/``<Events>`` tag in the window is EVTX XML
  (evtx_dump ``-o xml``, ``wevtutil qe /f:xml``); a comma-separated first
  line (after an optional ``#TYPE`` line) naming a well-known event field
  (EventID, Id, TimeCreated, LogName, ...) is CSV.
* Only when the content is inconclusive (empty, or binary that matches no
  magic) does the extension decide, so that a damaged ``x.evtx`` is still
  handed to the EVTX reader, which then reports *why* it is unreadable.
* JSON is detected at the *layout* level only (lines vs. concatenated
  objects vs. array).  The record *shape* (evtx_dump ``{"Event": ...}``,
  Winlogbeat/ECS ``winlog.*``, flat key/values) is decided per record by the
  JSON reader, so one file may mix shapes.  ``format_in`` can force a shape.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import PurePosixPath

EVTX_MAGIC = b"ElfFile\x00"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
SEVENZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_JSON_STARTS = (ord("{"), ord("["))
_BLANK = b" \t\r\n"

#: How many leading bytes detection needs to look at.
SNIFF_BYTES = 4096


class LogFormat(StrEnum):
    """Formats ``read_logs`` understands.

    ``JSON`` / ``JSONL`` are layouts whose record shape is sniffed per record;
    ``EVTX_JSON`` / ``FLAT_JSON`` / ``WINLOGBEAT`` force one record shape on
    every record (any JSON layout).  ``GZIP`` and ``ZIP`` are containers: they
    are always detected from content and unwrapped, never forced.
    """

    EVTX = "evtx"
    JSON = "json"
    JSONL = "jsonl"
    EVTX_JSON = "evtx-json"
    FLAT_JSON = "flat-json"
    WINLOGBEAT = "winlogbeat"
    EVTX_XML = "evtx-xml"
    CSV = "csv"
    GZIP = "gzip"
    ZIP = "zip"
    SEVENZIP = "7z"

    @property
    def is_container(self) -> bool:
        return self in (LogFormat.GZIP, LogFormat.ZIP, LogFormat.SEVENZIP)

    @property
    def is_json(self) -> bool:
        return self not in (
            LogFormat.EVTX, LogFormat.EVTX_XML, LogFormat.CSV, LogFormat.GZIP, LogFormat.ZIP, LogFormat.SEVENZIP
        )  # fmt: skip

    @classmethod
    def parse(cls, name: str | LogFormat) -> LogFormat:
        """Map a user-supplied ``format_in`` (or an alias) to a leaf format."""
        if isinstance(name, LogFormat):
            fmt = name
        else:
            key = name.strip().lower().replace("_", "-")
            fmt = _ALIASES.get(key)  # type: ignore[assignment]
            if fmt is None:
                choices = ", ".join(sorted(_ALIASES))
                raise ValueError(f"unknown log format {name!r}; choose one of: {choices}")
        if fmt.is_container:
            raise ValueError(
                f"{fmt.value!r} is a container; it is detected and unwrapped "
                "automatically, give the format of its content instead"
            )
        return fmt


_ALIASES: dict[str, LogFormat] = {
    "evtx": LogFormat.EVTX,
    "json": LogFormat.JSON,
    "jsonl": LogFormat.JSONL,
    "ndjson": LogFormat.JSONL,
    "json-lines": LogFormat.JSONL,
    "evtx-json": LogFormat.EVTX_JSON,
    "evtxdump": LogFormat.EVTX_JSON,
    "evtx-dump": LogFormat.EVTX_JSON,
    "flat-json": LogFormat.FLAT_JSON,
    "flat": LogFormat.FLAT_JSON,
    "otrf": LogFormat.FLAT_JSON,
    "mordor": LogFormat.FLAT_JSON,
    "helk": LogFormat.FLAT_JSON,
    "winlogbeat": LogFormat.WINLOGBEAT,
    "elastic": LogFormat.WINLOGBEAT,
    "elastic-agent": LogFormat.WINLOGBEAT,
    "ecs": LogFormat.WINLOGBEAT,
    "evtx-xml": LogFormat.EVTX_XML,
    "xml": LogFormat.EVTX_XML,
    "wevtutil": LogFormat.EVTX_XML,
    "csv": LogFormat.CSV,
    "gzip": LogFormat.GZIP,
    "gz": LogFormat.GZIP,
    "zip": LogFormat.ZIP,
    "7z": LogFormat.SEVENZIP,
}

_SUFFIX_FORMATS: dict[str, LogFormat] = {
    ".evtx": LogFormat.EVTX,
    ".json": LogFormat.JSON,
    ".jsonl": LogFormat.JSONL,
    ".ndjson": LogFormat.JSONL,
    ".gz": LogFormat.GZIP,
    ".gzip": LogFormat.GZIP,
    ".zip": LogFormat.ZIP,
    ".xml": LogFormat.EVTX_XML,
    # no ".csv": a CSV is read only when its header names an event field
    # (see _looks_like_event_csv) or when format_in="csv" forces it
    ".7z": LogFormat.SEVENZIP,
}

#: Extensions that are obviously not logs: skipped *silently* when met while
#: walking a folder or an archive (rule sets ship .yml beside the samples).
#: A file named explicitly by the caller is never skipped silently.
NON_LOG_SUFFIXES: frozenset[str] = frozenset(
    {
        # rules, docs and web
        ".yml", ".yaml", ".md", ".markdown", ".rst", ".html", ".htm", ".css", ".pdf", ".doc", ".docx",
        # images and fonts
        ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".woff", ".woff2", ".ttf",
        # configuration
        ".toml", ".ini", ".cfg", ".conf", ".properties", ".options", ".lock", ".mf",
        # source code, scripts, notebooks
        ".py", ".pyi", ".pyc", ".ipynb", ".js", ".ts", ".jsx", ".tsx", ".java", ".c", ".h", ".cpp",
        ".hpp", ".rs", ".go", ".rb", ".pl", ".php", ".cs", ".sh", ".ps1", ".psm1", ".bat", ".cmd",
        # binaries and packages
        ".class", ".jar", ".war", ".whl", ".so", ".dll", ".exe", ".pyd", ".o", ".a",
    }
)  # fmt: skip

#: Extensions of text that *may* hold JSON: read when the content sniffs as a
#: log, otherwise skipped silently (inside folders/archives only).
MAYBE_LOG_SUFFIXES: frozenset[str] = frozenset({".txt", ""})

#: Path components that mark OS metadata rather than data (macOS resource
#: forks in zips, VCS folders).
METADATA_DIRS: frozenset[str] = frozenset({"__MACOSX", ".git", ".svn", ".hg"})


def is_metadata_name(name: str) -> bool:
    """True for hidden files, AppleDouble ``._x`` forks and VCS/OS folders."""
    parts = _name_parts(name)
    if any(p in METADATA_DIRS for p in parts[:-1]):
        return True
    return bool(parts) and parts[-1].startswith(".")


def suffix_of(name: str) -> str:
    """Lower-cased last extension of a path or archive member name."""
    parts = _name_parts(name)
    last = parts[-1] if parts else ""
    dot = last.rfind(".")
    return last[dot:].lower() if 0 < dot < len(last) - 1 else ""


def _name_parts(name: str) -> list[str]:
    """The components ``PurePosixPath(name.replace("\\", "/")).parts`` gives, bar the
    root (never a metadata name nor a file name), by string splitting: both run per
    file of a folder walk, and constructing the path cost ~8 us each under cProfile
    (bench/RESULTS.md, session 10)."""
    return [part for part in name.replace("\\", "/").split("/") if part and part != "."]


def strip_bom(head: bytes) -> bytes:
    """Drop a UTF-8 BOM; UTF-16 text is transcoded by the JSON reader."""
    return head[3:] if head.startswith(UTF8_BOM) else head


def sniff_content(head: bytes) -> LogFormat | None:
    """Format from the first bytes alone, or None when they are inconclusive."""
    if head.startswith(EVTX_MAGIC):
        return LogFormat.EVTX
    if head.startswith(GZIP_MAGIC):
        return LogFormat.GZIP
    if head.startswith(ZIP_MAGICS):
        return LogFormat.ZIP
    if head.startswith(SEVENZIP_MAGIC):
        return LogFormat.SEVENZIP
    if head.startswith(UTF16_BOMS):
        text = head[2:].decode("utf-16-le" if head[:2] == b"\xff\xfe" else "utf-16-be", "ignore")
        return _sniff_text(text.lstrip().encode("utf-8"))
    return _sniff_text(strip_bom(head).lstrip(_BLANK))


def _sniff_text(body: bytes) -> LogFormat | None:
    if _looks_like_json(body):
        return LogFormat.JSON
    if _looks_like_event_xml(body):
        return LogFormat.EVTX_XML
    if _looks_like_event_csv(body):
        return LogFormat.CSV
    return None


#: evtx_dump's XML output puts "Record N" before each event's declaration.
_XML_START = re.compile(rb"(?:Record \d+\s*)?<")
_XML_EVENT_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?Events?[\s>]")


def _looks_like_event_xml(body: bytes) -> bool:
    """XML text (``<`` first, or evtx_dump's ``Record N``) with an
    ``<Event>`` / ``<Events>`` element in the sniff window."""
    return bool(_XML_START.match(body)) and bool(_XML_EVENT_TAG.search(body))


#: Header names (lower case, blanks/underscores removed) that mark a CSV
#: export of Windows events; one of them must be a field of the header.
CSV_HEADER_HINTS: frozenset[str] = frozenset(
    {
        "eventid", "id", "channel", "logname", "timecreated", "timegenerated",
        "recordid", "eventrecordid", "providername", "machinename", "computer",
    }
)  # fmt: skip


def _looks_like_event_csv(body: bytes) -> bool:
    """A comma-separated header naming a well-known event field."""
    lines = body.split(b"\n", 2)
    first = lines[0]
    if first.startswith(b"#TYPE") and len(lines) > 1:  # Windows PowerShell Export-Csv
        first = lines[1]
    if b"," not in first:
        return False
    names = {f.strip().strip(b'"').replace(b" ", b"").replace(b"_", b"").lower() for f in first.split(b",")}
    return any(n.decode("latin-1") in CSV_HEADER_HINTS for n in names)


def _looks_like_json(body: bytes) -> bool:
    """An object (``{`` then ``"`` or ``}``) or an array of objects.

    Checking the second token keeps INI sections (``[section]``) and other
    bracketed text from passing for JSON.
    """
    if not body or body[0] not in _JSON_STARTS:
        return False
    rest = body[1:].lstrip(_BLANK)
    if not rest:
        return True  # cut short by the sniff window
    follows = b'"}' if body[0] == ord("{") else b"{]"
    return rest[0] in follows


def is_blank(head: bytes) -> bool:
    """Empty or whitespace-only content (an empty log, not an error)."""
    return not strip_bom(head).strip(_BLANK)


def detect_format(path: str | PurePosixPath | object, head: bytes | None = None) -> LogFormat | None:
    """Detect the format of ``path`` from its content, then its extension.

    ``head`` may be given (e.g. for archive members); otherwise the first
    ``SNIFF_BYTES`` of the file are read.  Returns None when neither content
    nor extension identify a log format.
    """
    name = str(path)
    if head is None:
        with open(name, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    found = sniff_content(head)
    if found is not None:
        return found
    return _SUFFIX_FORMATS.get(suffix_of(name))
