"""Field-mapping pipelines: what Windows event fields and log sources are called in an index.

A compiled rule (:mod:`sigmahunt.engines.embedded.ir`) names fields as the EVTX does
(``Image``, ``EventID``, ``Channel``). An Elasticsearch/OpenSearch index built by another
shipper names them otherwise. A :class:`Pipeline` says, declaratively:

* how each EVTX field is named in the index (:class:`FieldRule`), possibly depending on the
  event's channel and EventID (HELK names ``ImageLoaded`` ``driver_loaded`` in Sysmon 6
  and ``module_loaded`` in Sysmon 7);
* where events of each channel live (:class:`IndexRoute`: HELK keeps Sysmon in
  ``logs-endpoint-winevent-sysmon-*``), and whether the index alone then implies the channel.

The same table drives both directions, so ``sigmahunt ingest`` and the queries always agree:
ingest renames an event's fields knowing its channel and EventID exactly
(:meth:`Pipeline.target`); a query, which only knows the rule's log-source selector, gets
the possible names with the conditions under which each applies (:meth:`Pipeline.cases`).

Three pipelines:

``raw``
    identity: the EVTX names, as ``sigmahunt ingest --pipeline raw`` stores them.
``helk``
    HELK's OSSEM names and index patterns. Facts from the legacy sigmac configuration
    ``tools/config/helk.yml`` of SigmaHQ/sigma (index per service, default ``logs-*``,
    ``fieldmappings`` including the per-EventID ones). That file names no field for the
    channel, the computer or the record number; OSSEM's ``channel``, ``host_name`` and
    ``record_number`` are used (and, since the per-log index implies the channel there, the
    channel field is only queried where the index does not). helk.yml's conditional mapping
    of ``SubjectUserName`` for 4648 is keyed ``EventId=4648`` (a typo that made sigmac skip
    it); it is carried here as meant, ``EventID=4648``.
``ecs-windows``
    Winlogbeat >= 7 / Elastic Agent (Elastic Common Schema). Facts from
    pySigma-backend-elasticsearch's ``ecs_windows`` pipeline (``sigma/pipelines/elasticsearch/
    windows.py``): ``Channel`` -> ``winlog.channel``, ``EventID`` -> ``event.code``, the ECS
    names of its field table, the per-category/per-service names (``CommandLine`` ->
    ``process.command_line`` for process_creation...), and ``winlog.event_data.`` before any
    other field without a dot. That backend requires pySigma < 2, so it cannot run next to
    sigmahunt's pySigma 2.0.1 rule model; its table is carried here as data instead. Its
    per-category entries are keyed on Sigma categories; here they become the channels and
    EventIDs those categories mean (:data:`sigmahunt.logsources.CATEGORY_SOURCES`). Its
    ``driver_loaded``/``image_loaded`` keys (not Sigma category names, so never applied
    there) are carried as meant: ``driver_load``/``image_load``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from sigmahunt.logsources import CATEGORY_SOURCES, CHANNELS_OF_SERVICE

CHANNEL = "Channel"
EVENT_ID = "EventID"
COMPUTER = "Computer"
RECORD_ID = "EventRecordID"


@dataclass(frozen=True)
class FieldRule:
    """``source`` (EVTX/Sigma name) is called ``target`` in events of these channels/EventIDs.

    ``channels`` (lowercased) and ``event_ids`` of None mean any. The rules of a pipeline
    are tried in order; the first whose conditions hold names the field.
    """

    source: str
    target: str
    channels: frozenset[str] | None = None
    event_ids: frozenset[str] | None = None

    def holds(self, channel: str | None, event_id: str | None) -> bool:
        if self.channels is not None and (channel is None or channel.lower() not in self.channels):
            return False
        if self.event_ids is not None and (event_id is None or event_id not in self.event_ids):
            return False
        return True

    def may_hold(self, channels: frozenset[str] | None, event_ids: frozenset[str] | None) -> bool:
        """Whether some event of the selector (channels/EventIDs, None = any) meets the rule."""
        if self.channels is not None and channels is not None and not self.channels & channels:
            return False
        if self.event_ids is not None and event_ids is not None and not self.event_ids & event_ids:
            return False
        return True

    def covers(self, channels: frozenset[str] | None, event_ids: frozenset[str] | None) -> bool:
        """Whether every event of the selector meets the rule."""
        if self.channels is not None and (channels is None or not channels <= self.channels):
            return False
        if self.event_ids is not None and (event_ids is None or not event_ids <= self.event_ids):
            return False
        return True


@dataclass(frozen=True)
class Case:
    """In events of ``channels``/``event_ids`` (and of no earlier case) the field is ``target``.

    The last case of a list has no condition (``channels`` and ``event_ids`` None).
    """

    target: str
    channels: frozenset[str] | None = None
    event_ids: frozenset[str] | None = None

    @property
    def unconditional(self) -> bool:
        return self.channels is None and self.event_ids is None


@dataclass(frozen=True)
class IndexRoute:
    """Events of these channels (lowercased) live in indices matching ``pattern``."""

    channels: frozenset[str]
    pattern: str


@dataclass(frozen=True)
class Pipeline:
    """A field and index naming scheme (see the module documentation)."""

    name: str
    description: str
    rules: tuple[FieldRule, ...] = ()
    prefix: str = ""  # put before every field no rule names (and that has no dot)
    #: Write dots in names no rule maps as U+2024 (looks alike): Elasticsearch reads a dot as
    #: an object path, and one event's ``host`` (a string) would then reject another's ``host.name``.
    escape_dots: bool = False
    routes: tuple[IndexRoute, ...] = ()
    default_index: str | None = None
    #: Whether a route's index holds only its channels (HELK), so the query needs no channel test.
    channel_implied_by_index: bool = False
    sources: tuple[str, ...] = field(default=())

    @cached_property
    def _by_source(self) -> dict[str, tuple[FieldRule, ...]]:
        out: dict[str, list[FieldRule]] = {}
        for rule in self.rules:
            out.setdefault(rule.source, []).append(rule)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def _route_of_channel(self) -> dict[str, str]:
        return {channel: route.pattern for route in self.routes for channel in route.channels}

    # -- fields ---------------------------------------------------------------------------

    def fallback(self, name: str) -> str:
        """The index name of a field no rule names."""
        if self.prefix and "." not in name:
            return self.prefix + name
        if self.escape_dots and "." in name:
            return name.replace(".", DOT_SUBSTITUTE)
        return name

    def target(self, name: str, channel: str | None = None, event_id: str | None = None) -> str:
        """The index name of field ``name`` in an event of ``channel`` / ``event_id`` (ingest)."""
        for rule in self._by_source.get(name, ()):
            if rule.holds(channel, event_id):
                return rule.target
        return self.fallback(name)

    def is_renamed_by_rule(self, name: str, channel: str | None, event_id: str | None) -> bool:
        return any(rule.holds(channel, event_id) for rule in self._by_source.get(name, ()))

    def cases(
        self, name: str, channels: Iterable[str] | None = None, event_ids: Iterable[str] | None = None
    ) -> list[Case]:
        """The index names field ``name`` may have in events of a selector (query side).

        One unconditional case when the selector fixes the name; otherwise the conditional
        names in rule order, then the fallback. Exactly one case holds for any event, so a
        query may OR ``case condition AND test(target)`` over them, negated or not.
        """
        chans = frozenset(c.lower() for c in channels) if channels is not None else None
        eids = frozenset(str(e) for e in event_ids) if event_ids is not None else None
        out: list[Case] = []
        for rule in self._by_source.get(name, ()):
            if not rule.may_hold(chans, eids):
                continue
            if rule.covers(chans, eids):
                out.append(Case(rule.target))
                break
            out.append(Case(rule.target, rule.channels, rule.event_ids))
        else:
            out.append(Case(self.fallback(name)))
        if len({c.target for c in out}) == 1:
            return [Case(out[0].target)]
        return out

    @cached_property
    def shared_targets(self) -> frozenset[str]:
        """Index names several EVTX fields are given (``process_path`` for ``Image``, ``SourceImage``...).

        Such a name is lossy: an index built by another shipper cannot tell which field a
        value came from. ``sigmahunt ingest`` records it (``sigmahunt.from``), so hunts on
        the indices it loaded stay exact (see :func:`provenance_field`).
        """
        sources: dict[str, set[str]] = {}
        for rule in self.rules:
            sources.setdefault(rule.target, set()).add(rule.source)
        return frozenset(target for target, names in sources.items() if len(names) > 1)

    @property
    def channel_field(self) -> str:
        return self.target(CHANNEL)

    @property
    def event_id_field(self) -> str:
        return self.target(EVENT_ID)

    @property
    def computer_field(self) -> str:
        return self.target(COMPUTER)

    @property
    def record_id_field(self) -> str:
        return self.target(RECORD_ID)

    # -- indices --------------------------------------------------------------------------

    def route(self, channel: str | None) -> str | None:
        """The index pattern events of ``channel`` live in (None: the default index)."""
        if channel is None:
            return None
        return self._route_of_channel.get(channel.lower())

    def index_of(self, channel: str | None) -> str | None:
        """The pattern for events of a channel: its route, else the default index."""
        return self.route(channel) or self.default_index

    def ingest_index(self, channel: str | None, name: str) -> str:
        """The concrete index ``sigmahunt ingest --index NAME`` writes an event of ``channel`` to.

        With routes (HELK), ``NAME`` replaces the ``*`` of the channel's pattern
        (``logs-endpoint-winevent-sysmon-NAME``); without, every event goes to ``NAME``.
        """
        if not self.routes:
            return name
        pattern = self.index_of(channel) or "*"
        return pattern.replace("*", name) if "*" in pattern else pattern

    def map_event(self, fields: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """An event's fields under their index names, and ``{index name: EVTX name}`` renames.

        Two fields that would get the same name (HELK names ``Image`` and ``SourceImage``
        ``process_path``; an ECS shipper may already have filled ``process.executable``) are
        kept apart: the one a mapping rule renamed wins, the other keeps a name under
        ``sigmahunt_collision.`` so nothing is lost (and ``renames`` restores it).
        """
        channel = fields.get(CHANNEL)
        event_id = fields.get(EVENT_ID)
        chosen: dict[str, tuple[int, str]] = {}
        out: dict[str, str] = {}
        renames: dict[str, str] = {}
        for name, value in fields.items():
            target = self.target(name, channel, event_id)
            rank = 2 if self.is_renamed_by_rule(name, channel, event_id) else 1 if target != name else 0
            previous = chosen.get(target)
            if previous is not None:
                prev_rank, prev_name = previous
                if prev_rank >= rank:  # the earlier claimant keeps the name
                    _keep_apart(name, value, out, renames)
                    continue
                _keep_apart(prev_name, out.pop(target), out, renames)
                renames.pop(target, None)
            chosen[target] = (rank, name)
            out[target] = value
            if target != name:
                renames[target] = name
        return out, renames


COLLISION_PREFIX = "sigmahunt_collision."
PROVENANCE_PREFIX = "sigmahunt.from."


def provenance_field(target: str) -> str:
    """The indexed field holding which EVTX field a shared index name came from."""
    return PROVENANCE_PREFIX + target.replace(".", DOT_SUBSTITUTE)
DOT_SUBSTITUTE = "\u2024"  # ONE DOT LEADER


def _keep_apart(name: str, value: str, out: dict[str, str], renames: dict[str, str]) -> None:
    key = COLLISION_PREFIX + name.replace(".", DOT_SUBSTITUTE)
    out[key] = value
    renames[key] = name


# -- tables ----------------------------------------------------------------------------------

def _channels_of(service: str) -> frozenset[str]:
    return frozenset(c.lower() for c in CHANNELS_OF_SERVICE[service])


def _ids(*event_ids: int) -> frozenset[str]:
    return frozenset(str(e) for e in event_ids)


#: HELK (helk.yml ``fieldmappings``): plain renames.
HELK_FIELDS: dict[str, str] = {
    "AccessMask": "object_access_mask_requested",
    "AccountName": "user_name",
    "AllowedToDelegateTo": "user_attribute_allowed_todelegate",
    "AttributeLDAPDisplayName": "dsobject_attribute_name",
    "AuditPolicyChanges": "policy_changes",
    "AuthenticationPackageName": "logon_authentication_package",
    "CallingProcessName": "process_path",
    "CallTrace": "process_call_trace",
    "ClientAddress": "src_ip_addr",
    "ClientIPAddress": "src_ip_addr",
    "ClientIP": "src_ip_addr",
    "CommandLine": "process_command_line",
    "Company": "file_company",
    "ComputerName": "host_name",
    "ConnectedViaIPAddress": "dst_nat_ip_addr",
    "CurrentDirectory": "process_current_directory",
    "Description": "file_description",
    "DestAddress": "dst_ip_addr",
    "DestinationHostname": "dst_host_name",
    "DestinationIp": "dst_ip_addr",
    "DestinationPort": "dst_port",
    "DestinationPortName": "dst_port_name",
    "Device": "device_name",
    "EngineVersion": "powershell.engine.version",
    "EventID": "event_id",
    "EventType": "event_type",
    "FailureCode": "ticket_failure_code",
    "FileName": "file_name",
    "FileVersion": "file_version",
    "GrantedAccess": "process_granted_access",
    "GroupName": "group_name",
    "GroupSid": "group_sid",
    "HiveName": "hive_name",
    "HostVersion": "powershell.host.version",
    "Image": "process_path",
    "Imphash": "hash_imphash",
    "ipAddress": "dst_ip_addr",
    "IpAddress": "src_ip_addr",
    "IPString": "src_ip_addr",
    "LaunchedViaIPAddress": "dst_ip_addr",
    "LogonProcessName": "logon_process_name",
    "LogonType": "logon_type",
    "MachineIpAddress": "dst_ip_addr",
    "MachineName": "host_name",
    "NewProcessName": "process_path",
    "ObjectClass": "dsobject_class",
    "ObjectName": "object_name",
    "ObjectType": "object_type",
    "ObjectValueName": "object_value_name",
    "OperationType": "object_operation_type",
    "OriginalFileName": "file_name_original",
    "ParentImage": "process_parent_path",
    "ParentProcessName": "process_parent_path",
    "PasswordLastSet": "user_attribute_password_lastset",
    "Path": "process_path",
    "ParentCommandLine": "process_parent_command_line",
    "PipeName": "pipe_name",
    "ProcessName": "process_path",
    "ProcessCommandLine": "process_command_line",
    "Product": "file_product",
    "Properties": "object_properties",
    "RelativeTargetName": "share_relative_target_name",
    "SourceAddress": "src_ip_addr",
    "ServiceFileName": "service_image_path",
    "ServiceName": "service_name",
    "ShareName": "share_name",
    "Signature": "signature",
    "SignatureStatus": "signature_status",
    "Signed": "signed",
    "Source": "source_name",
    "SourceHostname": "src_host_name",
    "SourceImage": "process_path",
    "SourceIp": "src_ip_addr",
    "SourcePort": "src_port",
    "SourcePortName": "src_port_name",
    "StartAddress": "thread_start_address",
    "StartFunction": "thread_start_function",
    "StartModule": "thread_start_module",
    "Status": "event_status",
    "TargetServer": "dst_ip_addr",
    "TaskName": "task_name",
    "TicketEncryptionType": "ticket_encryption_type",
    "TicketOptions": "ticket_options",
    "TargetFilename": "file_name",
    "TargetImage": "target_process_path",
    "TargetProcessAddress": "thread_start_address",
    "TargetObject": "registry_key_path",
    "User": "user_account",
    "UserName": "user_name",
    "Workstation": "src_host_name",
    "WorkstationName": "src_host_name",
    # Not in helk.yml (it selected logs by index): OSSEM names, so events keep their provenance.
    "Channel": "channel",
    "Computer": "host_name",
    "EventRecordID": "record_number",
}

#: HELK (helk.yml ``fieldmappings``): names that depend on the EventID.
HELK_CONDITIONAL: dict[str, tuple[tuple[int, str], ...]] = {
    "Configuration": ((16, "sysmon_configuration"),),
    "Destination": ((20, "wmi_consumer_destination"),),
    "Details": ((13, "registry_key_value"),),
    "EventNamespace": ((19, "wmi_namespace"),),
    "Filter": ((21, "wmi_filter_path"),),
    "ImageLoaded": ((6, "driver_loaded"), (7, "module_loaded")),
    "Initiated": ((3, "network_initiated"),),
    "IntegrityLevel": ((1, "process_integrity_level"),),
    "Name": ((19, "wmi_name"), (20, "wmi_name")),
    "NewName": ((14, "registry_key_new_name"),),
    "Operation": ((19, "wmi_operation"), (20, "wmi_operation"), (21, "wmi_operation")),
    "Protocol": ((3, "network_protocol"),),
    "Query": ((19, "wmi_query"),),
    "SchemaVersion": ((4, "sysmon_schema_version"),),
    "State": ((4, "service_state"), (16, "sysmon_configuration_state")),
    "SubjectUserName": ((4624, "user_reporter_name"), (4648, "user_name"), (5140, "user_name")),
    "Type": ((20, "wmi_consumer_type"),),
    "Value": ((1102, "dst_ip_addr"),),
    "Version": ((4, "sysmon_version"),),
}

#: HELK (helk.yml ``logsources``): index pattern per service; ``defaultindex`` logs-*.
HELK_INDICES: tuple[tuple[str, str], ...] = (
    ("application", "logs-endpoint-winevent-application-*"),
    ("security", "logs-endpoint-winevent-security-*"),
    ("sysmon", "logs-endpoint-winevent-sysmon-*"),
    ("system", "logs-endpoint-winevent-system-*"),
    ("wmi", "logs-endpoint-winevent-wmiactivity-*"),
    ("powershell", "logs-endpoint-winevent-powershell-*"),
    ("powershell-classic", "logs-endpoint-winevent-powershell-*"),
)


def _helk() -> Pipeline:
    rules: list[FieldRule] = []
    for source, cases in HELK_CONDITIONAL.items():
        for event_id, target in cases:
            rules.append(FieldRule(source, target, event_ids=_ids(event_id)))
    rules.extend(FieldRule(source, target) for source, target in HELK_FIELDS.items())
    patterns: dict[str, set[str]] = {}
    for service, pattern in HELK_INDICES:
        patterns.setdefault(pattern, set()).update(_channels_of(service))
    routes = tuple(IndexRoute(frozenset(chans), pattern) for pattern, chans in patterns.items())
    return Pipeline(
        name="helk",
        description="HELK: OSSEM field names, one index pattern per Windows log (logs-endpoint-winevent-*)",
        rules=tuple(rules),
        routes=routes,
        default_index="logs-*",
        channel_implied_by_index=True,
        escape_dots=True,
        sources=("SigmaHQ/sigma tools/config/helk.yml (legacy sigmac configuration)",),
    )


#: ECS (pySigma-backend-elasticsearch ``ecs_windows``): names that depend on the log source.
#: (field, "category"|"service", log source, ECS name), in that pipeline's order.
ECS_VARIABLE: tuple[tuple[str, str, str, str], ...] = (
    ("FileVersion", "category", "process_creation", "process.pe.file_version"),
    ("FileVersion", "category", "image_load", "file.pe.file_version"),
    ("Description", "category", "process_creation", "process.pe.description"),
    ("Description", "category", "image_load", "file.pe.description"),
    ("Description", "category", "sysmon_error", "winlog.event_data.Description"),
    ("Product", "category", "process_creation", "process.pe.product"),
    ("Product", "category", "image_load", "file.pe.product"),
    ("Company", "category", "process_creation", "process.pe.company"),
    ("Company", "category", "image_load", "file.pe.company"),
    ("OriginalFileName", "category", "process_creation", "process.pe.original_file_name"),
    ("OriginalFileName", "category", "image_load", "file.pe.original_file_name"),
    ("CommandLine", "category", "process_creation", "process.command_line"),
    ("CommandLine", "service", "security", "process.command_line"),
    ("CommandLine", "service", "powershell-classic", "powershell.command.value"),
    ("Protocol", "category", "network_connection", "network.transport"),
    ("Initiated", "category", "network_connection", "network.direction"),
    ("Signature", "category", "driver_load", "file.code_signature.subject_name"),
    ("Signature", "category", "image_load", "file.code_signature.subject_name"),
    ("EngineVersion", "service", "powershell-classic", "powershell.engine.version"),
    ("HostVersion", "service", "powershell-classic", "powershell.process.executable_version"),
    ("SubjectLogonId", "service", "security", "winlog.logon.id"),
    ("ServiceName", "service", "security", "service.name"),
    ("SubjectDomainName", "service", "security", "user.domain"),
    ("SubjectUserName", "service", "security", "user.name"),
    ("SubjectUserSid", "service", "security", "user.id"),
    ("TargetLogonId", "service", "security", "winlog.logon.id"),
)

#: ECS (pySigma-backend-elasticsearch ``ecs_windows_field_mapping``): plain renames.
ECS_FIELDS: dict[str, str] = {
    "EventID": "event.code",
    "Channel": "winlog.channel",
    "Provider_Name": "winlog.provider_name",
    "ComputerName": "winlog.computer_name",
    "FileName": "file.path",
    "ProcessGuid": "process.entity_id",
    "ProcessId": "process.pid",
    "Image": "process.executable",
    "CurrentDirectory": "process.working_directory",
    "ParentProcessGuid": "process.parent.entity_id",
    "ParentProcessId": "process.parent.pid",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "TargetFilename": "file.path",
    "SourceIp": "source.ip",
    "SourceHostname": "source.domain",
    "SourcePort": "source.port",
    "DestinationIp": "destination.ip",
    "DestinationHostname": "destination.domain",
    "DestinationPort": "destination.port",
    "DestinationPortName": "network.protocol",
    "ImageLoaded": "file.path",
    "Signed": "file.code_signature.signed",
    "SignatureStatus": "file.code_signature.status",
    "Imphash": "file.pe.imphash",
    "SourceProcessGuid": "process.entity_id",
    "SourceProcessId": "process.pid",
    "SourceImage": "process.executable",
    "Device": "file.path",
    "SourceThreadId": "process.thread.id",
    "TargetObject": "registry.path",
    "PipeName": "file.name",
    "Destination": "process.executable",
    "QueryName": "dns.question.name",
    "QueryStatus": "sysmon.dns.status",
    "IsExecutable": "sysmon.file.is_executable",
    "Archived": "sysmon.file.archived",
    "CommandName": "powershell.command.name",
    "CommandPath": "powershell.command.path",
    "CommandType": "powershell.command.type",
    "HostApplication": "process.command_line",
    "HostId": "process.entity_id",
    "HostName": "process.title",
    "NewEngineState": "powershell.engine.new_state",
    "PipelineId": "powershell.pipeline_id",
    "PreviousEngineState": "powershell.engine.previous_state",
    "RunspaceId": "powershell.runspace_id",
    "ScriptName": "file.path",
    "SequenceNumber": "event.sequence",
    "NewProviderState": "powershell.provider.new_state",
    "ProviderName": "powershell.provider.name",
    "MessageNumber": "powershell.sequence",
    "MessageTotal": "powershell.total",
    "ScriptBlockText": "powershell.file.script_block_text",
    "ScriptBlockId": "powershell.file.script_block_id",
    "AccountDomain": "user.domain",
    "AccountName": "user.name",
    "Application": "process.executable",
    "ClientAddress": "source.ip",
    "ClientName": "source.domain",
    "DestAddress": "destination.ip",
    "DestPort": "destination.port",
    "IpAddress": "source.ip",
    "IpPort": "source.port",
    "NewProcessId": "process.pid",
    "NewProcessName": "process.executable",
    "ParentProcessName": "process.parent.name",
    "ProcessName": "process.executable",
    "SourceAddress": "source.ip",
    "TargetDomainName": "user.domain",
    "User": "user.name",
    "WorkstationName": "source.domain",
    "Payload": "powershell.file.script_block_text",
    # Not in that table (Winlogbeat's own names for the System part of an event).
    "Computer": "winlog.computer_name",
    "EventRecordID": "winlog.record_id",
}


def _logsource_conditions(kind: str, name: str) -> list[tuple[frozenset[str] | None, frozenset[str] | None]]:
    """A Sigma category or service as (channels, EventIDs) pairs of the events it means."""
    if kind == "service":
        return [(_channels_of(name), None)]
    return [(_channels_of(src.service), _ids(*src.event_ids)) for src in CATEGORY_SOURCES[name]]


def _ecs_windows() -> Pipeline:
    rules: list[FieldRule] = []
    for source, kind, logsource, target in ECS_VARIABLE:
        for channels, event_ids in _logsource_conditions(kind, logsource):
            rules.append(FieldRule(source, target, channels, event_ids))
    rules.extend(FieldRule(source, target) for source, target in ECS_FIELDS.items())
    return Pipeline(
        name="ecs-windows",
        description="Winlogbeat >= 7 / Elastic Agent (ECS): winlog.channel, event.code, "
                    "process.executable..., winlog.event_data.* for the rest",
        rules=tuple(rules),
        prefix="winlog.event_data.",
        default_index="winlogbeat-*,logs-*",
        sources=("SigmaHQ/pySigma-backend-elasticsearch sigma/pipelines/elasticsearch/windows.py (ecs_windows)",),
    )


def _raw() -> Pipeline:
    return Pipeline(
        name="raw",
        description="field names as in the EVTX (Channel, EventID, Image...): sigmahunt ingest --pipeline raw",
        default_index="sigmahunt-*",
        escape_dots=True,
    )


PIPELINES: dict[str, Pipeline] = {p.name: p for p in (_raw(), _helk(), _ecs_windows())}


def get_pipeline(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r} (choose from {', '.join(PIPELINES)})") from None
