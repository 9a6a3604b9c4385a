//! sigmahunt's native readers (see bench/RESULTS.md for why they exist: the Python and
//! Polars readers alone cost more CPU than the issue-3 targets allow).
//!
//! Every function here has a Python twin that stays the reference: a native reader
//! either returns exactly the twin's columns or declines (returns None) and the twin
//! runs; the field matcher (`matcher.rs`) mirrors `ValueMatcher` and hands non-ASCII
//! values back to it, and the rule kernel (`kernel.rs`) mirrors `BatchEvaluator.evaluate`.
//! `SIGMAHUNT_NATIVE=off` turns them all off.

use pyo3::prelude::*;

pub mod arrow_export;
pub mod arrow_view;
pub mod buffers;
pub mod evtx_columns;
pub mod fast_map;
pub mod files;
pub mod kernel;
pub mod keywords;
pub mod matcher;
pub mod ndjson;
pub mod timestamps;

/// The module's ABI: bumped when a function's signature or output changes, so that a
/// stale build is refused by `sigmahunt.native` rather than misread.
const ABI: u32 = 8;

#[pymodule]
fn sigmahunt_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ABI", ABI)?;
    evtx_columns::register(m)?;
    m.add_class::<buffers::OwnedBuffer>()?;
    m.add_class::<arrow_export::ExportedFrame>()?;
    m.add_class::<keywords::KeywordScanner>()?;
    m.add_class::<matcher::FieldMatcher>()?;
    m.add_class::<kernel::RuleKernel>()?;
    m.add_class::<kernel::KernelBatch>()?;
    m.add_function(wrap_pyfunction!(files::read_files, m)?)?;
    m.add_function(wrap_pyfunction!(ndjson::project_flat_lines, m)?)?;
    m.add_function(wrap_pyfunction!(ndjson::count_newlines, m)?)?;
    m.add_function(wrap_pyfunction!(timestamps::iso_utc_array, m)?)?;
    Ok(())
}
