"""EVTX XML (evtx_dump / wevtutil), CSV exports, 7z and encrypted archives."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import polars as pl
import pytest

from sigmahunt.ingest import EventBatch, LogFormat, Unreadable, detect_format, read_logs

FIX = Path(__file__).parent / "fixtures" / "ingest_more"


def _read(paths, **kwargs) -> tuple[pl.DataFrame, list[Unreadable]]:
    frames, bad = [], []
    for item in read_logs(paths, **kwargs):
        if isinstance(item, EventBatch):
            assert all(dtype == pl.String for dtype in item.frame.dtypes)
            frames.append(item.frame)
        else:
            bad.append(item)
    frame = pl.concat(frames, how="diagonal") if frames else pl.DataFrame()
    return frame, bad


def _rows(frame: pl.DataFrame) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if v is not None} for row in frame.to_dicts()]


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("events.xml", LogFormat.EVTX_XML), ("wevtutil.xml", LogFormat.EVTX_XML), ("events.csv", LogFormat.CSV)],
)
def test_detected_from_content(tmp_path: Path, name: str, fmt: LogFormat) -> None:
    renamed = tmp_path / "noext"
    renamed.write_bytes((FIX / name).read_bytes())
    assert detect_format(renamed) is fmt


def test_format_aliases() -> None:
    assert LogFormat.parse("xml") is LogFormat.EVTX_XML
    assert LogFormat.parse("wevtutil") is LogFormat.EVTX_XML
    assert LogFormat.parse("csv") is LogFormat.CSV
    with pytest.raises(ValueError):
        LogFormat.parse("7z")


# ---------------------------------------------------------------- XML


def test_evtx_dump_xml_three_events_with_userdata() -> None:
    frame, bad = _read([FIX / "events.xml"])
    assert bad == []
    rows = _rows(frame)
    assert [r["_position"] for r in rows] == ["record 1", "record 2", "record 3"]
    assert rows[0]["CommandLine"] == 'cmd.exe /c "whoami & echo <x>"'
    assert rows[0]["EventID"] == "4688" and rows[0]["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert "TargetDomainName" in frame.columns  # empty Data: null, column kept
    assert rows[1]["SubjectUserName"] == "admin" and rows[1]["EventID"] == "1102"
    assert rows[2]["EventID_Qualifiers"] == "16384"
    assert (rows[2]["Data_1"], rows[2]["Data_2"]) == ("Windows Update", "running")
    assert rows[2]["Binary"] == "770075006100750073007600"
    assert rows[2]["Security_UserID"] == "S-1-5-18"
    assert rows[0]["_timestamp"] == "2021-03-04T05:06:07.123456Z"


def test_xml_columns_identical_to_evtx_dump_json() -> None:
    xml, bad_xml = _read([FIX / "events.xml"])
    js, bad_js = _read([FIX / "evtx_dump.json"])
    assert bad_xml == bad_js == []
    drop = ["_source", "_position"]
    xml_rows = [r for r in _rows(xml.drop(drop)) if r["EventID"] in ("4688", "7036")]
    assert xml_rows == _rows(js.drop(drop))
    same = [c for c in js.columns if c not in drop]
    assert [c for c in xml.columns if c in same] == same  # same canonical order


def test_wevtutil_concatenated_with_malformed_event() -> None:
    frame, bad = _read([FIX / "wevtutil.xml"])
    assert [(b.position, b.reason.startswith("malformed XML event")) for b in bad] == [("record 2", True)]
    rows = _rows(frame)
    assert [r["_position"] for r in rows] == ["record 1", "record 3"]
    assert rows[0]["Image"] == "C:\\Windows\\System32\\rundll32.exe"
    assert rows[0]["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert rows[0]["_timestamp"] == "2021-03-04T05:09:00.123456Z"  # 7 digits cut to 6
    assert frame.height + len(bad) == 3


def test_evtx_dump_xml_record_headers_and_unclosed_event(tmp_path: Path) -> None:
    ev = "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><EventID>{}</EventID></System></Event>"
    text = (
        f'Record 1\n<?xml version="1.0" encoding="utf-8"?>\n{ev.format(1)}\n'
        'Record 2\n<?xml version="1.0" encoding="utf-8"?>\n<Event xmlns=\'x\'><System><EventID>2</EventID>\n'
        f'Record 3\n<?xml version="1.0" encoding="utf-8"?>\n{ev.format(3)}\n'
        "Record 4\n<Event><System><EventID>4</EventID>"
    )
    path = tmp_path / "dump.txt"
    path.write_text(text)
    frame, bad = _read([path])
    assert frame["EventID"].to_list() == ["1", "3"]
    assert [b.position for b in bad] == ["record 2", "record 4"]


def test_utf16_wevtutil_output(tmp_path: Path) -> None:
    path = tmp_path / "ps.xml"
    path.write_bytes(b"\xff\xfe" + (FIX / "wevtutil.xml").read_text().encode("utf-16-le"))
    frame, bad = _read([path])
    assert frame.height == 2 and len(bad) == 1


def test_doctype_refused(tmp_path: Path) -> None:
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>\n'
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'>"
        "<System><EventID>1</EventID></System><EventData><Data Name='x'>&lol2;</Data></EventData></Event>"
    )
    path = tmp_path / "bomb.xml"
    path.write_text(bomb)
    frame, bad = _read([path])
    assert frame.height == 0
    assert len(bad) == 1 and bad[0].position == "file" and "DOCTYPE" in bad[0].reason


def test_forced_xml_on_evtx_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.evtx"
    path.write_bytes(b"ElfFile\x00" + b"\x00" * 100)
    _, bad = _read([path], format_in="xml")
    assert len(bad) == 1 and "content is EVTX" in bad[0].reason


# ---------------------------------------------------------------- CSV


def test_csv_export() -> None:
    frame, bad = _read([FIX / "events.csv"])
    assert [(b.position, "9 fields" in b.reason) for b in bad] == [("line 4", True)]
    rows = _rows(frame)
    assert [r["_position"] for r in rows] == ["line 2", "line 5"]
    first = rows[0]
    assert first["Message"] == "A new process\nhas been created."
    assert (first["EventID"], first["Id"]) == ("4688", "4688")
    assert (first["Channel"], first["LogName"]) == ("Security", "security")
    assert first["Computer"] == "WS01" and first["EventRecordID"] == "101"
    assert first["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert first["TimeCreated"] == first["_timestamp"] == "2021-03-04T05:06:07.123456Z"
    assert "CommandLine" not in rows[1]  # empty cell -> null
    assert frame.columns[:8] == [
        "_source", "_position", "_timestamp", "Channel", "EventID", "Computer", "EventRecordID", "Provider_Name",
    ]  # fmt: skip
    assert frame.height + len(bad) == 3


def test_csv_powershell_type_line_and_metadata_clash(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text('#TYPE System.Diagnostics.Eventing.Reader.EventLogRecord\n"Id","_source","Message"\n"1","x","m"\n')
    frame, bad = _read([path])
    assert bad == []
    row = _rows(frame)[0]
    assert row["EventID"] == "1" and row["_source#original"] == "x" and row["_position"] == "line 3"


# ---------------------------------------------------------------- archives

py7zr = pytest.importorskip("py7zr")


def _make_7z(path: Path, members: dict[str, bytes], password: str | None = None) -> None:
    with py7zr.SevenZipFile(path, "w", password=password) as archive:
        for name, data in members.items():
            archive.writestr(data, name)


def test_7z_members(tmp_path: Path) -> None:
    archive = tmp_path / "logs.7z"
    _make_7z(
        archive,
        {
            "a/events.xml": (FIX / "events.xml").read_bytes(),
            "b/events.csv": (FIX / "events.csv").read_bytes(),
            "rules.yml": b"title: x\n",
        },
    )
    assert detect_format(archive) is LogFormat.SEVENZIP
    frame, bad = _read([archive])
    assert sorted(set(frame["_source"].to_list())) == [f"{archive}!a/events.xml", f"{archive}!b/events.csv"]
    assert frame.height == 5 and [(b.source, b.position) for b in bad] == [(f"{archive}!b/events.csv", "line 4")]


def test_encrypted_7z(tmp_path: Path) -> None:
    archive = tmp_path / "secret.7z"
    _make_7z(archive, {"events.xml": (FIX / "events.xml").read_bytes()}, password="s3cret")
    frame, bad = _read([archive], archive_password="s3cret")
    assert bad == [] and frame.height == 3
    for password in (None, "wrong"):
        frame, bad = _read([archive], archive_password=password)
        assert frame.height == 0 and len(bad) == 1
        assert bad[0].source == f"{archive}!events.xml"
        assert "encrypted: pass --archive-password" in bad[0].reason


def test_7z_corrupt(tmp_path: Path) -> None:
    archive = tmp_path / "bad.7z"
    archive.write_bytes(b"7z\xbc\xaf\x27\x1c" + b"\x00" * 40)
    frame, bad = _read([archive])
    assert frame.height == 0 and len(bad) == 1 and bad[0].position == "file"


def test_encrypted_zip(tmp_path: Path) -> None:
    if shutil.which("zip") is None:
        pytest.skip("no zip binary")
    shutil.copy(FIX / "events.csv", tmp_path / "events.csv")
    shutil.copy(FIX / "wevtutil.xml", tmp_path / "wevtutil.xml")
    subprocess.run(
        ["zip", "-q", "-P", "pw", "enc.zip", "events.csv", "wevtutil.xml"], cwd=tmp_path, check=True, timeout=30
    )
    archive = tmp_path / "enc.zip"
    frame, bad = _read([archive], archive_password="pw")
    assert frame.height == 4 and len(bad) == 2  # the bad CSV row and the malformed XML event
    for password in (None, "nope"):
        frame, bad = _read([archive], archive_password=password)
        assert frame.height == 0
        assert sorted(b.source for b in bad) == [f"{archive}!events.csv", f"{archive}!wevtutil.xml"]
        assert all("encrypted: pass --archive-password" in b.reason for b in bad)


def test_plain_zip_still_reads_with_password(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.xml", (FIX / "events.xml").read_bytes())
        archive.writestr("inner.7z", b"")  # empty member: skipped as blank
    path = tmp_path / "plain.zip"
    path.write_bytes(buffer.getvalue())
    frame, bad = _read([path], archive_password="unused")
    assert frame.height == 3 and bad == []


def test_counts_in_equal_counts_out(tmp_path: Path) -> None:
    frame, bad = _read([FIX])
    # events.xml 3, wevtutil.xml 3, evtx_dump.json 2, events.csv 3 rows
    assert frame.height + len(bad) == 11


def test_csv_without_event_header_needs_forcing(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    frame, bad = _read([path])
    assert frame.height == 0 and len(bad) == 1 and "format_in='csv'" in bad[0].reason
    frame, bad = _read([path], format_in="csv")
    assert bad == [] and _rows(frame)[0]["a"] == "1"
