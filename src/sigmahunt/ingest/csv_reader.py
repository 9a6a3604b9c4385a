"""CSV exports of Windows events: one event per row under a header row.

Covers ``Get-WinEvent | Export-Csv`` (including Windows PowerShell's
leading ``#TYPE`` line), SIEM/Excel exports and similar.  Every column is
kept under its header name; well-known system columns are *added* under the
normalised names when those are absent (``Id`` -> ``EventID``, ``LogName``
-> ``Channel``, ``MachineName`` -> ``Computer``, ``TimeGenerated`` ->
``TimeCreated``, ``RecordId`` -> ``EventRecordID``, ``ProviderName`` /
``Source`` -> ``Provider_Name``; see :data:`CSV_ALIASES`).  Header matching
ignores case, blanks and underscores.  Empty cells are null (CSV cannot
tell an empty string from a missing value).

Positions are ``line N``: the physical (1-based) line on which the row
starts, so quoted fields spanning several lines are counted correctly.  A
row whose field count differs from the header's is Unreadable.  Non-UTF-8
bytes are replaced (U+FFFD), UTF-16 is transcoded, as for JSON.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import polars as pl

from .fields import canonical_channel
from .frames import ColumnBuilder
from .json_reader import to_utf8
from .model import METADATA_COLUMNS, POSITION_COL, SOURCE_COL, TIMESTAMP_COL, Unreadable
from .normalise import Row
from .timestamps import iso_utc

FRAME_ROWS = 50_000

#: Normalised column <- header names (compared lower case, without blanks
#: and underscores), first present non-empty one wins.
CSV_ALIASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Channel", ("channel", "logname", "log")),
    ("EventID", ("eventid", "id", "eventcode", "instanceid")),
    ("Computer", ("computer", "machinename", "computername", "hostname")),
    ("EventRecordID", ("eventrecordid", "recordid", "recordnumber", "index")),
    ("Provider_Name", ("providername", "provider", "source", "sourcename")),
    ("TimeCreated", ("timecreated", "timegenerated", "systemtime", "utctime")),
    ("Level", ("level",)),
    ("Task", ("task",)),
    ("Opcode", ("opcode",)),
    ("Keywords", ("keywords",)),
    ("Version", ("version",)),
    ("Execution_ProcessID", ("processid", "executionprocessid")),
    ("Execution_ThreadID", ("threadid", "executionthreadid")),
    ("Security_UserID", ("userid", "securityuserid")),
)
_METADATA = frozenset(METADATA_COLUMNS)


def _key(name: str) -> str:
    return name.replace(" ", "").replace("_", "").lower()


def read_csv(source: str, data: bytes) -> Iterator[pl.DataFrame | Unreadable]:
    """Read one CSV leaf, yielding frames and Unreadables."""
    text = to_utf8(data).decode("utf-8", "replace")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    aliases: list[tuple[str, list[int]]] = []
    builder = ColumnBuilder()
    line = 1  # physical line where the next row starts
    while True:
        start = line
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = reader.line_num + 1
            yield Unreadable(source, f"line {start}", f"invalid CSV row: {exc}")
            continue
        line = reader.line_num + 1
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        if header is None:
            if fields[0].startswith("#TYPE") and len(fields) == 1:
                continue
            header, aliases = _header(fields)
            continue
        if len(fields) != len(header):
            reason = f"CSV row has {len(fields)} fields, the header has {len(header)}"
            yield Unreadable(source, f"line {start}", reason)
            continue
        row: Row = {}
        for name, value in zip(header, fields, strict=True):
            row[name] = value if value != "" else None
        for target, indexes in aliases:
            row[target] = next((fields[i] for i in indexes if fields[i] != ""), None)
        if row.get("Channel") is not None:
            row["Channel"] = canonical_channel(row["Channel"])
        stamp = iso_utc(row.get("TimeCreated"))
        row[TIMESTAMP_COL] = stamp
        if stamp is not None and "TimeCreated" in row:
            row["TimeCreated"] = stamp
        row[SOURCE_COL] = source
        row[POSITION_COL] = f"line {start}"
        builder.add(row)
        if builder.height >= FRAME_ROWS:
            yield builder.take()
    if builder.height:
        yield builder.take()


def _header(fields: list[str]) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """Unique column names (metadata names get ``#original``, repeated
    names ``#2``...) and, per normalised column not in the header, the
    indexes of the columns it is taken from."""
    names: list[str] = []
    seen: set[str] = set()
    for raw in fields:
        name = raw.strip() or "column"
        if name in _METADATA:
            name = f"{name}#original"
        unique, n = name, 1
        while unique in seen:
            n += 1
            unique = f"{name}#{n}"
        seen.add(unique)
        names.append(unique)
    keys = [_key(n) for n in names]
    aliases = []
    for target, sources in CSV_ALIASES:
        if target in seen:
            continue
        indexes = [keys.index(s) for s in sources if s in keys]
        if indexes:
            aliases.append((target, indexes))
    return names, aliases
