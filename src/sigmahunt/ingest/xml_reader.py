"""EVTX rendered as XML: evtx_dump ``-o xml`` and ``wevtutil qe /f:xml``.

A file holds one or more ``<Event xmlns=".../event">...</Event>`` elements,
possibly wrapped in ``<Events>``, preceded by XML declarations (evtx_dump
writes ``Record N`` and a declaration before each event) or simply
concatenated without a root (wevtutil without ``/e:root``).

The text is cut at top-level ``<Event>`` tags (``<EventData>``,
``<EventID>`` and ``<Events>`` do not match) and each element is parsed on
its own with ElementTree, so a malformed element costs only that record
(``record N``, the 1-based ordinal) and memory stays bounded.  Each element
is turned into the dict evtx_dump's JSON output has for the same event
(``System`` elements with ``#attributes``, ``EventData`` by ``Name``,
unnamed ``<Data>`` as ``{"#text": [...]}``, ``UserData`` nested) and goes
through :func:`normalise.normalise_evtx_json`, so every column is identical
to the EVTX and evtx_dump JSON readers'.

Security: ``<!DOCTYPE`` / ``<!ENTITY`` anywhere refuses the whole file
(entity expansion attacks); ElementTree never fetches external entities.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import polars as pl

from .frames import ColumnBuilder
from .json_reader import to_utf8
from .model import POSITION_COL, SOURCE_COL, Unreadable
from .normalise import ATTRS, TEXT, ShapeError, normalise_evtx_json

FRAME_ROWS = 50_000

_EVENT_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?Event[\s>/]")
_EVENT_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?Event\s*>")
_DTD = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_DECL_ENCODING = re.compile(rb"<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
#: Containers whose whitespace-only text is formatting, not a value.
_CONTAINERS = frozenset({"System", "EventData", "UserData", "RenderingInfo"})


def read_evtx_xml(source: str, data: bytes) -> Iterator[pl.DataFrame | Unreadable]:
    """Read one XML leaf, yielding frames and Unreadables."""
    data = _to_utf8(data)
    if _DTD.search(data):
        yield Unreadable(
            source, "file", "refused: XML DOCTYPE/ENTITY declarations are not allowed (entity expansion guard)"
        )
        return
    builder = ColumnBuilder()
    ordinal = 0
    for element in split_events(data):
        ordinal += 1
        position = f"record {ordinal}"
        if isinstance(element, str):
            yield Unreadable(source, position, element)
            continue
        try:
            root = ET.fromstring(element.decode("utf-8", "replace"))
            row = normalise_evtx_json({"Event": element_to_dict(root)})
        except ET.ParseError as exc:
            yield Unreadable(source, position, f"malformed XML event: {exc}")
            continue
        except (ShapeError, RecursionError) as exc:
            yield Unreadable(source, position, f"unusable XML event: {exc!r}")
            continue
        row[SOURCE_COL] = source
        row[POSITION_COL] = position
        builder.add(row)
        if builder.height >= FRAME_ROWS:
            yield builder.take()
    if builder.height:
        yield builder.take()


def _to_utf8(data: bytes) -> bytes:
    data = to_utf8(data)
    declared = _DECL_ENCODING.search(data[:512])
    if declared:
        name = declared.group(1).decode("ascii").lower()
        if name not in _UTF8_NAMES and not name.startswith("utf-16"):
            try:
                return data.decode(name, "replace").encode("utf-8")
            except LookupError:
                pass
    return data


def split_events(data: bytes) -> Iterator[bytes | str]:
    """Top-level ``<Event>`` elements (bytes), or a reason (str) for a
    piece that cannot be one (an element with no closing tag)."""
    pos = 0
    while True:
        start_match = _EVENT_START.search(data, pos)
        if start_match is None:
            return
        start = start_match.start()
        end_match = _EVENT_END.search(data, start_match.end())
        following = _EVENT_START.search(data, start_match.end())
        if end_match is None:
            if following is None:
                yield "truncated XML event: no closing </Event> tag"
                return
            yield "malformed XML event: no closing </Event> tag before the next <Event>"
            pos = following.start()
            continue
        if following is not None and following.start() < end_match.start():
            yield "malformed XML event: no closing </Event> tag before the next <Event>"
            pos = following.start()
            continue
        yield data[start : end_match.end()]
        pos = end_match.end()


# --------------------------------------------------------------------------
# XML element -> evtx_dump JSON shape


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1] if name.startswith("{") else name


def _attributes(element: ET.Element) -> dict[str, str]:
    return {_local(k): v for k, v in element.attrib.items()}


def _text_value(element: ET.Element, tag: str) -> str | None:
    text = element.text
    if not text:
        return None
    if not text.strip() and ("\n" in text or tag in _CONTAINERS):
        return None  # pretty-printing, not a value
    return text


def element_to_dict(element: ET.Element) -> Any:
    """Generic evtx_dump mapping: leaves are text (None when empty),
    attributes under ``#attributes``, repeated children as lists."""
    tag = _local(element.tag)
    attrs = _attributes(element)
    children = list(element)
    if not children:
        text = _text_value(element, tag)
        if not attrs:
            return text
        node: dict[str, Any] = {ATTRS: attrs}
        if text is not None:
            node[TEXT] = text
        return node
    node = {ATTRS: attrs} if attrs else {}
    text = element.text
    if text and text.strip():
        node[TEXT] = text
    for child in children:
        name = _local(child.tag)
        value = _event_data(child) if name == "EventData" else element_to_dict(child)
        if name in node:  # values are never lists themselves: a list means repeats
            existing = node[name]
            node[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            node[name] = value
    return node


def _event_data(element: ET.Element) -> Any:
    """``<Data Name="X">v</Data>`` -> ``{"X": v}``; unnamed Data collected
    as ``{"Data": {"#text": [..]}}`` (one: ``{"#text": v}``)."""
    attrs = _attributes(element)
    children = list(element)
    if not children:
        text = _text_value(element, "EventData")
        if not attrs:
            return text
        return {ATTRS: attrs, **({TEXT: text} if text is not None else {})}
    node: dict[str, Any] = {ATTRS: attrs} if attrs else {}
    unnamed: list[Any] = []
    for child in children:
        name = _local(child.tag)
        child_attrs = _attributes(child)
        if name == "Data" and "Name" in child_attrs:
            key = child_attrs["Name"]
            value = child.text if child.text else None
            if key in node:  # repeated name: keep both, as evtx_dump would clash
                unnamed.append({ATTRS: {"Name": key}, TEXT: value})
            else:
                node[key] = value
        elif name == "Data":
            unnamed.append(child.text if child.text else None)
        elif name in node:
            existing = node[name]
            node[name] = (existing if isinstance(existing, list) else [existing]) + [element_to_dict(child)]
        else:
            node[name] = element_to_dict(child)
    if len(unnamed) == 1:
        node["Data"] = {TEXT: unnamed[0]}
    elif unnamed:
        node["Data"] = {TEXT: unnamed}
    return node
