//! The keyword (field-less) prefilter's scan: which values of a batch's columns hold one
//! of a set of literals. Mirrors `keywords._SelectorDatabase.scan` (Hyperscan), which
//! stays the reference where this module is absent.
//!
//! Why: without it the Python side searched each active selector's literals with Polars,
//! selector by selector (no Hyperscan), or converted every column to `large_string` for
//! Hyperscan; this scanner searches them all at once without the GIL or a conversion:
//! ~10% off a whole hunt of 100,000 packed EVTX records against Polars
//! (session 6), and since its caseless literals are searched in lowercased values
//! (session 7, see `Pass`) faster than the Hyperscan path too. Each column's values
//! are copied side by side and searched by leftmost-first Aho-Corasick DFAs (one per pack
//! of 64 literals, see `FIND_PACK`); only a value where one stops is searched again, once,
//! for every literal it holds (overlapping,
//! so that no selector's literal hides behind another's). Value-by-value searches cost
//! more: the per-call set-up outweighs a short value's bytes. A match lies within one
//! value, as the Python side requires. (Gathering all columns' values natively for one
//! Hyperscan scan was measured too, in session 6: no faster than Hyperscan's scan of each
//! column converted to `large_string`.)

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Input, MatchKind};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::arrow_view::StringArrayView;
use crate::buffers::OwnedBuffer;

/// Written between two values so that a literal rarely matches across them (a match that
/// does only costs a second look at the value where it starts).
const SEPARATOR: u8 = 0;

/// Literals per `find` automaton. The crate's SIMD prefilter (Teddy) serves up to 64
/// literals: over 25,000 packed EVTX records' columns (16 MB of values) a search for
/// 64 of SigmaHQ's 152 keyword literals took 9.0 ms, for 96 of them 30.7 ms, for all 152
/// 33.1 ms; copying and lowercasing the values alone 4.7 ms (bench/RESULTS.md, session
/// 10). So the values are searched once per pack of 64, and the values found then once
/// for all literals.
const FIND_PACK: usize = 64;

/// Literals searched in one pass: each `finds` automaton stops at the leftmost of its pack,
/// `every` lists all.
///
/// A caseless pass searches its literals, ASCII-lowercased, in the values ASCII-lowercased
/// (`Column::lower`), case-sensitively: the same positions as an ASCII case-insensitive
/// search, but the automaton then keeps its SIMD prefilter (Teddy), which the crate drops
/// for `ascii_case_insensitive` ones. Measured on 100,000 packed EVTX records (all SigmaHQ
/// keyword selectors): the scan took 0.20-0.23 s of the hunting thread case-insensitively,
/// 0.11-0.14 s this way (bench/RESULTS.md, session 7).
struct Pass {
    /// Leftmost-first automata over the literals in packs of at most `FIND_PACK`.
    finds: Vec<AhoCorasick>,
    every: AhoCorasick,
    /// Automaton pattern index -> the caller's pattern id.
    ids: Vec<i64>,
    caseless: bool,
}

impl Pass {
    fn build(literals: &[(i64, &str)], caseless: bool) -> Result<Option<Self>, String> {
        if literals.is_empty() {
            return Ok(None);
        }
        let words: Vec<String> =
            literals.iter().map(|(_, w)| if caseless { w.to_ascii_lowercase() } else { (*w).to_owned() }).collect();
        let build_words = |words: &[String], kind: MatchKind| {
            AhoCorasickBuilder::new()
                .match_kind(kind)
                .kind(Some(AhoCorasickKind::DFA))
                .build(words)
                .map_err(|e| e.to_string())
        };
        let build = |kind: MatchKind| build_words(&words, kind);
        let finds = words.chunks(FIND_PACK).map(|pack| build_words(pack, MatchKind::LeftmostFirst)).collect::<Result<_, _>>()?;
        Ok(Some(Pass {
            finds,
            every: build(MatchKind::Standard)?,
            ids: literals.iter().map(|(id, _)| *id).collect(),
            caseless,
        }))
    }

    /// Appends (pattern id, row, `index`) for every literal in every value of `column`.
    fn search(&self, column: &Column, index: i64, out: &mut Vec<(i64, i64, i64)>) {
        let text = if self.caseless { column.lower.as_slice() } else { column.text.as_slice() };
        // The values where some pack finds a literal, in order, each once.
        let mut values = Vec::new();
        for find in &self.finds {
            let mut at = 0;
            while at < text.len() {
                let Some(found) = find.find(Input::new(text).range(at..)) else { break };
                let value = column.starts.partition_point(|&(start, _)| start <= found.start()) - 1;
                values.push(value);
                at = column.starts.get(value + 1).map_or(text.len(), |&(next, _)| next);
            }
        }
        if self.finds.len() > 1 {
            values.sort_unstable();
            values.dedup();
        }
        for value in values {
            let (start, row) = column.starts[value];
            let end = column.starts.get(value + 1).map_or(text.len(), |&(next, _)| next) - 1; // before the separator
            for hit in self.every.find_overlapping_iter(&text[start..end]) {
                out.push((self.ids[hit.pattern().as_usize()], row, index));
            }
        }
    }
}

/// One column's values side by side: `starts[k]` = (offset, row) of the k-th, in `text`
/// (as they are, for cased passes) and in `lower` (ASCII-lowercased, for caseless ones);
/// each is filled only when some pass reads it.
#[derive(Default)]
struct Column {
    text: Vec<u8>,
    lower: Vec<u8>,
    starts: Vec<(usize, i64)>,
}

impl Column {
    /// The column's values of at least `shortest` bytes (shorter ones cannot hold a
    /// literal), replacing the previous column's (the buffers are reused).
    fn fill(&mut self, view: &StringArrayView, shortest: usize, cased: bool, caseless: bool) {
        self.text.clear();
        self.lower.clear();
        self.starts.clear();
        for row in 0..view.len() {
            if let Some(value) = view.value(row) {
                if value.len() >= shortest {
                    self.starts.push((self.text.len(), row as i64));
                    self.text.extend_from_slice(value);
                    self.text.push(SEPARATOR);
                }
            }
        }
        if caseless {
            // One pass over the whole buffer (vectorised), not a byte map per value.
            if cased {
                self.lower.extend_from_slice(&self.text);
            } else {
                std::mem::swap(&mut self.lower, &mut self.text);
            }
            self.lower.make_ascii_lowercase();
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
            let cased = self.passes.iter().any(|pass| !pass.caseless);
            let caseless = self.passes.iter().any(|pass| pass.caseless);
            for (index, view) in views.iter().enumerate() {
                column.fill(view, self.shortest, cased, caseless);
                for pass in &self.passes {
                    pass.search(&column, index as i64, &mut found);
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
