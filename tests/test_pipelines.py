"""Field-mapping pipelines: the facts they carry and the two directions (ingest, query) agreeing."""

from __future__ import annotations

import itertools

import pytest

from sigmahunt.pipelines import (
    COLLISION_PREFIX,
    DOT_SUBSTITUTE,
    HELK_CONDITIONAL,
    HELK_FIELDS,
    PIPELINES,
    get_pipeline,
)

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def test_pipelines_are_raw_helk_ecs() -> None:
    assert set(PIPELINES) == {"raw", "helk", "ecs-windows"}
    with pytest.raises(ValueError, match="unknown pipeline"):
        get_pipeline("splunk")


def test_raw_is_identity() -> None:
    raw = get_pipeline("raw")
    assert raw.target("Image") == "Image"
    assert raw.channel_field == "Channel" and raw.event_id_field == "EventID"
    assert [c.target for c in raw.cases("CommandLine")] == ["CommandLine"]


@pytest.mark.parametrize(("field", "target"), [
    ("EventID", "event_id"), ("Image", "process_path"), ("ParentImage", "process_parent_path"),
    ("CommandLine", "process_command_line"), ("TargetFilename", "file_name"), ("TargetObject", "registry_key_path"),
    ("DestinationIp", "dst_ip_addr"), ("NewProcessName", "process_path"), ("User", "user_account"),
])
def test_helk_names_from_helk_yml(field: str, target: str) -> None:
    assert get_pipeline("helk").target(field) == target


def test_helk_conditional_names() -> None:
    helk = get_pipeline("helk")
    assert helk.target("ImageLoaded", SYSMON, "6") == "driver_loaded"
    assert helk.target("ImageLoaded", SYSMON, "7") == "module_loaded"
    assert helk.target("ImageLoaded", SYSMON, "8") == "ImageLoaded"
    assert helk.target("Details", SYSMON, "13") == "registry_key_value"
    assert helk.target("SubjectUserName", "Security", "4624") == "user_reporter_name"
    assert helk.target("SubjectUserName", "Security", "4648") == "user_name"  # helk.yml's EventId typo, as meant
    cases = helk.cases("ImageLoaded", None, None)
    assert [(c.target, c.event_ids) for c in cases] == [
        ("driver_loaded", frozenset({"6"})), ("module_loaded", frozenset({"7"})), ("ImageLoaded", None)]
    assert [c.target for c in helk.cases("ImageLoaded", [SYSMON], ["7"])] == ["module_loaded"]


def test_helk_indices_per_log_and_default() -> None:
    helk = get_pipeline("helk")
    assert helk.index_of(SYSMON) == "logs-endpoint-winevent-sysmon-*"
    assert helk.index_of("security") == "logs-endpoint-winevent-security-*"
    assert helk.index_of("Microsoft-Windows-PowerShell/Operational") == "logs-endpoint-winevent-powershell-*"
    assert helk.index_of("Windows PowerShell") == "logs-endpoint-winevent-powershell-*"
    assert helk.index_of("Microsoft-Windows-WMI-Activity/Operational") == "logs-endpoint-winevent-wmiactivity-*"
    assert helk.index_of("System") == "logs-endpoint-winevent-system-*"
    assert helk.index_of("Application") == "logs-endpoint-winevent-application-*"
    assert helk.index_of("Microsoft-Windows-Windows Defender/Operational") == "logs-*"
    assert helk.ingest_index(SYSMON, "lab") == "logs-endpoint-winevent-sysmon-lab"
    assert helk.ingest_index("Microsoft-Windows-Windows Defender/Operational", "lab") == "logs-lab"


def test_helk_tables_have_no_contradictions() -> None:
    assert not set(HELK_FIELDS) & set(HELK_CONDITIONAL)


def test_ecs_windows_names() -> None:
    ecs = get_pipeline("ecs-windows")
    assert ecs.channel_field == "winlog.channel" and ecs.event_id_field == "event.code"
    assert ecs.target("Image") == "process.executable"
    assert ecs.target("CommandLine", SYSMON, "1") == "process.command_line"
    assert ecs.target("CommandLine", "Security", "4688") == "process.command_line"
    assert ecs.target("CommandLine", "Security", "4624") == "process.command_line"  # service security
    assert ecs.target("CommandLine", "Windows PowerShell", "400") == "powershell.command.value"
    assert ecs.target("CommandLine", SYSMON, "3") == "winlog.event_data.CommandLine"
    assert ecs.target("OriginalFileName", SYSMON, "7") == "file.pe.original_file_name"
    assert ecs.target("LogonType") == "winlog.event_data.LogonType"
    assert ecs.target("host.name") == "host.name"  # already an ECS name: no prefix
    assert ecs.default_index == "winlogbeat-*,logs-*"


def test_query_cases_agree_with_ingest_for_every_event() -> None:
    """For each pipeline, field, channel and EventID: the case that holds names what ingest wrote."""
    channels = [SYSMON, "Security", "Windows PowerShell", "System"]
    event_ids = ["1", "3", "4", "6", "7", "13", "16", "19", "20", "4624", "4648", "4688", "400"]
    for pipeline in PIPELINES.values():
        fields = {rule.source for rule in pipeline.rules} | {"Unmapped"}
        for field, channel, event_id in itertools.product(sorted(fields), channels, event_ids):
            written = pipeline.target(field, channel, event_id)
            for selector_channels, selector_ids in ((None, None), ([channel], None), ([channel], [event_id])):
                holding = [c for c in pipeline.cases(field, selector_channels, selector_ids)
                           if (c.channels is None or channel.lower() in c.channels)
                           and (c.event_ids is None or event_id in c.event_ids)]
                assert holding and holding[0].target == written, (pipeline.name, field, channel, event_id)


def test_map_event_keeps_colliding_fields_apart_and_records_renames() -> None:
    ecs = get_pipeline("ecs-windows")
    event = {"Channel": SYSMON, "EventID": "1", "process.executable": "from shipper", "Image": "C:\\x.exe",
             "LogonType": "3"}
    doc, renames = ecs.map_event(event)
    assert doc["process.executable"] == "C:\\x.exe"  # the mapped field wins
    assert doc[COLLISION_PREFIX + "process" + DOT_SUBSTITUTE + "executable"] == "from shipper"
    restored = {renames.get(k, k): v for k, v in doc.items()}
    assert restored == event


def test_raw_escapes_dots_so_objects_never_collide() -> None:
    raw = get_pipeline("raw")
    doc, renames = raw.map_event({"host": "a", "host.name": "b"})
    assert doc == {"host": "a", "host" + DOT_SUBSTITUTE + "name": "b"}
    assert {renames.get(k, k) for k in doc} == {"host", "host.name"}
    assert raw.cases("host.name")[0].target == "host" + DOT_SUBSTITUTE + "name"
