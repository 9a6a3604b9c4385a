"""Write the small example logs in examples/logs/ (deterministic; re-run to regenerate).

Hits and near misses for the example rules, in two of the layouts sigmahunt reads:
evtx_dump JSON (concatenated objects, as SigmaHQ's regression samples) and flat JSON
lines (as OTRF Security-Datasets).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent / "logs"
SYSMON = "Microsoft-Windows-Sysmon/Operational"


def evtx_dump_event(record_id: int, event_id: int, time: str, data: dict[str, object]) -> dict[str, object]:
    return {"Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon",
                                         "Guid": "5770385F-C22A-43E0-BF4C-06F5698FFBD9"}},
            "EventID": event_id, "Version": 5, "Level": 4, "Task": event_id, "Opcode": 0,
            "Keywords": "0x8000000000000000",
            "TimeCreated": {"#attributes": {"SystemTime": time}},
            "EventRecordID": record_id, "Correlation": None,
            "Execution": {"#attributes": {"ProcessID": 3308, "ThreadID": 4008}},
            "Channel": SYSMON, "Computer": "ws01.corp.example",
            "Security": {"#attributes": {"UserID": "S-1-5-18"}},
        },
        "EventData": data,
    }}


def net(image: str, ip: str = "203.0.113.7", port: int = 443) -> dict[str, object]:
    return {"RuleName": "-", "UtcTime": "", "ProcessGuid": "{5AA13A44-0D08-68FC-DC1D-000000004002}",
            "ProcessId": 4242, "Image": image, "User": "CORP\\alice", "Protocol": "tcp", "Initiated": "true",
            "SourceIp": "10.0.0.5", "SourcePort": 50123, "DestinationIp": ip, "DestinationPort": port}


def proc(image: str, command_line: str, parent: str = "C:\\Windows\\explorer.exe") -> dict[str, object]:
    return {"RuleName": "-", "ProcessGuid": "{5AA13A44-0D08-68FC-DC1D-000000004003}", "ProcessId": 5150,
            "Image": image, "CommandLine": command_line, "CurrentDirectory": "C:\\Users\\alice\\",
            "User": "CORP\\alice", "IntegrityLevel": "Medium", "ParentImage": parent,
            "ParentCommandLine": parent}


SYSMON_EVENTS = [
    # Seed rule: hits (any case) and near misses.
    (3, "2026-11-20T08:00:01.000000Z", net("c:\\users\\public\\x.exe")),
    (3, "2026-11-20T08:00:02.000000Z", net("C:\\Users\\Publicity\\x.exe")),
    (3, "2026-11-20T08:00:03.000000Z", net("C:\\PerfLogs\\dropper.exe")),
    (3, "2026-11-20T08:00:04.000000Z", net("D:\\Perflogs\\dropper.exe")),
    (3, "2026-11-20T08:00:05.000000Z", net("C:\\Windows\\Fonts\\fontdrvhost-evil.exe")),
    (3, "2026-11-20T08:00:06.000000Z", net("C:\\Windows\\System32\\svchost.exe")),
    (3, "2026-11-20T08:00:07.000000Z", net("C:\\$Recycle.bin")),
    # Encoded PowerShell: a windash hit, a filtered parent, a plain run.
    (1, "2026-11-20T08:05:00.000000Z", proc("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                                            "powershell.exe /enc SQBFAFgA")),
    (1, "2026-11-20T08:05:01.000000Z", proc("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                                            "powershell.exe -enc SQBFAFgA", parent="C:\\Windows\\CCM\\CcmExec.exe")),
    (1, "2026-11-20T08:05:02.000000Z", proc("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                                            "powershell.exe -File C:\\scripts\\inventory.ps1")),
    # SMB to a private address: a hit and a System (filtered) connection; a public one.
    (3, "2026-11-20T08:10:00.000000Z", net("C:\\Tools\\psexec.exe", "10.1.2.3", 445)),
    (3, "2026-11-20T08:10:01.000000Z", net("System", "10.1.2.4", 445)),
    (3, "2026-11-20T08:10:02.000000Z", net("C:\\Tools\\psexec.exe", "198.51.100.9", 445)),
]

SECURITY_EVENTS = [
    {"EventID": 4625, "Channel": "security", "Hostname": "DC01", "TimeCreated": "2026-11-20 09:00:00.000",
     "SourceName": "Microsoft-Windows-Security-Auditing", "TargetUserName": "Administrator",
     "IpAddress": "192.0.2.10", "LogonType": "3", "EventRecordID": 1001},
    {"EventID": 4625, "Channel": "security", "Hostname": "DC01", "TimeCreated": "2026-11-20 09:00:01.000",
     "SourceName": "Microsoft-Windows-Security-Auditing", "TargetUserName": "administrators-group",
     "IpAddress": "192.0.2.10", "LogonType": "3", "EventRecordID": 1002},
    {"EventID": 4688, "Channel": "Security", "Hostname": "WS02", "TimeCreated": "2026-11-20 09:01:00.000",
     "SourceName": "Microsoft-Windows-Security-Auditing",
     "NewProcessName": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
     "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
     "CommandLine": "powershell -NoP -EncodedCommand SQBFAFgA", "EventRecordID": 1003},
    {"EventID": 4624, "Channel": "Security", "Hostname": "WS02", "TimeCreated": "2026-11-20 09:02:00.000",
     "SourceName": "Microsoft-Windows-Security-Auditing", "TargetUserName": "Administrator",
     "LogonType": "2", "EventRecordID": 1004},
]


def main() -> None:
    HERE.mkdir(exist_ok=True)
    with (HERE / "sysmon_evtx_dump.json").open("w", encoding="utf-8") as out:
        for record_id, (event_id, time, data) in enumerate(SYSMON_EVENTS, start=100):
            out.write(json.dumps(evtx_dump_event(record_id, event_id, time, data), indent=2) + "\n")
    with (HERE / "security_flat.jsonl").open("w", encoding="utf-8") as out:
        for event in SECURITY_EVENTS:
            out.write(json.dumps(event) + "\n")


if __name__ == "__main__":
    main()
