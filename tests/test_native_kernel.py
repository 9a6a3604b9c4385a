"""The native rule kernel (native/src/kernel.rs) against the Python evaluation it mirrors.

``BatchEvaluator.evaluate`` takes the kernel whenever the native module is on; its
``_evaluate_python`` is the reference. Every batch here is evaluated both ways by the same
evaluator (and by one built with the native parts off) and must give the same rows per
rule: hand-made batches that reach each of the kernel's hand-offs to Python (keywords,
fieldref, cidr, non-ASCII values, a non-ASCII log-source value), the example logs, and
part of the Security-Datasets corpus with every SigmaHQ Windows rule.
Skipped where the native module is not built, unless SIGMAHUNT_REQUIRE_NATIVE=1 (CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from sigmahunt.engines.embedded.evaluator import BatchEvaluator, RuleSetPlan, _ColumnIndex
from sigmahunt.engines.embedded.ir import CompiledRule
from sigmahunt.native import _imported
from tests.conftest import EXAMPLES, SHARED, compile_yaml, frame_of, rule

if _imported() is None:
    if os.environ.get("SIGMAHUNT_REQUIRE_NATIVE") == "1":
        raise RuntimeError("SIGMAHUNT_REQUIRE_NATIVE=1 but the native module is not importable (pip install ./native)")
    pytest.skip("the native module is not built (pip install ./native)", allow_module_level=True)

PROCESS = "product: windows\n    category: process_creation"
RULES = [
    rule("""
        sel:
            Image|endswith: '\\cmd.exe'
        filter:
            CommandLine|contains: 'harmless'
        condition: sel and not filter
    """, PROCESS),
    rule("""
        keywords:
            - 'sekurlsa'
            - 'Ünïcode'
        condition: keywords
    """),
    rule("""
        sel:
            ParentImage|fieldref: Image
        condition: sel
    """, PROCESS),
    rule("""
        sel:
            DestinationIp|cidr: '10.0.0.0/8'
        condition: sel
    """, "product: windows\n    category: network_connection"),
    rule("""
        sel:
            CommandLine|contains: 'ünïcode'
        condition: sel
    """, PROCESS),
    rule("""
        sel:
            User: null
        condition: sel
    """, PROCESS),
    rule("""
        sel:
            OriginalFileName|exists: true
        condition: sel
    """, PROCESS),
    rule("""
        filter:
            Image|startswith: 'C:\\Windows\\'
        condition: not filter
    """, PROCESS),
    rule("""
        sel:
            TaskName|contains: 'evil'
        condition: sel
    """, "product: windows\n    service: taskscheduler"),
    rule("""
        sel:
            CommandLine|re: '(?i)invoke-\\w+ -enc'
        condition: sel
    """),
    rule("""
        sel:
            TargetObject|endswith: '\\Run\\evil'
        condition: sel
    """, "product: windows\n    category: registry_add"),
    rule("""
        sel:
            CommandLine|fieldref|startswith: Image
        condition: sel
    """, PROCESS),
    rule("""
        sel:
            CommandLine|fieldref|endswith: OriginalFileName
        condition: sel
    """, PROCESS),
]

SYSMON = "Microsoft-Windows-Sysmon/Operational"
EVENTS: list[dict[str, Any]] = [
    {"Channel": SYSMON, "EventID": "1", "Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd /c whoami",
     "User": "X\\y", "OriginalFileName": "Cmd.Exe"},
    {"Channel": SYSMON, "EventID": "1", "Image": "C:\\Temp\\cmd.exe", "CommandLine": "harmless",
     "ParentImage": "c:\\temp\\CMD.exe"},
    {"Channel": "security", "EventID": "4688", "NewProcessName": "C:\\x\\cmd.exe", "CommandLine": "ÜNÏCODE here"},
    {"Channel": SYSMON, "EventID": "3", "DestinationIp": "10.1.2.3", "Image": "C:\\x\\a.exe"},
    {"Channel": SYSMON, "EventID": "3", "DestinationIp": "192.168.0.1", "CommandLine": "sekurlsa::logonpasswords"},
    {"Channel": "Microsoft-Windows-TaskScheduler/Operational", "EventID": "106", "TaskName": "\\evil task"},
    # A Kelvin sign: Python lowercases it to "k", so the selector holds; the kernel must decline.
    {"Channel": "Microsoft-Windows-Tas\u212aScheduler/Operational", "EventID": "106", "TaskName": "evil"},
    {"Channel": SYSMON, "EventID": "12", "EventType": "CreateKey", "TargetObject": "HKLM\\...\\Run\\evil"},
    {"Channel": SYSMON, "EventID": "12", "EventType": "DeleteKey", "TargetObject": "HKLM\\...\\Run\\evil"},
    {"Channel": "Windows PowerShell", "EventID": "400", "HostApplication": "x", "CommandLine": "Invoke-X -enc AAA"},
    {"Channel": SYSMON, "EventID": "1", "Image": "C:\\Users\\ünï\\cmd.exe", "CommandLine": "Ünïcode"},
    {"Channel": SYSMON, "EventID": "1", "image": "C:\\lower\\cmd.exe", "Image": None},
    # fieldref with non-ASCII values (Python's lowercasing) and with ASCII ones (the kernel's)
    {"Channel": SYSMON, "EventID": "1", "Image": "C:\\ÜBER\\x.exe", "CommandLine": "c:\\über\\x.exe /q",
     "ParentImage": "C:\\ÜBER\\X.EXE", "OriginalFileName": "Q"},
    {"Channel": SYSMON, "EventID": "1", "Image": "C:\\a\\Y.exe", "CommandLine": "c:\\A\\y.EXE",
     "ParentImage": "C:\\a\\y.exe", "OriginalFileName": "Y.Exe"},
]


def _rows(hits: Mapping[int, np.ndarray]) -> dict[int, list[int]]:
    return {rule_index: sorted(int(r) for r in rows) for rule_index, rows in hits.items() if len(rows)}


def _both(evaluator: BatchEvaluator, frame: pl.DataFrame) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """The kernel's rows (twice: the first batch to reach a field builds its native matcher
    and matches it from Python; later batches match it in the kernel) and Python's."""
    first = _rows(evaluator.evaluate(frame))
    native = _rows(evaluator.evaluate(frame))
    assert native == first
    python = _rows(evaluator._evaluate_python(_ColumnIndex(frame)))
    return native, python


def _evaluators(
    rules: Sequence[CompiledRule], monkeypatch: pytest.MonkeyPatch
) -> tuple[BatchEvaluator, BatchEvaluator]:
    monkeypatch.setenv("SIGMAHUNT_CACHE_DIR", "off")
    monkeypatch.setenv("SIGMAHUNT_NATIVE", "on")
    native = BatchEvaluator(RuleSetPlan.build(list(rules)))
    monkeypatch.setenv("SIGMAHUNT_NATIVE", "off")
    python = BatchEvaluator(RuleSetPlan.build(list(rules)))
    monkeypatch.setenv("SIGMAHUNT_NATIVE", "on")
    return native, python


def test_hand_made_batch_gives_the_python_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    native, python = _evaluators([compile_yaml(r) for r in RULES], monkeypatch)
    frame = frame_of([e for e in EVENTS if "Tas\u212a" not in e["Channel"]])
    got, reference = _both(native, frame)
    assert native._kernel is not None
    assert got == reference == _rows(python.evaluate(frame))
    assert got == {
        0: [0, 2, 9, 10],  # cmd.exe, not harmless; 4688's NewProcessName; the lower-case "image" spelling
        1: [2, 4, 9],  # keywords, the Unicode one case-insensitively too
        2: [1, 11, 12],  # fieldref, case-insensitive (11: non-ASCII, Python's)
        3: [3],  # cidr (Python's)
        4: [2, 9],  # non-ASCII values: Python's case folding
        5: [1, 2, 9, 10, 11, 12],  # User: null where absent
        6: [0, 11, 12],
        7: [1, 2, 9, 10, 11, 12],  # not filter
        8: [5],
        9: [8],
        10: [6],  # registry_add: CreateKey only
        11: [11, 12],  # fieldref|startswith
        12: [11, 12],  # fieldref|endswith
    }


def test_a_non_ascii_log_source_value_is_left_to_python(monkeypatch: pytest.MonkeyPatch) -> None:
    native, python = _evaluators([compile_yaml(r) for r in RULES], monkeypatch)
    frame = frame_of(EVENTS)
    got, reference = _both(native, frame)
    assert native._kernel is not None
    arrays = [(slot, *_export(frame, name)) for slot, name in enumerate(native._kernel.slot_names)
              if name in frame.columns]
    assert native._kernel.kernel.start(arrays, frame.height) is None  # declined: the Kelvin sign
    assert got == reference == _rows(python.evaluate(frame))
    assert got[8] == [5, 6]  # Python lowercases the Kelvin sign to "k"


def _export(frame: pl.DataFrame, name: str) -> tuple[Any, Any]:
    from sigmahunt.engines.embedded.kernel import arrow_strings

    return arrow_strings(frame.get_column(name)).__arrow_c_array__()


def test_batches_in_a_row_share_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Matchers decided on one batch are used on the next; every batch still agrees."""
    native, python = _evaluators([compile_yaml(r) for r in RULES], monkeypatch)
    events = [e for e in EVENTS if "Tas\u212a" not in e["Channel"]]
    for size in (1, 3, len(events), 2):
        for start in range(0, len(events), size):
            frame = frame_of(events[start:start + size])
            got, reference = _both(native, frame)
            assert got == reference == _rows(python.evaluate(frame)), (size, start)


def test_all_null_and_missing_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    native, python = _evaluators([compile_yaml(r) for r in RULES], monkeypatch)
    nothing = [None, None, None]
    frame = pl.DataFrame({"Channel": [SYSMON] * 3, "EventID": ["1"] * 3, "Image": nothing, "User": nothing},
                         schema={"Channel": pl.String, "EventID": pl.String, "Image": pl.String, "User": pl.String})
    got, reference = _both(native, frame)
    assert got == reference == _rows(python.evaluate(frame)) == {5: [0, 1, 2], 7: [0, 1, 2]}


def test_kernel_refuses_mismatched_input(monkeypatch: pytest.MonkeyPatch) -> None:
    native, _ = _evaluators([compile_yaml(r) for r in RULES], monkeypatch)
    frame = frame_of(EVENTS[:2])
    native.evaluate(frame)
    kernel = native._kernel
    assert kernel is not None
    slot = kernel.slot_names.index("Channel")
    with pytest.raises(ValueError):
        kernel.kernel.start([(slot, *_export(frame, "Channel"))], frame.height + 1)
    batch = kernel.kernel.start([(slot, *_export(frame, "Channel"))], frame.height)
    with pytest.raises(ValueError):
        batch.add_masks([(0, b"\x01")])
    with pytest.raises(ValueError):
        batch.add_rows([(0, [frame.height])])
    module = _imported()
    with pytest.raises(ValueError):  # a test on a column slot the layout lacks
        module.RuleKernel(1, [(5, True, ["x"])], [[0]], [], [], [])
    with pytest.raises(ValueError):  # an unknown row-predicate kind
        module.RuleKernel(1, [(0, True, ["x"])], [[0]], [], [(1, 0, 9, [0], None, 0)], [])
    other, _ = _evaluators([compile_yaml(r) for r in RULES], monkeypatch)
    other.evaluate(frame)
    assert other._kernel is not None
    with pytest.raises(ValueError):
        other._kernel.kernel.match_fields(batch)


def _example_batches(evaluator: BatchEvaluator, paths: Sequence[Path], rows: int = 2_000) -> Iterator[pl.DataFrame]:
    from sigmahunt.hunting import expand_log_paths, hunt_projection
    from sigmahunt.ingest import EventBatch, read_logs

    for item in read_logs(expand_log_paths(paths), batch_size=rows, projection=hunt_projection(evaluator)):
        if isinstance(item, EventBatch):
            yield item.frame


def test_example_logs_and_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    from sigmahunt.rules.prepare import prepare_rules

    monkeypatch.setenv("SIGMAHUNT_CACHE_DIR", "off")
    rules = prepare_rules([EXAMPLES / "rules"]).runnable
    native, python = _evaluators(rules, monkeypatch)
    total = 0
    for frame in _example_batches(native, [EXAMPLES / "logs"]):
        got, reference = _both(native, frame)
        assert got == reference == _rows(python.evaluate(frame))
        total += sum(len(rows) for rows in got.values())
    assert total > 0


@pytest.mark.skipif(not (SHARED / "datasets" / "security-datasets").exists() or not (SHARED / "sigma").exists(),
                    reason="../shared is not present")
def test_security_datasets_with_every_windows_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tenth of the corpus (every tenth file), all SigmaHQ Windows rules, batches of 8,000."""
    from sigmahunt.rules.prepare import prepare_rules

    monkeypatch.setenv("SIGMAHUNT_CACHE_DIR", "off")
    rules = [r for r in prepare_rules([SHARED / "sigma" / "rules" / "windows"]).runnable]
    native, _ = _evaluators(rules, monkeypatch)
    files = sorted((SHARED / "datasets" / "security-datasets").rglob("*.zip"))[::10]
    detections = 0
    for frame in _example_batches(native, files, rows=8_000):
        got, reference = _both(native, frame)
        assert got == reference
        detections += sum(len(rows) for rows in got.values())
    assert detections > 100


@pytest.mark.parametrize("native_mode", ["on", "off"])
def test_evaluator_prepared_in_a_thread_gives_the_same_rows(native_mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``start_preparing`` builds the work tables and kernel while a hunt starts reading;
    the rows are those of an evaluator that built them on its first batch."""
    monkeypatch.setenv("SIGMAHUNT_CACHE_DIR", "off")
    monkeypatch.setenv("SIGMAHUNT_NATIVE", native_mode)
    rules = [compile_yaml(r) for r in RULES]
    frame = frame_of([e for e in EVENTS if "Tas\u212a" not in e["Channel"]])
    ahead = BatchEvaluator(RuleSetPlan.build(rules))
    ahead.start_preparing()
    assert ahead._preparing is not None
    ahead._preparing.join()
    assert "_work" in vars(ahead)  # built by the thread, not by the batch
    assert (ahead._kernel is not None) == (native_mode == "on")
    assert _rows(ahead.evaluate(frame)) == _rows(BatchEvaluator(RuleSetPlan.build(rules)).evaluate(frame))
    assert ahead._preparing is None


def test_an_error_preparing_in_the_thread_is_raised_by_evaluate(monkeypatch: pytest.MonkeyPatch) -> None:
    from sigmahunt.engines.embedded import evaluator as evaluator_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("kernel build failed")

    monkeypatch.setenv("SIGMAHUNT_NATIVE", "on")
    monkeypatch.setattr(evaluator_module.NativeKernel, "build", broken)
    evaluator = BatchEvaluator(RuleSetPlan.build([compile_yaml(r) for r in RULES]))
    evaluator.start_preparing()
    with pytest.raises(RuntimeError, match="kernel build failed"):
        evaluator.evaluate(frame_of(EVENTS[:2]))
