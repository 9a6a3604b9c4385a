//! `iso_utc` over a whole Arrow string column: the native twin of
//! `sigmahunt.ingest.timestamps.iso_utc_series` (its Polars version costs ~1.2 CPU-s per
//! Security-Datasets corpus: a regex, extractions and a datetime parse per value). The
//! per-value function is the EVTX reader's port of `timestamps.iso_utc`, checked against
//! Python's on generated strings (tests/test_native_evtx.py).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule};

use crate::arrow_view::StringArrayView;
use crate::evtx_columns::iso_utc;

/// A `large_string` column's buffers: (validity or None when no null, i64 offsets, data).
type LargeStringBuffers<'py> = (Option<Bound<'py, PyBytes>>, Bound<'py, PyBytes>, Bound<'py, PyBytes>);

/// Each value normalised to `YYYY-MM-DDTHH:MM:SS.ffffffZ`, or null where it is null or not
/// a timestamp.
#[pyfunction]
pub fn iso_utc_array<'py>(
    py: Python<'py>,
    schema: Bound<'py, PyCapsule>,
    array: Bound<'py, PyCapsule>,
) -> PyResult<LargeStringBuffers<'py>> {
    let view = StringArrayView::from_capsules(&schema, &array)?;
    let (validity, offsets, data, nulls) = py.detach(|| {
        let rows = view.len();
        let mut validity = vec![0u8; rows.div_ceil(8)];
        let mut offsets: Vec<i64> = Vec::with_capacity(rows + 1);
        let mut data: Vec<u8> = Vec::with_capacity(rows * 27);
        let mut nulls = 0usize;
        offsets.push(0);
        for row in 0..rows {
            let stamp = view.value(row).and_then(|b| std::str::from_utf8(b).ok()).and_then(iso_utc);
            match stamp {
                Some(text) => {
                    data.extend_from_slice(text.as_bytes());
                    validity[row / 8] |= 1 << (row % 8);
                }
                None => nulls += 1,
            }
            offsets.push(data.len() as i64);
        }
        (validity, offsets, data, nulls)
    });
    let offsets: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
    let validity = if nulls == 0 { None } else { Some(PyBytes::new(py, &validity)) };
    Ok((validity, PyBytes::new(py, &offsets), PyBytes::new(py, &data)))
}
