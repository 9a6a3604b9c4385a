//! Read-only access to an Arrow string array handed over through the Arrow C data
//! interface (`pyarrow.Array.__arrow_c_array__`), without copying it and without the
//! arrow-rs dependency: the three string layouts are a few lines of the spec each.
//! Polars exports `string_view` ("vu") without a copy; "u" and "U" are accepted too.

use std::ffi::{c_char, c_void, CStr};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

/// The C data interface's `ArrowSchema` (also exported: `arrow_export.rs`).
#[repr(C)]
pub(crate) struct FfiSchema {
    pub(crate) format: *const c_char,
    pub(crate) name: *const c_char,
    pub(crate) metadata: *const c_char,
    pub(crate) flags: i64,
    pub(crate) n_children: i64,
    pub(crate) children: *mut *mut FfiSchema,
    pub(crate) dictionary: *mut FfiSchema,
    pub(crate) release: Option<unsafe extern "C" fn(*mut FfiSchema)>,
    pub(crate) private_data: *mut c_void,
}

/// The C data interface's `ArrowArray`.
#[repr(C)]
pub(crate) struct FfiArray {
    pub(crate) length: i64,
    pub(crate) null_count: i64,
    pub(crate) offset: i64,
    pub(crate) n_buffers: i64,
    pub(crate) n_children: i64,
    pub(crate) buffers: *mut *const c_void,
    pub(crate) children: *mut *mut FfiArray,
    pub(crate) dictionary: *mut FfiArray,
    pub(crate) release: Option<unsafe extern "C" fn(*mut FfiArray)>,
    pub(crate) private_data: *mut c_void,
}

enum Layout {
    Utf8 { offsets: *const i32, data: *const u8 },
    LargeUtf8 { offsets: *const i64, data: *const u8 },
    View { views: *const [u8; 16], buffers: Vec<*const u8> },
}

/// A string array borrowed from its capsules: valid while they are alive (the caller
/// holds them for the duration of one call).
pub struct StringArrayView {
    layout: Layout,
    validity: *const u8,
    offset: usize,
    length: usize,
}

// The view only reads immutable Arrow buffers, kept alive by the capsules the Python
// caller holds while the GIL is released.
unsafe impl Send for StringArrayView {}
unsafe impl Sync for StringArrayView {}

impl StringArrayView {
    pub fn from_capsules(schema: &Bound<'_, PyCapsule>, array: &Bound<'_, PyCapsule>) -> PyResult<Self> {
        let schema = schema.pointer_checked(Some(c"arrow_schema"))?.as_ptr() as *const FfiSchema;
        let array = array.pointer_checked(Some(c"arrow_array"))?.as_ptr() as *const FfiArray;
        // SAFETY: the capsules are the Arrow C data interface's, named as the spec requires.
        let (schema, array) = unsafe { (&*schema, &*array) };
        let format = unsafe { CStr::from_ptr(schema.format) }.to_bytes();
        let buffers = unsafe { std::slice::from_raw_parts(array.buffers, array.n_buffers as usize) };
        let layout = match format {
            b"u" if buffers.len() == 3 => Layout::Utf8 { offsets: buffers[1] as *const i32, data: buffers[2] as *const u8 },
            b"U" if buffers.len() == 3 => Layout::LargeUtf8 { offsets: buffers[1] as *const i64, data: buffers[2] as *const u8 },
            b"vu" if buffers.len() >= 3 => Layout::View {
                views: buffers[1] as *const [u8; 16],
                // the last buffer holds the data buffers' sizes
                buffers: buffers[2..buffers.len() - 1].iter().map(|b| *b as *const u8).collect(),
            },
            _ => {
                return Err(PyValueError::new_err(format!(
                    "expected an Arrow string array, got format {:?}",
                    String::from_utf8_lossy(format)
                )))
            }
        };
        let validity = if array.null_count == 0 { std::ptr::null() } else { buffers[0] as *const u8 };
        Ok(StringArrayView { layout, validity, offset: array.offset as usize, length: array.length as usize })
    }

    pub fn len(&self) -> usize {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The value of row `i` (< len), or None when it is null.
    pub fn value(&self, i: usize) -> Option<&[u8]> {
        let j = i + self.offset;
        if !self.validity.is_null() {
            let byte = unsafe { *self.validity.add(j / 8) };
            if byte & (1 << (j % 8)) == 0 {
                return None;
            }
        }
        // SAFETY: j is within the array, whose buffers follow the declared layout.
        unsafe {
            Some(match &self.layout {
                Layout::Utf8 { offsets, data } => {
                    let (start, end) = (*offsets.add(j) as usize, *offsets.add(j + 1) as usize);
                    std::slice::from_raw_parts(data.add(start), end - start)
                }
                Layout::LargeUtf8 { offsets, data } => {
                    let (start, end) = (*offsets.add(j) as usize, *offsets.add(j + 1) as usize);
                    std::slice::from_raw_parts(data.add(start), end - start)
                }
                Layout::View { views, buffers } => {
                    let view = &*views.add(j);
                    let len = u32::from_le_bytes(view[0..4].try_into().unwrap()) as usize;
                    if len <= 12 {
                        std::slice::from_raw_parts(view.as_ptr().add(4), len)
                    } else {
                        let index = u32::from_le_bytes(view[8..12].try_into().unwrap()) as usize;
                        let start = u32::from_le_bytes(view[12..16].try_into().unwrap()) as usize;
                        std::slice::from_raw_parts(buffers[index].add(start), len)
                    }
                }
            })
        }
    }
}
