"""The ATT&CK Navigator layer (format 4.5) and the local ATT&CK technique table."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sigmahunt.hunting import run_hunt
from sigmahunt.report.attack import TACTIC_ORDER, normalise_technique, technique, technique_cells
from sigmahunt.report.navigator import navigator_layer, write_navigator
from sigmahunt.results import to_dataframe

FIXTURES = Path(__file__).parent / "fixtures" / "report"
TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
HEX = re.compile(r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")


def _synthetic() -> Any:
    spec = importlib.util.spec_from_file_location("report_synthetic_nav", FIXTURES / "synthetic.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def validate_layer(layer: dict[str, Any]) -> None:
    """The layer format 4.5's rules (required fields, types, values)."""
    assert isinstance(layer["name"], str) and layer["name"]
    assert layer["domain"] == "enterprise-attack"
    versions = layer["versions"]
    assert versions["layer"] == "4.5"
    assert tuple(int(x) for x in versions["navigator"].split(".")) >= (4, 9, 0)
    assert re.match(r"^\d+(\.\d+)?$", versions["attack"])
    assert layer["sorting"] in (0, 1, 2, 3)
    assert layer["layout"]["layout"] in ("side", "flat", "mini")
    assert layer["layout"]["aggregateFunction"] in ("average", "min", "max", "sum")
    assert layer["layout"]["expandedSubtechniques"] in ("none", "all", "annotated")
    assert isinstance(layer["hideDisabled"], bool)
    for item in layer["techniques"]:
        assert set(item) <= {"techniqueID", "tactic", "comment", "enabled", "score", "color", "metadata", "links",
                             "showSubtechniques"}
        assert TECHNIQUE_ID.match(item["techniqueID"])
        assert technique(item["techniqueID"]) is not None and technique(item["techniqueID"]).revoked_by is None
        if "tactic" in item:
            assert item["tactic"] in TACTIC_ORDER
            assert item["tactic"] in technique(item["techniqueID"]).tactics
        if "score" in item:
            assert isinstance(item["score"], (int, float))
        if "color" in item:
            assert HEX.match(item["color"])
        for meta in item.get("metadata", []):
            assert set(meta) == {"name", "value"} and all(isinstance(v, str) for v in meta.values())
    gradient = layer["gradient"]
    assert len(gradient["colors"]) >= 2 and all(HEX.match(c) for c in gradient["colors"])
    assert gradient["maxValue"] > gradient["minValue"]
    for item in layer["legendItems"]:
        assert set(item) == {"label", "color"} and HEX.match(item["color"])
    for meta in layer["metadata"]:
        assert set(meta) == {"name", "value"} and all(isinstance(v, str) for v in meta.values())
    json.dumps(layer)


def test_layer_of_a_hunt(tmp_path: Path) -> None:
    result = run_hunt([FIXTURES / "logs"], [FIXTURES / "rules"], cache_dir=False)
    path = tmp_path / "layer.json"
    write_navigator(result, path)
    layer = json.loads(path.read_text())
    validate_layer(layer)
    scored = {(t["techniqueID"], t.get("tactic")): t["score"] for t in layer["techniques"] if "score" in t}
    assert scored == {
        ("T1003.003", "credential-access"): 2, ("T1027", "defense-evasion"): 2, ("T1033", "discovery"): 2,
        ("T1059.001", "execution"): 2, ("T1059.003", "execution"): 2, ("T1069.002", "discovery"): 2,
        ("T1110.001", "credential-access"): 3,
    }
    parents = {t["techniqueID"] for t in layer["techniques"] if "score" not in t}
    assert parents == {"T1003", "T1059", "T1069", "T1110"}
    assert all(t.get("showSubtechniques") for t in layer["techniques"] if t["techniqueID"] in parents)
    t1110 = next(t for t in layer["techniques"] if t["techniqueID"] == "T1110.001")
    assert t1110["comment"] == "Failed Logon As Administrator (3)"
    assert {"name": "by level", "value": "3 low"} in t1110["metadata"]
    assert layer["gradient"]["maxValue"] == 3


def test_layer_maps_revoked_ids_and_reports_unknown_ones() -> None:
    records = _synthetic().make_records(300, seed=2)
    layer = navigator_layer(to_dataframe(records), color_by="level")
    validate_layer(layer)
    ids = {t["techniqueID"] for t in layer["techniques"]}
    assert "T1086" not in ids and "T1059.001" in ids and "T9999" not in ids
    meta = {m["name"]: m["value"] for m in layer["metadata"]}
    assert meta["revoked technique ids counted as their replacement"] == "T1086 -> T1059.001"
    assert meta["technique ids not in ATT&CK v18"].startswith("T9999 (")
    assert all("color" in t for t in layer["techniques"] if "score" in t)
    # a technique with two tactics in its rule's tags appears under both
    assert {t.get("tactic") for t in layer["techniques"] if t["techniqueID"] == "T1547.001"} == {
        "persistence", "privilege-escalation"}


def test_layer_is_deterministic_and_valid_when_empty() -> None:
    records = _synthetic().make_records(100, seed=4)
    assert navigator_layer(to_dataframe(records)) == navigator_layer(to_dataframe(list(reversed(records))))
    empty = navigator_layer(to_dataframe([]))
    validate_layer(empty)
    assert empty["techniques"] == []
    with pytest.raises(ValueError):
        navigator_layer(to_dataframe([]), color_by="nope")


def test_attack_table_and_cell_placement() -> None:
    assert technique("t1059.001").name == "PowerShell"
    assert technique("T1059.001").display_name == "Command and Scripting Interpreter: PowerShell"
    assert technique("T1086").revoked_by == "T1059.001"
    assert technique("T1547.001").tactics == ("persistence", "privilege-escalation")
    assert technique("T0000") is None
    assert normalise_technique("attack.t1003.001") == "T1003.001"
    assert normalise_technique("attack.execution") is None
    # the rule's tactics that ATT&CK lists for the technique; else ATT&CK's; else the rule's; else other
    assert technique_cells(["T1059.001", "T1547.001"], ["execution", "persistence"]) == [
        ("execution", "T1059.001"), ("persistence", "T1547.001")]
    assert technique_cells(["T1059.001"], ["impact"]) == [("execution", "T1059.001")]
    assert technique_cells(["T9999"], ["impact"]) == [("impact", "T9999")]
    assert technique_cells(["T9999"], []) == [("other", "T9999")]
    assert technique_cells([], ["execution"]) == []
