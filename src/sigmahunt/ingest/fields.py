"""Declarative field tables: renames, aliases, column order, channel names.

Kept apart from the code that applies them so that adding a source field or
a well-known channel is a one-line data change, and so that the Python
(per-record) and Polars (vectorised) paths provably use the same rules.
"""

from __future__ import annotations

from .model import METADATA_COLUMNS

#: Normalised Windows System columns, in the order they follow the metadata
#: columns in every batch.  All other columns follow sorted by name: a
#: deterministic order that does not depend on which reader produced them.
SYSTEM_COLUMNS: tuple[str, ...] = (
    "Channel",
    "EventID",
    "Computer",
    "EventRecordID",
    "Provider_Name",
    "Provider_Guid",
    "Provider_EventSourceName",
    "EventID_Qualifiers",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "Keywords",
    "TimeCreated",
    "Correlation_ActivityID",
    "Correlation_RelatedActivityID",
    "Execution_ProcessID",
    "Execution_ThreadID",
    "Security_UserID",
)

#: evtx_dump System attributes whose generic ``<Element>_<Attribute>`` name
#: would be awkward.  Everything else is named ``Element_Attribute``
#: (Provider_Name, Execution_ProcessID, Security_UserID, ...).
SYSTEM_ATTRIBUTE_RENAMES: dict[tuple[str, str], str] = {
    ("TimeCreated", "SystemTime"): "TimeCreated",
}

#: Flat JSON (OTRF Security-Datasets, HELK/nxlog/Logstash): normalised column
#: <- source keys, tried in order, used only when the column is absent/null.
#: The source keys are kept as well.
FLAT_ALIASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Computer", ("Hostname",)),
    ("Provider_Name", ("SourceName",)),
    ("Provider_Guid", ("ProviderGuid",)),
    ("EventRecordID", ("RecordNumber",)),
    ("Execution_ProcessID", ("ExecutionProcessID",)),
    ("Security_UserID", ("UserID",)),
)

#: Flat JSON fields for ``_timestamp``, first one that parses wins.  The
#: event's own creation time beats the shipper's ``@timestamp`` (receipt
#: time in nxlog exports); ``EventTime`` is skipped: nxlog writes local time.
FLAT_TIMESTAMP_FIELDS: tuple[str, ...] = ("TimeCreated", "SystemTime", "@timestamp", "UtcTime", "timestamp")

#: Winlogbeat / Elastic Agent (ECS) dotted source field -> normalised column.
WINLOGBEAT_FIELDS: tuple[tuple[str, str], ...] = (
    ("winlog.channel", "Channel"),
    ("winlog.event_id", "EventID"),
    ("winlog.computer_name", "Computer"),
    ("winlog.record_id", "EventRecordID"),
    ("winlog.provider_name", "Provider_Name"),
    ("winlog.provider_guid", "Provider_Guid"),
    ("winlog.version", "Version"),
    ("winlog.task", "Task"),
    ("winlog.opcode", "Opcode"),
    ("winlog.keywords", "Keywords"),
    ("winlog.activity_id", "Correlation_ActivityID"),
    ("winlog.related_activity_id", "Correlation_RelatedActivityID"),
    ("winlog.process.pid", "Execution_ProcessID"),
    ("winlog.process.thread.id", "Execution_ThreadID"),
    ("winlog.user.identifier", "Security_UserID"),
)

#: ECS fields used only when the winlog.* field above is missing.
WINLOGBEAT_FALLBACKS: tuple[tuple[str, str], ...] = (
    ("EventID", "event.code"),
    ("Computer", "host.name"),
    ("Provider_Name", "event.provider"),
)

WINLOGBEAT_TIMESTAMP_FIELDS: tuple[str, ...] = ("@timestamp", "winlog.time_created", "event.created")

#: Prefixes whose fields become top-level columns named by their own name.
WINLOGBEAT_EVENT_DATA_PREFIX = "winlog.event_data."
WINLOGBEAT_USER_DATA_PREFIX = "winlog.user_data."

#: Canonical spelling of well-known channels, keyed by lower case.  Some
#: exports lower-case channel names ("security"); Windows channel names are
#: case-insensitive, so this only restores the canonical spelling.
CHANNEL_CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        "Security",
        "System",
        "Application",
        "Setup",
        "ForwardedEvents",
        "Windows PowerShell",
        "Directory Service",
        "DNS Server",
        "DFS Replication",
        "Microsoft-Windows-Sysmon/Operational",
        "Microsoft-Windows-PowerShell/Operational",
        "Microsoft-Windows-PowerShell/Admin",
        "Microsoft-Windows-Windows Defender/Operational",
        "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall",
        "Microsoft-Windows-TaskScheduler/Operational",
        "Microsoft-Windows-WMI-Activity/Operational",
        "Microsoft-Windows-Bits-Client/Operational",
        "Microsoft-Windows-DNS-Client/Operational",
        "Microsoft-Windows-DNSServer/Audit",
        "Microsoft-Windows-CodeIntegrity/Operational",
        "Microsoft-Windows-NTLM/Operational",
        "Microsoft-Windows-SMBClient/Security",
        "Microsoft-Windows-SMBServer/Security",
        "Microsoft-Windows-Kernel-IO/Operational",
        "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",
        "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational",
        "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational",
        "Microsoft-Windows-AppLocker/EXE and DLL",
        "Microsoft-Windows-AppLocker/MSI and Script",
        "Microsoft-Windows-AppLocker/Packaged app-Execution",
        "Microsoft-Windows-AppLocker/Packaged app-Deployment",
        "Microsoft-Windows-PrintService/Admin",
        "Microsoft-Windows-PrintService/Operational",
        "Microsoft-Windows-Shell-Core/Operational",
        "Microsoft-Windows-OpenSSH/Operational",
        "Microsoft-Windows-LSA/Operational",
        "Microsoft-Windows-Security-Mitigations/KernelMode",
        "Microsoft-Windows-Security-Mitigations/UserMode",
        "Microsoft-Windows-Diagnosis-Scripted/Operational",
        "Microsoft-Windows-Ldap-Client/Debug",
        "Microsoft-Windows-CAPI2/Operational",
        "Microsoft-Windows-Kernel-ShimEngine/Operational",
        "Microsoft-Windows-AppXDeploymentServer/Operational",
    )
}


def canonical_channel(value: str | None) -> str | None:
    """Restore the canonical case of a well-known channel name."""
    if value is None:
        return None
    return CHANNEL_CANONICAL.get(value.lower(), value)


def order_columns(names: list[str]) -> list[str]:
    """Metadata first, then System columns in fixed order, then the rest sorted."""
    present = set(names)
    head = [c for c in METADATA_COLUMNS if c in present]
    head += [c for c in SYSTEM_COLUMNS if c in present]
    placed = set(head)
    return head + sorted(c for c in present if c not in placed)
