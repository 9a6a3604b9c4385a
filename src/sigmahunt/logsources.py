"""Which events a Sigma rule's ``logsource`` means.

A Sigma log source is abstract (``category: process_creation``); events are concrete
(``Channel: Microsoft-Windows-Sysmon/Operational`` + ``EventID: 1``). This module turns
the one into the other with declarative tables:

* services -> channels: pySigma's own ``windows_logsource_mapping`` (the field's table),
  completed with the few services SigmaHQ's ``tests/thor.yml`` names that pySigma lacks;
* categories -> (service, EventIDs, extra conditions, field mapping): the facts of
  SigmaHQ's ``tests/thor.yml``, including the Security-log equivalent of
  ``process_creation`` (4688, ``NewProcessName`` as ``Image``).

A rule may resolve to several :class:`LogsourceVariant` (Sysmon 1 *or* Security 4688);
the engine evaluates each variant with its own field mapping and ORs the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sigma.pipelines.common import windows_logsource_mapping
from sigma.rule import SigmaLogSource

SYSMON = "sysmon"
SECURITY = "security"


def _channels_of_service() -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for service, channels in windows_logsource_mapping.items():
        table[service] = (channels,) if isinstance(channels, str) else tuple(channels)
    # Services named by SigmaHQ's thor.yml that pySigma's table does not carry.
    table.setdefault("smbserver-connectivity", ("Microsoft-Windows-SMBServer/Connectivity",))
    table.setdefault("smbclient-connectivity", ("Microsoft-Windows-SmbClient/Connectivity",))
    return table


CHANNELS_OF_SERVICE: dict[str, tuple[str, ...]] = _channels_of_service()


@dataclass(frozen=True)
class CategorySource:
    """One concrete event type a Sigma category means (a row of thor.yml)."""

    service: str
    event_ids: tuple[int, ...]
    conditions: tuple[tuple[str, str], ...] = ()
    field_map: tuple[tuple[str, str], ...] = ()


def _sysmon(*event_ids: int, **conditions: str) -> CategorySource:
    return CategorySource(SYSMON, tuple(event_ids), tuple(conditions.items()))


#: category -> the event types it means (SigmaHQ tests/thor.yml).
CATEGORY_SOURCES: dict[str, tuple[CategorySource, ...]] = {
    "process_creation": (
        _sysmon(1),
        CategorySource(
            SECURITY,
            (4688,),
            field_map=(("Image", "NewProcessName"), ("ParentImage", "ParentProcessName")),
        ),
    ),
    "file_change": (_sysmon(2),),
    "network_connection": (_sysmon(3),),
    "sysmon_status": (_sysmon(4), _sysmon(16)),
    "process_termination": (_sysmon(5),),
    "driver_load": (_sysmon(6),),
    "image_load": (_sysmon(7),),
    "create_remote_thread": (_sysmon(8),),
    "raw_access_thread": (_sysmon(9),),
    "process_access": (_sysmon(10),),
    "file_event": (_sysmon(11),),
    "registry_event": (_sysmon(12, 13, 14),),
    "registry_add": (_sysmon(12, EventType="CreateKey"),),
    "registry_delete": (_sysmon(12, EventType="DeleteKey"), _sysmon(12, EventType="DeleteValue")),
    "registry_set": (_sysmon(13),),
    "registry_rename": (_sysmon(14),),
    "create_stream_hash": (_sysmon(15),),
    "pipe_created": (_sysmon(17, 18),),
    "wmi_event": (_sysmon(19, 20, 21),),
    "dns_query": (_sysmon(22),),
    "file_delete": (_sysmon(23),),
    "clipboard_change": (_sysmon(24),),
    "process_tampering": (_sysmon(25),),
    "file_delete_detected": (_sysmon(26),),
    "file_block_executable": (_sysmon(27),),
    "file_block_shredding": (_sysmon(28),),
    "file_executable_detected": (_sysmon(29),),
    "sysmon_error": (_sysmon(255),),
    "ps_module": (CategorySource("powershell", (4103,)),),
    "ps_script": (CategorySource("powershell", (4104,)),),
    "ps_classic_start": (CategorySource("powershell-classic", (400,)),),
    "ps_classic_provider_start": (CategorySource("powershell-classic", (600,)),),
    "ps_classic_script": (CategorySource("powershell-classic", (800,)),),
    "antivirus": (
        CategorySource(
            "windefend",
            (1006, 1007, 1008, 1009, 1010, 1011, 1012, 1017, 1018, 1019, 1115, 1116),
            field_map=(("Signature", "ThreatName"), ("Filename", "Path")),
        ),
    ),
}


@dataclass(frozen=True)
class LogsourceVariant:
    """A concrete event selector plus the field renames that apply to events it selects.

    ``channels`` / ``event_ids`` of ``None`` mean "any". Channels compare
    case-insensitively (real exports contain ``security``).
    """

    channels: tuple[str, ...] | None = None
    event_ids: tuple[int, ...] | None = None
    conditions: tuple[tuple[str, str], ...] = ()
    field_map: tuple[tuple[str, str], ...] = ()

    def key(self) -> tuple[object, ...]:
        """Identity of the selector (field_map excluded: it does not change which rows)."""
        return (self.channels, self.event_ids, self.conditions)

    def describe(self) -> str:
        parts = []
        if self.channels:
            parts.append("Channel in " + "|".join(self.channels))
        if self.event_ids:
            parts.append("EventID in " + "|".join(str(e) for e in self.event_ids))
        parts.extend(f"{k}={v}" for k, v in self.conditions)
        return " and ".join(parts) or "all events"


@dataclass(frozen=True)
class LogsourceResolution:
    """Either the variants a log source means, or why it means no Windows event."""

    variants: tuple[LogsourceVariant, ...] = ()
    inapplicable: str | None = None
    notes: tuple[str, ...] = field(default=())


def _normalise(value: str | None) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def resolve_logsource(logsource: SigmaLogSource) -> LogsourceResolution:
    """Map a rule's log source to Windows event selectors.

    Non-Windows products and categories no Windows event log produces (``file_access``
    needs an EDR, ``proxy`` a proxy log) are *inapplicable*: the rule is loaded and
    reported, but no Windows event can match it.
    """
    product = _normalise(logsource.product)
    category = _normalise(logsource.category)
    service = _normalise(logsource.service)
    if product not in (None, "windows"):
        return LogsourceResolution(inapplicable=f"product '{product}' is not Windows event logs")
    service_channels: tuple[str, ...] | None = None
    if service is not None:
        if service not in CHANNELS_OF_SERVICE:
            return LogsourceResolution(inapplicable=f"unknown Windows service '{service}'")
        service_channels = CHANNELS_OF_SERVICE[service]
    if category is None:
        if product is None and service is None:
            return LogsourceResolution(inapplicable="log source names no product, service or category")
        return LogsourceResolution(variants=(LogsourceVariant(channels=service_channels),))
    sources = CATEGORY_SOURCES.get(category)
    if sources is None:
        return LogsourceResolution(
            inapplicable=f"category '{category}' is not produced by Windows event logs or Sysmon"
        )
    variants = []
    for source in sources:
        channels = CHANNELS_OF_SERVICE[source.service]
        if service_channels is not None and not set(channels) & set(service_channels):
            continue
        variants.append(
            LogsourceVariant(
                channels=channels,
                event_ids=source.event_ids,
                conditions=source.conditions,
                field_map=source.field_map,
            )
        )
    if not variants:
        return LogsourceResolution(
            inapplicable=f"category '{category}' is not logged by service '{service}'"
        )
    return LogsourceResolution(variants=tuple(variants))
