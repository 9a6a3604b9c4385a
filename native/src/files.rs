//! Small files read into `bytes` in groups, with the GIL released once per group.
//!
//! Why: a folder of small logs (a host's EVTX files, a sample collection, ~70 KB each) is
//! read by the planning thread while the EVTX lanes and the hunt run Python of their own.
//! Python's `open`, `fstat`, `readall` and `close` each release and take back the GIL, and
//! on a busy GIL each take-back waits for another thread: over 9,800 such files the reads
//! cost ~0.3 CPU-s and the ingest's wall time was 0.53-0.63 s, against 0.32-0.38 s with the
//! same bytes already in memory (bench/RESULTS.md, session 11). Here the system calls of a
//! whole group run without the GIL, and each file is read straight into its `bytes` object.
//!
//! The Python twin is `sigmahunt.ingest.sources.read_file`: a file this reader is not sure
//! to read as it does (not a regular file, at least `max_file_bytes`, or its size changed
//! while it was read) is left to it.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A file of the group, between its opening and its reading.
enum Slot {
    /// Open, regular, of this many bytes.
    Open(File, usize),
    /// Python reads it itself (see the module's docs).
    Declined,
    /// Opening or `fstat` failed with this `errno`.
    Failed(i32),
}

/// Where a `bytes` object's contents go: the pointer crosses into the GIL-free reading.
struct Destination(*mut u8, usize);

// SAFETY: each pointer is the storage of a `bytes` object created by `read_files` and not
// yet handed to Python, so no other thread can see or free it while it is written.
unsafe impl Send for Destination {}

/// Whether a file was read as sized: `Ok(true)` when all its bytes were read and it ended
/// there; `Ok(false)` when it was shorter or longer (it changed, or its size is not its
/// length, as in `/proc`).
fn fill(file: &mut File, destination: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < destination.len() {
        match file.read(&mut destination[filled..]) {
            Ok(0) => return Ok(false),
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    let mut probe = [0u8; 1];
    loop {
        match file.read(&mut probe) {
            Ok(read) => return Ok(read == 0),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// Opens without blocking: a named pipe would wait for a writer (it is declined, as any
/// file that is not regular, and Python reports it).
fn open_nonblocking(path: &PathBuf) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
}

fn open_slot(path: &PathBuf, max_file_bytes: u64) -> Slot {
    let file = match open_nonblocking(path) {
        Ok(file) => file,
        Err(error) => return failed(&error),
    };
    match file.metadata() {
        Err(error) => failed(&error),
        Ok(meta) if !meta.is_file() || meta.len() >= max_file_bytes => Slot::Declined,
        Ok(meta) => Slot::Open(file, meta.len() as usize),
    }
}

/// An error with an `errno` (which Python words as its `open` would); any other is left
/// to Python, to be raised as it raises it.
fn failed(error: &std::io::Error) -> Slot {
    error.raw_os_error().map_or(Slot::Declined, Slot::Failed)
}

/// Opens files from the front of `paths` until their sizes add up to `max_total_bytes`.
///
/// A group holds its files open together (up to `READ_GROUP_FILES` in Python, 256): when
/// the process runs out of descriptors, the group ends before that file instead of
/// reporting it, and the next call opens it once this group's are closed.
fn open_group(paths: &[PathBuf], max_file_bytes: u64, max_total_bytes: u64) -> Vec<Slot> {
    let mut slots = Vec::new();
    let mut total = 0u64;
    for path in paths {
        let slot = open_slot(path, max_file_bytes);
        if matches!(slot, Slot::Failed(libc::EMFILE | libc::ENFILE)) && !slots.is_empty() {
            break;
        }
        if let Slot::Open(_, size) = slot {
            total += size as u64;
        }
        slots.push(slot);
        if total >= max_total_bytes {
            break;
        }
    }
    slots
}

/// The contents of the files at the front of `paths`, one item per file read: `bytes`
/// (the whole file), an `int` (the `errno` that opening or reading it failed with), or
/// `None` (Python reads it: see the module's docs). It stops after the file that brings
/// the group to `max_total_bytes`, so fewer items than paths may come back; at least one
/// does when `paths` is not empty.
#[pyfunction]
pub fn read_files(py: Python<'_>, paths: Vec<PathBuf>, max_file_bytes: u64, max_total_bytes: u64) -> PyResult<Py<PyAny>> {
    let mut slots = py.detach(|| open_group(&paths, max_file_bytes, max_total_bytes));
    let mut contents: Vec<Option<Bound<'_, PyBytes>>> = Vec::with_capacity(slots.len());
    let mut destinations = Vec::with_capacity(slots.len());
    for slot in &slots {
        if let Slot::Open(_, size) = slot {
            let (bytes, destination) = uninitialised_bytes(py, *size)?;
            contents.push(Some(bytes));
            destinations.push(destination);
        } else {
            contents.push(None);
        }
    }
    let outcomes: Vec<std::io::Result<bool>> = py.detach(|| {
        let mut destinations = destinations.into_iter();
        slots
            .iter_mut()
            .filter_map(|slot| match slot {
                Slot::Open(file, _) => {
                    let Destination(start, len) = destinations.next().expect("one destination per open file");
                    // SAFETY: see `Destination`; `len` is the object's size.
                    let target = unsafe { std::slice::from_raw_parts_mut(start, len) };
                    Some(fill(file, target))
                }
                _ => None,
            })
            .collect()
    });
    let mut outcomes = outcomes.into_iter();
    let items = slots.iter().zip(contents).map(|(slot, bytes)| -> PyResult<Py<PyAny>> {
        Ok(match slot {
            Slot::Failed(errno) => errno.into_pyobject(py)?.into_any().unbind(),
            Slot::Declined => py.None(),
            Slot::Open(..) => match outcomes.next().expect("one outcome per open file") {
                Ok(true) => bytes.expect("bytes for an open file").into_any().unbind(),
                Ok(false) => py.None(),
                Err(error) => match error.raw_os_error() {
                    Some(errno) => errno.into_pyobject(py)?.into_any().unbind(),
                    None => py.None(),
                },
            },
        })
    });
    let items: Vec<Py<PyAny>> = items.collect::<PyResult<_>>()?;
    Ok(pyo3::types::PyList::new(py, items)?.into_any().unbind())
}

/// A new `bytes` object of `size` bytes whose contents are not yet written, and where to
/// write them. Why not `PyBytes::new_with`: it zeroes the storage first, one more pass
/// over memory, and fills it with the GIL held.
fn uninitialised_bytes(py: Python<'_>, size: usize) -> PyResult<(Bound<'_, PyBytes>, Destination)> {
    let length = ffi::Py_ssize_t::try_from(size).map_err(|_| pyo3::exceptions::PyOverflowError::new_err("file too large"))?;
    // SAFETY: a NULL source asks CPython for a new bytes object of `length` uninitialised
    // bytes (plus its terminating NUL); it is owned here until returned.
    unsafe {
        let object = ffi::PyBytes_FromStringAndSize(std::ptr::null(), length);
        let bytes = Bound::from_owned_ptr_or_err(py, object)?.cast_into_unchecked::<PyBytes>();
        let start = ffi::PyBytes_AsString(bytes.as_ptr()) as *mut u8;
        Ok((bytes, Destination(start, size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fill_tells_whether_the_file_ended_at_its_size() {
        let dir = std::env::temp_dir().join(format!("sigmahunt-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        File::create(&path).unwrap().write_all(b"abcdef").unwrap();
        let mut exact = [0u8; 6];
        assert!(fill(&mut File::open(&path).unwrap(), &mut exact).unwrap());
        assert_eq!(&exact, b"abcdef");
        let mut short = [0u8; 4];
        assert!(!fill(&mut File::open(&path).unwrap(), &mut short).unwrap());
        let mut long = [0u8; 8];
        assert!(!fill(&mut File::open(&path).unwrap(), &mut long).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
