//! The projected JSON-lines fast path: one pass over a chunk of flat JSON lines straight
//! into Arrow string columns of the wanted fields.
//!
//! Python twin (the reference): `sigmahunt.ingest.json_reader.fast_path_schema` followed by
//! `fast_flat_frame` under a `Projection`, i.e. Polars schema inference over the whole
//! chunk, then `pl.read_ndjson` with an all-String schema of the wanted columns. This
//! reader returns exactly the columns that pair reads, or declines (a reason string) so
//! that the twin runs unchanged. It declines on a superset of what the twin declines, and
//! on everything whose rendering it does not reproduce (see `Decline` uses below):
//!
//! * invalid UTF-8 anywhere, or a `\u` escape of a UTF-16 surrogate anywhere (the twin's
//!   `_SURROGATE_ESCAPE` byte scan, mirrored byte for byte);
//! * a non-blank line that is not exactly one strict-JSON object (Polars fails the chunk),
//!   or no record at all (Polars cannot infer a schema);
//! * any float, fraction or exponent anywhere (the twin's `_has_float`), and integers of
//!   more than 38 digits (beyond Polars' Int128);
//! * a top-level key named like `_NON_FLAT_KEYS`/`RESERVED_COLUMNS` or starting with
//!   `winlog.` (the twin's `_fast_path_schema`; the names are passed in from Python);
//! * a non-ASCII top-level key (Python's `str.lower` and Rust's differ on some scripts);
//! * an object or array as the value of a wanted key (the twin re-encodes those in
//!   `_with_nested_columns`; the corpus has none), a wanted key twice in one object;
//! * shapes whose Polars schema inference may fail: an object anywhere in an unwanted
//!   value, an array inside an array, one key holding both arrays and scalars;
//! * a wanted String value that looks like rendered JSON when the raw text has that key
//!   followed by an object or array (the twin's `_hides_nested_values`, mirrored).
//!
//! Why a hand-written JSON scanner rather than serde_json: every decision above is made on
//! the raw text (an integer's digits as written, a repeated key, where each line starts,
//! escapes or none), and values are kept as views into the chunk; serde_json's value
//! model normalises exactly what this reader must see, and copies what it must not.
//!
//! Values are rendered as Polars renders them into a String column: strings decoded,
//! integers as their digits (`-0` as `0`), booleans as `true`/`false`, null as null.
//! Columns are Arrow `string_view` arrays (Polars' own string layout, so importing one costs
//! no copy, unlike `large_string`: measured 6x cheaper over the corpus) whose long values
//! point into the chunk itself (buffer 0) unless they had escapes (buffer 1): string bytes
//! are never copied, only 16-byte views are written.


use memchr::memmem;
use pyo3::prelude::*;

use crate::buffers::{flatten_views, readonly_bytes, OwnedBuffer};
use crate::fast_map::FastMap;
use pyo3::buffer::PyBuffer;
use pyo3::types::PyBytes;

/// Why the chunk goes to the Python twin instead (returned to Python for diagnostics).
type Decline = &'static str;
type Parsed<T> = Result<T, Decline>;

/// Integers of more digits than this may exceed Polars' Int128 (i128::MAX has 39 digits).
const MAX_INT_DIGITS: usize = 38;
/// The shapes an unwanted key's values take (bits): Polars' schema inference fails on some
/// mixes of arrays and scalars, so a key holding both declines. Nothing deeper than an
/// array of scalars is accepted at all.
const KIND_SCALAR: u8 = 1;
const KIND_ARRAY: u8 = 2;

/// What one call needs besides the bytes (extracted while holding the GIL).
pub struct Request {
    /// Lowercased wanted names (`Projection.fields` plus `_NORMALISATION_INPUTS`).
    pub wanted: Vec<String>,
    /// Exact top-level names that make the twin decline (`_NON_FLAT_KEYS | RESERVED_COLUMNS`).
    pub refused: Vec<String>,
    /// Top-level name prefixes that make the twin decline (`winlog.`).
    pub refused_prefixes: Vec<String>,
    pub first_line: i64,
}

/// The wanted columns of a chunk, plus where each record sits.
pub struct Projected {
    pub names: Vec<String>,
    pub columns: Vec<ViewColumn>,
    pub rows: usize,
    /// Physical line number of each record (blank lines are skipped, as Polars does).
    pub lines: Vec<i64>,
    /// Start of each record's line, then the chunk's length: record i's raw text is
    /// `data[offsets[i]..offsets[i + 1]]`, as `json_reader.raw_columns` slices it.
    pub offsets: Vec<i64>,
}

/// One nullable Arrow `string_view` column being filled row by row: per value a 16-byte
/// view (length, then the bytes inline when at most 12, else a 4-byte prefix, the buffer
/// index and the offset in that buffer), a validity bitmap, and two data buffers: 0 is the
/// chunk (values without escapes are referenced where they lie), 1 holds decoded values.
#[derive(Default)]
pub struct ViewColumn {
    views: Vec<[u8; 16]>,
    decoded: Vec<u8>,
    validity: Vec<u8>,
    nulls: usize,
}

impl ViewColumn {
    fn len(&self) -> usize {
        self.views.len()
    }

    fn set_valid(&mut self, valid: bool) {
        let (byte, bit) = (self.views.len() / 8, self.views.len() % 8);
        if byte == self.validity.len() {
            self.validity.push(0);
        }
        if valid {
            self.validity[byte] |= 1 << bit;
        } else {
            self.nulls += 1;
        }
    }

    /// A value at `chunk[start..end]` (valid UTF-8, as the caller checked).
    fn push_ref(&mut self, chunk: &[u8], start: usize, end: usize) {
        let value = &chunk[start..end];
        if value.len() <= 12 {
            self.push_inline(value);
        } else {
            self.push_long(value, 0, start);
        }
    }

    /// A value that is not in the chunk as it is (decoded escapes, `-0` as `0`).
    fn push_owned(&mut self, value: &[u8]) {
        if value.len() <= 12 {
            self.push_inline(value);
        } else {
            let offset = self.decoded.len();
            self.decoded.extend_from_slice(value);
            self.push_long(value, 1, offset);
        }
    }

    fn push_inline(&mut self, value: &[u8]) {
        self.set_valid(true);
        let mut view = [0u8; 16]; // inline bytes are zero-padded, as the spec requires
        view[..4].copy_from_slice(&(value.len() as u32).to_le_bytes());
        view[4..4 + value.len()].copy_from_slice(value);
        self.views.push(view);
    }

    /// Offsets fit in u32: `project` declines chunks of 4 GiB or more.
    fn push_long(&mut self, value: &[u8], buffer: u32, offset: usize) {
        self.set_valid(true);
        let mut view = [0u8; 16];
        view[..4].copy_from_slice(&(value.len() as u32).to_le_bytes());
        view[4..8].copy_from_slice(&value[..4]);
        view[8..12].copy_from_slice(&buffer.to_le_bytes());
        view[12..].copy_from_slice(&(offset as u32).to_le_bytes());
        self.views.push(view);
    }

    fn push_null(&mut self) {
        self.set_valid(false);
        self.views.push([0u8; 16]);
    }

    /// Pads with nulls up to `rows` (keys absent from the records in between).
    fn pad_to(&mut self, rows: usize) {
        while self.len() < rows {
            self.push_null();
        }
    }

    /// (validity or None when there is no null, views, decoded) as Python buffers, not copied.
    fn into_py<'py>(self, py: Python<'py>) -> PyResult<ColumnBuffers<'py>> {
        let validity = if self.nulls == 0 { None } else { Some(OwnedBuffer::wrap(py, self.validity)?) };
        Ok((validity, OwnedBuffer::wrap(py, flatten_views(self.views))?, OwnedBuffer::wrap(py, self.decoded)?))
    }
}

/// One distinct key spelling of the chunk.
struct Key {
    name: Box<[u8]>,
    /// Index into the output columns when wanted.
    column: Option<usize>,
    /// KIND_* bits of the values seen (unwanted keys only: Polars' inference must not fail).
    kinds: u8,
    /// The key that followed this one last time (usize::MAX: none yet): records of a file
    /// mostly share a key order, so a byte comparison usually replaces the hash lookup.
    next: usize,
}

/// One output column.
struct Column {
    name: String,
    values: ViewColumn,
    /// Last row that had this key (a second occurrence in one object declines).
    last_row: usize,
    /// Has a string value that `_hides_nested_values` would find suspicious.
    looks_nested: bool,
}

/// `project_flat_lines` without Python: see the module docs.
///
/// Two whole-chunk checks of the Python path happen while strings are scanned instead of
/// in passes of their own: UTF-8 validity (bytes outside strings must be JSON syntax, so
/// only strings can hold non-ASCII) and `_SURROGATE_ESCAPE` (a backslash only occurs in
/// strings, see `check_escape`). Both are exact because any other decline stops the read.
pub fn project(data: &[u8], request: &Request) -> Parsed<Projected> {
    if u32::try_from(data.len()).is_err() {
        return Err("a chunk of 4 GiB or more"); // view offsets are u32
    }
    let mut reader = Reader::new(data, request);
    let mut line_number = request.first_line;
    while reader.pos < data.len() {
        reader.line(line_number)?;
        line_number += 1;
    }
    reader.finish()
}

struct Reader<'a> {
    data: &'a [u8],
    request: &'a Request,
    wanted: FastMap<&'a [u8], ()>,
    keys: Vec<Key>,
    index: FastMap<Box<[u8]>, usize>,
    columns: Vec<Column>,
    rows: usize,
    lines: Vec<i64>,
    offsets: Vec<i64>,
    /// Decoded text of an escaped key or string.
    scratch: Vec<u8>,
    /// The first key of the last record (the guess for the next record's first key).
    first_key: usize,
    /// Cursor, and the end of the chunk (= data.len()).
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], request: &'a Request) -> Self {
        let wanted = request.wanted.iter().map(|name| (name.as_bytes(), ())).collect();
        Reader {
            data,
            request,
            wanted,
            keys: Vec::new(),
            index: FastMap::default(),
            columns: Vec::new(),
            rows: 0,
            lines: Vec::new(),
            offsets: Vec::new(),
            scratch: Vec::new(),
            first_key: usize::MAX,
            pos: 0,
            end: data.len(),
        }
    }

    /// One physical line: blank (only spaces, tabs, CRs: Polars skips those and so does
    /// `nonblank_line_numbers`), or exactly one object.
    ///
    /// Lines are not looked for ahead (a separate pass over the chunk cost a third of the
    /// parse): no token crosses a newline (whitespace here excludes it, and a raw newline
    /// in a string is a control character), so the line ends where its object does.
    fn line(&mut self, number: i64) -> Parsed<()> {
        let start = self.pos;
        self.skip_ws();
        if self.at_line_end() {
            self.pos += 1;
            return Ok(());
        }
        if self.data[self.pos] != b'{' {
            return Err("a line is not a JSON object");
        }
        self.pos += 1;
        self.object()?;
        self.skip_ws();
        if !self.at_line_end() {
            return Err("text after a line's object");
        }
        self.pos += 1;
        self.lines.push(number);
        self.offsets.push(start as i64);
        self.rows += 1;
        Ok(())
    }

    /// At a newline or the end of the chunk.
    fn at_line_end(&self) -> bool {
        self.pos == self.end || self.data[self.pos] == b'\n'
    }

    fn finish(mut self) -> Parsed<Projected> {
        if self.rows == 0 {
            return Err("no record"); // Polars infers no schema from no record
        }
        self.offsets.push(self.data.len() as i64);
        for column in &self.columns {
            if column.looks_nested && self.hides_nested_values(&column.name) {
                return Err("a string that looks like JSON where the key also holds objects");
            }
        }
        let rows = self.rows;
        let (names, columns) = self
            .columns
            .into_iter()
            .map(|mut column| {
                column.values.pad_to(rows);
                (column.name, column.values)
            })
            .unzip();
        Ok(Projected { names, columns, rows, lines: self.lines, offsets: self.offsets })
    }

    /// Mirrors `_hides_nested_values` for one suspicious column: the name must be plain
    /// printable ASCII without quote or backslash, and the raw bytes must not hold
    /// `"name"\s*:\s*[\[{]` anywhere (Python's bytes `\s`: space, \t, \n, \r, \v, \f).
    fn hides_nested_values(&self, name: &str) -> bool {
        let plain = name.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if !plain {
            return true;
        }
        let needle = format!("\"{name}\"");
        let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
        memmem::find_iter(self.data, needle.as_bytes()).any(|at| {
            let mut rest = self.data[at + needle.len()..].iter().skip_while(|b| is_space(b));
            if rest.next() != Some(&b':') {
                return false;
            }
            matches!(rest.find(|b| !is_space(b)), Some(b'[' | b'{'))
        })
    }

    fn skip_ws(&mut self) {
        while self.pos < self.end && matches!(self.data[self.pos], b' ' | b'\t' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Parsed<u8> {
        if self.pos < self.end {
            Ok(self.data[self.pos])
        } else {
            Err("the chunk ends inside an object")
        }
    }

    fn expect(&mut self, byte: u8) -> Parsed<()> {
        if self.peek()? != byte {
            return Err("invalid JSON");
        }
        self.pos += 1;
        Ok(())
    }

    /// The top-level object's members (after its `{`).
    fn object(&mut self) -> Parsed<()> {
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        let mut previous = None;
        loop {
            self.expect(b'"')?;
            let key = self.key(previous)?;
            previous = Some(key);
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            match self.keys[key].column {
                Some(column) => self.wanted_value(column)?,
                None => {
                    let kind = self.skip_value()?;
                    let kinds = self.keys[key].kinds | kind;
                    if kinds == KIND_SCALAR | KIND_ARRAY {
                        return Err("an unwanted key holds both arrays and scalars");
                    }
                    self.keys[key].kinds = kinds;
                }
            }
            self.skip_ws();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.skip_ws();
                }
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err("invalid JSON"),
            }
        }
    }

    /// The index of the key whose string starts at `pos` (after its quote); `previous`
    /// is the key before it in this object.
    fn key(&mut self, previous: Option<usize>) -> Parsed<usize> {
        let (start, end, escaped) = self.string_span()?;
        let name: &[u8] = if escaped {
            self.scratch.clear();
            decode_escapes(&self.data[start..end], &mut self.scratch)?;
            &self.scratch
        } else {
            &self.data[start..end]
        };
        let guess = previous.map_or(self.first_key, |p| self.keys[p].next);
        if guess < self.keys.len() && *self.keys[guess].name == *name {
            return Ok(guess);
        }
        let found = match self.index.get(name) {
            Some(&found) => found,
            None => self.new_key(name.into())?,
        };
        match previous {
            Some(p) => self.keys[p].next = found,
            None => self.first_key = found,
        }
        Ok(found)
    }

    /// First sight of a key spelling: the twin's name checks, then the projection's
    /// `wants` (`name.lower() in fields`, ASCII only here).
    fn new_key(&mut self, name: Box<[u8]>) -> Parsed<usize> {
        if !name.is_ascii() {
            return Err("a non-ASCII key");
        }
        let text = std::str::from_utf8(&name).map_err(|_| "invalid UTF-8")?;
        let request = self.request;
        let refused = request.refused.iter().any(|r| r == text);
        if refused || request.refused_prefixes.iter().any(|p| text.starts_with(p.as_str())) {
            return Err("a non-flat or reserved key");
        }
        let column = if self.wanted.contains_key(text.to_ascii_lowercase().as_bytes()) {
            self.columns.push(Column {
                name: text.to_owned(),
                values: ViewColumn::default(),
                last_row: usize::MAX,
                looks_nested: false,
            });
            Some(self.columns.len() - 1)
        } else {
            None
        };
        let found = self.keys.len();
        self.index.insert(name.clone(), found);
        self.keys.push(Key { name, column, kinds: 0, next: usize::MAX });
        Ok(found)
    }

    /// A wanted key's value, rendered as Polars' String read renders it.
    fn wanted_value(&mut self, index: usize) -> Parsed<()> {
        let row = self.rows;
        if self.columns[index].last_row == row {
            return Err("a wanted key twice in one object");
        }
        self.columns[index].last_row = row;
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                let (start, end, escaped) = self.string_span()?;
                let data = self.data;
                let column = &mut self.columns[index];
                column.values.pad_to(row);
                let value: &[u8] = if escaped {
                    self.scratch.clear();
                    decode_escapes(&data[start..end], &mut self.scratch)?;
                    column.values.push_owned(&self.scratch);
                    &self.scratch
                } else {
                    column.values.push_ref(data, start, end);
                    &data[start..end]
                };
                // `_hides_nested_values`: r'^(?:\[|\{"|\{\}$)'
                column.looks_nested |= value.starts_with(b"[") || value.starts_with(b"{\"") || value == b"{}";
            }
            b't' => self.wanted_literal(index, b"true")?,
            b'f' => self.wanted_literal(index, b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => {
                let (start, end) = self.integer()?;
                let column = &mut self.columns[index].values;
                column.pad_to(row);
                if &self.data[start..end] == b"-0" {
                    column.push_owned(b"0"); // Polars reads the integer, then prints it
                } else {
                    column.push_ref(self.data, start, end);
                }
            }
            b'[' | b'{' => return Err("an object or array in a wanted key"),
            _ => return Err("invalid JSON"),
        }
        Ok(())
    }

    fn wanted_literal(&mut self, index: usize, word: &'static [u8]) -> Parsed<()> {
        self.literal(word)?;
        let column = &mut self.columns[index].values;
        column.pad_to(self.rows);
        column.push_owned(word);
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Parsed<()> {
        if self.data[self.pos..self.end].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err("invalid JSON")
        }
    }

    /// An integer's text (JSON grammar: no leading zeros, so the text is Polars' digits);
    /// fractions and exponents decline.
    fn integer(&mut self) -> Parsed<(usize, usize)> {
        let start = self.pos;
        if self.data[self.pos] == b'-' {
            self.pos += 1;
        }
        let digits = self.pos;
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                while self.pos < self.end && self.data[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
            }
            _ => return Err("invalid JSON"),
        }
        if self.pos < self.end && matches!(self.data[self.pos], b'.' | b'e' | b'E') {
            return Err("a float");
        }
        if self.pos - digits > MAX_INT_DIGITS {
            return Err("an integer beyond Int128");
        }
        Ok((start, self.pos))
    }

    /// Validates and skips an unwanted value; returns its KIND_* bit (0 for null).
    fn skip_value(&mut self) -> Parsed<u8> {
        match self.peek()? {
            b'[' => {
                self.pos += 1;
                self.skip_ws();
                if self.peek()? == b']' {
                    self.pos += 1;
                    return Ok(KIND_ARRAY);
                }
                loop {
                    if self.skip_scalar()? == KIND_ARRAY {
                        return Err("an array inside an array");
                    }
                    self.skip_ws();
                    match self.peek()? {
                        b',' => {
                            self.pos += 1;
                            self.skip_ws();
                        }
                        b']' => {
                            self.pos += 1;
                            return Ok(KIND_ARRAY);
                        }
                        _ => return Err("invalid JSON"),
                    }
                }
            }
            _ => self.skip_scalar(),
        }
    }

    /// A string, number, boolean or null (KIND_ARRAY for a nested array: the caller
    /// declines; objects decline here).
    fn skip_scalar(&mut self) -> Parsed<u8> {
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                self.string_span()?;
                Ok(KIND_SCALAR)
            }
            b't' => self.literal(b"true").map(|_| KIND_SCALAR),
            b'f' => self.literal(b"false").map(|_| KIND_SCALAR),
            b'n' => self.literal(b"null").map(|_| 0),
            b'-' | b'0'..=b'9' => self.integer().map(|_| KIND_SCALAR),
            b'[' => Ok(KIND_ARRAY),
            b'{' => Err("an object in an unwanted key"),
            _ => Err("invalid JSON"),
        }
    }

    /// The raw content of the string starting at `pos` (after its opening quote), and
    /// whether it has escapes; `pos` moves past the closing quote. Refuses what strict JSON
    /// (and Polars) refuses: raw control characters, invalid escapes, invalid UTF-8; and
    /// what `_SURROGATE_ESCAPE` matches (`check_escape`).
    fn string_span(&mut self) -> Parsed<(usize, usize, bool)> {
        let (data, end) = (self.data, self.end);
        let start = self.pos;
        let mut at = self.pos;
        let mut escaped = false;
        let mut non_ascii = false;
        loop {
            at = skip_plain(data, at, end);
            let Some(&byte) = data.get(at).filter(|_| at < end) else {
                return Err("the chunk ends inside a string");
            };
            match byte {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    at += check_escape(data, at, end)?;
                }
                0x00..=0x1f => return Err("a raw control character in a string"),
                _ => {
                    non_ascii = true;
                    at += 1;
                }
            }
        }
        if non_ascii && std::str::from_utf8(&data[start..at]).is_err() {
            return Err("invalid UTF-8");
        }
        self.pos = at + 1;
        Ok((start, at, escaped))
    }
}

/// The first position from `at` (up to `end`) holding a quote, a backslash, a control
/// character or a non-ASCII byte: 16 bytes at a time with SSE2 (part of x86-64), where a
/// signed `< 0x20` also catches bytes >= 0x80; elsewhere byte by byte.
fn skip_plain(data: &[u8], mut at: usize, end: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is in every x86-64 CPU; each load reads data[at..at + 16], in bounds.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let space = _mm_set1_epi8(0x20);
            while at + 16 <= end {
                let bytes = _mm_loadu_si128(data.as_ptr().add(at) as *const __m128i);
                let special = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(bytes, quote), _mm_cmpeq_epi8(bytes, backslash)),
                    _mm_cmplt_epi8(bytes, space),
                );
                let mask = _mm_movemask_epi8(special) as u32;
                if mask != 0 {
                    return at + mask.trailing_zeros() as usize;
                }
                at += 16;
            }
        }
    }
    while at < end && !matches!(data[at], b'"' | b'\\' | 0x00..=0x1f | 0x80..=0xff) {
        at += 1;
    }
    at
}

/// Length of the escape at `data[at]` (a backslash inside a string), after checking it.
///
/// Mirrors `_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")`, which Python
/// runs over the whole chunk: a backslash is an escape's first byte (checked here as
/// `\uD8..`) or the second byte of `\\\\` (checked here as the `\\\\uD8..` that the regex
/// matches from that second byte). JSON has no other backslash.
fn check_escape(data: &[u8], at: usize, end: usize) -> Parsed<usize> {
    let surrogate_at = |i: usize| {
        data.get(i) == Some(&b'u')
            && matches!(data.get(i + 1), Some(b'd' | b'D'))
            && matches!(data.get(i + 2), Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'))
    };
    if surrogate_at(at + 1) || (data.get(at + 1) == Some(&b'\\') && surrogate_at(at + 2)) {
        return Err("escaped UTF-16 surrogate");
    }
    escape_length(&data[at..end])
}

/// Length of the escape sequence at the start of `text` (which starts with a backslash).
fn escape_length(text: &[u8]) -> Parsed<usize> {
    match text.get(1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(2),
        Some(b'u') if text.len() >= 6 && text[2..6].iter().all(u8::is_ascii_hexdigit) => Ok(6),
        _ => Err("an invalid escape"),
    }
}

/// Appends the decoded text of a validated string body (escapes as JSON defines them;
/// surrogate escapes were declined before parsing began, and are refused here again).
fn decode_escapes(raw: &[u8], out: &mut Vec<u8>) -> Parsed<()> {
    let mut pos = 0;
    while let Some(found) = memchr::memchr(b'\\', &raw[pos..]) {
        out.extend_from_slice(&raw[pos..pos + found]);
        let at = pos + found;
        let byte = match raw[at + 1] {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hex = std::str::from_utf8(&raw[at + 2..at + 6]).map_err(|_| "an invalid escape")?;
                let code = u32::from_str_radix(hex, 16).map_err(|_| "an invalid escape")?;
                let ch = char::from_u32(code).ok_or("escaped UTF-16 surrogate")?;
                let mut buffer = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buffer).as_bytes());
                pos = at + 6;
                continue;
            }
            other => other, // " \ /
        };
        out.push(byte);
        pos = at + 2;
    }
    out.extend_from_slice(&raw[pos..]);
    Ok(())
}

fn i64_bytes<'py>(py: Python<'py>, values: &[i64]) -> Bound<'py, PyBytes> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    PyBytes::new(py, &bytes)
}

type ColumnBuffers<'py> = (Option<Bound<'py, OwnedBuffer>>, Bound<'py, OwnedBuffer>, Bound<'py, OwnedBuffer>);
type Projection<'py> = (Vec<String>, Vec<ColumnBuffers<'py>>, usize, Bound<'py, PyBytes>, Bound<'py, PyBytes>);

/// Reads the wanted fields of a chunk of flat JSON lines (see the module docs).
///
/// `data`: the chunk (UTF-8, cut after a newline or at the end of its file);
/// `wanted`: lowercased names (an iterable of str); `refused`, `refused_prefixes`: top-level
/// names that make the Python fast path decline; `first_line`: the chunk's first line number.
///
/// Returns `(names, columns, rows, lines, offsets)` where `columns[i]` is
/// `(validity | None, views, data)` of an Arrow string_view column of `rows` values,
/// `lines` the i64 line numbers of the records and `offsets` the rows + 1 i64 raw-text
/// offsets (native byte order); or a str, the reason for declining.
#[pyfunction]
#[pyo3(signature = (data, wanted, refused, refused_prefixes, first_line))]
pub fn project_flat_lines<'py>(
    py: Python<'py>,
    data: PyBuffer<u8>,
    wanted: Vec<String>,
    refused: Vec<String>,
    refused_prefixes: Vec<String>,
    first_line: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let request = Request { wanted, refused, refused_prefixes, first_line };
    let bytes = contiguous_bytes(py, &data)?;
    // Parsing needs no Python object: the GIL goes to the hunt's matching meanwhile.
    let result = py.detach(|| project(bytes, &request));
    match result {
        Err(reason) => Ok(reason.into_pyobject(py)?.into_any()),
        Ok(projected) => {
            let columns = projected.columns.into_iter().map(|c| c.into_py(py)).collect::<PyResult<Vec<ColumnBuffers<'py>>>>()?;
            let lines = i64_bytes(py, &projected.lines);
            let offsets = i64_bytes(py, &projected.offsets);
            let out: Projection<'py> = (projected.names, columns, projected.rows, lines, offsets);
            Ok(out.into_pyobject(py)?.into_any())
        }
    }
}

/// `data.count(b"\n")`, which `json_reader.split_line_chunks` needs for every chunk:
/// CPython compares byte by byte (1 CPU-s over the 1.5 GB corpus), memchr four times
/// faster (0.25 s: bound by memory bandwidth there), without the GIL.
#[pyfunction]
pub fn count_newlines(py: Python<'_>, data: PyBuffer<u8>) -> PyResult<usize> {
    let bytes = contiguous_bytes(py, &data)?;
    Ok(py.detach(|| memchr::memchr_iter(b'\n', bytes).count()))
}

/// The bytes of a bytes-like object (`bytes`, or a `memoryview` slice of one: chunks of a
/// file are read in place, not copied out). Valid while `buffer` is held, which the
/// caller does for the whole call.
fn contiguous_bytes<'a>(_py: Python<'_>, buffer: &'a PyBuffer<u8>) -> PyResult<&'a [u8]> {
    readonly_bytes(buffer)
        .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("expected bytes or a read-only contiguous memoryview"))
}
