"""Per-record normalisation of the three JSON record shapes (and EVTX).

Every normaliser maps one decoded record to a flat ``Row`` of string values
(see :func:`to_str`), including ``_timestamp`` but not ``_source`` /
``_position`` (the readers add those).  The shapes:

* evtx_dump ``{"Event": {"System": ..., "EventData": ..., "UserData": ...}}``
  (also what the EVTX reader gets from the ``evtx`` package);
* Winlogbeat / Elastic Agent (``winlog.*`` ECS documents, nested or dotted);
* flat key/value records (OTRF Security-Datasets, HELK, nxlog/Logstash).

Name clashes never lose a value: the first field keeps the plain name and a
later one is stored under its dotted path (``EventData.Level``,
``UserData.EventXML.Param1``, ``winlog.event_data.Channel``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from .fields import (
    FLAT_ALIASES,
    FLAT_TIMESTAMP_FIELDS,
    SYSTEM_ATTRIBUTE_RENAMES,
    WINLOGBEAT_EVENT_DATA_PREFIX,
    WINLOGBEAT_FALLBACKS,
    WINLOGBEAT_FIELDS,
    WINLOGBEAT_TIMESTAMP_FIELDS,
    WINLOGBEAT_USER_DATA_PREFIX,
    canonical_channel,
)
from .formats import LogFormat
from .model import RESERVED_COLUMNS, TIMESTAMP_COL
from .timestamps import iso_utc

Row = dict[str, str | None]
TEXT = "#text"
ATTRS = "#attributes"
_METADATA_KEYS = RESERVED_COLUMNS


class ShapeError(ValueError):
    """A record does not have the shape its (forced) format requires."""


def to_str(value: Any) -> str | None:
    """Render a JSON value as the batch string convention.

    ints in decimal, floats via repr, bools as true/false, null stays null,
    lists/dicts as compact JSON.
    """
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return None
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value)
    if kind is dict or kind is list:
        return _dumps(value)
    return str(value)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits: same compact form from the stdlib
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text(value: Any) -> str | None:
    """Unwrap evtx_dump ``{"#text": x}`` wrappers down to a string."""
    if type(value) is dict and TEXT in value:
        return to_str(value[TEXT])
    return to_str(value)


def _put(row: Row, name: str, value: str | None, dotted: str) -> None:
    """First writer keeps ``name``; a clash goes to its dotted path."""
    if name in row:
        row[dotted] = value
    else:
        row[name] = value


# --------------------------------------------------------------------------
# shape detection


def unwrap_es_hit(record: dict[str, Any]) -> dict[str, Any]:
    """Elasticsearch exports wrap the document in ``_source``."""
    source = record.get("_source")
    return source if type(source) is dict else record


def classify(record: dict[str, Any]) -> LogFormat:
    """Record shape: evtx_dump, Winlogbeat/ECS or flat."""
    event = record.get("Event")
    if type(event) is dict and ("System" in event or "EventData" in event):
        return LogFormat.EVTX_JSON
    if type(record.get("winlog")) is dict or any(k.startswith("winlog.") for k in record):
        return LogFormat.WINLOGBEAT
    return LogFormat.FLAT_JSON


def normalise_record(record: Any, forced: LogFormat | None) -> Row:
    """Normalise one decoded JSON value using the forced or detected shape."""
    if type(record) is not dict:
        raise ShapeError(f"not a JSON object but {type(record).__name__}")
    record = unwrap_es_hit(record)
    if not _METADATA_KEYS.isdisjoint(record):  # never let data overwrite metadata
        record = {(f"{k}#original" if k in _METADATA_KEYS else k): v for k, v in record.items()}
    shape = forced if forced in _NORMALISERS else classify(record)
    return _NORMALISERS[shape](record)


# --------------------------------------------------------------------------
# evtx_dump layout


def normalise_evtx_json(record: dict[str, Any]) -> Row:
    """Flatten Event.System / EventData / UserData into one row."""
    event = record.get("Event")
    if type(event) is not dict:
        raise ShapeError("not an evtx_dump record: no 'Event' object")
    row: Row = {}
    system = event.get("System")
    if type(system) is dict:
        _flatten_system(system, row)
    for key, value in event.items():
        if key == "System" or key == ATTRS:
            continue
        if key == "EventData":
            _flatten_event_data(value, row)
        elif key == "UserData":
            _flatten_user_data(value, row)
        else:
            flatten_dotted(value, key, row)
    for key, value in record.items():
        if key != "Event":
            flatten_dotted(value, key, row)
    if "Channel" in row:
        row["Channel"] = canonical_channel(row["Channel"])
    row[TIMESTAMP_COL] = iso_utc(row.get("TimeCreated"))
    if row[TIMESTAMP_COL] is not None:
        row["TimeCreated"] = row[TIMESTAMP_COL]
    return row


def _flatten_system(system: dict[str, Any], row: Row) -> None:
    for key, value in system.items():
        kind = type(value)
        if kind is str:
            row[key] = value
        elif kind is int:
            row[key] = str(value)
        elif kind is dict:
            _flatten_system_element(key, value, row)
        elif value is not None:  # e.g. "Correlation": null carries nothing
            row[key] = to_str(value)


def _flatten_system_element(key: str, value: dict[str, Any], row: Row) -> None:
    """``{"#text": t, "#attributes": {...}}`` -> ``key`` and ``key_attr``."""
    for sub, subvalue in value.items():
        if sub == ATTRS and type(subvalue) is dict:
            for attr, attr_value in subvalue.items():
                row[_system_name(key, attr)] = attr_value if type(attr_value) is str else to_str(attr_value)
        elif sub == TEXT:
            row[key] = to_str(subvalue)
        else:
            row[f"{key}_{sub}"] = to_str(subvalue)


_SYSTEM_NAMES: dict[tuple[str, str], str] = {}


def _system_name(key: str, attr: str) -> str:
    """``Element_Attribute`` unless renamed; memoised (a handful of names)."""
    name = _SYSTEM_NAMES.get((key, attr))
    if name is None:
        name = SYSTEM_ATTRIBUTE_RENAMES.get((key, attr), f"{key}_{attr}")
        if len(_SYSTEM_NAMES) < 4096:
            _SYSTEM_NAMES[(key, attr)] = name
    return name


def _flatten_event_data(data: Any, row: Row) -> None:
    if data is None:
        return
    if type(data) is not dict:
        _put(row, "EventData", to_str(data), "EventData.#value")
        return
    for key, value in data.items():
        kind = type(value)
        if (kind is str or kind is int or value is None) and key != TEXT:  # common case, inlined
            text = value if kind is str else (None if value is None else str(value))
            if key in row:
                row[f"EventData.{key}"] = text
            else:
                row[key] = text
        elif key == ATTRS and kind is dict:
            for attr, attr_value in value.items():
                _put(row, f"EventData_{attr}", to_str(attr_value), f"EventData.#attributes.{attr}")
        elif key == "Data":
            _flatten_unnamed_data(value, row)
        elif key == TEXT:
            _put(row, "EventData", _text(value), "EventData.#text")
        else:
            _put_data_value(row, key, value, f"EventData.{key}")


def _put_data_value(row: Row, name: str, value: Any, dotted: str) -> None:
    """A named data item; ``{"#text": v, "#attributes": {...}}`` unwrapped."""
    if type(value) is dict and TEXT in value:
        _put(row, name, to_str(value[TEXT]), dotted)
        attrs = value.get(ATTRS)
        if type(attrs) is dict:
            for attr, attr_value in attrs.items():
                _put(row, f"{name}_{attr}", to_str(attr_value), f"{dotted}.#attributes.{attr}")
    else:
        _put(row, name, to_str(value), dotted)


def _flatten_unnamed_data(value: Any, row: Row) -> None:
    """``<Data>`` without Name: a single one is ``Data``, several ``Data_1..n``."""
    if type(value) is dict and type(value.get(TEXT)) is list and ATTRS not in value:
        value = value[TEXT]
    if type(value) is not list:
        _put_data_item(row, value, "Data")
        return
    for index, item in enumerate(value, start=1):
        _put_data_item(row, item, f"Data_{index}")


def _put_data_item(row: Row, item: Any, default_name: str) -> None:
    if type(item) is dict:
        attrs = item.get(ATTRS)
        if type(attrs) is dict and type(attrs.get("Name")) is str:
            _put(row, attrs["Name"], to_str(item.get(TEXT)), f"EventData.{default_name}")
            return
        if TEXT in item:
            _put(row, default_name, to_str(item[TEXT]), f"EventData.{default_name}")
            return
    _put(row, default_name, to_str(item), f"EventData.{default_name}")


def _flatten_user_data(data: Any, row: Row) -> None:
    """UserData leaves by their own name; a clash keeps the dotted path."""
    leaves: list[tuple[str, str, str | None]] = []
    _collect_leaves(data, "UserData", "UserData", leaves)
    for path, name, value in leaves:
        _put(row, name, value, path)


def _collect_leaves(node: Any, path: str, name: str, out: list[tuple[str, str, str | None]]) -> None:
    if type(node) is not dict:
        out.append((path, name, to_str(node)))
        return
    for key, value in node.items():
        if key == ATTRS and type(value) is dict:
            for attr, attr_value in value.items():
                if attr != "xmlns" and not attr.startswith("xmlns:"):
                    out.append((f"{path}.{attr}", attr, to_str(attr_value)))
        elif key == TEXT:
            out.append((path, name, to_str(value)))
        else:
            _collect_leaves(value, f"{path}.{key}", key, out)


def flatten_dotted(value: Any, prefix: str, out: Row) -> None:
    """Nested objects to dotted keys; lists and scalars become leaf values."""
    if type(value) is not dict or not value:
        out[prefix] = to_str(value)
        return
    for key, sub in value.items():
        name = f"{prefix}.{key}" if prefix else key
        if type(sub) is str:
            out[name] = sub
        elif type(sub) is dict and sub:
            flatten_dotted(sub, name, out)
        else:
            out[name] = to_str(sub)


# --------------------------------------------------------------------------
# flat key/value records


def normalise_flat(record: dict[str, Any]) -> Row:
    """Keep every top-level key, then add the normalised aliases."""
    row: Row = {key: to_str(value) for key, value in record.items()}
    apply_flat_aliases(row)
    if "Channel" in row:
        row["Channel"] = canonical_channel(row["Channel"])
    row[TIMESTAMP_COL] = first_timestamp(row, FLAT_TIMESTAMP_FIELDS)
    return row


def apply_flat_aliases(row: Row) -> None:
    """Mirror of the vectorised coalesce in the fast path (same semantics)."""
    for target, sources in FLAT_ALIASES:
        if row.get(target) is not None or not any(s in row for s in sources):
            continue
        row[target] = next((row[s] for s in sources if row.get(s) is not None), None)


def first_timestamp(row: Row, fields: tuple[str, ...]) -> str | None:
    for name in fields:
        stamp = iso_utc(row.get(name))
        if stamp is not None:
            return stamp
    return None


# --------------------------------------------------------------------------
# Winlogbeat / Elastic Agent


def normalise_winlogbeat(record: dict[str, Any]) -> Row:
    """System fields from winlog.*, event data by name, the rest dotted.

    Documents may be nested (``{"winlog": {"event_data": {...}}}``) or use
    dotted keys (``"winlog.event_data.Image"``); both give the same row.
    """
    flat: Row = {}  # every non-data field, dotted
    data: list[tuple[str, str, str | None]] = []  # (dotted path, name, value)
    for key, value in record.items():
        if key == "winlog" and type(value) is dict:
            for sub, subvalue in value.items():
                path = f"winlog.{sub}"
                if sub == "event_data" or sub == "user_data":
                    _collect_winlog_data(subvalue, path, data)
                else:
                    flatten_dotted(subvalue, path, flat)
        elif key.startswith(_WINLOG_DATA_PREFIXES):
            leaf: Row = {}
            flatten_dotted(value, key, leaf)
            for path, text in leaf.items():
                data.append((path, _winlog_data_name(path), text))
        else:
            flatten_dotted(value, key, flat)
    row: Row = {}
    for source, target in WINLOGBEAT_FIELDS:
        if flat.get(source) is not None:
            row[target] = flat[source]
    for target, source in WINLOGBEAT_FALLBACKS:
        if row.get(target) is None and flat.get(source) is not None:
            row[target] = flat[source]
    for path, name, text in data:
        if name in row or name in flat:
            row[path] = text
        else:
            row[name] = text
    for key, text in flat.items():
        _put(row, key, text, f"{key}#original")
    if "Channel" in row:
        row["Channel"] = canonical_channel(row["Channel"])
    row[TIMESTAMP_COL] = first_timestamp(flat, WINLOGBEAT_TIMESTAMP_FIELDS)
    return row


_WINLOG_DATA_PREFIXES = (WINLOGBEAT_EVENT_DATA_PREFIX, WINLOGBEAT_USER_DATA_PREFIX)


def _collect_winlog_data(value: Any, path: str, out: list[tuple[str, str, str | None]]) -> None:
    leaves: Row = {}
    flatten_dotted(value, path, leaves)
    for leaf_path, text in leaves.items():
        out.append((leaf_path, _winlog_data_name(leaf_path), text))


def _winlog_data_name(path: str) -> str:
    """event_data fields keep their (relative) name, user_data their leaf name."""
    if path.startswith(WINLOGBEAT_EVENT_DATA_PREFIX):
        return path[len(WINLOGBEAT_EVENT_DATA_PREFIX) :]
    return path.rsplit(".", 1)[-1]


_NORMALISERS: dict[LogFormat, Callable[[dict[str, Any]], Row]] = {
    LogFormat.EVTX_JSON: normalise_evtx_json,
    LogFormat.FLAT_JSON: normalise_flat,
    LogFormat.WINLOGBEAT: normalise_winlogbeat,
}
