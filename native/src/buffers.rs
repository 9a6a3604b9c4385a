//! Bytes built in Rust handed to Python without copying them.
//!
//! Why: the readers build Arrow buffers (string views, validity bitmaps, string data) in
//! Rust `Vec`s. Copying each into a `bytes` object cost two passes over memory plus the
//! page faults of the new allocation, with the GIL held: about 0.14 s per 100,000 packed
//! EVTX records, whose ~110 sparse columns make ~170 MB of views (bench/RESULTS.md,
//! session 6). An `OwnedBuffer` keeps the `Vec` and lends it through the buffer protocol,
//! so `pyarrow.py_buffer(buffer)` adopts the memory as it is; it is freed when the last
//! Arrow array (or memoryview) using it goes.

use std::ffi::{c_int, c_void};

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

/// Immutable bytes owned by Rust, readable from Python through the buffer protocol.
#[pyclass(module = "sigmahunt_native", frozen)]
pub struct OwnedBuffer {
    data: Vec<u8>,
}

impl OwnedBuffer {
    /// The bytes as a Python object (no copy). The spare capacity is given back first
    /// (the allocator shrinks a block in place): a frame's buffers live as long as it does.
    pub fn wrap(py: Python<'_>, mut data: Vec<u8>) -> PyResult<Bound<'_, OwnedBuffer>> {
        data.shrink_to_fit();
        Bound::new(py, OwnedBuffer { data })
    }
}

/// The bytes of a buffer Python lends (`bytes`, a `memoryview` slice of one, a read-only
/// `mmap`), borrowed for as long as `buffer` is held; None unless it is contiguous and
/// read-only (a writable one could change while Rust reads it without the GIL).
pub fn readonly_bytes(buffer: &PyBuffer<u8>) -> Option<&[u8]> {
    if !buffer.is_c_contiguous() || !buffer.readonly() {
        return None;
    }
    if buffer.len_bytes() == 0 {
        return Some(&[]);
    }
    // SAFETY: a contiguous, read-only buffer of `len_bytes` bytes at `buf_ptr`, exported
    // (so kept alive and unchanged) while `buffer` is held.
    Some(unsafe { std::slice::from_raw_parts(buffer.buf_ptr() as *const u8, buffer.len_bytes()) })
}

/// 16-byte Arrow views as one byte vector, reusing the allocation: `[u8; 16]` has the
/// alignment of `u8`, so the memory layout is the same.
pub fn flatten_views(views: Vec<[u8; 16]>) -> Vec<u8> {
    views.into_flattened()
}

#[pymethods]
impl OwnedBuffer {
    /// Read-only, one-dimensional, unsigned bytes (what `bytes` exports).
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("OwnedBuffer is read-only"));
        }
        let data = &slf.get().data;
        // PyBuffer_FillInfo fills the view and takes a reference to the owner: the Vec
        // (never changed again: the class is frozen) lives while any view does.
        let filled = unsafe {
            ffi::PyBuffer_FillInfo(view, slf.as_ptr(), data.as_ptr() as *mut c_void, data.len() as ffi::Py_ssize_t, 1, flags)
        };
        if filled == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}

    fn __len__(&self) -> usize {
        self.data.len()
    }

    /// A copy as `bytes` (tests, debugging).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, &self.data)
    }
}
