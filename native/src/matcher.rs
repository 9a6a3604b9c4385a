//! The Rust twin of `ValueMatcher.match_values` plus the evaluator's per-field row masks
//! (`BatchEvaluator._field_masks`), for one field's equals / contains / startswith /
//! endswith / glob / regex predicates.
//!
//! Why native: per batch and field the Python path dictionary-encodes the column, turns
//! each distinct value into a Python string, looks it up in a cache and builds one NumPy
//! mask per predicate that holds: about 400 us per (batch, field), thousands of times per
//! hunt (bench/RESULTS.md). Here the same work is one pass over the Arrow buffers.
//!
//! Exactness: only ASCII values are matched here. For them Python's `str.lower()` is
//! `to_ascii_lowercase`, and Rust's `regex` crate is the engine the Python path runs
//! regexes in (Polars), so the answers are the same by construction (a regex is compiled
//! here without Unicode only where that cannot change an answer: see `compile`). Any value
//! with a non-ASCII byte is handed back (with its rows) for the Python matcher: Unicode case
//! folding then stays Python's own. Fields with cidr / numeric / time-part tests never
//! come here (the Python side decides).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use memchr::memmem;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyCapsule};
use regex::bytes::{Regex, RegexBuilder};

use crate::arrow_view::StringArrayView;
use crate::fast_map::FastMap;

/// Mirrors matcher.CACHE_CHARS / CACHE_VALUE_CHARS (bytes here: values are ASCII).
const CACHE_BYTES: usize = 8_000_000;
const CACHE_VALUE_BYTES: usize = 2_048;

const CONTAINS: u8 = 0;
const PREFIX: u8 = 1;
const SUFFIX: u8 = 2;

/// A literal set scans with a contiguous NFA until it has scanned this many bytes, then
/// with a DFA built at that point.
///
/// Why both: for SigmaHQ's CommandLine literals (10,879) the DFA takes 0.17 s and 80 MB to
/// build, the NFA 0.02 s and 2 MB, and the NFA scans about 1.4x slower. A hunt over 100,000
/// EVTX records spent more on building DFAs (~0.4 s for all fields) than on scanning with
/// them, while over the 1.5 GB benchmark corpus the DFAs repay their build many times:
/// scanning decides, so the DFA comes once scanning has shown it will pay.
pub(crate) const DFA_AFTER_BYTES: usize = 16 << 20;

/// The literals of one kind (contains, startswith or endswith) in one automaton.
struct LiteralSet {
    nfa: AhoCorasick,
    /// Built once `scanned` reaches `dfa_after` (see `DFA_AFTER_BYTES`).
    dfa: OnceLock<AhoCorasick>,
    scanned: AtomicUsize,
    dfa_after: usize,
    /// The literals, to build the DFA from.
    words: Vec<String>,
    /// Pattern index -> the predicates whose literal it is.
    pids: Vec<Vec<u32>>,
    /// Longest literal in bytes: startswith/endswith only look that far into the value.
    span: usize,
}

impl LiteralSet {
    /// The automaton to scan `bytes` more bytes with (building the DFA when it is time).
    fn automaton(&self, bytes: usize) -> &AhoCorasick {
        if let Some(dfa) = self.dfa.get() {
            return dfa;
        }
        if self.scanned.fetch_add(bytes, Ordering::Relaxed) + bytes < self.dfa_after {
            return &self.nfa;
        }
        self.dfa.get_or_init(|| automaton(&self.words, AhoCorasickKind::DFA).unwrap_or_else(|_| self.nfa.clone()))
    }

    fn build(literals: &[(u32, String)], dfa_after: usize) -> Result<Option<Self>, String> {
        if literals.is_empty() {
            return Ok(None);
        }
        let mut index: FastMap<&str, usize> = FastMap::default();
        let mut words: Vec<&str> = Vec::new();
        let mut pids: Vec<Vec<u32>> = Vec::new();
        for (pid, text) in literals {
            let i = *index.entry(text.as_str()).or_insert_with(|| {
                words.push(text.as_str());
                pids.push(Vec::new());
                words.len() - 1
            });
            pids[i].push(*pid);
        }
        let nfa = automaton(&words, AhoCorasickKind::ContiguousNFA)?;
        let span = words.iter().map(|w| w.len()).max().unwrap_or(0);
        let words = words.into_iter().map(str::to_owned).collect();
        Ok(Some(LiteralSet { nfa, dfa: OnceLock::new(), scanned: AtomicUsize::new(0), dfa_after, words, pids, span }))
    }
}

fn automaton<S: AsRef<[u8]>>(words: &[S], kind: AhoCorasickKind) -> Result<AhoCorasick, String> {
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::Standard)
        .kind(Some(kind))
        .build(words)
        .map_err(|e| e.to_string())
}

/// Every scanned predicate of one case mode (folded or as written).
#[derive(Default)]
struct Scans {
    contains: Option<LiteralSet>,
    prefix: Option<LiteralSet>,
    suffix: Option<LiteralSet>,
    /// (pid, regex, hint): the glob's longest literal, which a value must contain for the
    /// regex to be worth running (as the Python scanners' hint database does).
    globs: Vec<Glob>,
}

impl Scans {
    fn build(literals: Vec<(u32, u8, String)>, globs: Vec<(u32, String, Option<String>)>, dfa_after: usize) -> Result<Self, String> {
        let pick = |kind: u8| -> Vec<(u32, String)> {
            literals.iter().filter(|(_, k, _)| *k == kind).map(|(p, _, t)| (*p, t.clone())).collect()
        };
        Ok(Scans {
            contains: LiteralSet::build(&pick(CONTAINS), dfa_after)?,
            prefix: LiteralSet::build(&pick(PREFIX), dfa_after)?,
            suffix: LiteralSet::build(&pick(SUFFIX), dfa_after)?,
            globs: compile_globs(globs)?,
        })
    }

    /// Mirrors HyperscanScanner.matches / AhoCorasickScanner.matches.
    fn matches(&self, value: &str, found: &mut Vec<u32>) {
        let bytes = value.as_bytes();
        if let Some(set) = &self.contains {
            for m in set.automaton(bytes.len()).find_overlapping_iter(bytes) {
                found.extend_from_slice(&set.pids[m.pattern().as_usize()]);
            }
        }
        if let Some(set) = &self.prefix {
            let head = &bytes[..bytes.len().min(set.span)];
            for m in set.automaton(head.len()).find_overlapping_iter(head) {
                if m.start() == 0 {
                    found.extend_from_slice(&set.pids[m.pattern().as_usize()]);
                }
            }
        }
        if let Some(set) = &self.suffix {
            let tail = &bytes[bytes.len() - bytes.len().min(set.span)..];
            for m in set.automaton(tail.len()).find_overlapping_iter(tail) {
                if m.end() == tail.len() {
                    found.extend_from_slice(&set.pids[m.pattern().as_usize()]);
                }
            }
        }
        for (pid, pattern, hint) in &self.globs {
            if hint.as_ref().is_some_and(|h| h.find(bytes).is_none()) {
                continue;
            }
            if pattern.is_match(bytes) {
                found.push(*pid);
            }
        }
    }
}

type Glob = (u32, Regex, Option<memmem::Finder<'static>>);

fn compile_globs(globs: Vec<(u32, String, Option<String>)>) -> Result<Vec<Glob>, String> {
    let hints: Vec<Option<String>> = globs.iter().map(|(_, _, hint)| hint.clone()).collect();
    let compiled = compile_all(globs.into_iter().map(|(pid, source, _)| (pid, source)).collect())?;
    Ok(compiled
        .into_iter()
        .zip(hints)
        .map(|((pid, re), hint)| (pid, re, hint.map(|h| memmem::Finder::new(h.as_bytes()).into_owned())))
        .collect())
}

fn compile_all(patterns: Vec<(u32, String)>) -> Result<Vec<(u32, Regex)>, String> {
    patterns
        .into_iter()
        .map(|(pid, source)| compile(&source).map(|re| (pid, re)).map_err(|e| format!("regex {source:?}: {e}")))
        .collect()
}

/// One regex for ASCII values: compiled with Unicode off when that cannot change an answer.
///
/// Why: Unicode classes make large automata. SigmaHQ's `-k\s\w{1,64}...` took 20 ms to
/// compile, its 161 Windows regexes 40-51 ms, all of it on a hunt's first batch; without
/// Unicode they take 6 ms (bench/RESULTS.md, session 8). The same answers: only ASCII
/// values reach this matcher, and for an ASCII pattern over an ASCII value the two modes
/// agree: `\w`, `\d`, `\s`, `\b` and `.` restricted to ASCII are their ASCII forms, and
/// case folding relates an ASCII letter to other ASCII letters only (its non-ASCII
/// relatives, such as U+212A KELVIN SIGN for `k`, never occur in an ASCII value). A pattern
/// with a non-ASCII character, or one written as an escape (`\x{212A}`, `\u212A`), which
/// (?i) could fold onto an ASCII letter, is compiled with Unicode; so is any pattern the
/// ASCII mode refuses (`\p{..}`).
fn compile(source: &str) -> Result<Regex, regex::Error> {
    if source.is_ascii() && !escapes_a_codepoint(source) {
        if let Ok(re) = RegexBuilder::new(source).unicode(false).build() {
            return Ok(re);
        }
    }
    Regex::new(source)
}

/// Whether a pattern names a character by its code (`\x..`, `\u..`, `\U..`, any value).
fn escapes_a_codepoint(source: &str) -> bool {
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        // The character after a backslash is consumed here, so `\\u` (a backslash, then u) is no escape.
        if c == '\\' && matches!(chars.next(), Some('x' | 'u' | 'U')) {
            return true;
        }
    }
    false
}

/// One field's predicates, compiled (see the module docs); built by `ValueMatcher`.
#[pyclass(module = "sigmahunt_native")]
pub struct FieldMatcher {
    eq_fold: FastMap<Vec<u8>, Vec<u32>>,
    eq_cased: FastMap<Vec<u8>, Vec<u32>>,
    /// Longest equals key: longer values skip the (hashing) lookups.
    eq_span: usize,
    any_value: Vec<u32>,
    folded: Scans,
    cased: Scans,
    regexes: Vec<(u32, Regex)>,
    cache: FastMap<Vec<u8>, Box<[u32]>>,
    cache_bytes: usize,
}

impl FieldMatcher {
    /// Mirrors ValueMatcher._match_one for an ASCII value.
    fn match_ascii(&self, value: &[u8]) -> Box<[u32]> {
        // ASCII, hence valid UTF-8.
        let text = unsafe { std::str::from_utf8_unchecked(value) };
        let mut found: Vec<u32> = self.any_value.clone();
        for (pid, pattern) in &self.regexes {
            if pattern.is_match(value) {
                found.push(*pid);
            }
        }
        let lowered;
        let folded: &str = if value.iter().any(u8::is_ascii_uppercase) {
            lowered = text.to_ascii_lowercase();
            &lowered
        } else {
            text
        };
        if value.len() <= self.eq_span {
            if let Some(pids) = self.eq_fold.get(folded.as_bytes()) {
                found.extend_from_slice(pids);
            }
            if let Some(pids) = self.eq_cased.get(value) {
                found.extend_from_slice(pids);
            }
        }
        self.folded.matches(folded, &mut found);
        self.cased.matches(text, &mut found);
        found.sort_unstable();
        found.dedup();
        found.into_boxed_slice()
    }

    fn pids_of(&mut self, value: &[u8]) -> Box<[u32]> {
        if value.len() > CACHE_VALUE_BYTES {  // never cached: rarely repeated
            return self.match_ascii(value);
        }
        if let Some(pids) = self.cache.get(value) {
            return pids.clone();
        }
        let pids = self.match_ascii(value);
        {
            if self.cache_bytes > CACHE_BYTES {
                self.cache.clear();
                self.cache_bytes = 0;
            }
            self.cache_bytes += value.len();
            self.cache.insert(value.to_vec(), pids.clone());
        }
        pids
    }
}

/// Non-ASCII values handed back to Python's matcher, with their rows.
pub(crate) type Declined = Vec<(String, Vec<usize>)>;
/// Per predicate that holds somewhere: its mask, one byte per row.
type PidMasks<'py> = Vec<(u32, Bound<'py, PyByteArray>)>;

/// What `masks` computes before handing it to Python.
pub(crate) struct Masks {
    pub(crate) by_pid: Vec<(u32, Vec<u8>)>,
    pub(crate) declined: Declined,
}

#[pymethods]
impl FieldMatcher {
    /// `dfa_after_bytes`: see `DFA_AFTER_BYTES` (tests pass 0 and a huge number, to check
    /// both automata).
    #[new]
    #[pyo3(signature = (eq_fold, eq_cased, any_value, scan_fold, scan_cased, globs_fold, globs_cased, regexes, dfa_after_bytes = DFA_AFTER_BYTES))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        eq_fold: Vec<(String, Vec<u32>)>,
        eq_cased: Vec<(String, Vec<u32>)>,
        any_value: Vec<u32>,
        scan_fold: Vec<(u32, u8, String)>,
        scan_cased: Vec<(u32, u8, String)>,
        globs_fold: Vec<(u32, String, Option<String>)>,
        globs_cased: Vec<(u32, String, Option<String>)>,
        regexes: Vec<(u32, String)>,
        dfa_after_bytes: usize,
    ) -> PyResult<Self> {
        let eq_span = eq_fold.iter().chain(eq_cased.iter()).map(|(k, _)| k.len()).max().unwrap_or(0);
        let table = |items: Vec<(String, Vec<u32>)>| items.into_iter().map(|(k, v)| (k.into_bytes(), v)).collect();
        // The automata and regexes take most of the build (on a hunt's first batches): without
        // the GIL, the reading threads go on meanwhile.
        let (folded, cased, regexes) = py.detach(|| -> Result<_, String> {
            let folded = Scans::build(scan_fold, globs_fold, dfa_after_bytes)?;
            Ok((folded, Scans::build(scan_cased, globs_cased, dfa_after_bytes)?, compile_all(regexes)?))
        }).map_err(PyValueError::new_err)?;
        Ok(FieldMatcher {
            eq_fold: table(eq_fold),
            eq_cased: table(eq_cased),
            eq_span,
            any_value,
            folded,
            cased,
            regexes,
            cache: FastMap::default(),
            cache_bytes: 0,
        })
    }

    /// Row masks of the predicates that hold on some row of an Arrow string array.
    ///
    /// `positions`: the rows to look at (None: all), as little-endian i64 bytes. Returns
    /// ``([(pid, bytearray mask of len(array))...], [(value, [row...])...])``: the second
    /// list holds the non-ASCII values, for the Python matcher.
    fn masks<'py>(
        &mut self,
        py: Python<'py>,
        schema: Bound<'py, PyCapsule>,
        array: Bound<'py, PyCapsule>,
        positions: Option<&[u8]>,
    ) -> PyResult<(PidMasks<'py>, Declined)> {
        let view = StringArrayView::from_capsules(&schema, &array)?;
        let rows: Option<Vec<usize>> = positions.map(|raw| {
            raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize).collect()
        });
        if let Some(rows) = &rows {
            if rows.iter().any(|&r| r >= view.len()) {
                return Err(PyValueError::new_err("a position is beyond the array"));
            }
        }
        let result = py.detach(|| self.compute(&view, rows.as_deref()));
        let by_pid = result.by_pid.into_iter().map(|(pid, mask)| (pid, PyByteArray::new(py, &mask))).collect();
        Ok((by_pid, result.declined))
    }

    /// Entries in the value cache (for tests).
    fn cached(&self) -> usize {
        self.cache.len()
    }
}

impl FieldMatcher {
    pub(crate) fn compute(&mut self, view: &StringArrayView, rows: Option<&[usize]>) -> Masks {
        let height = view.len();
        // Distinct values of the rows looked at, and each row's code.
        let mut codes: FastMap<&[u8], u32> = FastMap::default();
        let mut distinct: Vec<&[u8]> = Vec::new();
        let mut row_codes: Vec<(usize, u32)> = Vec::with_capacity(rows.map_or(height, <[usize]>::len));
        let mut visit = |row: usize| {
            if let Some(value) = view.value(row) {
                let code = *codes.entry(value).or_insert_with(|| {
                    distinct.push(value);
                    (distinct.len() - 1) as u32
                });
                row_codes.push((row, code));
            }
        };
        match rows {
            Some(rows) => rows.iter().for_each(|&r| visit(r)),
            None => (0..height).for_each(&mut visit),
        }
        let mut pids_of: Vec<Box<[u32]>> = Vec::with_capacity(distinct.len());
        let mut declined_code: FastMap<u32, usize> = FastMap::default();
        let mut declined: Vec<(String, Vec<usize>)> = Vec::new();
        for (code, value) in distinct.iter().enumerate() {
            if value.is_ascii() {
                pids_of.push(self.pids_of(value));
            } else {
                declined_code.insert(code as u32, declined.len());
                // Arrow strings are valid UTF-8.
                declined.push((String::from_utf8_lossy(value).into_owned(), Vec::new()));
                pids_of.push(Box::new([]));
            }
        }
        let mut slot_of: FastMap<u32, usize> = FastMap::default();
        let mut by_pid: Vec<(u32, Vec<u8>)> = Vec::new();
        for &(row, code) in &row_codes {
            for &pid in pids_of[code as usize].iter() {
                let slot = *slot_of.entry(pid).or_insert_with(|| {
                    by_pid.push((pid, vec![0u8; height]));
                    by_pid.len() - 1
                });
                by_pid[slot].1[row] = 1;
            }
            if !declined_code.is_empty() {
                if let Some(&i) = declined_code.get(&code) {
                    declined[i].1.push(row);
                }
            }
        }
        Masks { by_pid, declined }
    }
}
