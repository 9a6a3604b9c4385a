"""The index layout ``sigmahunt ingest`` creates, and the documents it writes.

Every string field of an event (dynamic template, any name) is mapped as:

* ``keyword`` with a ``lowercase`` normalizer: indexed terms are lowercase, so ``term``,
  ``prefix``, ``wildcard``, ``regexp`` and ``query_string`` all match case-insensitively,
  which is Sigma's default (plus ``case_insensitive: true`` in the DSL for other layouts);
* ``.cased``: an exact ``keyword`` sub-field for ``|cased`` values and case-sensitive
  regexes (Sigma's ``|re`` without ``i``);
* ``copy_to: sigmahunt.all``: every value of the event in one multi-valued field, so a
  Sigma keyword ("any field contains x") is one wildcard query on one field;
* ``ignore_above: 8191`` characters (Lucene's term limit is 32,766 UTF-8 bytes): longer
  values are kept in ``_source`` (and in detection records) but are not searchable; the
  ingest reports how many there were.

Values the embedded engine would read as numbers (``12``, ``0x1F``) or IP addresses get a
typed copy under ``sigmahunt.num.FIELD`` (double) / ``sigmahunt.ip.FIELD`` (ip), parsed by
the embedded engine's own functions, so ``|lt`` and ``|cidr`` mean the same everywhere.
``sigmahunt.source/position/timestamp`` and ``sigmahunt.renames`` (index name -> EVTX name)
turn a hit back into the embedded engine's detection record.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from sigmahunt.engines.embedded.matcher import _parse_ip, _parse_number
from sigmahunt.ingest.model import POSITION_COL, SOURCE_COL, TIMESTAMP_COL
from sigmahunt.pipelines import Pipeline, provenance_field

NORMALIZER = "sigmahunt_lowercase"
IGNORE_ABOVE = 8191
META = "sigmahunt"
ALL_FIELD = "sigmahunt.all"
LAYOUT_VERSION = "1"


def _string_mapping(copy_to: bool) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        "type": "keyword",
        "normalizer": NORMALIZER,
        "ignore_above": IGNORE_ABOVE,
        "fields": {"cased": {"type": "keyword", "ignore_above": IGNORE_ABOVE}},
    }
    if copy_to:
        mapping["copy_to"] = ALL_FIELD
    return mapping


def index_settings() -> dict[str, Any]:
    return {
        "index": {
            "auto_expand_replicas": "0-1",
            "max_regex_length": 100_000,
            "mapping": {"total_fields": {"limit": 20_000}},
            "query": {"default_field": [ALL_FIELD]},
        },
        "analysis": {"normalizer": {NORMALIZER: {"type": "custom", "filter": ["lowercase"]}}},
    }


def index_mappings() -> dict[str, Any]:
    return {
        "date_detection": False,
        "numeric_detection": False,
        "_meta": {"sigmahunt_layout": LAYOUT_VERSION},
        "dynamic_templates": [
            # match_mapping_type: only the values (an object on the way, num.powershell of
            # num.powershell.engine.version, must stay an object)
            {"sigmahunt_numbers": {"path_match": f"{META}.num.*", "match_mapping_type": "double",
                                   "mapping": {"type": "double"}}},
            {"sigmahunt_integers": {"path_match": f"{META}.num.*", "match_mapping_type": "long",
                                    "mapping": {"type": "double"}}},
            {"sigmahunt_addresses": {"path_match": f"{META}.ip.*", "match_mapping_type": "string",
                                     "mapping": {"type": "ip"}}},
            {"sigmahunt_provenance": {"path_match": f"{META}.from.*", "match_mapping_type": "string",
                                      "mapping": {"type": "keyword"}}},
            {"sigmahunt_strings": {"match_mapping_type": "string", "path_unmatch": f"{META}.*",
                                   "mapping": _string_mapping(copy_to=True)}},
        ],
        "properties": {
            META: {"properties": {
                "all": _string_mapping(copy_to=False),
                "source": {"type": "keyword"},
                "position": {"type": "keyword"},
                "timestamp": {"type": "date", "ignore_malformed": True},
                "pipeline": {"type": "keyword"},
                "renames": {"type": "object", "enabled": False},
                "from": {"type": "object", "dynamic": True},
                "num": {"type": "object"},
                "ip": {"type": "object"},
            }},
        },
    }


def index_template(index_patterns: list[str]) -> dict[str, Any]:
    """A composable index template (``PUT _index_template/NAME``) for the given index names."""
    return {
        "index_patterns": index_patterns,
        "priority": 500,
        "template": {"settings": index_settings(), "mappings": index_mappings()},
        "_meta": {"created_by": "sigmahunt ingest", "layout": LAYOUT_VERSION},
    }


def document_id(source: str, position: str) -> str:
    """Deterministic ids: loading the same file again replaces its events, never duplicates them."""
    return hashlib.sha1(f"{source}\x00{position}".encode("utf-8", "surrogatepass")).hexdigest()


class DocumentBuilder:
    """Frames of normalised events -> documents for one pipeline."""

    def __init__(self, pipeline: Pipeline, index_name: str) -> None:
        self.pipeline = pipeline
        self.index_name = index_name
        self.too_long = 0  # values longer than IGNORE_ABOVE (stored, not searchable)
        self.indices: set[str] = set()  # the indices documents went to
        self._numbers: dict[str, float | None] = {}
        self._addresses: dict[str, str | None] = {}

    def documents(self, frame: pl.DataFrame) -> Iterable[tuple[str, str, dict[str, Any]]]:
        """``(index, id, document)`` per row."""
        for record in frame.iter_rows(named=True):
            yield self.document(record)

    def document(self, record: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        fields = {k: v for k, v in record.items() if v is not None and not k.startswith("_")}
        mapped, renames = self.pipeline.map_event(fields)
        numbers: dict[str, float] = {}
        addresses: dict[str, str] = {}
        for name, value in mapped.items():
            if len(value) > IGNORE_ABOVE:
                self.too_long += 1
                continue
            number = self._number(value)
            if number is not None:
                numbers[name] = number
            address = self._address(value)
            if address is not None:
                addresses[name] = address
        source = str(record.get(SOURCE_COL) or "")
        position = str(record.get(POSITION_COL) or "")
        meta: dict[str, Any] = {"source": source, "position": position, "pipeline": self.pipeline.name}
        timestamp = record.get(TIMESTAMP_COL)
        if timestamp is not None:
            meta["timestamp"] = timestamp
        if renames:
            meta["renames"] = renames
            shared = {target: name for target, name in renames.items() if target in self.pipeline.shared_targets}
            if shared:
                meta["from"] = {provenance_field(t).removeprefix(META + ".from."): n for t, n in shared.items()}
        if numbers:
            meta["num"] = numbers
        if addresses:
            meta["ip"] = addresses
        document = dict(mapped)
        document[META] = meta
        index = self.pipeline.ingest_index(fields.get("Channel"), self.index_name)
        self.indices.add(index)
        return index, document_id(source, position), document

    def _number(self, value: str) -> float | None:
        cached = self._numbers.get(value, "")
        if cached != "":
            return cached  # type: ignore[return-value]
        number = _parse_number(value) if len(value) < 64 else None
        if number is not None and not math.isfinite(number):
            number = None
        if len(self._numbers) > 200_000:
            self._numbers.clear()
        self._numbers[value] = number
        return number

    def _address(self, value: str) -> str | None:
        if len(value) > 64 or ("." not in value and ":" not in value):
            return None
        cached = self._addresses.get(value, "")
        if cached != "":
            return cached
        address = _parse_ip(value)
        text = str(address) if address is not None else None
        if len(self._addresses) > 200_000:
            self._addresses.clear()
        self._addresses[value] = text
        return text
