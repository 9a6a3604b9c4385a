//! A frame of `string_view` columns handed to Polars through the Arrow C data interface
//! (`__arrow_c_array__`: one struct array, a child per column), the Rust buffers adopted as
//! they are; released (freed) when Polars drops the columns, or with the capsules when no
//! one imports them.
//!
//! Why: building the frame in Python, a `pyarrow` array per column from its buffers, then a
//! table, then Polars' import from it, cost ~0.9 ms per frame of ~110 columns with the GIL
//! held; a folder of small EVTX files makes a frame per ~230 files (bench/RESULTS.md,
//! session 11). Written against the spec (no arrow-rs), like `arrow_view.rs`, its reading
//! side: the two structs and their release callbacks are all that is needed.

use std::ffi::{c_void, CString};
use std::ptr;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::arrow_view::{FfiArray, FfiSchema};

/// Arrow's flag for a field that may hold nulls.
const NULLABLE: i64 = 2;

/// One column's buffers: validity (None: no null), 16-byte views, the views' data buffers.
pub struct ExportColumn {
    pub name: String,
    pub validity: Option<Vec<u8>>,
    pub views: Vec<u8>,
    pub buffers: Vec<Vec<u8>>,
}

impl ExportColumn {
    /// The buffers' spare capacity given back (the allocator shrinks a block in place): a
    /// frame's buffers live as long as it does.
    pub fn new(name: String, validity: Option<Vec<u8>>, mut views: Vec<u8>, mut buffers: Vec<Vec<u8>>) -> Self {
        views.shrink_to_fit();
        buffers.iter_mut().for_each(Vec::shrink_to_fit);
        ExportColumn { name, validity, views, buffers }
    }
}

/// Columns of `height` rows, exported once as a struct array, in `order` if set.
#[pyclass(module = "sigmahunt_native")]
pub struct ExportedFrame {
    height: usize,
    columns: Vec<Option<ExportColumn>>,
    order: Option<Vec<usize>>,
}

impl ExportedFrame {
    pub fn new(height: usize, columns: Vec<ExportColumn>) -> Self {
        ExportedFrame { height, columns: columns.into_iter().map(Some).collect(), order: None }
    }
}

#[pymethods]
impl ExportedFrame {
    #[getter]
    fn height(&self) -> usize {
        self.height
    }

    /// The columns' names, in the order they were built.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.as_ref().map_or_else(String::new, |c| c.name.clone())).collect()
    }

    /// Export the columns in this order (indices into `names`, each at most once; the
    /// columns left out are dropped).
    fn reorder(&mut self, order: Vec<usize>) -> PyResult<()> {
        let mut seen = vec![false; self.columns.len()];
        for &index in &order {
            if index >= seen.len() || std::mem::replace(&mut seen[index], true) {
                return Err(PyValueError::new_err("reorder: an index out of range or repeated"));
            }
        }
        self.order = Some(order);
        Ok(())
    }

    /// The Arrow PyCapsule interface: (schema, array) capsules of a struct array. Once: the
    /// buffers move into the capsules.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &mut self, py: Python<'py>, requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        if requested_schema.is_some_and(|s| !s.is_none()) {
            return Err(PyValueError::new_err("ExportedFrame exports its own schema only"));
        }
        let order = self.order.take().unwrap_or_else(|| (0..self.columns.len()).collect());
        let mut columns = Vec::with_capacity(order.len());
        for index in order {
            let column = self.columns.get_mut(index).and_then(Option::take);
            columns.push(column.ok_or_else(|| PyValueError::new_err("ExportedFrame: already exported"))?);
        }
        let height = self.height;
        let schema = Exported(struct_schema(&columns)?);
        let array = Exported(struct_array(height, columns));
        let schema = PyCapsule::new_with_destructor(py, schema, Some(c"arrow_schema".to_owned()), |mut schema, _| {
            // SAFETY: our struct; a consumer that imported it set `release` to null.
            if let Some(release) = schema.0.release {
                unsafe { release(&mut schema.0) }
            }
        })?;
        let array = PyCapsule::new_with_destructor(py, array, Some(c"arrow_array".to_owned()), |mut array, _| {
            // SAFETY: as for the schema.
            if let Some(release) = array.0.release {
                unsafe { release(&mut array.0) }
            }
        })?;
        Ok((schema, array))
    }
}

/// An exported struct, sent with its capsule (which points to it: transparent, so the
/// capsule's pointer is the struct's): it owns what its private data points to.
#[repr(transparent)]
struct Exported<T>(T);

// SAFETY: the pointers lead to memory owned by the struct's private data alone (no thread
// shares it); the release callbacks free it from whichever thread drops the capsule.
unsafe impl<T> Send for Exported<T> {}

/// What a schema's pointers lead to.
struct SchemaPrivate {
    name: CString,
    children: Vec<*mut FfiSchema>,
}

fn struct_schema(columns: &[ExportColumn]) -> PyResult<FfiSchema> {
    let children = columns
        .iter()
        .map(|column| {
            let name = CString::new(column.name.as_str())
                .map_err(|_| PyValueError::new_err("a column name holds a NUL character"))?;
            Ok(Box::into_raw(Box::new(schema_node(c"vu".as_ptr(), name, NULLABLE, Vec::new()))))
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(schema_node(c"+s".as_ptr(), CString::default(), 0, children))
}

fn schema_node(format: *const std::ffi::c_char, name: CString, flags: i64, children: Vec<*mut FfiSchema>) -> FfiSchema {
    let mut private = Box::new(SchemaPrivate { name, children });
    FfiSchema {
        format, // a static string
        name: private.name.as_ptr(),
        metadata: ptr::null(),
        flags,
        n_children: private.children.len() as i64,
        children: if private.children.is_empty() { ptr::null_mut() } else { private.children.as_mut_ptr() },
        dictionary: ptr::null_mut(),
        release: Some(release_schema),
        private_data: Box::into_raw(private) as *mut c_void,
    }
}

/// Frees a schema and its children (those a consumer moved out it has released itself).
unsafe extern "C" fn release_schema(schema: *mut FfiSchema) {
    if schema.is_null() || (*schema).release.is_none() {
        return;
    }
    let private = Box::from_raw((*schema).private_data as *mut SchemaPrivate);
    for &child in &private.children {
        if let Some(release) = (*child).release {
            release(child);
        }
        drop(Box::from_raw(child));
    }
    drop(private);
    (*schema).release = None;
}

/// What an array's pointers lead to.
struct ArrayPrivate {
    buffers: Vec<*const c_void>,
    /// The memory `buffers` points into (kept, not read).
    #[allow(dead_code)]
    owned: Vec<Vec<u8>>,
    sizes: Vec<i64>,
    children: Vec<*mut FfiArray>,
}

fn struct_array(height: usize, columns: Vec<ExportColumn>) -> FfiArray {
    let children = columns.into_iter().map(|column| Box::into_raw(Box::new(view_array(height, column)))).collect();
    let private = ArrayPrivate { buffers: vec![ptr::null()], owned: Vec::new(), sizes: Vec::new(), children };
    array_node(height, 0, private)
}

/// A `string_view` array: buffers validity, views, the data buffers, then their sizes.
fn view_array(height: usize, column: ExportColumn) -> FfiArray {
    let null_count = column.validity.as_ref().map_or(0, |bits| {
        height - bits.iter().map(|byte| byte.count_ones() as usize).sum::<usize>()
    });
    let sizes: Vec<i64> = column.buffers.iter().map(|b| b.len() as i64).collect();
    let mut owned = Vec::with_capacity(column.buffers.len() + 2);
    let validity = column.validity.map_or(ptr::null(), |bits| {
        owned.push(bits);
        owned[owned.len() - 1].as_ptr() as *const c_void
    });
    owned.push(column.views);
    owned.extend(column.buffers);
    let first_view = owned.len() - 1 - sizes.len();
    let mut buffers = vec![validity];
    buffers.extend(owned[first_view..].iter().map(|b| b.as_ptr() as *const c_void));
    let mut private = ArrayPrivate { buffers, owned, sizes, children: Vec::new() };
    let sizes_pointer = private.sizes.as_ptr() as *const c_void;
    private.buffers.push(sizes_pointer);
    array_node(height, null_count, private)
}

fn array_node(height: usize, null_count: usize, private: ArrayPrivate) -> FfiArray {
    let mut private = Box::new(private);
    FfiArray {
        length: height as i64,
        null_count: null_count as i64,
        offset: 0,
        n_buffers: private.buffers.len() as i64,
        n_children: private.children.len() as i64,
        buffers: private.buffers.as_mut_ptr(),
        children: if private.children.is_empty() { ptr::null_mut() } else { private.children.as_mut_ptr() },
        dictionary: ptr::null_mut(),
        release: Some(release_array),
        private_data: Box::into_raw(private) as *mut c_void,
    }
}

/// Frees an array's buffers and children (those a consumer moved out it has released).
unsafe extern "C" fn release_array(array: *mut FfiArray) {
    if array.is_null() || (*array).release.is_none() {
        return;
    }
    let private = Box::from_raw((*array).private_data as *mut ArrayPrivate);
    for &child in &private.children {
        if let Some(release) = (*child).release {
            release(child);
        }
        drop(Box::from_raw(child));
    }
    drop(private);
    (*array).release = None;
}
