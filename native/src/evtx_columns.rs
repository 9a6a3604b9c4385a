//! EVTX records straight into Arrow string columns: the native twin of
//! `sigmahunt.ingest.evtx_reader` (`PyEvtxRecords` + `_row` + `ColumnBuilder`).
//! bench/RESULTS.md measured the Python per-record work (`orjson.loads`,
//! `normalise_evtx_json`, `ColumnBuilder.add`/`take`) at ~9x the parse itself.
//!
//! Each record is rendered to JSON by the same `evtx` crate version the Python `evtx`
//! package wraps (so the text is byte-for-byte what `records_json()` yields), parsed by a
//! small JSON reader that keeps key order and Python-dict duplicate semantics, flattened
//! exactly as `normalise.normalise_evtx_json` does, and appended to shared columns.
//! Whatever this side is not sure to render identically (a float or an integer beyond
//! 64 bits, invalid JSON, a record that is not `{"Event": {...}}`, very deep nesting) is
//! handed back to Python as the record's JSON text, and `_row` renders it. Parser errors
//! go to Python as the messages the `evtx` package raises, for `_Ledger`.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::sync::Arc;

use evtx::err::EvtxError;
use evtx::{EvtxChunk, EvtxChunkHeader, EvtxParser, IntoIterChunks, ParserSettings};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::buffer::PyBuffer;

use crate::arrow_export::{ExportColumn, ExportedFrame};
use crate::buffers::{flatten_views, readonly_bytes};
use crate::fast_map::FastMap;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use bumpalo::collections::{String as BumpString, Vec as BumpVec};
use bumpalo::Bump;

const TEXT: &str = "#text";
const ATTRS: &str = "#attributes";
const TIMESTAMP_COL: &str = "_timestamp";
const SOURCE_COL: &str = "_source";
const POSITION_COL: &str = "_position";
/// Deeper JSON is handed back (orjson's own limit is 1024; Python is the reference).
const MAX_DEPTH: usize = 200;

/// `EvtxUnit.step` outcomes (mirrored as constants in `evtx_reader.py`).
const STEP_DONE: u8 = 0;
const STEP_FULL: u8 = 1;
const STEP_ERROR: u8 = 2;
const STEP_RECORD: u8 = 3;
const STEP_REFUSED: u8 = 4;

// --------------------------------------------------------------------------------------
// JSON values as orjson.loads would give them to Python

/// A JSON value; strings and containers live in the JSON text or in a per-record bump
/// arena (no allocation per container or per escaped string, nothing to drop).
#[derive(Clone, Copy)]
enum Node<'a> {
    Null,
    Bool(bool),
    /// An integer within 64 bits, as its JSON text (Python `str(int)` is the same text).
    Int(&'a str),
    Str(&'a str),
    Arr(&'a [Node<'a>]),
    /// Keys in first-seen order; a repeated key replaces the value in place (a Python dict).
    Obj(&'a [(&'a str, Node<'a>)]),
}

impl<'a> Node<'a> {
    fn get(&self, key: &str) -> Option<&'a Node<'a>> {
        match self {
            Node::Obj(items) => items.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Why a record goes back to Python: any value this reader does not model exactly.
struct HandBack;

struct JsonReader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    bump: &'a Bump,
    /// Members of the objects / items of the arrays being read, copied into the arena as
    /// one slice when their container closes.
    members: BumpVec<'a, (&'a str, Node<'a>)>,
    items: BumpVec<'a, Node<'a>>,
}

impl<'a> JsonReader<'a> {
    fn parse(text: &'a str, bump: &'a Bump) -> Result<Node<'a>, HandBack> {
        let mut reader = JsonReader {
            text,
            bytes: text.as_bytes(),
            at: 0,
            bump,
            members: BumpVec::with_capacity_in(64, bump),
            items: BumpVec::new_in(bump),
        };
        let value = reader.value(0)?;
        reader.skip_ws();
        if reader.at != reader.bytes.len() {
            return Err(HandBack);
        }
        Ok(value)
    }

    fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.at) {
            if b == b' ' || b == b'\n' || b == b'\r' || b == b'\t' {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node<'a>, HandBack> {
        if depth > MAX_DEPTH {
            return Err(HandBack);
        }
        self.skip_ws();
        match self.bytes.get(self.at) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Node::Str(self.string()?)),
            Some(b't') => self.literal("true", Node::Bool(true)),
            Some(b'f') => self.literal("false", Node::Bool(false)),
            Some(b'n') => self.literal("null", Node::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(HandBack),
        }
    }

    fn literal(&mut self, word: &str, node: Node<'a>) -> Result<Node<'a>, HandBack> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(node)
        } else {
            Err(HandBack)
        }
    }

    /// Integers only: a fraction, an exponent or more than 64 bits is a Python float.
    fn number(&mut self) -> Result<Node<'a>, HandBack> {
        let start = self.at;
        if self.bytes[self.at] == b'-' {
            self.at += 1;
        }
        let digits = self.at;
        while matches!(self.bytes.get(self.at), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let count = self.at - digits;
        if count == 0 || (count > 1 && self.bytes[digits] == b'0') {
            return Err(HandBack);
        }
        if matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E')) {
            return Err(HandBack);
        }
        let text = &self.text[start..self.at];
        let fits = if start == digits { text.parse::<u64>().is_ok() } else { text.parse::<i64>().is_ok() };
        if !fits {
            return Err(HandBack);
        }
        Ok(Node::Int(text))
    }

    fn string(&mut self) -> Result<&'a str, HandBack> {
        self.at += 1; // opening quote
        let start = self.at;
        let stop = scan_plain(self.bytes, start);
        match self.bytes.get(stop) {
            Some(b'"') => {
                self.at = stop + 1;
                return Ok(&self.text[start..stop]);
            }
            Some(b'\\') => self.at = stop,
            _ => return Err(HandBack), // a raw control character, or the text ends
        }
        let mut out = BumpString::with_capacity_in(self.at - start + 32, self.bump);
        out.push_str(&self.text[start..self.at]);
        loop {
            let b = *self.bytes.get(self.at).ok_or(HandBack)?;
            match b {
                b'"' => {
                    self.at += 1;
                    return Ok(out.into_bump_str());
                }
                b'\\' => {
                    let escape = *self.bytes.get(self.at + 1).ok_or(HandBack)?;
                    self.at += 2;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(HandBack),
                    }
                }
                0..=0x1f => return Err(HandBack),
                _ => {
                    let run = self.at;
                    let stop = scan_plain(self.bytes, run);
                    self.at = stop;
                    out.push_str(&self.text[run..stop]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, HandBack> {
        let digits = self.bytes.get(self.at..self.at + 4).ok_or(HandBack)?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(HandBack);
        }
        let text = std::str::from_utf8(digits).map_err(|_| HandBack)?;
        let value = u32::from_str_radix(text, 16).map_err(|_| HandBack)?;
        self.at += 4;
        Ok(value)
    }

    /// `\uXXXX` (after the `\u`), a surrogate pair included; a lone surrogate is invalid.
    fn unicode_escape(&mut self) -> Result<char, HandBack> {
        let first = self.hex4()?;
        if (0xDC00..0xE000).contains(&first) {
            return Err(HandBack);
        }
        if (0xD800..0xDC00).contains(&first) {
            if self.bytes.get(self.at..self.at + 2) != Some(b"\\u") {
                return Err(HandBack);
            }
            self.at += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(HandBack);
            }
            let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
            return char::from_u32(code).ok_or(HandBack);
        }
        char::from_u32(first).ok_or(HandBack)
    }

    fn array(&mut self, depth: usize) -> Result<Node<'a>, HandBack> {
        self.at += 1;
        self.skip_ws();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
            return Ok(Node::Arr(&[]));
        }
        let base = self.items.len();
        loop {
            let item = self.value(depth + 1)?;
            self.items.push(item);
            self.skip_ws();
            match self.bytes.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    let items = self.bump.alloc_slice_copy(&self.items[base..]);
                    self.items.truncate(base);
                    return Ok(Node::Arr(items));
                }
                _ => return Err(HandBack),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node<'a>, HandBack> {
        self.at += 1;
        let mut seen: u64 = 0; // cheap filter: a repeated key is looked for only on a hit
        self.skip_ws();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Ok(Node::Obj(&[]));
        }
        let base = self.members.len();
        loop {
            self.skip_ws();
            if self.bytes.get(self.at) != Some(&b'"') {
                return Err(HandBack);
            }
            let key = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.at) != Some(&b':') {
                return Err(HandBack);
            }
            self.at += 1;
            let value = self.value(depth + 1)?;
            let bit = 1u64 << (key_hash(key) & 63);
            let existing = if seen & bit != 0 { self.members[base..].iter().position(|(k, _)| *k == key) } else { None };
            match existing {
                Some(index) => self.members[base + index].1 = value, // Python dict: last value, first position
                None => self.members.push((key, value)),
            }
            seen |= bit;
            self.skip_ws();
            match self.bytes.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    let items = self.bump.alloc_slice_copy(&self.members[base..]);
                    self.members.truncate(base);
                    return Ok(Node::Obj(items));
                }
                _ => return Err(HandBack),
            }
        }
    }
}

/// The first index from `at` holding `"`, `\\` or a control character (< 0x20), or
/// `bytes.len()`: eight bytes at a time, since most strings are short keys and values.
#[inline]
fn scan_plain(bytes: &[u8], mut at: usize) -> usize {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while at + 8 <= bytes.len() {
        let x = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let quote = x ^ (LOW * b'"' as u64);
        let slash = x ^ (LOW * b'\\' as u64);
        // the lowest flagged byte of each test is exact (borrows only run upwards)
        let hits = (quote.wrapping_sub(LOW) & !quote & HIGH)
            | (slash.wrapping_sub(LOW) & !slash & HIGH)
            | (x.wrapping_sub(LOW * 0x20) & !x & HIGH);
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < bytes.len() {
        let b = bytes[at];
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        at += 1;
    }
    at
}

fn key_hash(key: &str) -> u32 {
    let b = key.as_bytes();
    match b.len() {
        0 => 0,
        n => (n as u32).wrapping_mul(31) ^ (b[0] as u32).wrapping_mul(7) ^ (b[n - 1] as u32).wrapping_mul(13) ^ (b[n / 2] as u32),
    }
}

// --------------------------------------------------------------------------------------
// normalise.to_str / _dumps

/// Mirrors `normalise.to_str` (floats never get here: they are handed back).
fn to_str<'n>(node: &Node<'n>) -> Option<Cow<'n, str>> {
    match *node {
        Node::Null => None,
        Node::Str(s) => Some(Cow::Borrowed(s)),
        Node::Bool(true) => Some(Cow::Borrowed("true")),
        Node::Bool(false) => Some(Cow::Borrowed("false")),
        Node::Int(text) => Some(Cow::Borrowed(int_text(text))),
        Node::Arr(_) | Node::Obj(_) => {
            let mut out = String::new();
            dumps(node, &mut out);
            Some(Cow::Owned(out))
        }
    }
}

/// Python's `str(int)` of a JSON integer: only `-0` differs from its text.
fn int_text(text: &str) -> &str {
    if text == "-0" {
        "0"
    } else {
        text
    }
}

/// Mirrors `normalise._dumps` (`orjson.dumps`: compact, non-ASCII unescaped).
fn dumps(node: &Node<'_>, out: &mut String) {
    match node {
        Node::Null => out.push_str("null"),
        Node::Bool(true) => out.push_str("true"),
        Node::Bool(false) => out.push_str("false"),
        Node::Int(text) => out.push_str(int_text(text)),
        Node::Str(s) => dump_str(s, out),
        Node::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                dumps(item, out);
            }
            out.push(']');
        }
        Node::Obj(items) => {
            out.push('{');
            for (i, (key, value)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                dump_str(key, out);
                out.push(':');
                dumps(value, out);
            }
            out.push('}');
        }
    }
}

fn dump_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

// --------------------------------------------------------------------------------------
// timestamps.iso_utc

/// Python's `str.isspace` (what `\s` matches in a `str` regex).
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn two(b: &[u8], at: usize) -> Option<u32> {
    let (x, y) = (*b.get(at)?, *b.get(at + 1)?);
    if x.is_ascii_digit() && y.is_ascii_digit() {
        Some(((x - b'0') * 10 + (y - b'0')) as u32)
    } else {
        None
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 (proleptic Gregorian), and back (H. Hinnant's algorithms).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + if m <= 2 { 1 } else { 0 }, m, d)
}

/// Mirrors `timestamps.iso_utc` (regex `TIMESTAMP_PATTERN`, then datetime arithmetic).
pub(crate) fn iso_utc(value: &str) -> Option<String> {
    let text = value.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !b[0..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let year: i64 = text[0..4].parse().ok()?;
    let (month, day, hour, minute, second) = (two(b, 5)?, two(b, 8)?, two(b, 11)?, two(b, 14)?, two(b, 17)?);
    // the tail: fraction? \s* zone? (\s*UTC)? end
    let mut at = 19;
    let mut digits = String::new();
    if matches!(b.get(at), Some(b'.' | b',')) && matches!(b.get(at + 1), Some(b'0'..=b'9')) {
        at += 1;
        let start = at;
        while matches!(b.get(at), Some(b'0'..=b'9')) {
            at += 1;
        }
        digits.push_str(&text[start..at.min(start + 6)]);
    }
    while digits.len() < 6 {
        digits.push('0');
    }
    let skip_ws = |mut at: usize| {
        while let Some(c) = text[at..].chars().next() {
            if !py_isspace(c) {
                break;
            }
            at += c.len_utf8();
        }
        at
    };
    at = skip_ws(at);
    let mut offset: Option<(i64, i64)> = None; // (sign, minutes)
    if matches!(b.get(at), Some(b'Z' | b'z')) {
        at += 1;
    } else if text[at..].starts_with("UTC") {
        at += 3;
    } else if matches!(b.get(at), Some(b'+' | b'-')) {
        let sign = if b[at] == b'-' { -1 } else { 1 };
        let hours = two(b, at + 1)?;
        let mut next = at + 3;
        if b.get(next) == Some(&b':') {
            next += 1;
        }
        let minutes = two(b, next)?;
        at = next + 2;
        offset = Some((sign, (hours * 60 + minutes) as i64));
    }
    let before = at;
    at = skip_ws(at);
    if text[at..].starts_with("UTC") {
        at += 3;
    } else {
        at = before;
    }
    if at != b.len() {
        return None;
    }
    // datetime(...) validation
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let Some((sign, minutes)) = offset else {
        return Some(format!("{}T{}.{}Z", &text[..10], &text[11..19], digits));
    };
    let total = days_from_civil(year, month, day) * 86400 + (hour * 3600 + minute * 60 + second) as i64 - sign * minutes * 60;
    let (days, secs) = (total.div_euclid(86400), total.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    if !(1..=9999).contains(&y) {
        return None; // OverflowError
    }
    // years below 1000 zero-padded, as timestamps.iso_utc writes them
    Some(format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{}Z", y, m, d, secs / 3600, secs / 60 % 60, secs % 60, digits))
}

// --------------------------------------------------------------------------------------
// Arrow string_view columns

/// One nullable column in Arrow's `string_view` layout (16-byte views, strings of up to 12
/// bytes inline, longer ones in data buffers). Why not `columns::StringColumn`
/// (`large_string`): Polars keeps strings as views, and converting a `large_string` array
/// costs ~11 ns per value (all values, nulls included: ~1.3 us per Sysmon record),
/// against ~0.2 ns for a `string_view` one, which it adopts as is.
///
/// Only the values set are kept while the frame is built, with their rows; the views of
/// the whole column (nulls included) are laid out in one pass when the frame is taken.
/// Most columns of a mixed log are sparse (a third of the cells are set on the SigmaHQ
/// samples), and padding each with nulls up to every value it got wrote all views row
/// by row across ~100 columns (13 MB per 8,000-row frame, far out of cache); appending
/// here touches one cache line per column (bench/RESULTS.md, session 9).
#[derive(Default)]
struct ViewColumn {
    /// The views of the rows set, in row order.
    views: Vec<[u8; 16]>,
    /// Their rows, increasing.
    rows: Vec<u32>,
    buffers: Vec<Vec<u8>>,
}

/// A data buffer is closed past this size (view offsets are 32-bit).
const VIEW_BUFFER_LIMIT: usize = 1 << 30;

/// The view of a string of at most 12 bytes (length, then the bytes), made in registers
/// from at most two overlapping loads. A view assembled on the stack by a variable-length
/// copy and then read back whole stalled on store forwarding: ~3/4 of the samples in
/// `RowWriter::finish` fell on that read.
#[inline]
fn inline_view(bytes: &[u8]) -> u128 {
    let len = bytes.len();
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as u128;
    // Overlapping loads read the same bytes into the same places, so OR joins them.
    let data = match len {
        8..=12 => u64::from_le_bytes(bytes[..8].try_into().unwrap()) as u128 | u32_at(len - 4) << ((len - 4) * 8),
        4..=7 => u32_at(0) | u32_at(len - 4) << ((len - 4) * 8),
        _ => bytes.iter().rev().fold(0u128, |acc, &b| acc << 8 | b as u128),
    };
    len as u128 | data << 32
}

/// One column's Arrow buffers, ready to hand to Python: (validity or None when there is
/// no null, views, data buffers).
type ColumnParts = (Option<Vec<u8>>, Vec<u8>, Vec<Vec<u8>>);

impl ViewColumn {
    /// Room for `capacity` values (a frame's rows: reserved, not touched).
    fn with_capacity(capacity: usize) -> Self {
        ViewColumn { views: Vec::with_capacity(capacity), rows: Vec::with_capacity(capacity), buffers: Vec::new() }
    }

    /// Sets `row` (after every row set so far) to `value`.
    fn put_str(&mut self, row: usize, value: &str) {
        let bytes = value.as_bytes();
        let view = if bytes.len() <= 12 {
            inline_view(bytes)
        } else {
            if self.buffers.last().is_none_or(|b| b.len() + bytes.len() > VIEW_BUFFER_LIMIT) {
                self.buffers.push(Vec::with_capacity(bytes.len().max(1 << 16)));
            }
            let index = self.buffers.len() - 1;
            let buffer = &mut self.buffers[index];
            let prefix = u32::from_le_bytes(bytes[..4].try_into().unwrap());
            let view = bytes.len() as u128 | (prefix as u128) << 32 | (index as u128) << 64 | (buffer.len() as u128) << 96;
            buffer.extend_from_slice(bytes);
            view
        };
        self.views.push(view.to_le_bytes());
        self.rows.push(row as u32);
    }

    /// Drops the values of rows from `rows` on (a builder rolled back to a mark); their
    /// bytes stay unreferenced in the data buffers.
    fn clear_from(&mut self, rows: usize) {
        let kept = self.rows.partition_point(|&row| (row as usize) < rows);
        self.views.truncate(kept);
        self.rows.truncate(kept);
    }

    /// The column's first `height` rows as buffers (moved out, no copy when no row is
    /// null: see `arrow_export`).
    fn into_parts(self, height: usize) -> ColumnParts {
        debug_assert!(self.rows.last().is_none_or(|&row| (row as usize) < height));
        if self.views.len() == height {
            return (None, flatten_views(self.views), self.buffers); // rows are 0..height
        }
        let mut views = vec![[0u8; 16]; height];
        let mut validity = vec![0u8; height.div_ceil(8)];
        for (&row, view) in self.rows.iter().zip(&self.views) {
            let row = row as usize;
            views[row] = *view;
            validity[row / 8] |= 1 << (row % 8);
        }
        (Some(validity), flatten_views(views), self.buffers)
    }
}

// --------------------------------------------------------------------------------------
// the shared column builder (frames.ColumnBuilder)

#[derive(Default)]
struct Builder {
    names: Vec<Box<str>>,
    index: FastMap<Box<str>, u32>,
    columns: Vec<ViewColumn>,
    /// Per column: 1 + its entry in the row being built, 0 when absent from it.
    in_row: Vec<u32>,
    height: usize,
    /// The rows a frame will have (`EvtxUnit.step`'s `frame_rows`): new columns reserve them.
    frame_rows: usize,
}

impl Builder {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.index.insert(name.into(), id);
        self.columns.push(ViewColumn::with_capacity(self.frame_rows));
        self.in_row.push(0);
        id
    }

    fn truncate(&mut self, height: usize, width: usize) {
        for name in self.names.drain(width..) {
            self.index.remove(&name);
        }
        self.columns.truncate(width);
        self.in_row.truncate(width);
        for column in &mut self.columns {
            column.clear_from(height);
        }
        self.height = height;
    }
}

/// One row being built: a Python `Row` dict (`row[name] = value`, `name in row`).
struct RowWriter<'b, 'n> {
    builder: &'b mut Builder,
    /// The record's arena: values made here (timestamps, positions) live as long as its JSON.
    bump: &'n Bump,
    entries: BumpVec<'n, (u32, Option<Cow<'n, str>>)>,
    name: String, // scratch for composed names
}

impl<'b, 'n> RowWriter<'b, 'n> {
    fn new(builder: &'b mut Builder, bump: &'n Bump) -> Self {
        RowWriter { builder, bump, entries: BumpVec::with_capacity_in(64, bump), name: String::new() }
    }

    fn set(&mut self, name: &str, value: Option<Cow<'n, str>>) {
        let id = self.builder.intern(name);
        self.set_id(id, value);
    }

    fn set_id(&mut self, id: u32, value: Option<Cow<'n, str>>) {
        let slot = self.builder.in_row[id as usize];
        if slot == 0 {
            self.entries.push((id, value));
            self.builder.in_row[id as usize] = self.entries.len() as u32;
        } else {
            self.entries[slot as usize - 1].1 = value;
        }
    }

    fn entry(&self, name: &str) -> Option<&Option<Cow<'n, str>>> {
        let id = *self.builder.index.get(name)?;
        match self.builder.in_row[id as usize] {
            0 => None,
            slot => Some(&self.entries[slot as usize - 1].1),
        }
    }

    /// `row.get(name)` as a string (None when absent or null).
    fn get_str(&self, name: &str) -> Option<&str> {
        self.entry(name).and_then(|v| v.as_deref())
    }

    /// `_put`: the first writer keeps `name`, a clash goes to `dotted`.
    fn put(&mut self, name: &str, value: Option<Cow<'n, str>>, dotted: &str) {
        self.put_or(name, value, |out| out.push_str(dotted));
    }

    /// `put` with the clash name written by `dotted` into a reused buffer, only on a clash
    /// (rare): one name lookup and no allocation per value otherwise. Interning `name`
    /// before knowing whether it is free creates no stray column: a clash means that
    /// `name` is already set in this row.
    fn put_or(&mut self, name: &str, value: Option<Cow<'n, str>>, dotted: impl FnOnce(&mut String)) {
        let id = self.builder.intern(name);
        if self.builder.in_row[id as usize] == 0 {
            return self.set_id(id, value);
        }
        let mut buffer = std::mem::take(&mut self.name);
        buffer.clear();
        dotted(&mut buffer);
        self.set(&buffer, value);
        self.name = buffer;
    }

    /// Appends the row to the columns (`ColumnBuilder.add`).
    fn finish(self) {
        let builder = self.builder;
        let height = builder.height;
        for (id, value) in self.entries {
            if let Some(text) = value {
                builder.columns[id as usize].put_str(height, &text);
            }
            builder.in_row[id as usize] = 0;
        }
        builder.height = height + 1;
    }
}

fn joined(parts: &[&str]) -> String {
    parts.concat()
}

// --------------------------------------------------------------------------------------
// normalise.normalise_evtx_json and its helpers

struct Tables {
    /// `fields.CHANNEL_CANONICAL` (lower-case name -> canonical spelling).
    channels: FastMap<String, String>,
    /// `fields.SYSTEM_ATTRIBUTE_RENAMES` as (element, attribute, name): a handful.
    renames: Vec<(String, String, String)>,
}

/// Mirrors `normalise_evtx_json`; the record must be `{"Event": {...}, ...}` (checked by the caller).
fn normalise_evtx<'n>(record: &'n Node<'n>, event: &'n [(&'n str, Node<'n>)], row: &mut RowWriter<'_, 'n>, tables: &Tables) {
    if let Some((_, Node::Obj(system))) = event.iter().find(|(k, _)| *k == "System") {
        flatten_system(system, row, tables);
    }
    for (key, value) in event {
        match *key {
            "System" | ATTRS => {}
            "EventData" => flatten_event_data(value, row),
            "UserData" => flatten_user_data(value, row),
            _ => flatten_dotted(value, key, row),
        }
    }
    if let Node::Obj(items) = *record {
        for (key, value) in items {
            if *key != "Event" {
                flatten_dotted(value, key, row);
            }
        }
    }
    if let Some(channel) = row.entry("Channel").cloned() {
        let canonical = channel.map(|name| match canonical_channel(&tables.channels, &name) {
            Some(spelling) => Cow::Borrowed(row.bump.alloc_str(spelling) as &str),
            None => name,
        });
        row.set("Channel", canonical);
    }
    let stamp = row.get_str("TimeCreated").and_then(iso_utc).map(|stamp| &*row.bump.alloc_str(&stamp));
    if let Some(stamp) = stamp {
        row.set("TimeCreated", Some(Cow::Borrowed(stamp)));
    }
    row.set(TIMESTAMP_COL, stamp.map(Cow::Borrowed));
}

/// Mirrors `fields.canonical_channel` (`str.lower()`; ASCII names without allocating).
fn canonical_channel<'t>(channels: &'t FastMap<String, String>, name: &str) -> Option<&'t str> {
    let mut buffer = [0u8; 128];
    if name.is_ascii() && name.len() <= buffer.len() {
        let lower = &mut buffer[..name.len()];
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        let lower = std::str::from_utf8(lower).ok()?;
        return channels.get(lower).map(String::as_str);
    }
    channels.get(&name.to_lowercase()).map(String::as_str)
}

/// Mirrors `_flatten_system`.
fn flatten_system<'n>(system: &'n [(&'n str, Node<'n>)], row: &mut RowWriter<'_, 'n>, tables: &Tables) {
    for (key, value) in system {
        match value {
            Node::Obj(items) => flatten_system_element(key, items, row, tables),
            Node::Null => {}
            _ => row.set(key, to_str(value)),
        }
    }
}

/// Mirrors `_flatten_system_element` and `_system_name`.
fn flatten_system_element<'n>(key: &str, value: &'n [(&'n str, Node<'n>)], row: &mut RowWriter<'_, 'n>, tables: &Tables) {
    for (sub, subvalue) in value {
        match (*sub, *subvalue) {
            (ATTRS, Node::Obj(attrs)) => {
                for (attr, attr_value) in attrs.iter() {
                    match tables.renames.iter().find(|(k, a, _)| k == key && a == attr) {
                        Some((_, _, name)) => row.set(name, to_str(attr_value)),
                        None => {
                            let mut name = std::mem::take(&mut row.name);
                            name.clear();
                            name.push_str(key);
                            name.push('_');
                            name.push_str(attr);
                            row.set(&name, to_str(attr_value));
                            row.name = name;
                        }
                    }
                }
            }
            (TEXT, _) => row.set(key, to_str(subvalue)),
            _ => {
                let name = joined(&[key, "_", sub]);
                row.set(&name, to_str(subvalue));
            }
        }
    }
}

/// Mirrors `_flatten_event_data`.
fn flatten_event_data<'n>(data: &'n Node<'n>, row: &mut RowWriter<'_, 'n>) {
    let items = match *data {
        Node::Null => return,
        Node::Obj(items) => items,
        _ => return row.put("EventData", to_str(data), "EventData.#value"),
    };
    for (key, value) in items {
        let key: &str = key;
        match value {
            Node::Str(_) | Node::Int(_) | Node::Null if key != TEXT => row.put_or(key, to_str(value), |out| out.extend(["EventData.", key])),
            Node::Obj(attrs) if key == ATTRS => {
                for (attr, attr_value) in attrs.iter() {
                    row.put_or(&joined(&["EventData_", attr]), to_str(attr_value), |out| out.extend(["EventData.#attributes.", attr]));
                }
            }
            _ if key == "Data" => flatten_unnamed_data(value, row),
            _ if key == TEXT => row.put("EventData", text_of(value), "EventData.#text"),
            _ => put_data_value(row, key, value, &joined(&["EventData.", key])),
        }
    }
}

/// Mirrors `_text`.
fn text_of<'n>(value: &'n Node<'n>) -> Option<Cow<'n, str>> {
    match value.get(TEXT) {
        Some(text) => to_str(text),
        None => to_str(value),
    }
}

/// Mirrors `_put_data_value`.
fn put_data_value<'n>(row: &mut RowWriter<'_, 'n>, name: &str, value: &'n Node<'n>, dotted: &str) {
    match value.get(TEXT) {
        Some(text) => {
            row.put(name, to_str(text), dotted);
            if let Some(Node::Obj(attrs)) = value.get(ATTRS) {
                for (attr, attr_value) in attrs.iter() {
                    row.put(&joined(&[name, "_", attr]), to_str(attr_value), &joined(&[dotted, ".#attributes.", attr]));
                }
            }
        }
        None => row.put(name, to_str(value), dotted),
    }
}

/// Mirrors `_flatten_unnamed_data`.
fn flatten_unnamed_data<'n>(value: &'n Node<'n>, row: &mut RowWriter<'_, 'n>) {
    let mut value = value;
    if let Some(inner @ Node::Arr(_)) = value.get(TEXT) {
        if value.get(ATTRS).is_none() {
            value = inner;
        }
    }
    match value {
        Node::Arr(items) => {
            for (index, item) in items.iter().enumerate() {
                put_data_item(row, item, &format!("Data_{}", index + 1));
            }
        }
        _ => put_data_item(row, value, "Data"),
    }
}

/// Mirrors `_put_data_item`.
fn put_data_item<'n>(row: &mut RowWriter<'_, 'n>, item: &'n Node<'n>, default_name: &str) {
    let dotted = |out: &mut String| out.extend(["EventData.", default_name]);
    if let Node::Obj(_) = item {
        if let Some(Node::Str(name)) = item.get(ATTRS).and_then(|attrs| attrs.get("Name")) {
            return row.put_or(name, item.get(TEXT).and_then(to_str), dotted);
        }
        if let Some(text) = item.get(TEXT) {
            return row.put_or(default_name, to_str(text), dotted);
        }
    }
    row.put_or(default_name, to_str(item), dotted);
}

/// Mirrors `_flatten_user_data` / `_collect_leaves` (leaves are put in collection order).
fn flatten_user_data<'n>(data: &'n Node<'n>, row: &mut RowWriter<'_, 'n>) {
    collect_leaves(data, "UserData", "UserData", row);
}

fn collect_leaves<'n>(node: &'n Node<'n>, path: &str, name: &str, row: &mut RowWriter<'_, 'n>) {
    let Node::Obj(items) = *node else {
        return row.put(name, to_str(node), path);
    };
    for (key, value) in items {
        match (*key, *value) {
            (ATTRS, Node::Obj(attrs)) => {
                for (attr, attr_value) in attrs.iter() {
                    if *attr != "xmlns" && !attr.starts_with("xmlns:") {
                        row.put(attr, to_str(attr_value), &joined(&[path, ".", attr]));
                    }
                }
            }
            (TEXT, _) => row.put(name, to_str(value), path),
            _ => collect_leaves(value, &joined(&[path, ".", key]), key, row),
        }
    }
}

/// Mirrors `flatten_dotted`.
fn flatten_dotted<'n>(value: &'n Node<'n>, prefix: &str, row: &mut RowWriter<'_, 'n>) {
    let items = match *value {
        Node::Obj(items) if !items.is_empty() => items,
        _ => return row.set(prefix, to_str(value)),
    };
    for (key, sub) in items {
        let name = if prefix.is_empty() { key.to_string() } else { joined(&[prefix, ".", key]) };
        match sub {
            Node::Obj(inner) if !inner.is_empty() => flatten_dotted(sub, &name, row),
            _ => row.set(&name, to_str(sub)),
        }
    }
}

/// `f"record {id}"` (`_row`'s position) in the record's arena, without the formatting
/// machinery, which cost ~1.5% of a record's native step.
fn record_position(id: u64, bump: &Bump) -> &str {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = id;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut out = BumpString::with_capacity_in(7 + digits.len() - at, bump);
    out.push_str("record ");
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
    out.into_bump_str()
}

/// Mirrors `evtx_reader._row` for a record this side renders; `Err` hands it back.
fn render_record(builder: &mut Builder, tables: &Tables, source: &str, id: u64, timestamp: &evtx::Timestamp, json: &str, bump: &Bump) -> Result<(), HandBack> {
    let record = JsonReader::parse(json, bump)?;
    let Some(&Node::Obj(event)) = record.get("Event") else {
        return Err(HandBack); // Python raises ShapeError (or fails on a non-object)
    };
    if !matches!(record, Node::Obj(_)) {
        return Err(HandBack);
    }
    let mut row = RowWriter::new(builder, bump);
    normalise_evtx(&record, event, &mut row, tables);
    if row.get_str("EventRecordID").is_none() {
        row.set("EventRecordID", Some(Cow::Owned(id.to_string())));
    }
    if row.get_str(TIMESTAMP_COL).is_none() {
        row.set(TIMESTAMP_COL, iso_utc(&timestamp_text(timestamp)).map(Cow::Owned));
    }
    row.set(SOURCE_COL, Some(Cow::Borrowed(source)));
    let position = record_position(id, bump);
    row.set(POSITION_COL, Some(Cow::Borrowed(position)));
    row.finish();
    Ok(())
}

// --------------------------------------------------------------------------------------
// Python classes

/// A shared builder of string columns (the native `frames.ColumnBuilder`), filled by
/// `EvtxUnit.step` and, for records handed back, by `add_row`.
#[pyclass(module = "sigmahunt_native")]
pub struct EvtxColumns {
    builder: Builder,
    tables: Arc<Tables>,
    /// Tests only: hand back every n-th record (0: never) to exercise the Python side.
    hand_back_every: u64,
}

#[pymethods]
impl EvtxColumns {
    /// `channels`: `fields.CHANNEL_CANONICAL`; `renames`: `fields.SYSTEM_ATTRIBUTE_RENAMES`
    /// (passed in so that Python's tables stay the only copy).
    #[new]
    #[pyo3(signature = (channels, renames, hand_back_every = 0))]
    fn new(channels: HashMap<String, String>, renames: HashMap<(String, String), String>, hand_back_every: u64) -> Self {
        let tables = Tables { channels: channels.into_iter().collect(), renames: renames.into_iter().map(|((k, a), n)| (k, a, n)).collect() };
        EvtxColumns { builder: Builder::default(), tables: Arc::new(tables), hand_back_every }
    }

    #[getter]
    fn height(&self) -> usize {
        self.builder.height
    }

    /// `(height, width)`, to `rollback` to.
    fn mark(&self) -> (usize, usize) {
        (self.builder.height, self.builder.names.len())
    }

    /// Drops the rows added since `mark`, and the columns only they created.
    fn rollback(&mut self, height: usize, width: usize) -> PyResult<()> {
        if height > self.builder.height || width > self.builder.names.len() {
            return Err(PyValueError::new_err("mark is not from this builder's current frame"));
        }
        self.builder.truncate(height, width);
        Ok(())
    }

    /// Appends one Python `Row` (`dict[str, str | None]`), as `ColumnBuilder.add`.
    fn add_row(&mut self, row: &Bound<'_, PyDict>) -> PyResult<()> {
        let mut owned: Vec<(String, Option<String>)> = Vec::with_capacity(row.len());
        for (key, value) in row.iter() {
            let value: Option<String> = if value.is_none() { None } else { Some(value.extract()?) };
            owned.push((key.extract()?, value));
        }
        let bump = Bump::new();
        let mut writer = RowWriter::new(&mut self.builder, &bump);
        for (name, value) in &owned {
            writer.set(name, value.as_deref().map(Cow::Borrowed));
        }
        writer.finish();
        Ok(())
    }

    /// The rows as an `ExportedFrame` (columns in creation order, Arrow `string_view`
    /// buffers: see `ViewColumn`); the builder starts afresh.
    fn take(&mut self, py: Python<'_>) -> ExportedFrame {
        let builder = std::mem::take(&mut self.builder);
        let height = builder.height;
        // Laying out the sparse columns writes most of their views: done without the GIL.
        let columns = py.detach(|| {
            let names = builder.names.into_iter();
            names
                .zip(builder.columns)
                .map(|(name, column)| {
                    let (validity, views, buffers) = column.into_parts(height);
                    ExportColumn::new(name.into(), validity, views, buffers)
                })
                .collect()
        });
        ExportedFrame::new(height, columns)
    }
}

/// One parser item, in `records_json()` order.
enum Item {
    Record { id: u64, timestamp: evtx::Timestamp, json: String },
    Error(String),
    /// `EvtxUnit.step`'s refused file (its index), not a parser item.
    Refused(usize),
}

/// The Display chain `evtx`'s Python package puts in its RuntimeError messages.
fn error_message(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

/// `timestamp_to_py_string` of the Python package.
fn timestamp_text(timestamp: &evtx::Timestamp) -> String {
    let text = timestamp.to_string();
    if text.ends_with("UTC") {
        text
    } else {
        format!("{text} UTC")
    }
}

/// A file's bytes as the caller gave them (`bytes`, or a read-only `mmap`), read in place:
/// files are tens of MB, and copying them cost a pass over memory and the page faults of
/// a fresh allocation. A writable buffer (`bytearray`) is copied, since Python could
/// change it while the file is read without the GIL.
pub struct FileBytes {
    buffer: Option<PyBuffer<u8>>,
    copy: Vec<u8>,
}

impl FileBytes {
    fn new(py: Python<'_>, buffer: PyBuffer<u8>) -> PyResult<Self> {
        if readonly_bytes(&buffer).is_some() {
            return Ok(FileBytes { buffer: Some(buffer), copy: Vec::new() });
        }
        if !buffer.is_c_contiguous() {
            return Err(PyValueError::new_err("expected a contiguous buffer"));
        }
        Ok(FileBytes { buffer: None, copy: buffer.to_vec(py)? })
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        match &self.buffer {
            Some(buffer) => readonly_bytes(buffer).unwrap_or_default(), // checked when made
            None => &self.copy,
        }
    }
}

/// A unit's file bytes shared with its parser: the unit keeps every file's buffer until
/// it is dropped (with the GIL), since releasing a Python buffer takes the GIL, which
/// the reading loop runs without.
#[derive(Clone)]
struct SharedBytes(Arc<FileBytes>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// One EVTX file being read: the parser's chunk iterator and the items of the current
/// chunk (a chunk is rendered whole, as `PyRecordsIterator` does, so items and errors
/// come in the same order).
struct FileReader {
    chunks: Chunks,
    settings: Arc<ParserSettings>,
    pending: VecDeque<Item>,
    finished: bool,
}

/// Where a file's chunks come from.
enum Chunks {
    /// The parser's own chunk iterator, which copies each 64 KiB chunk out of the file.
    Parser(IntoIterChunks<Cursor<SharedBytes>>),
    /// The chunks read in place (see `in_place_chunks`): the file's bytes, and per chunk
    /// slot its offset and header, None for a never-used (all-zero) slot.
    InPlace { bytes: SharedBytes, slots: VecDeque<(usize, Option<EvtxChunkHeader>)> },
}

const FILE_HEADER_BLOCK: usize = 4096;
const CHUNK_BYTES: usize = 65536;

/// The chunk slots of a file whose chunks the parser's iterator would yield exactly as
/// they lie (in order, each parsed from the same 64 KiB), or None. That holds when the
/// header block is 4096 bytes, the file is that plus whole chunks, and every slot is
/// all zeros (skipped) or a chunk header the parser reads: the iterator then stops at the
/// end of the file, with no error. Reading such chunks in place saves the copy of each
/// chunk and its allocation: ~1/3 of the native time of a folder of small files, where a
/// file is one chunk (bench/RESULTS.md, session 10). Any other file goes through the
/// parser's iterator, whose error reports the Python package shares.
fn in_place_chunks(data: &[u8]) -> Option<VecDeque<(usize, Option<EvtxChunkHeader>)>> {
    if data.len() < FILE_HEADER_BLOCK || u16::from_le_bytes([data[40], data[41]]) as usize != FILE_HEADER_BLOCK {
        return None;
    }
    let body = data.len() - FILE_HEADER_BLOCK;
    if body % CHUNK_BYTES != 0 {
        return None;
    }
    let mut slots = VecDeque::with_capacity(body / CHUNK_BYTES);
    for offset in (FILE_HEADER_BLOCK..data.len()).step_by(CHUNK_BYTES) {
        let chunk = &data[offset..offset + CHUNK_BYTES];
        if chunk.iter().all(|&b| b == 0) {
            slots.push_back((offset, None));
            continue;
        }
        slots.push_back((offset, Some(EvtxChunkHeader::from_bytes(chunk).ok()?)));
    }
    Some(slots)
}

/// A chunk's items, in order: its records rendered to JSON, or its errors. `ids`: the
/// first and last record ids its header declares.
fn render_chunk(chunk: Result<EvtxChunk<'_>, evtx::err::ChunkError>, ids: (u64, u64), pending: &mut VecDeque<Item>) {
    let mut chunk = match chunk {
        Ok(chunk) => chunk,
        Err(error) => {
            let (first_id, last_id) = ids;
            let message = format!("Failed to parse chunk containing record IDs {first_id}..{last_id}: {}", error_message(&error));
            return pending.push_back(Item::Error(message));
        }
    };
    for record in chunk.iter() {
        let item = match record {
            Err(error) => Item::Error(error_message(&error)),
            Ok(record) => {
                let id = record.event_record_id;
                match record.into_json() {
                    Ok(rendered) => Item::Record { id, timestamp: rendered.timestamp, json: rendered.data },
                    Err(source) => {
                        let error = EvtxError::FailedToParseRecord { record_id: id, source: Box::new(source) };
                        Item::Error(error_message(&error))
                    }
                }
            }
        };
        pending.push_back(item);
    }
}

impl FileReader {
    /// `Err`: the parser refuses the file header (the Python reader then reads the file,
    /// to report it in its own words).
    fn open(bytes: SharedBytes) -> Result<Self, String> {
        let settings = ParserSettings::default();
        let parser = EvtxParser::from_read_seek(Cursor::new(bytes.clone())).map_err(|e| error_message(&e))?.with_configuration(settings.clone());
        let chunks = match in_place_chunks(bytes.as_ref()) {
            Some(slots) => Chunks::InPlace { bytes, slots },
            None => Chunks::Parser(parser.into_chunks()),
        };
        Ok(FileReader { chunks, settings: Arc::new(settings), pending: VecDeque::new(), finished: false })
    }

    /// Mirrors `PyRecordsIterator.next_record` filling its per-chunk queue.
    fn refill(&mut self) {
        match &mut self.chunks {
            Chunks::Parser(chunks) => {
                let Some(next) = chunks.next() else {
                    self.finished = true;
                    return;
                };
                match next {
                    Ok(mut chunk_data) => {
                        let ids = (chunk_data.header.first_event_record_id, chunk_data.header.last_event_record_id);
                        render_chunk(chunk_data.parse(self.settings.clone()), ids, &mut self.pending);
                    }
                    Err(error) => self.pending.push_back(Item::Error(error_message(&error))),
                }
            }
            Chunks::InPlace { bytes, slots } => loop {
                let Some((offset, header)) = slots.pop_front() else {
                    self.finished = true;
                    return;
                };
                let Some(header) = header else { continue }; // never used: the parser skips it
                let data = &bytes.as_ref()[offset..offset + CHUNK_BYTES];
                let ids = (header.first_event_record_id, header.last_event_record_id);
                render_chunk(EvtxChunk::new(data, &header, self.settings.clone()), ids, &mut self.pending);
                return;
            },
        }
    }

    /// Renders records until the builder is full, an error or a handed-back record
    /// comes, or the file ends (`STEP_DONE`); the ids of the rows added go to `ids`.
    fn run(&mut self, builder: &mut Builder, tables: &Tables, source: &str, frame_rows: usize, hand_back_every: u64, ids: &mut Vec<u64>) -> (u8, Option<Item>) {
        let mut bump = Bump::new(); // the current record's JSON values, reset per record
        loop {
            if builder.height >= frame_rows {
                return (STEP_FULL, None);
            }
            let Some(item) = self.pending.pop_front() else {
                if self.finished {
                    return (STEP_DONE, None);
                }
                self.refill();
                continue;
            };
            match item {
                Item::Record { id, timestamp, json } => {
                    let forced = hand_back_every > 0 && id % hand_back_every == 0;
                    bump.reset();
                    if !forced && render_record(builder, tables, source, id, &timestamp, &json, &bump).is_ok() {
                        ids.push(id);
                    } else {
                        return (STEP_RECORD, Some(Item::Record { id, timestamp, json }));
                    }
                }
                error => return (STEP_ERROR, Some(error)), // the queue holds records and errors only
            }
        }
    }
}

/// `evtx_reader.scan_chunks` reduced to the files its ledger reports nothing for: the id
/// ranges the chunk headers promise, in file order, or None when any chunk slot would be
/// reported (missing, cut short, corrupt header, impossible range) or a chunk is
/// truncated. A file whose records came exactly as these ranges, with no parser error
/// and no record handed back, is complete: its ledger would report nothing, so Python
/// skips building one (per small file that ledger cost more than parsing it did).
fn promised_ranges(data: &[u8]) -> Option<Vec<(u64, u64)>> {
    const MAX_RECORDS_PER_CHUNK: u64 = (CHUNK_BYTES / 24) as u64;
    let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().unwrap());
    let declared = if data.len() >= 44 { u16::from_le_bytes([data[42], data[43]]) as usize } else { 0 };
    let present = data.len().saturating_sub(FILE_HEADER_BLOCK).div_ceil(CHUNK_BYTES);
    let mut ranges = Vec::new();
    for index in 0..declared.max(present) {
        let offset = FILE_HEADER_BLOCK + index * CHUNK_BYTES;
        if offset + CHUNK_BYTES > data.len() {
            return None; // missing, or truncated: the ledger reports (or may report) it
        }
        if &data[offset..offset + 8] != b"ElfChnk\x00" {
            if data[offset..offset + 512].iter().all(|&b| b == 0) {
                continue; // a never-used slot
            }
            return None;
        }
        let (first, last) = (u64_at(offset + 24), u64_at(offset + 32));
        if last < first || last - first >= MAX_RECORDS_PER_CHUNK {
            return None;
        }
        ranges.push((first, last));
    }
    Some(ranges)
}

/// Follows a file's record ids against its promised ranges (see `promised_ranges`).
struct Promise {
    ranges: Vec<(u64, u64)>,
    /// The range the next id must continue, and that id.
    at: usize,
    next: u64,
    kept: bool,
}

impl Promise {
    fn new(ranges: Option<Vec<(u64, u64)>>) -> Self {
        let (kept, ranges) = match ranges {
            Some(ranges) => (true, ranges),
            None => (false, Vec::new()),
        };
        let next = ranges.first().map_or(0, |r| r.0);
        Promise { ranges, at: 0, next, kept }
    }

    fn see(&mut self, ids: &[u64]) {
        for &id in ids {
            if !self.kept {
                return;
            }
            match self.ranges.get(self.at) {
                Some(&(_, last)) if id == self.next => {
                    if id == last {
                        self.at += 1;
                        self.next = self.ranges.get(self.at).map_or(0, |r| r.0);
                    } else {
                        self.next += 1;
                    }
                }
                _ => self.kept = false,
            }
        }
    }

    fn complete(&self) -> bool {
        self.kept && self.at == self.ranges.len()
    }
}

/// The file of a unit being read.
struct OpenFile {
    index: usize,
    reader: FileReader,
    promise: Promise,
    /// A parser error or a handed-back record came: Python's ledger decides.
    eventful: bool,
    /// The builder's (height, width) when the file was opened.
    start: (usize, usize),
}

/// What a step did to one file: `(index, start height, start width, ids, finished, complete)`.
struct Segment {
    index: usize,
    start: (usize, usize),
    ids: Vec<u64>,
    finished: bool,
    complete: bool,
}

/// A unit of EVTX files (`reader._outputs`) read one after the other into one builder.
/// Why one object for many files: a hunt over a collection of small files (a host's
/// `winevt\Logs`, SigmaHQ's samples) released and took back the GIL at every file, and
/// beside the other reading threads' Python each hand-over cost more than reading the
/// file did (bench/RESULTS.md, session 10). A step now reads on across files until a
/// frame is full or Python is needed.
#[pyclass(module = "sigmahunt_native")]
pub struct EvtxUnit {
    sources: Vec<String>,
    files: Vec<SharedBytes>,
    next: usize,
    open: Option<OpenFile>,
}

impl EvtxUnit {
    /// Opens the next file; `Err(index)` when the parser refuses it (or it lacks the
    /// EVTX signature), `Ok(false)` when no file is left.
    fn open_next(&mut self, builder: &Builder) -> Result<bool, usize> {
        let index = self.next;
        let Some(bytes) = self.files.get(index) else {
            return Ok(false);
        };
        self.next += 1;
        let data = bytes.as_ref();
        if !data.starts_with(b"ElfFile\x00") {
            return Err(index);
        }
        let promise = Promise::new(promised_ranges(data));
        let reader = FileReader::open(bytes.clone()).map_err(|_| index)?;
        let start = (builder.height, builder.names.len());
        self.open = Some(OpenFile { index, reader, promise, eventful: false, start });
        Ok(true)
    }

    fn run(&mut self, builder: &mut Builder, tables: &Tables, frame_rows: usize, hand_back_every: u64) -> (Vec<Segment>, u8, Option<Item>) {
        let mut segments = Vec::new();
        loop {
            if self.open.is_none() {
                if builder.height >= frame_rows {
                    return (segments, STEP_FULL, None);
                }
                match self.open_next(builder) {
                    Ok(true) => {}
                    Ok(false) => return (segments, STEP_DONE, None),
                    Err(index) => return (segments, STEP_REFUSED, Some(Item::Refused(index))),
                }
            }
            let file = self.open.as_mut().expect("opened above");
            let mut ids = Vec::new();
            let (kind, item) = file.reader.run(builder, tables, &self.sources[file.index], frame_rows, hand_back_every, &mut ids);
            file.promise.see(&ids);
            let finished = kind == STEP_DONE;
            file.eventful |= kind == STEP_ERROR || kind == STEP_RECORD;
            let complete = finished && !file.eventful && file.promise.complete();
            segments.push(Segment { index: file.index, start: file.start, ids, finished, complete });
            if finished {
                self.open = None;
                continue;
            }
            return (segments, kind, item);
        }
    }
}

#[pymethods]
impl EvtxUnit {
    /// `files`: `[(source, data), ...]`, `data` any bytes-like object (kept until the
    /// unit is dropped).
    #[new]
    fn new(py: Python<'_>, files: Vec<(String, PyBuffer<u8>)>) -> PyResult<Self> {
        let mut sources = Vec::with_capacity(files.len());
        let mut data = Vec::with_capacity(files.len());
        for (source, buffer) in files {
            sources.push(source);
            data.push(SharedBytes(Arc::new(FileBytes::new(py, buffer)?)));
        }
        Ok(EvtxUnit { sources, files: data, next: 0, open: None })
    }

    /// One step (GIL released): `(segments, kind, payload)`. `segments`: per file read in
    /// this step, in order, `(index, start_height, start_width, ids, finished, complete)`
    /// with `ids` the record ids of its rows added (u64 little-endian bytes), `start_*` the
    /// builder's size when the file was opened, `complete` (when finished) that its
    /// records came exactly as its chunk headers promise, with no error or record handed
    /// back. `kind` 0: every file read; 1: builder full (`frame_rows`); 2: parser error in
    /// the last segment's file (`payload` its message); 3: a record of that file handed
    /// back (`payload` = `(event_record_id, timestamp, json)`, as `records_json()` gives
    /// them); 4: file `payload` (an index) refused by the parser, for Python to read.
    fn step<'py>(&mut self, py: Python<'py>, columns: &mut EvtxColumns, frame_rows: usize) -> PyResult<(Bound<'py, PyList>, u8, Py<PyAny>)> {
        if frame_rows == 0 {
            return Err(PyRuntimeError::new_err("frame_rows must be at least 1"));
        }
        let tables = columns.tables.clone();
        let every = columns.hand_back_every;
        let builder = &mut columns.builder;
        builder.frame_rows = frame_rows;
        let (segments, kind, item) = py.detach(|| self.run(builder, &tables, frame_rows, every));
        let out = PyList::empty(py);
        for segment in segments {
            let ids: Vec<u8> = segment.ids.iter().flat_map(|id| id.to_le_bytes()).collect();
            let (height, width) = segment.start;
            out.append((segment.index, height, width, PyBytes::new(py, &ids), segment.finished, segment.complete))?;
        }
        let payload = match item {
            None => py.None(),
            Some(Item::Error(message)) => PyString::new(py, &message).into_any().unbind(),
            Some(Item::Record { id, timestamp, json }) => (id, timestamp_text(&timestamp), json).into_pyobject(py)?.into_any().unbind(),
            Some(Item::Refused(index)) => index.into_pyobject(py)?.into_any().unbind(),
        };
        Ok((out, kind, payload))
    }

    /// Stops reading the open file (too many parser errors in a row: see `evtx_reader`).
    fn skip(&mut self) {
        self.open = None;
    }

    /// Goes on from file `index` (the files from there read again, as if never started):
    /// after Python failed on an earlier file and dropped its rows and the later ones'.
    fn restart_at(&mut self, index: usize) {
        self.open = None;
        self.next = index.min(self.files.len());
    }
}

/// `iso_utc` for the parity tests (tests/test_native_evtx.py compares it with
/// `sigmahunt.ingest.timestamps.iso_utc` on generated strings): `cargo test` cannot link
/// a pyo3 extension module, so the Rust port is checked from Python.
#[pyfunction]
fn evtx_iso_utc(value: &str) -> Option<String> {
    iso_utc(value)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(evtx_iso_utc, m)?)?;
    m.add_class::<EvtxColumns>()?;
    m.add_class::<EvtxUnit>()?;
    m.add("EVTX_STEP_DONE", STEP_DONE)?;
    m.add("EVTX_STEP_FULL", STEP_FULL)?;
    m.add("EVTX_STEP_ERROR", STEP_ERROR)?;
    m.add("EVTX_STEP_RECORD", STEP_RECORD)?;
    m.add("EVTX_STEP_REFUSED", STEP_REFUSED)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_positions_are_written_in_decimal() {
        let bump = Bump::new();
        for id in [0u64, 7, 10, 12345, u64::MAX] {
            assert_eq!(record_position(id, &bump), format!("record {id}"));
        }
    }

    #[test]
    fn chunks_are_read_in_place_only_where_the_parser_reads_them_so() {
        let mut file = vec![0u8; FILE_HEADER_BLOCK];
        file[..8].copy_from_slice(b"ElfFile\x00");
        file[40..42].copy_from_slice(&(FILE_HEADER_BLOCK as u16).to_le_bytes());
        let mut chunk = vec![0u8; CHUNK_BYTES];
        chunk[..8].copy_from_slice(b"ElfChnk\x00");
        let with = |slots: &[&[u8]]| [file.as_slice()].iter().chain(slots).flat_map(|s| s.iter().copied()).collect::<Vec<u8>>();
        let zero = vec![0u8; CHUNK_BYTES];
        let found = in_place_chunks(&with(&[&chunk, &zero, &chunk])).expect("whole chunks");
        let kinds: Vec<(usize, bool)> = found.iter().map(|(offset, header)| (*offset, header.is_some())).collect();
        assert_eq!(kinds, [(4096, true), (4096 + CHUNK_BYTES, false), (4096 + 2 * CHUNK_BYTES, true)]);
        assert_eq!(in_place_chunks(&with(&[])).map(|s| s.len()), Some(0));
        assert!(in_place_chunks(&with(&[&chunk])[..FILE_HEADER_BLOCK + 100]).is_none()); // cut short
        let mut garbage = chunk.clone();
        garbage[0] = b'X';
        assert!(in_place_chunks(&with(&[&chunk, &garbage])).is_none()); // the parser reports it
        let mut odd_header = with(&[&chunk]);
        odd_header[41] = 0x02; // a header block of 512 bytes
        assert!(in_place_chunks(&odd_header).is_none());
        assert!(in_place_chunks(&file[..100]).is_none());
    }

    #[test]
    fn inline_views_hold_length_then_bytes() {
        for len in 0..=12usize {
            let text: String = (0..len).map(|i| (b'a' + i as u8) as char).collect();
            let mut expected = [0u8; 16];
            expected[..4].copy_from_slice(&(len as u32).to_le_bytes());
            expected[4..4 + len].copy_from_slice(text.as_bytes());
            assert_eq!(inline_view(text.as_bytes()).to_le_bytes(), expected, "length {len}");
        }
    }

    #[test]
    fn iso_utc_mirrors_python() {
        assert_eq!(iso_utc("2020-10-19 12:28:44.333").as_deref(), Some("2020-10-19T12:28:44.333000Z"));
        assert_eq!(iso_utc("2026-04-20T10:00:35.6466242Z UTC").as_deref(), Some("2026-04-20T10:00:35.646624Z"));
        assert_eq!(iso_utc("2020-10-19T12:28:44+02:00").as_deref(), Some("2020-10-19T10:28:44.000000Z"));
        assert_eq!(iso_utc("2020-10-19T00:28:44.5-0530").as_deref(), Some("2020-10-19T05:58:44.500000Z"));
        assert_eq!(iso_utc(" 2020-10-19T12:28:44.1 ").as_deref(), Some("2020-10-19T12:28:44.100000Z"));
        assert_eq!(iso_utc("2020-02-30 00:00:00"), None);
        assert_eq!(iso_utc("yesterday"), None);
    }
}
