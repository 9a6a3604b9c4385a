"""Keyword candidates of complete rows: one scan of each column for every selector.

What must hold (see :class:`sigmahunt.engines.embedded.keywords.BatchKeywordScanner`):
the rows each selector gets are the rows its own :class:`KeywordPrefilter` finds when
scanning that selector's rows alone, whatever the selectors' masks (all rows, a few rows
gathered, most rows, none), with all-null columns, non-ASCII literals (searched in the
Unicode-lowercased text) and the characters whose lowercase is ASCII (KELVIN SIGN, DOTTED
CAPITAL I), whichever way the search runs (Hyperscan per column, the native module's
automaton). Without Hyperscan and the
native module each selector's Polars search gives the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np
import polars as pl
import pytest

from sigmahunt.engines.embedded import keywords
from sigmahunt.engines.embedded.evaluator import BatchEvaluator, Mask
from sigmahunt.engines.embedded.keywords import BatchKeywordScanner, KeywordPrefilter
from sigmahunt.native import native

requires_hyperscan = pytest.mark.skipif(keywords.hyperscan is None, reason="the hyperscan wheel is absent")
requires_native = pytest.mark.skipif(native() is None, reason="the native module is not built")

#: The ways to search (see ``keywords._SelectorDatabase``): each must give the same rows.
ENGINES = [
    pytest.param("hyperscan", marks=requires_hyperscan),
    pytest.param("native", marks=requires_native),
]

#: Selector -> (folded, cased) literals; "kerberos::" is shared by two selectors, selector
#: 3 has only a non-ASCII literal, selector 4 is a keyword without any literal.
LITERALS: dict[int, tuple[list[str], list[str]] | None] = {
    0: (["sekurlsa::", "kerberos::"], []),
    1: (["kerberos::", "é"], ["MimiKatz"]),
    2: ([], ["Invoke-Mimikatz"]),
    3: (["crème"], []),
    4: None,
}

#: Values: plain hits, case variants, a Kelvin sign and a dotted capital I (candidates of
#: every selector with folded literals), non-ASCII text in another case, misses.
VALUES = [
    "cmd /c whoami", "run SEKURLSA::logonpasswords", "\u212aerberos::list", "caf\u00c9 noir",
    "mimikatz lower", "MimiKatz exact", "invoke-mimikatz", "Invoke-Mimikatz -dump", "CRÈME brûlée",
    "\u0130stanbul", "nothing", "", "kerberos::ptt", "ké",
    "sekurlsa::x then kerberos::y",  # two selectors' literals in one value: both must be found
]


def _frame(height: int, seed: int) -> pl.DataFrame:
    """A batch like the ingest's: string columns, some sparse, one all null, a meta column
    (never searched) that holds literals. No value ends with a proper prefix of a literal,
    so no literal spans two adjacent values in any row subset (see the test below)."""
    rng = random.Random(seed)

    def column() -> list[str | None]:
        return [rng.choice([*VALUES, None]) if row % 2 else "x" for row in range(height)]

    return pl.DataFrame({
        "_source": ["sekurlsa::"] * height,
        "CommandLine": column(),
        "Notes": column(),
        "Sparse": [rng.choice(VALUES) if row % 10 == 1 else None for row in range(height)],
        # Only ASCII text: only the search for ASCII literals can name this column (the
        # other columns hold non-ASCII text, which the Unicode-folded search names anyway).
        "Ascii": [rng.choice([v for v in VALUES if v.isascii()]) if row % 3 == 1 else None for row in range(height)],
        "Empty": pl.Series([None] * height, dtype=pl.String),
    })


def _prefilters() -> dict[int, KeywordPrefilter | None]:
    return {s: None if lits is None else KeywordPrefilter(*lits) for s, lits in LITERALS.items()}


def _evaluator(prefilters: dict[int, KeywordPrefilter | None], engine: str = "auto") -> BatchEvaluator:
    """Only the parts of an evaluator the keyword candidates use."""
    evaluator = BatchEvaluator.__new__(BatchEvaluator)
    evaluator._keyword_prefilters = prefilters
    evaluator._batch_keyword_scanner = BatchKeywordScanner.build(prefilters, engine)
    return evaluator


def _per_selector(evaluator: BatchEvaluator, frame: pl.DataFrame, rows: Mask,
                  selector_masks: Mapping[int, Mask]) -> Mask:
    """The former path: each selector's prefilter scans its own rows (a gathered subset
    when under half the batch)."""
    names = [n for n in frame.columns if not n.startswith("_")]

    def scan(prefilter: KeywordPrefilter, subset: pl.DataFrame) -> np.ndarray:
        return prefilter.candidate_rows(subset.select(names).get_columns(), subset.height)

    return evaluator._keyword_candidates(evaluator._keyword_prefilters, scan, frame, rows, selector_masks)


def _masks(height: int, seed: int) -> list[dict[int, Mask]]:
    """Selector masks: all rows, a few rows (gathered), most rows, none, mixed."""
    rng = np.random.default_rng(seed)
    few = rng.random(height) < 0.1
    most = rng.random(height) < 0.8
    return [
        dict.fromkeys(LITERALS, True),
        {0: few, 1: few, 2: False, 3: few, 4: False},
        {0: most, 1: True, 2: few, 3: False, 4: False},
        {0: few, 1: ~few, 2: most, 3: True, 4: few},
        {0: False, 1: False, 2: False, 3: few, 4: False},  # only a non-ASCII literal
        dict.fromkeys(LITERALS, False),
    ]


def _dense(mask: Mask, height: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(mask, dtype=bool), (height,))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(6))
def test_one_scan_for_all_selectors_gives_each_selectors_rows(seed: int, engine: str) -> None:
    frame = _frame(400, seed)
    evaluator = _evaluator(_prefilters(), engine)
    assert evaluator._batch_keyword_scanner is not None
    rows_options: list[Mask] = [True, np.random.default_rng(seed).random(frame.height) < 0.7]
    for selector_masks in _masks(frame.height, seed):
        for rows in rows_options:
            expected = _per_selector(evaluator, frame, rows, selector_masks)
            found = evaluator._column_candidates(frame, rows, selector_masks)
            assert (found is False) == (expected is False)
            assert np.array_equal(_dense(found, frame.height), _dense(expected, frame.height))


@requires_native
@pytest.mark.parametrize("seed", range(3))
def test_more_literals_than_one_search_pack_give_the_same_rows(seed: int) -> None:
    """The native scan searches literals in packs of 64 (``FIND_PACK``), then each value
    found once for all of them: with 150 folded and 80 cased literals besides, values
    holding a literal of the last pack, of several packs, or a case variant of a cased one
    must give the rows the per-selector reference gives."""
    many = {**LITERALS, 5: ([f"filler{i}::" for i in range(150)], [f"Cased{i}!" for i in range(80)])}
    prefilters = {s: None if lits is None else KeywordPrefilter(*lits) for s, lits in many.items()}
    extra = ["see FILLER149:: here", "filler3:: and filler140::", "x Cased79! y", "cased79! lower", "filler64::",
             "filler63::", "kerberos:: then filler100::", "fillerX::"]
    rng = random.Random(seed)
    height = 300
    frame = pl.DataFrame({
        "CommandLine": [rng.choice([*VALUES, *extra, None]) for _ in range(height)],
        "Notes": [rng.choice([*extra, None]) for _ in range(height)],
    })
    evaluator = _evaluator(prefilters, "native")
    for selector_masks in [dict.fromkeys(many, True), {**dict.fromkeys(many, False), 5: True}]:
        expected = _per_selector(evaluator, frame, True, selector_masks)
        found = evaluator._column_candidates(frame, True, selector_masks)
        assert np.array_equal(_dense(found, height), _dense(expected, height))
    found = evaluator._column_candidates(frame, True, {**dict.fromkeys(many, False), 5: True})
    assert 0 < np.count_nonzero(_dense(found, height)) < height


@pytest.mark.parametrize("engine", ENGINES)
def test_candidates_cover_each_kind_of_value(engine: str) -> None:
    frame = pl.DataFrame({
        "A": ["\u212aerberos::ptt", "CAFÉ", "x", "\u0130", "Invoke-Mimikatz", None, "mimikatz", "crÈme"],
        "Empty": pl.Series([None] * 8, dtype=pl.String),
    })
    scanner = BatchKeywordScanner.build(_prefilters(), engine)
    assert scanner is not None
    found = scanner.candidate_rows(frame.get_columns(), frame.height, [0, 1, 2, 3])
    assert found[0].tolist() == [True, False, False, True, False, False, False, False]
    assert found[1].tolist() == [True, True, False, True, False, False, False, False]
    assert found[2].tolist() == [False, False, False, False, True, False, False, False]
    assert found[3].tolist() == [False, False, False, False, False, False, False, True]
    for selector in found:
        prefilter = _prefilters()[selector]
        assert prefilter is not None
        assert np.array_equal(found[selector], prefilter.candidate_rows(frame.get_columns(), frame.height))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_match_spanning_two_values_is_no_candidate(engine: str) -> None:
    """Scanning a column's buffer sees ``...seku`` + ``rlsa::...`` as one text: no value
    holds the literal, so neither row is a candidate (nor with Polars' per-value search)."""
    frame = pl.DataFrame({"A": ["run seku", "rlsa::x", "sekurlsa::y"]})
    scanner = BatchKeywordScanner.build(_prefilters())
    assert scanner is not None
    found = scanner.candidate_rows(frame.get_columns(), frame.height, [0])
    assert found[0].tolist() == [False, False, True]


@pytest.mark.parametrize("seed", range(3))
def test_without_hyperscan_or_native_polars_gives_the_same_rows(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _frame(300, seed)
    fast = _evaluator(_prefilters())
    found = [fast._column_candidates(frame, True, masks) for masks in _masks(frame.height, seed)]
    monkeypatch.setattr(keywords, "hyperscan", None)
    monkeypatch.setattr(keywords, "native", lambda: None)
    portable = _evaluator(_prefilters())
    assert portable._batch_keyword_scanner is None
    expected = [portable._column_candidates(frame, True, masks) for masks in _masks(frame.height, seed)]
    for got, wanted in zip(found, expected, strict=True):
        assert np.array_equal(_dense(got, frame.height), _dense(wanted, frame.height))


@requires_hyperscan
def test_a_batch_of_meta_columns_only() -> None:
    """No searchable column: only a keyword without literals has candidates (all its rows)."""
    frame = pl.DataFrame({"_source": ["sekurlsa::"] * 6})
    evaluator = _evaluator(_prefilters())
    few = np.array([True, False, False, False, False, True])
    cases: list[dict[int, Mask]] = [{0: True, 1: few, 2: False, 3: False, 4: few},
                                    {0: few, 1: True, 2: False, 3: False, 4: False}]
    for selector_masks in cases:
        expected = _per_selector(evaluator, frame, True, selector_masks)
        found = evaluator._column_candidates(frame, True, selector_masks)
        assert np.array_equal(_dense(found, frame.height), _dense(expected, frame.height))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(3))
def test_columns_to_test_hold_every_literal_found(seed: int, engine: str) -> None:
    """The exact keyword test only visits the columns the scan names: each column where
    some active selector's own prefilter finds a literal in that selector's rows must be
    named; with a literal-less keyword active, every column is (None)."""
    frame = _frame(300, seed)
    evaluator = _evaluator(_prefilters(), engine)
    prefilters = _prefilters()
    for selector_masks in _masks(frame.height, seed):
        candidates, searched = evaluator._candidates_and_columns(frame, True, selector_masks)
        if selector_masks[4] is not False:
            assert searched is None
            continue
        assert searched is not None
        for name in (n for n in frame.columns if not n.startswith("_")):
            column = frame.get_column(name)
            for selector, mask in selector_masks.items():
                prefilter = prefilters[selector]
                if prefilter is None or mask is False:
                    continue
                found = prefilter.candidate_rows([column], frame.height) & _dense(mask, frame.height)
                if found.any():
                    assert name in searched, (name, selector)
        assert (candidates is False) == (not searched or candidates is False)
