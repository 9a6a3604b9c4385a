//! The keyword (field-less) prefilter's scan: which values of a batch's columns hold one
//! of a set of literals. Mirrors `keywords._SelectorDatabase.scan` (Hyperscan), which
//! stays the reference where this module is absent.
//!
//! Why: a keyword rule without a log-source restriction (SigmaHQ's "Mimikatz Use") makes
//! every column of every EVTX batch a candidate. Hyperscan needs one contiguous buffer per
//! column, so each column was converted from Polars' string views to `large_string`
//! first: ~0.2 s per 100,000 packed EVTX records, with the GIL held, against ~0.02 s for
//! the scans themselves (bench/RESULTS.md, session 6).
//!
//! * `gather_values` (with Hyperscan): copies the values of all the columns side by side
//!   into one buffer, without the GIL and without an Arrow conversion (~0.06 s per
//!   100,000 records), for one Hyperscan scan.
//! * `KeywordScanner` (without Hyperscan): the same buffer, searched by a leftmost-first
//!   Aho-Corasick DFA; only a value where it stops is searched again for every literal it
//!   holds (overlapping, so that no selector's literal hides behind another's). About 3x
//!   slower than Hyperscan's scan (the DFA runs at ~2.5 ns a byte), but without the GIL;
//!   value-by-value searches cost more still (the per-call set-up outweighs short values).
//!
//! A match lies within one value, as the Python side requires.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Input, MatchKind};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::arrow_view::StringArrayView;
use crate::buffers::OwnedBuffer;

/// Written between two values so that a literal rarely matches across them (a match that
/// does only costs a second look at the value where it starts).
const SEPARATOR: u8 = 0;

/// Literals searched in one pass: `find` stops at the leftmost one, `every` lists all.
struct Pass {
    find: AhoCorasick,
    every: AhoCorasick,
    /// Automaton pattern index -> the caller's pattern id.
    ids: Vec<i64>,
}

impl Pass {
    fn build(literals: &[(i64, &str)], caseless: bool) -> Result<Option<Self>, String> {
        if literals.is_empty() {
            return Ok(None);
        }
        let words: Vec<&str> = literals.iter().map(|(_, w)| *w).collect();
        let build = |kind: MatchKind| {
            AhoCorasickBuilder::new()
                .match_kind(kind)
                .ascii_case_insensitive(caseless)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&words)
                .map_err(|e| e.to_string())
        };
        Ok(Some(Pass { find: build(MatchKind::LeftmostFirst)?, every: build(MatchKind::Standard)?, ids: literals.iter().map(|(id, _)| *id).collect() }))
    }

    /// Appends (pattern id, row, column) for every literal in every value of `column`.
    fn search(&self, column: &Column, out: &mut Vec<(i64, i64, i64)>) {
        let text = column.text.as_slice();
        let mut at = 0;
        while at < text.len() {
            let Some(found) = self.find.find(Input::new(text).range(at..)) else { break };
            let value = column.starts.partition_point(|&(start, _)| start <= found.start()) - 1;
            let (start, row) = column.starts[value];
            let end = column.starts.get(value + 1).map_or(text.len(), |&(next, _)| next) - 1; // before the separator
            for hit in self.every.find_overlapping_iter(&text[start..end]) {
                out.push((self.ids[hit.pattern().as_usize()], row, column.columns[value]));
            }
            at = end + 1;
        }
    }
}

/// Columns' values side by side: `starts[k]` = (offset in `text`, row) of the k-th,
/// `columns[k]` the index of its column.
#[derive(Default)]
struct Column {
    text: Vec<u8>,
    starts: Vec<(usize, i64)>,
    columns: Vec<i64>,
}

impl Column {
    fn clear(&mut self) {
        self.text.clear();
        self.starts.clear();
        self.columns.clear();
    }

    /// Appends the values of at least `shortest` bytes (shorter ones cannot hold a literal)
    /// of column number `column`.
    fn fill(&mut self, view: &StringArrayView, column: i64, shortest: usize) {
        for row in 0..view.len() {
            if let Some(value) = view.value(row) {
                if value.len() >= shortest {
                    self.starts.push((self.text.len(), row as i64));
                    self.columns.push(column);
                    self.text.extend_from_slice(value);
                    self.text.push(SEPARATOR);
                }
            }
        }
    }
}

/// A fixed set of literals, each searched with or without ASCII case folding.
#[pyclass(module = "sigmahunt_native", frozen)]
pub struct KeywordScanner {
    /// The caseless literals, with the cased ones that have no ASCII letter (folding
    /// cannot change those: the non-ASCII characters whose lowercase is ASCII); then the
    /// other cased ones. Usually one pass.
    passes: Vec<Pass>,
    shortest: usize,
}

#[pymethods]
impl KeywordScanner {
    /// `literals[i]` = (text, caseless): pattern id `i`. Empty literals are refused (the
    /// Python side never builds one: a keyword without a literal has no prefilter).
    #[new]
    fn new(literals: Vec<(String, bool)>) -> PyResult<Self> {
        if literals.iter().any(|(text, _)| text.is_empty()) {
            return Err(PyValueError::new_err("empty keyword literal"));
        }
        let folds_alike = |text: &str, caseless: bool| caseless || !text.bytes().any(|b| b.is_ascii_alphabetic());
        let pick = |folded: bool| -> Vec<(i64, &str)> {
            let chosen = literals.iter().enumerate().filter(|(_, (t, c))| folds_alike(t, *c) == folded);
            chosen.map(|(i, (t, _))| (i as i64, t.as_str())).collect()
        };
        let passes = [Pass::build(&pick(true), true), Pass::build(&pick(false), false)];
        let passes = passes.into_iter().collect::<Result<Vec<_>, _>>().map_err(PyValueError::new_err)?;
        let shortest = literals.iter().map(|(t, _)| t.len()).min().unwrap_or(1);
        Ok(KeywordScanner { passes: passes.into_iter().flatten().collect(), shortest })
    }

    /// Every (pattern id, row, column index) where the row's value in that column contains
    /// the pattern, as three int64 buffers (native byte order; one entry per occurrence,
    /// repeats included). `columns`: Arrow string arrays as (schema, array) capsules.
    fn scan<'py>(
        &self,
        py: Python<'py>,
        columns: Vec<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)>,
    ) -> PyResult<(Bound<'py, OwnedBuffer>, Bound<'py, OwnedBuffer>, Bound<'py, OwnedBuffer>)> {
        let views = columns
            .iter()
            .map(|(schema, array)| StringArrayView::from_capsules(schema, array))
            .collect::<PyResult<Vec<_>>>()?;
        // The capsules (`columns`) keep the arrays alive while the scan runs without the GIL.
        let found = py.detach(|| {
            let mut found = Vec::new();
            let mut column = Column::default();
            for (index, view) in views.iter().enumerate() {
                column.clear();
                column.fill(view, index as i64, self.shortest);
                for pass in &self.passes {
                    pass.search(&column, &mut found);
                }
            }
            found
        });
        let patterns: Vec<u8> = found.iter().flat_map(|(p, _, _)| p.to_ne_bytes()).collect();
        let rows: Vec<u8> = found.iter().flat_map(|(_, r, _)| r.to_ne_bytes()).collect();
        let columns: Vec<u8> = found.iter().flat_map(|(_, _, c)| c.to_ne_bytes()).collect();
        Ok((OwnedBuffer::wrap(py, patterns)?, OwnedBuffer::wrap(py, rows)?, OwnedBuffer::wrap(py, columns)?))
    }
}

/// The values of `columns` (Arrow string arrays as (schema, array) capsules) of at least
/// `shortest` bytes, side by side in one buffer, each followed by a zero byte: `(text,
/// starts, ends, rows, columns)`, the last four int64 buffers (native byte order) giving
/// each value's byte range in `text`, its row and the index of its column.
#[pyfunction]
pub fn gather_values<'py>(
    py: Python<'py>,
    columns: Vec<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)>,
    shortest: usize,
) -> PyResult<(Bound<'py, OwnedBuffer>, Bound<'py, OwnedBuffer>, Bound<'py, OwnedBuffer>, Bound<'py, OwnedBuffer>, Bound<'py, OwnedBuffer>)> {
    let views = columns
        .iter()
        .map(|(schema, array)| StringArrayView::from_capsules(schema, array))
        .collect::<PyResult<Vec<_>>>()?;
    let (text, starts, ends, rows, columns) = py.detach(|| {
        let mut column = Column::default();
        for (index, view) in views.iter().enumerate() {
            column.fill(view, index as i64, shortest);
        }
        let count = column.starts.len();
        let mut starts = Vec::with_capacity(count * 8);
        let mut ends = Vec::with_capacity(count * 8);
        let mut rows = Vec::with_capacity(count * 8);
        for (k, &(start, row)) in column.starts.iter().enumerate() {
            let end = column.starts.get(k + 1).map_or(column.text.len(), |&(next, _)| next) - 1;
            starts.extend_from_slice(&(start as i64).to_ne_bytes());
            ends.extend_from_slice(&(end as i64).to_ne_bytes());
            rows.extend_from_slice(&row.to_ne_bytes());
        }
        let columns = column.columns.iter().flat_map(|c| c.to_ne_bytes()).collect();
        (column.text, starts, ends, rows, columns)
    });
    let wrap = |bytes: Vec<u8>| OwnedBuffer::wrap(py, bytes);
    Ok((wrap(text)?, wrap(starts)?, wrap(ends)?, wrap(rows)?, wrap(columns)?))
}
