"""The native JSON-lines reader (``sigmahunt_native.project_flat_lines``) against its
Python twin, the Polars fast path: wherever the native reader accepts a chunk, the frame
must be exactly the Polars path's; where it declines, the Polars path runs as before.

Skipped when the native module is absent, unless ``SIGMAHUNT_REQUIRE_NATIVE=1`` (CI with a
built module), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator

import polars as pl
import pytest

from sigmahunt.ingest import json_reader
from sigmahunt.ingest.formats import LogFormat
from sigmahunt.ingest.json_reader import LineChunk, fast_flat_frame, fast_path_schema, native_columns
from sigmahunt.ingest.model import Projection, Unreadable
from sigmahunt.ingest.sources import Leaf, iter_leaves
from sigmahunt.native import native
from tests.conftest import SHARED, requires_shared

# A build from before this reader has the same ABI but not the function: skipped alike.
PROJECT_FLAT_LINES = getattr(native(), "project_flat_lines", None)
if PROJECT_FLAT_LINES is None:
    if os.environ.get("SIGMAHUNT_REQUIRE_NATIVE") == "1":
        raise RuntimeError("SIGMAHUNT_REQUIRE_NATIVE=1 but the native JSON reader is absent, stale or turned off")
    pytest.skip("the native module (native/) is not built", allow_module_level=True)

PROJECTION = Projection.of(["a", "b", "image", "keywords", "k", "tags2", "CommandLine"])
CORPUS = SHARED / "datasets" / "security-datasets"


def polars_frame(data: bytes, projection: Projection = PROJECTION, first_line: int = 1) -> pl.DataFrame | None:
    """The Polars fast path alone (what runs when the native reader declines)."""
    chunk = LineChunk(first_line, data, data.count(b"\n"), fast_path_schema(data), projection)
    return fast_flat_frame("s", chunk) if chunk.schema is not None else None


def native_frame(data: bytes, projection: Projection = PROJECTION, first_line: int = 1) -> pl.DataFrame | None:
    """The native reader's frame, or None when it declines."""
    chunk = LineChunk(first_line, data, data.count(b"\n"), None, projection)
    chunk.native = native_columns(chunk)
    return fast_flat_frame("s", chunk) if chunk.native is not None else None


def decline_reason(data: bytes, projection: Projection = PROJECTION) -> str | None:
    """The native reader's reason for declining ``data``, or None when it accepts."""
    assert PROJECT_FLAT_LINES is not None
    wanted, refused = json_reader._native_names(projection.fields)
    result = PROJECT_FLAT_LINES(data, wanted, refused, list(json_reader._NON_FLAT_PREFIXES), 1)
    return result if isinstance(result, str) else None


def assert_parity(data: bytes, projection: Projection = PROJECTION, first_line: int = 1) -> bool:
    """Native accepted => Polars accepted and the frames are equal. Returns whether native accepted."""
    ours = native_frame(data, projection, first_line)
    if ours is None:
        return False
    theirs = polars_frame(data, projection, first_line)
    assert theirs is not None, f"native accepted what the Polars path declines: {data!r}"
    assert ours.schema == theirs.schema
    assert ours.equals(theirs), f"{data!r}\n{ours}\n{theirs}"
    return True


# --------------------------------------------------------------------------
# hand-made edge cases

ACCEPTED = {
    "case variants": b'{"Image":"a.exe","image":"b.exe","IMAGE":"c"}\n{"image":"d"}\n',
    "blank lines": b'{"a":"1"}\n\n \n\t\n{"a":"2"}\n',
    "crlf": b'{"a":"1"}\r\n\r\n{"a":"2","b":3}\r\n',
    "escapes": b'{"a":"C:\\\\Windows\\\\x.exe\\t\\"q\\" \\/ \\b\\f\\n\\r","b":"nul\\u0000\\u00e9\\u20ac"}\n',
    "unicode": '{"a":"é😀\u2028","b":"\x7f"}\n'.encode(),
    "nulls": b'{"a":null,"b":"x"}\n{"a":"y","b":null}\n{"a":null}\n',
    "ints": b'{"a":0,"b":-12}\n{"a":-0,"b":9223372036854775807}\n{"a":-9223372036854775809,"b":18446744073709551616}\n',
    "long ints": b'{"Keywords":9232379236109516800}\n{"Keywords":12345678901234567890123456789012345678}\n',
    "ints and strings": b'{"a":1}\n{"a":"x"}\n{"a":98446744073709551616}\n{"a":-0}\n',
    "bools": b'{"a":true,"b":false}\n{"a":1,"b":"s"}\n',
    "unwanted nested": b'{"a":"x","tags":["t1","t2"],"z":[]}\n{"a":"y","tags":[1,true,null,"x"]}\n{"tags":null}\n',
    "no trailing newline": b'{"a":"1"}\n{"a":"2"}',
    "empty object": b'{}\n{"a":"x"}\n',
    "only unwanted": b'{"zz":"1"}\n',
    "escaped key": b'{"\\u0061":"x","b\\u0041":"y"}\n',
    "duplicate unwanted key": b'{"zz":"1","zz":"2","a":"x"}\n',
    "whitespace": b'  { "a" : "x" ,\t"b":1 }  \r\n',
    "looks nested, no nested key": b'{"a":"[x"}\n{"a":"{\\"k\\": 1}"}\n{"a":"{}"}\n',
    "normalisation inputs": b'{"Channel":"security","EventID":4688,"UtcTime":"2021-01-01 10:00:00.123",'
                            b'"Hostname":"h"}\n',
    "unwanted non-flat-looking key": b'{"Winlog":"x","event":"y","a":"z"}\n',
}

DECLINED = {
    "float": (b'{"a":1.5}\n', "a float"),
    "unwanted float": (b'{"a":"x","z":1e5}\n', "a float"),
    "float in a list": (b'{"a":"x","z":[1,2.0]}\n', "a float"),
    "lone surrogate": (b'{"a":"\\ud800"}\n', "escaped UTF-16 surrogate"),
    "surrogate pair": (b'{"a":"\\ud83d\\ude00"}\n', "escaped UTF-16 surrogate"),
    "escaped backslash then ud8": (b'{"a":"\\\\ud800"}\n', "escaped UTF-16 surrogate"),
    "invalid line": (b'{"a":"x"}\n{"a":\n', "invalid JSON"),
    "truncated last line": (b'{"a":"x"}\n{"a":"x', "the chunk ends inside a string"),
    "not an object": (b'[1]\n', "a line is not a JSON object"),
    "two objects on a line": (b'{"a":1}{"a":2}\n', "text after a line's object"),
    "invalid UTF-8": (b'{"a":"\xff"}\n', "invalid UTF-8"),
    "raw control character": (b'{"a":"x\x01y"}\n', "a raw control character in a string"),
    "vertical tab line": (b'{"a":"x"}\n\x0b\n', "a line is not a JSON object"),
    "empty chunk": (b"", "no record"),
    "blank chunk": (b"\n \n", "no record"),
    "wanted list": (b'{"a":[1]}\n', "an object or array in a wanted key"),
    "wanted object": (b'{"a":{"x":1}}\n', "an object or array in a wanted key"),
    "unwanted object": (b'{"a":"x","z":{"y":1}}\n', "an object in an unwanted key"),
    "list and scalar": (b'{"z":[1]}\n{"z":"s"}\n', "an unwanted key holds both arrays and scalars"),
    "nested list": (b'{"z":[[1]]}\n', "an array inside an array"),
    "duplicate wanted key": (b'{"a":"1","a":"2"}\n', "a wanted key twice in one object"),
    "non-ASCII key": ('{"é":"x"}\n'.encode(), "a non-ASCII key"),
    "kelvin sign key": ('{"\u212aeywords":"x"}\n'.encode(), "a non-ASCII key"),
    "reserved key": (b'{"_source":"x"}\n', "a non-flat or reserved key"),
    "winlog prefix": (b'{"winlog.channel":"x"}\n', "a non-flat or reserved key"),
    "Event": (b'{"Event":{"System":{}}}\n', "a non-flat or reserved key"),
    "huge int": (b'{"a":123456789012345678901234567890123456789}\n', "an integer beyond Int128"),
    "looks nested, key holds an array in an object": (b'{"a":"[x"}\n{"q":{"a":[]}}\n', "an object in an unwanted key"),
    "looks nested, key holds an array elsewhere": (b'{"a":"[x"}\n{"z":["\\"a\\": [1]"]}\n{"a" :\t[1]}\n',
                                                   "an object or array in a wanted key"),
}


@pytest.mark.parametrize("data", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_native_accepts_and_matches_polars(data: bytes) -> None:
    assert decline_reason(data) is None
    assert assert_parity(data)


@pytest.mark.parametrize("data, reason", DECLINED.values(), ids=DECLINED.keys())
def test_native_declines(data: bytes, reason: str) -> None:
    assert decline_reason(data) == reason
    assert native_frame(data) is None


def test_line_numbers_and_raw_lines_follow_first_line() -> None:
    data = b'{"a":"1"}\r\n\n{"a":"2"}'
    frame = native_frame(data, first_line=41)
    assert frame is not None
    assert frame["_position"].to_list() == ["line 41", "line 43"]
    assert frame[json_reader.RAW_COL].to_list() == ['{"a":"1"}\r\n\n', '{"a":"2"}']
    assert assert_parity(data, first_line=41)


def test_looks_nested_value_declines_only_when_the_key_holds_nested_json() -> None:
    # Mirrors _hides_nested_values: the raw text decides, even text inside another string.
    data = b'{"a":"[x"}\n{"z":"\\"a\\": [1]"}\n'
    assert decline_reason(data) is None  # `"a\": [` is not `"a": [`
    assert assert_parity(data)
    data = b'{"a":"[x"}\n{"z":["k","\\"a\\":[1]"],"a":"y"}\n'
    assert decline_reason(data) is None
    assert assert_parity(data)
    # A key the raw search cannot look for (a quote, a backslash, a control character).
    odd = Projection.of(['a"b', "a\tb", "a b"])
    for key in ('a\\"b', "a\\tb"):
        data = b'{"%s":"[x"}\n' % key.encode()
        assert decline_reason(data, odd) == "a string that looks like JSON where the key also holds objects"
        assert polars_frame(data, odd) is None
    assert decline_reason(b'{"a b":"[x"}\n', odd) is None
    assert assert_parity(b'{"a b":"[x"}\n', odd)


# --------------------------------------------------------------------------
# the whole reader: native on and off give the same outputs (frames and Unreadables)


def read_all(data: bytes, monkeypatch: pytest.MonkeyPatch, mode: str) -> list[pl.DataFrame | Unreadable]:
    monkeypatch.setenv("SIGMAHUNT_NATIVE", mode)
    return list(json_reader.read_json("f.jsonl", data, LogFormat.JSONL, PROJECTION))


def assert_same_outputs(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    on, off = read_all(data, monkeypatch, "on"), read_all(data, monkeypatch, "off")
    assert len(on) == len(off)
    for ours, theirs in zip(on, off, strict=True):
        if isinstance(ours, Unreadable):
            assert ours == theirs
        else:
            assert isinstance(theirs, pl.DataFrame) and ours.equals(theirs), f"{data!r}\n{ours}\n{theirs}"


@pytest.mark.parametrize("data", [*ACCEPTED.values(), *(d for d, _ in DECLINED.values())],
                         ids=[*ACCEPTED.keys(), *DECLINED.keys()])
def test_reader_outputs_do_not_depend_on_the_native_reader(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same_outputs(data, monkeypatch)


def test_reader_skips_schema_inference_when_native_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(chunk: bytes) -> None:
        raise AssertionError("schema inference ran although the native reader accepted")

    monkeypatch.setattr(json_reader, "fast_path_schema", refuse)
    outputs = list(json_reader.read_json("f.jsonl", ACCEPTED["crlf"], LogFormat.JSONL, PROJECTION))
    assert [type(o) for o in outputs] == [pl.DataFrame]


# --------------------------------------------------------------------------
# random chunks: a small differential fuzz (seeded, so failures reproduce)

_KEYS = ["a", "A", "b", "Image", "image", "z", "y", "Keywords", "tags", "Channel", "EventID", "UtcTime", "Computer"]
_STRINGS = ["x", "", "C:\\Windows\\x.exe", "tab\there", "nul\x00", "é", "😀", "[x", '{"a": 1}', "{}", "{", "a\"b",
            "Security", "2021-01-01T00:00:00.000Z", "4688", "x" * 30]
_INTS = ["0", "-0", "-12", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
         "98446744073709551616", "12345678901234567890123456789012345678"]


def _value(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if roll < 0.5:
        return json.dumps(rng.choice(_STRINGS), ensure_ascii=rng.random() < 0.3)
    if roll < 0.65:
        return rng.choice(_INTS)
    if roll < 0.72:
        return rng.choice(["true", "false"])
    if roll < 0.8:
        return "null"
    if roll < 0.82:
        return rng.choice(["1.5", "1e3", '"\\ud800"', "tru"])
    if depth == 0 and roll < 0.95:
        return "[" + ",".join(_value(rng, 1) for _ in range(rng.randint(0, 3))) + "]"
    return '{"k":' + _value(rng, 1) + "}" if depth == 0 else '"deep"'


def _chunk(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randint(0, 6)):
        if rng.random() < 0.1:
            lines.append(rng.choice(["", " ", "\r", "\x0c", "[1]"]))
            continue
        members = [f"{json.dumps(key)}{rng.choice(['', ' '])}:{_value(rng)}"
                   for key in rng.sample(_KEYS, rng.randint(0, 6))]
        lines.append("{" + ",".join(members) + "}")
    eol = rng.choice(["\n", "\r\n"])
    return (eol.join(lines) + (eol if rng.random() < 0.8 else "")).encode()


def test_random_chunks_match_polars(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(20261128)
    accepted = 0
    for _ in range(400):
        data = _chunk(rng)
        accepted += assert_parity(data, first_line=rng.randint(1, 9))
    assert accepted > 40  # the generator must exercise the accepting path too


# --------------------------------------------------------------------------
# the real corpus


def _corpus_chunks() -> Iterator[tuple[str, LineChunk]]:
    for leaf in iter_leaves([CORPUS]):
        if not isinstance(leaf, Leaf):
            continue
        data = json_reader.to_utf8(leaf.data)
        if json_reader.detect_layout(data) != "lines":
            continue
        for chunk in json_reader.split_line_chunks(data, json_reader.CHUNK_BYTES):
            yield leaf.source, chunk


@requires_shared
@pytest.mark.shared
@pytest.mark.skipif(not CORPUS.exists(), reason="the Security-Datasets corpus is not in ../shared")
def test_corpus_chunks_match_polars() -> None:
    """Every chunk of the corpus (or every ``SIGMAHUNT_CORPUS_STRIDE``-th: the Polars side
    is the slow one) under a projection like a hunt's: native and Polars frames equal."""
    stride = int(os.environ.get("SIGMAHUNT_CORPUS_STRIDE", "1"))
    projection = Projection.of([
        "Image", "CommandLine", "ParentImage", "ParentCommandLine", "TargetFilename", "TargetObject", "Details",
        "Keywords", "Message", "ScriptBlockText", "Payload", "ServiceName", "TargetUserName", "SubjectUserName",
        "LogonType", "IpAddress", "DestinationIp", "DestinationPort", "GrantedAccess", "CallTrace", "Hashes",
        "ObjectName", "AccessMask", "ShareName", "RelativeTargetName", "QueryName", "User", "Computer", "Level",
    ])
    compared = accepted = 0
    for index, (_source, chunk) in enumerate(_corpus_chunks()):
        if index % stride:
            continue
        compared += 1
        accepted += assert_parity(chunk.data, projection, chunk.first_line)
    assert compared > 0
    assert accepted == compared, f"native declined {compared - accepted} of {compared} corpus chunks"


# --------------------------------------------------------------------------
# chunks read in place (memoryviews into the file's bytes)


def test_in_place_chunks_read_as_copied_ones() -> None:
    """``split_line_chunks(..., in_place=True)`` hands the native reader, Arrow and the
    keyword scan memoryviews into the file instead of copies: the frames (raw lines and
    keyword hits included) are the same, chunk by chunk."""
    from sigmahunt.engines.embedded.evaluator import BatchEvaluator, RuleSetPlan
    from tests.conftest import compile_yaml, rule

    evaluator = BatchEvaluator(RuleSetPlan.build([compile_yaml(rule("""
        keywords:
            - 'mimikatz'
        condition: keywords
    """))]))
    projection = Projection.of(["Image", "CommandLine"], evaluator.chunk_keyword_scanner)
    lines = [json.dumps({"Image": f"C:\\x\\{i}.exe", "CommandLine": "run mimikatz" if i % 7 == 0 else f"c {i}",
                         "Other": "é" * (i % 3)}) for i in range(400)]
    data = ("\n".join(lines) + "\n").encode()
    frames = {}
    for in_place in (False, True):
        frames[in_place] = []
        for chunk in json_reader.split_line_chunks(data, 1_000, in_place=in_place):
            assert isinstance(chunk.buffer, memoryview) is in_place
            chunk.projection = projection
            chunk.native = native_columns(chunk)
            assert chunk.native is not None
            frames[in_place].append(fast_flat_frame("s", chunk))
    assert len(frames[True]) == len(frames[False]) > 10
    for copied, viewed in zip(frames[False], frames[True], strict=True):
        assert viewed.equals(copied)
    if projection.raw_scanner is not None:  # Hyperscan present: the scan's hits came along
        hits = pl.concat([f.get_column(json_reader.RAW_HITS_COL) for f in frames[True]])
        assert int((hits != 0).sum()) == len(range(0, 400, 7))


def test_native_reader_refuses_a_writable_buffer() -> None:
    """The parse runs without the GIL: a buffer another thread could change is refused."""
    assert PROJECT_FLAT_LINES is not None
    wanted, refused = json_reader._native_names(PROJECTION.fields)
    with pytest.raises(ValueError):
        PROJECT_FLAT_LINES(bytearray(b'{"a":"1"}\n'), wanted, refused, [], 1)
    assert PROJECT_FLAT_LINES(memoryview(b'{"a":"1"}\n'), wanted, refused, [], 1) is not None
    assert json_reader.count_newlines(memoryview(b"a\nb\n")[1:]) == 2
