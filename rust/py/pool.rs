//! Result arrays over buffers kept for reuse between calls.
//!
//! A new result array costs the operating system a page fault, and a page it
//! zeroes, for every page a kernel first writes: about 1 ms per 1080p frame of
//! a batch, near a tenth of `color_correct`. glibc hands blocks above 32 MiB
//! (a batch of eight 1080p frames is 50 MB) back to the system when they are
//! freed, so a loop over batches paid it on every call. Here a result of
//! [`MIN_BYTES`] or more is a view of a numpy byte buffer owned by a
//! [`ResultBuffer`]; when the last reference to the result (and to every view
//! of it) goes, the buffer returns to a small cache, and the next result of
//! about its size reuses those pages, already mapped, instead of new ones.
//!
//! The cache holds at most [`MAX_KEPT`] buffers and `max_bytes` in all: by
//! default [`DEFAULT_MAX_MIB`] MiB, or `LOOPWAVE_BUFFER_CACHE_MB` when that is
//! a whole number (read at the first result); 0 turns it off. It holds only
//! buffers of results that were dropped, so never more memory than the
//! program had in results before. Everything here runs with the GIL held.
//! Such a result's `flags.owndata` is False (its base is the buffer).

use std::ffi::{c_int, c_void};
use std::sync::Mutex;

use numpy::ndarray::{Dim, Dimension, IntoDimension};
use numpy::npyffi::{
    get_type_object, npy_intp, NpyTypes, PyArrayObject, NPY_ARRAY_WRITEABLE, PY_ARRAY_API,
};
use numpy::{Element, PyArray, PyArray1, PyArrayDescrMethods, PyArrayMethods};
use pyo3::exceptions::PyMemoryError;
use pyo3::prelude::*;

use super::numpy_array;

/// Smaller results are plain `numpy.empty` arrays (malloc reuses those).
pub const MIN_BYTES: usize = 1 << 20;
/// The most buffers kept.
pub const MAX_KEPT: usize = 4;
/// The default limit on the bytes kept.
pub const DEFAULT_MAX_MIB: usize = 512;

struct Cache {
    /// `None` until the first use reads the environment.
    max_bytes: Option<usize>,
    /// Kept buffers and their lengths, the most recently returned last.
    kept: Vec<(Py<PyArray1<u8>>, usize)>,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    max_bytes: None,
    kept: Vec::new(),
});

impl Cache {
    fn max_bytes(&mut self) -> usize {
        *self.max_bytes.get_or_insert_with(|| {
            // any whole number, capped at what set_buffer_cache takes (below 2**63)
            std::env::var("LOOPWAVE_BUFFER_CACHE_MB")
                .ok()
                .and_then(|v| v.trim().parse::<u128>().ok())
                .map_or(DEFAULT_MAX_MIB as u128, |mb| mb.min(u64::MAX as u128))
                .saturating_mul(1 << 20)
                .min(isize::MAX as u128) as usize
        })
    }

    fn held(&self) -> usize {
        self.kept.iter().map(|k| k.1).sum()
    }

    /// Drop the oldest buffers until the limits hold; returns them, to be
    /// released after the lock is.
    fn trim(&mut self) -> Vec<(Py<PyArray1<u8>>, usize)> {
        let max = self.max_bytes();
        let mut gone = Vec::new();
        while !self.kept.is_empty() && (self.kept.len() > MAX_KEPT || self.held() > max) {
            gone.push(self.kept.remove(0));
        }
        gone
    }
}

fn cache() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Owner of a result array's memory: puts its buffer back in the cache when
/// the result, and every view of it, is gone.
#[pyclass(frozen, module = "loopwave._native")]
pub struct ResultBuffer {
    buf: Option<Py<PyArray1<u8>>>,
    len: usize,
}

impl Drop for ResultBuffer {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let gone = {
                let mut c = cache();
                c.kept.push((buf, self.len));
                c.trim()
            };
            drop(gone);
        }
    }
}

/// A kept buffer of `bytes` to `bytes * 5 / 4` bytes (the smallest such),
/// else a new one; `None` where results of this size are not cached.
fn take(py: Python<'_>, bytes: usize) -> PyResult<Option<(Py<PyArray1<u8>>, usize)>> {
    let found = {
        let mut c = cache();
        if bytes < MIN_BYTES || bytes > c.max_bytes() {
            return Ok(None);
        }
        let fits = |len: usize| len >= bytes && len - bytes <= bytes / 4;
        let best = (c.kept.iter().enumerate())
            .filter(|(_, k)| fits(k.1))
            .min_by_key(|(_, k)| k.1)
            .map(|(i, _)| i);
        best.map(|i| c.kept.remove(i))
    };
    if found.is_some() {
        return Ok(found);
    }
    let buf: Bound<PyArray1<u8>> = numpy_array(py, "empty", (bytes,))?;
    Ok(Some((buf.unbind(), bytes)))
}

/// An uninitialised C-contiguous array of `shape`: over a cached buffer when
/// large enough (see the module's documentation), else from `numpy.empty`.
pub fn empty<'py, T: Element, const N: usize>(
    py: Python<'py>,
    shape: [usize; N],
) -> PyResult<Bound<'py, PyArray<T, Dim<[usize; N]>>>>
where
    Dim<[usize; N]>: Dimension,
    [usize; N]: IntoDimension<Dim = Dim<[usize; N]>>,
{
    let bytes = shape
        .iter()
        .try_fold(std::mem::size_of::<T>(), |acc, &d| acc.checked_mul(d))
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| {
            PyMemoryError::new_err(format!("an array of shape {shape:?} is too large"))
        })?;
    let Some((buf, len)) = take(py, bytes)? else {
        return numpy_array(py, "empty", shape);
    };
    let data = buf.bind(py).data();
    if data.align_offset(std::mem::align_of::<T>()) != 0 {
        // numpy's own allocator aligns for every dtype; a custom one might not
        return numpy_array(py, "empty", shape);
    }
    let owner = Bound::new(
        py,
        ResultBuffer {
            buf: Some(buf),
            len,
        },
    )?;
    let mut dims = shape.map(|d| d as npy_intp);
    // SAFETY: the buffer holds `bytes` (>= the array's size) bytes aligned for
    // T and lives, owned by `owner`, never resized, until `owner` (the array's
    // base) is dropped; it is handed out again only after that. The dtype
    // reference is stolen by the call, and the owner's by PyArray_SetBaseObject
    // (on failure too); a null array (no memory for its header) is an error,
    // not a crash.
    unsafe {
        let arr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            get_type_object(py, NpyTypes::PyArray_Type),
            T::get_dtype(py).into_dtype_ptr(),
            N as c_int,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            data as *mut c_void,
            NPY_ARRAY_WRITEABLE,
            std::ptr::null_mut(),
        );
        if arr.is_null() {
            return Err(PyErr::fetch(py));
        }
        let arr = Bound::from_owned_ptr(py, arr);
        if PY_ARRAY_API.PyArray_SetBaseObject(
            py,
            arr.as_ptr() as *mut PyArrayObject,
            owner.into_ptr(),
        ) < 0
        {
            return Err(PyErr::fetch(py));
        }
        Ok(arr.cast_into_unchecked())
    }
}

/// Set the limit on the bytes kept (0: keep none), releasing what is over it.
pub fn set_max_bytes(max_bytes: usize) {
    let gone = {
        let mut c = cache();
        c.max_bytes = Some(max_bytes);
        c.trim()
    };
    drop(gone);
}

/// The limit, the bytes held now and the number of buffers held.
pub fn info() -> (usize, usize, usize) {
    let mut c = cache();
    (c.max_bytes(), c.held(), c.kept.len())
}
