//! The arrays a call is using while it runs with the GIL released, recorded by
//! this module instead of by the numpy crate's borrow tracking.
//!
//! A kernel reads its inputs and writes its output after releasing the GIL, so
//! another thread may call in meanwhile: a call that would write memory another
//! call is using (or read memory another call is writing) must be refused, not
//! raced. The numpy crate keeps such a record too, process-wide, but a child made
//! by `fork` while another thread was inside a kernel inherited that thread's
//! entries with no way to clear them: every later call on those arrays, or on
//! result buffers reused from them, was refused in the child for good. Here the
//! record carries the key of the process that made it (`parallel::process_key`:
//! its pid and a count of forks, so a child given an exited ancestor's pid is
//! still told apart), and a process that finds another's record drops it (the
//! threads that held its claims do not exist in it).
//!
//! The record is touched only with the GIL held (a claim is made before a call
//! releases the GIL and dropped after it has it again), so no thread holds its
//! lock while another forks, which needs the GIL too.

use std::ops::Deref;
use std::sync::Mutex;

use crate::kernels::parallel::process_key;

use numpy::ndarray::Dimension;
use numpy::{
    npyffi, Element, PyArray, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// One call's use of a byte range: `[start, end)`, written or only read.
#[derive(Clone, Copy)]
struct Use {
    id: u64,
    start: usize,
    end: usize,
    write: bool,
}

struct Record {
    /// The process it belongs to (`parallel::process_key`).
    key: (u32, u64),
    next_id: u64,
    uses: Vec<Use>,
}

static RECORD: Mutex<Record> = Mutex::new(Record {
    key: (0, 0),
    next_id: 0,
    uses: Vec::new(),
});

fn record() -> std::sync::MutexGuard<'static, Record> {
    // nothing panics while holding it; a poisoned lock's record is still whole
    let mut r = RECORD.lock().unwrap_or_else(|e| e.into_inner());
    let key = process_key();
    if r.key != key {
        // a fresh process, or a forked child: its parent's calls are not running here
        r.key = key;
        r.uses.clear();
    }
    r
}

/// Why a claim was refused.
pub enum Refused {
    /// Another call is writing (or, for a write, using) overlapping memory.
    InUse,
    /// A write to a read-only array.
    ReadOnly,
}

/// A claim on an array's memory, released when dropped.
pub struct Claim {
    id: u64,
    key: (u32, u64),
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut r = record();
        if r.key == self.key {
            r.uses.retain(|u| u.id != self.id);
        }
    }
}

/// The bytes an array spans, from its lowest to its highest element (empty if it
/// has no elements): `base` its data pointer, `item` its element size.
fn byte_range(base: usize, shape: &[usize], strides: &[isize], item: usize) -> (usize, usize) {
    if shape.contains(&0) {
        return (base, base);
    }
    let (mut lo, mut hi) = (0isize, 0isize);
    for (&n, &s) in shape.iter().zip(strides) {
        // (numpy keeps every reach within isize: an array's extent is)
        let reach = (n as isize - 1).wrapping_mul(s);
        if reach < 0 {
            lo = lo.wrapping_add(reach);
        } else {
            hi = hi.wrapping_add(reach);
        }
    }
    (
        base.wrapping_add_signed(lo),
        base.wrapping_add_signed(hi.wrapping_add(item as isize)),
    )
}

fn claim<T: Element, D: Dimension>(
    a: &Bound<'_, PyArray<T, D>>,
    write: bool,
) -> Result<Claim, Refused> {
    if write {
        // SAFETY: a live array object, whose fields numpy's accessor finds
        let flags = unsafe { (*npyffi::_PyArray_GET_ITEM_DATA(a.as_array_ptr())).flags };
        if flags & npyffi::NPY_ARRAY_WRITEABLE == 0 {
            return Err(Refused::ReadOnly);
        }
    }
    let range = byte_range(
        a.data() as usize,
        a.shape(),
        a.strides(),
        std::mem::size_of::<T>(),
    );
    claim_ranges(&[range], write)
}

/// One claim on the byte ranges `ranges` (the pieces of one array).
fn claim_ranges(ranges: &[(usize, usize)], write: bool) -> Result<Claim, Refused> {
    let mut r = record();
    let clash = ranges.iter().any(|&(start, end)| {
        start < end
            && r.uses
                .iter()
                .any(|u| (write || u.write) && u.start < end && start < u.end)
    });
    if clash {
        return Err(Refused::InUse);
    }
    let id = r.next_id;
    r.next_id += 1;
    for &(start, end) in ranges {
        r.uses.push(Use {
            id,
            start,
            end,
            write,
        });
    }
    Ok(Claim { id, key: r.key })
}

/// At most this many pieces are claimed one by one (see [`pieces`]).
const MAX_PIECES: usize = 256;

/// The byte ranges of an array's memory as the pieces its outer axes cut it into,
/// each piece the contiguous block of its inner axes (one frame of a batch taken
/// every other frame), where there are at most [`MAX_PIECES`]; else the one range
/// from its lowest to its highest byte. From a review: `frames[0::2]`, claimed by
/// its whole span, clashed with a call writing `frames[1]`, which it does not touch.
fn pieces(base: usize, shape: &[usize], strides: &[isize], item: usize) -> Vec<(usize, usize)> {
    let whole = byte_range(base, shape, strides, item);
    if shape.contains(&0) {
        return vec![whole];
    }
    // the inner axes that lie C-contiguous: one block of `block` bytes
    let (mut k, mut block) = (shape.len(), item);
    while k > 0 && (shape[k - 1] == 1 || strides[k - 1] == block as isize) {
        block = block.saturating_mul(shape[k - 1]);
        k -= 1;
    }
    let count = shape[..k]
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .unwrap_or(usize::MAX);
    if count <= 1 || count > MAX_PIECES {
        return vec![whole];
    }
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; k];
    for _ in 0..count {
        let offset = index.iter().zip(strides).fold(0isize, |o, (&i, &s)| {
            o.wrapping_add((i as isize).wrapping_mul(s))
        });
        let start = base.wrapping_add_signed(offset);
        out.push((start, start.wrapping_add(block)));
        // the next index, last axis fastest
        for axis in (0..k).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// An array this call reads, claimed for reading.
pub struct Ro<'py, T: Element, D: Dimension> {
    array: Bound<'py, PyArray<T, D>>,
    _claim: Claim,
}

/// An array this call writes, claimed for writing.
pub struct Rw<'py, T: Element, D: Dimension> {
    array: Bound<'py, PyArray<T, D>>,
    _claim: Claim,
}

impl<'py, T: Element, D: Dimension> Ro<'py, T, D> {
    pub fn new(array: Bound<'py, PyArray<T, D>>) -> Result<Self, Refused> {
        let c = claim(&array, false)?;
        Ok(Self { array, _claim: c })
    }

    /// The elements, if the array is contiguous.
    pub fn as_slice(&self) -> Result<&[T], numpy::AsSliceError> {
        // SAFETY: no call writes this memory while the claim stands (see the module
        // docs); Python code could, as it always could under numpy's own tracking
        unsafe { self.array.as_slice() }
    }
}

impl<'py, T: Element, D: Dimension> Rw<'py, T, D> {
    pub fn new(array: Bound<'py, PyArray<T, D>>) -> Result<Self, Refused> {
        let c = claim(&array, true)?;
        Ok(Self { array, _claim: c })
    }

    /// The elements, if the array is contiguous.
    pub fn as_slice_mut(&mut self) -> Result<&mut [T], numpy::AsSliceError> {
        // SAFETY: no other call reads or writes this memory while the claim stands
        unsafe { self.array.as_slice_mut() }
    }
}

impl<'py, T: Element, D: Dimension> Deref for Ro<'py, T, D> {
    type Target = Bound<'py, PyArray<T, D>>;
    fn deref(&self) -> &Self::Target {
        &self.array
    }
}

/// The message for a refused read of argument `arg`.
pub fn read_refused(arg: &str) -> PyErr {
    PyValueError::new_err(format!(
        "{arg}: another call is writing this array at the same time; wait for it, or \
         give that call its own out array"
    ))
}

/// `obj` as an array of `T` and `D` to read, claimed; `arg` names it in errors.
pub fn read<'py, T: Element, D: Dimension>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    form: &str,
) -> PyResult<Ro<'py, T, D>> {
    let a = obj.cast::<PyArray<T, D>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{arg}: expected {form}, got {}",
            super::describe(obj)
        ))
    })?;
    Ro::new(a.clone()).map_err(|_| read_refused(arg))
}

/// A claim, for reading, on an array of any dtype and layout, held by Python code
/// while it copies the array for a kernel (an input that is strided, Fortran-order,
/// big-endian or misaligned): the kernel's own claim is on the copy, so without
/// this a copy taken while another call wrote the array was used, torn, without a
/// word. A context manager; the claim ends at its exit (or when it is collected).
#[pyclass(frozen, module = "loopwave._native")]
pub struct Reading {
    claim: Mutex<Option<Claim>>,
}

#[pymethods]
impl Reading {
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _kind: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        // (the record is touched with the GIL held, as the module docs require)
        drop(self.claim.lock().unwrap_or_else(|e| e.into_inner()).take());
        false
    }
}

/// `array` claimed for reading while Python code copies it (see [`Reading`]); a
/// ValueError naming `arg` where another call is writing it.
#[pyfunction]
pub fn _reading(array: &Bound<'_, PyUntypedArray>, arg: &str) -> PyResult<Reading> {
    // SAFETY: a live array object; its data pointer is only used as a number
    let base = unsafe { (*npyffi::_PyArray_GET_ITEM_DATA(array.as_array_ptr())).data } as usize;
    let item = array.dtype().itemsize();
    let ranges = pieces(base, array.shape(), array.strides(), item);
    let claim = claim_ranges(&ranges, false).map_err(|_| read_refused(arg))?;
    Ok(Reading {
        claim: Mutex::new(Some(claim)),
    })
}

pub type Ro1<'py, T> = Ro<'py, T, numpy::Ix1>;
pub type Ro3<'py, T> = Ro<'py, T, numpy::Ix3>;
pub type Ro4<'py, T> = Ro<'py, T, numpy::Ix4>;
