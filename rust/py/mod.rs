//! Thin PyO3 wrappers: check arrays, release the GIL, run a kernel, map errors.
//!
//! The Python package (`python/loopwave/color.py`) normalises input before it
//! gets here: 4-D, C-contiguous, batch axis present. These wrappers still check
//! everything they rely on, so a direct call with bad input raises rather than
//! crashes. Only plain slices enter the GIL-released closures.

use std::panic::{catch_unwind, AssertUnwindSafe};

use numpy::{Element, PyArray1, PyArray3, PyArray4, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::kernels::{self, Dims, KernelError, Sample};

mod borrow;
mod pool;

use borrow::{read, Refused, Ro1, Ro3, Ro4, Rw};

create_exception!(
    loopwave._native,
    KernelPanic,
    PyRuntimeError,
    "A loopwave kernel hit an internal error (a bug: please report it with the input shapes)."
);

fn to_py(e: KernelError) -> PyErr {
    match e {
        KernelError::NoMemory { .. } => PyMemoryError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// Run a kernel with the GIL released; a panic becomes `KernelPanic`, never an abort.
fn run<R: Send>(py: Python<'_>, f: impl FnOnce() -> kernels::Result<R> + Send) -> PyResult<R> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(r) => r.map_err(to_py),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(KernelPanic::new_err(format!(
                "internal error in a loopwave kernel: {msg}"
            )))
        }
    }
}

const FLOAT4: &str = "a 4-D float32 array (n, h, w, 3)";
const F64: &str = "a 1-D float64 array";

/// A 4-D frame batch of one of the accepted dtypes.
enum Frames<'py> {
    U8(Ro4<'py, u8>),
    F32(Ro4<'py, f32>),
}

fn frames<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<Frames<'py>> {
    let refused = |_| borrow::read_refused(arg);
    if let Ok(a) = obj.cast::<PyArray4<u8>>() {
        return Ok(Frames::U8(Ro4::new(a.clone()).map_err(refused)?));
    }
    if let Ok(a) = obj.cast::<PyArray4<f32>>() {
        return Ok(Frames::F32(Ro4::new(a.clone()).map_err(refused)?));
    }
    Err(PyTypeError::new_err(format!(
        "{arg}: expected a 4-D numpy array (n, h, w, 3) of uint8 or float32, got {}",
        describe(obj)
    )))
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    match (obj.getattr("dtype"), obj.getattr("shape")) {
        (Ok(d), Ok(s)) => format!("an array of dtype {d} and shape {s}"),
        _ => obj
            .get_type()
            .name()
            .map_or_else(|_| "an object".into(), |n| n.to_string()),
    }
}

fn same_dtype<'py>(obj: &Bound<'py, PyAny>, arg: &str, like: &Frames<'_>) -> PyResult<Frames<'py>> {
    let f = frames(obj, arg)?;
    match (&f, like) {
        (Frames::U8(_), Frames::U8(_)) | (Frames::F32(_), Frames::F32(_)) => Ok(f),
        _ => Err(PyTypeError::new_err(format!(
            "{arg}: must have the same dtype as the frames"
        ))),
    }
}

/// Dims and the contiguous data of a batch.
fn view<'a, T: Element>(a: &'a Ro4<'_, T>, arg: &str) -> PyResult<(Dims, &'a [T])> {
    let s = a.shape();
    if s[3] != 3 {
        return Err(PyValueError::new_err(format!(
            "{arg}: expected 3 channels (RGB) in the last axis, got {}",
            s[3]
        )));
    }
    if !a.is_c_contiguous() {
        // as_slice() also accepts Fortran order, whose memory is not (n, h, w, 3) C order
        return Err(PyValueError::new_err(format!(
            "{arg}: expected a C-contiguous array"
        )));
    }
    let data = a
        .as_slice()
        // C-contiguous here, so only misaligned memory (a view at an odd byte offset)
        .map_err(|_| PyValueError::new_err(format!("{arg}: expected an aligned array")))?;
    Ok((Dims::new(s[0], s[1], s[2]), data))
}

/// A new numpy array from `numpy.empty` or `numpy.zeros`, so that an allocation
/// failure is numpy's `MemoryError`: the numpy crate's constructors panic on the
/// null pointer instead (`PanicException`, past `except Exception`, and with
/// little memory left the panic itself could not allocate and the process hung).
fn numpy_array<'py, T: Element, D>(
    py: Python<'py>,
    how: &str,
    shape: impl IntoPyObject<'py>,
) -> PyResult<Bound<'py, numpy::PyArray<T, D>>>
where
    D: numpy::ndarray::Dimension,
{
    static NUMPY: pyo3::sync::PyOnceLock<Py<PyModule>> = pyo3::sync::PyOnceLock::new();
    let np = NUMPY.get_or_try_init(py, || py.import("numpy").map(Bound::unbind))?;
    let a = np
        .bind(py)
        .call_method1(how, (shape, numpy::dtype::<T>(py)))?;
    a.cast_into::<numpy::PyArray<T, D>>()
        .map_err(|_| PyRuntimeError::new_err("numpy returned an array of another kind"))
}

/// An uninitialised output batch; every kernel writes every sample on success.
/// Large ones reuse the buffers of dropped results ([`pool`]).
fn alloc<'py, T: Element>(py: Python<'py>, d: Dims) -> PyResult<Bound<'py, PyArray4<T>>> {
    pool::empty(py, [d.n, d.h, d.w, 3])
}

#[allow(clippy::mut_from_ref)]
fn out_slice<'a, T: Element, const N: usize>(
    a: &'a Bound<'_, numpy::PyArray<T, numpy::ndarray::Dim<[usize; N]>>>,
) -> &'a mut [T]
where
    numpy::ndarray::Dim<[usize; N]>: numpy::ndarray::Dimension,
{
    // SAFETY: freshly allocated, contiguous, and not shared with Python yet.
    unsafe { a.as_slice_mut().expect("new arrays are contiguous") }
}

fn map_batch<'py, T: Element + Sample, O: Element + Sample>(
    py: Python<'py>,
    a: &Ro4<'_, T>,
    arg: &str,
    f: impl FnOnce(&[T], Dims, &mut [O]) -> kernels::Result<()> + Send,
) -> PyResult<Bound<'py, PyArray4<O>>> {
    let (d, s) = view(a, arg)?;
    let out = alloc::<O>(py, d)?;
    let o = out_slice(&out);
    run(py, || f(s, d, o))?;
    Ok(out)
}

#[pyfunction]
fn rgb_to_lab<'py>(
    py: Python<'py>,
    frames_: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    match frames(frames_, "frames")? {
        Frames::U8(a) => map_batch(py, &a, "frames", kernels::lab::rgb_to_lab),
        Frames::F32(a) => map_batch(py, &a, "frames", kernels::lab::rgb_to_lab),
    }
}

#[pyfunction]
fn lab_to_rgb<'py>(
    py: Python<'py>,
    lab: &Bound<'py, PyAny>,
    to_uint8: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let lab: Ro4<f32> = read(lab, "lab", FLOAT4)?;
    Ok(if to_uint8 {
        map_batch::<f32, u8>(py, &lab, "lab", kernels::lab::lab_to_rgb)?.into_any()
    } else {
        map_batch::<f32, f32>(py, &lab, "lab", kernels::lab::lab_to_rgb)?.into_any()
    })
}

fn match_histograms_t<'py, T: Element + Sample>(
    py: Python<'py>,
    a: Ro4<'py, T>,
    r: Ro4<'py, T>,
) -> PyResult<Bound<'py, PyAny>> {
    let (rd, rs) = view(&r, "reference")?;
    Ok(map_batch(py, &a, "frames", |s, d, o| {
        kernels::histogram::match_histograms(s, d, rs, rd, o)
    })?
    .into_any())
}

#[pyfunction]
fn match_histograms<'py>(
    py: Python<'py>,
    frames_: &Bound<'py, PyAny>,
    reference: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = frames(frames_, "frames")?;
    match (same_dtype(reference, "reference", &f)?, f) {
        (Frames::U8(r), Frames::U8(a)) => match_histograms_t(py, a, r),
        (Frames::F32(r), Frames::F32(a)) => match_histograms_t(py, a, r),
        _ => unreachable!("dtypes checked"),
    }
}

/// A `match_histograms` reference worked out once (the Python class
/// `loopwave.HistogramReference` wraps it).
#[pyclass(frozen, module = "loopwave._native")]
pub struct PreparedReference {
    inner: RefKind,
}

enum RefKind {
    U8(kernels::histogram::PreparedReference<u8>),
    F32(kernels::histogram::PreparedReference<f32>),
}

impl PreparedReference {
    fn dims(&self) -> Dims {
        match &self.inner {
            RefKind::U8(r) => r.dims(),
            RefKind::F32(r) => r.dims(),
        }
    }
}

#[pymethods]
impl PreparedReference {
    #[new]
    fn new(py: Python<'_>, reference: &Bound<'_, PyAny>) -> PyResult<Self> {
        use kernels::histogram::PreparedReference as Made;
        let inner = match frames(reference, "reference")? {
            Frames::U8(r) => {
                let (d, s) = view(&r, "reference")?;
                RefKind::U8(run(py, || Made::new(s, d, "reference"))?)
            }
            Frames::F32(r) => {
                let (d, s) = view(&r, "reference")?;
                RefKind::F32(run(py, || Made::new(s, d, "reference"))?)
            }
        };
        Ok(Self { inner })
    }

    /// How many reference frames.
    #[getter]
    fn n(&self) -> usize {
        self.dims().n
    }

    /// Whether the reference was float32 (else uint8).
    #[getter]
    fn is_float(&self) -> bool {
        matches!(self.inner, RefKind::F32(_))
    }

    /// The reference frames' (height, width).
    #[getter]
    fn size(&self) -> (usize, usize) {
        let d = self.dims();
        (d.h, d.w)
    }

    /// For pickling: an 8-bit reference's counts (little-endian u64), a float
    /// one's pixels (little-endian f32); `from_state` reads them back. Written
    /// straight into the bytes object (MemoryError where there is no room).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let len = match &self.inner {
            RefKind::U8(r) => r.state_len(),
            RefKind::F32(r) => r.state_len(),
        };
        PyBytes::new_with(py, len, |buf| {
            match &self.inner {
                RefKind::U8(r) => r.write_state(buf),
                RefKind::F32(r) => r.write_state(buf),
            }
            Ok(())
        })
    }

    /// A prepared reference from `state()`'s bytes, its dtype and its (n, height,
    /// width): checked, so that damaged or foreign bytes raise ValueError naming
    /// `state` (or `dims`), and MemoryError where there is no room.
    #[staticmethod]
    fn from_state(
        py: Python<'_>,
        state: &[u8],
        is_float: bool,
        dims: (usize, usize, usize),
    ) -> PyResult<Self> {
        use kernels::histogram::PreparedReference as Made;
        let (n, h, w) = dims;
        let d = Dims::new(n, h, w);
        // every size the reading below multiplies, checked (a wrapped one made a
        // reference of no whole pixel, and its match panicked)
        let bytes = [n, h, w, 3, if is_float { 4 } else { 8 }]
            .into_iter()
            .try_fold(1usize, |a, b| a.checked_mul(b));
        if n == 0 || h == 0 || w == 0 || bytes.is_none() {
            return Err(PyValueError::new_err(format!(
                "dims: expected a reference's (frames, height, width), each at least 1, \
                 of a size that fits memory; got {dims:?}"
            )));
        }
        let inner = if is_float {
            if Some(state.len()) != bytes {
                return Err(PyValueError::new_err(format!(
                    "state: expected the {n} float reference frames of {w}x{h} ({} bytes); \
                     got {}",
                    bytes.unwrap_or(0),
                    state.len()
                )));
            }
            RefKind::F32(run(py, || {
                let mut px = kernels::error::vec_with_room(state.len() / 4, "state")?;
                px.extend(
                    state
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(std::array::from_fn(|k| b[k]))),
                );
                Made::new(&px, d, "state")
            })?)
        } else {
            RefKind::U8(run(py, || Made::from_count_bytes(state, d, "state"))?)
        };
        Ok(Self { inner })
    }
}

#[pyfunction]
fn match_histograms_prepared<'py>(
    py: Python<'py>,
    frames_: &Bound<'py, PyAny>,
    reference: &Bound<'py, PreparedReference>,
) -> PyResult<Bound<'py, PyAny>> {
    let r = reference.get();
    Ok(match (frames(frames_, "frames")?, &r.inner) {
        (Frames::U8(a), RefKind::U8(p)) => map_batch(py, &a, "frames", |s, d, o| {
            kernels::histogram::match_histograms_prepared(s, d, p, o)
        })?
        .into_any(),
        (Frames::F32(a), RefKind::F32(p)) => map_batch(py, &a, "frames", |s, d, o| {
            kernels::histogram::match_histograms_prepared(s, d, p, o)
        })?
        .into_any(),
        _ => {
            return Err(PyTypeError::new_err(
                "reference: must have the same dtype as the frames (a prepared reference \
                keeps its frames' dtype)",
            ))
        }
    })
}

fn blend_t<'py, T: Element + Sample>(
    py: Python<'py>,
    c: Ro4<'py, T>,
    l: Ro4<'py, T>,
) -> PyResult<Bound<'py, PyAny>> {
    let (ld, ls) = view(&l, "luma")?;
    let (cd, _) = view(&c, "color")?;
    if ld != cd {
        return Err(PyValueError::new_err(format!(
            "luma: expected the shape of color ({}, {}, {}, 3), got ({}, {}, {}, 3)",
            cd.n, cd.h, cd.w, ld.n, ld.h, ld.w
        )));
    }
    Ok(map_batch(py, &c, "color", |s, d, o| {
        kernels::blend::blend_luminosity(s, ls, d, o)
    })?
    .into_any())
}

#[pyfunction]
fn blend_luminosity<'py>(
    py: Python<'py>,
    color: &Bound<'py, PyAny>,
    luma: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let c = frames(color, "color")?;
    match (same_dtype(luma, "luma", &c)?, c) {
        (Frames::U8(l), Frames::U8(c)) => blend_t(py, c, l),
        (Frames::F32(l), Frames::F32(c)) => blend_t(py, c, l),
        _ => unreachable!("dtypes checked"),
    }
}

fn vec1<'a>(a: &'a Ro1<'_, f64>, arg: &str) -> PyResult<&'a [f64]> {
    a.as_slice().map_err(|_| {
        PyValueError::new_err(format!(
            "{arg}: expected a contiguous, aligned 1-D float64 array"
        ))
    })
}

#[pyfunction]
fn adjust_gamma<'py>(
    py: Python<'py>,
    frames_: &Bound<'py, PyAny>,
    gamma: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let gamma = read(gamma, "gamma", F64)?;
    let g = vec1(&gamma, "gamma")?;
    Ok(match frames(frames_, "frames")? {
        Frames::U8(a) => map_batch(py, &a, "frames", |s, d, o| {
            kernels::gamma::adjust_gamma(s, d, g, o)
        })?
        .into_any(),
        Frames::F32(a) => map_batch(py, &a, "frames", |s, d, o| {
            kernels::gamma::adjust_gamma(s, d, g, o)
        })?
        .into_any(),
    })
}

type WithGammas<'py> = (Bound<'py, PyAny>, Bound<'py, PyArray1<f64>>);

/// Shared shape of `match_gamma` and `color_correct`: frames + reference in,
/// frames + one f64 per frame out.
/// Results go to a new array, or to `out` when given: an array of the frames'
/// shape and dtype, C-contiguous and writeable, sharing no memory with the inputs
/// (the record of arrays in use, [`borrow`], refuses an `out` that overlaps them).
fn with_gammas<'py, T: Element + Sample>(
    py: Python<'py>,
    a: Ro4<'py, T>,
    r: Ro4<'py, T>,
    rarg: &str,
    out: Option<&Bound<'py, PyAny>>,
    f: impl FnOnce(&[T], Dims, &[T], Dims, &mut [T], &mut [f64]) -> kernels::Result<()> + Send,
) -> PyResult<WithGammas<'py>> {
    let (rd, rs) = view(&r, rarg)?;
    gammas_into(py, a, out, |s, d, o, g| f(s, d, rs, rd, o, g))
}

/// A kernel over `a` writing a batch like it (into `out` if given) and one gamma
/// per frame.
fn gammas_into<'py, T: Element + Sample>(
    py: Python<'py>,
    a: Ro4<'py, T>,
    out: Option<&Bound<'py, PyAny>>,
    f: impl FnOnce(&[T], Dims, &mut [T], &mut [f64]) -> kernels::Result<()> + Send,
) -> PyResult<WithGammas<'py>> {
    let (d, s) = view(&a, "frames")?;
    let gammas: Bound<PyArray1<f64>> = numpy_array(py, "zeros", (d.n,))?;
    let g = out_slice(&gammas);
    let dst = match out {
        None => alloc::<T>(py, d)?,
        Some(o) => {
            let o = o.cast::<PyArray4<T>>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "out: expected a 4-D numpy array of the frames' dtype, got {}",
                    describe(o)
                ))
            })?;
            if o.shape() != [d.n, d.h, d.w, 3] || !o.is_c_contiguous() {
                return Err(PyValueError::new_err(format!(
                    "out: expected a C-contiguous array of shape ({}, {}, {}, 3), got shape {:?}",
                    d.n,
                    d.h,
                    d.w,
                    o.shape()
                )));
            }
            o.clone()
        }
    };
    {
        let mut w = Rw::new(dst.clone()).map_err(|e| {
            PyValueError::new_err(match e {
                // the Python wrapper has refused overlap with the inputs already: here it
                // is another call on another thread reading or writing the same array
                Refused::InUse => {
                    "out: another call is using this array at the same time \
                    (or it shares memory with the inputs); give each concurrent call its \
                    own out array"
                }
                Refused::ReadOnly => "out: cannot write to it; it must be writeable",
            })
        })?;
        let o = w
            .as_slice_mut()
            .map_err(|e| PyValueError::new_err(format!("out: {e}")))?;
        run(py, || f(s, d, o, g))?;
    }
    Ok((dst.into_any(), gammas))
}

#[pyfunction]
fn match_gamma<'py>(
    py: Python<'py>,
    frames_: &Bound<'py, PyAny>,
    reference: &Bound<'py, PyAny>,
) -> PyResult<WithGammas<'py>> {
    let f = frames(frames_, "frames")?;
    match (same_dtype(reference, "reference", &f)?, f) {
        (Frames::U8(r), Frames::U8(a)) => {
            with_gammas(py, a, r, "reference", None, kernels::gamma::match_gamma)
        }
        (Frames::F32(r), Frames::F32(a)) => {
            with_gammas(py, a, r, "reference", None, kernels::gamma::match_gamma)
        }
        _ => unreachable!("dtypes checked"),
    }
}

#[pyfunction]
#[pyo3(signature = (frames_, target, gamma, out=None))]
fn color_correct<'py>(
    py: Python<'py>,
    frames_: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    gamma: bool,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<WithGammas<'py>> {
    let f = frames(frames_, "frames")?;
    match (same_dtype(target, "target", &f)?, f) {
        (Frames::U8(t), Frames::U8(a)) => {
            with_gammas(py, a, t, "target", out, |s, d, t, td, o, g| {
                kernels::correct::color_correct(s, d, t, td, gamma, o, g)
            })
        }
        (Frames::F32(t), Frames::F32(a)) => {
            with_gammas(py, a, t, "target", out, |s, d, t, td, o, g| {
                kernels::correct::color_correct(s, d, t, td, gamma, o, g)
            })
        }
        _ => unreachable!("dtypes checked"),
    }
}

/// A target's statistics, worked out once for many `color_correct_prepared`
/// calls (the Python class `loopwave.ColorTarget` wraps it; named apart so that
/// passing the wrapper here says which is which).
#[pyclass(frozen, module = "loopwave._native")]
pub struct PreparedTarget {
    stats: Vec<kernels::correct::TargetStats>,
    float: bool,
    size: (usize, usize),
}

fn prepare<T: Element + Sample>(
    py: Python<'_>,
    t: Ro4<'_, T>,
) -> PyResult<(Vec<kernels::correct::TargetStats>, (usize, usize))> {
    let (d, s) = view(&t, "target")?;
    let stats = run(py, || kernels::correct::prepare_targets(s, d))?;
    Ok((stats, (d.h, d.w)))
}

#[pymethods]
impl PreparedTarget {
    #[new]
    fn new(py: Python<'_>, target: &Bound<'_, PyAny>) -> PyResult<Self> {
        let ((stats, size), float) = match frames(target, "target")? {
            Frames::U8(t) => (prepare(py, t)?, false),
            Frames::F32(t) => (prepare(py, t)?, true),
        };
        Ok(Self { stats, float, size })
    }

    /// How many target frames.
    #[getter]
    fn n(&self) -> usize {
        self.stats.len()
    }

    /// Whether the targets were float32 (else uint8).
    #[getter]
    fn is_float(&self) -> bool {
        self.float
    }

    /// The target frames' (height, width).
    #[getter]
    fn size(&self) -> (usize, usize) {
        self.size
    }

    /// Each target's mean CIE L*.
    #[getter]
    fn mean_lightness(&self) -> Vec<f64> {
        self.stats.iter().map(|t| t.mean_l).collect()
    }

    /// The statistics as bytes, for pickling (`from_state` reads them back).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = kernels::correct::stats_to_bytes(&self.stats).map_err(to_py)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// A prepared target from `state()`'s bytes, its dtype and size: checked, so that
    /// damaged or foreign bytes raise ValueError naming `state`.
    #[staticmethod]
    fn from_state(
        py: Python<'_>,
        state: &[u8],
        is_float: bool,
        size: (usize, usize),
    ) -> PyResult<Self> {
        let (h, w) = size;
        let pixels = h.checked_mul(w).filter(|&p| p > 0).ok_or_else(|| {
            PyValueError::new_err(format!(
                "size: expected a target's (height, width), both at least 1; got {size:?}"
            ))
        })?;
        let stats = run(py, || {
            kernels::correct::stats_from_bytes(state, pixels as u64, "state")
        })?;
        Ok(Self {
            stats,
            float: is_float,
            size,
        })
    }
}

#[pyfunction]
#[pyo3(signature = (frames_, target, gamma, out=None))]
fn color_correct_prepared<'py>(
    py: Python<'py>,
    frames_: &Bound<'py, PyAny>,
    target: &Bound<'py, PreparedTarget>,
    gamma: bool,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<WithGammas<'py>> {
    let t = target.get();
    let stats = &t.stats;
    match frames(frames_, "frames")? {
        Frames::U8(a) if !t.float => gammas_into(py, a, out, |s, d, o, g| {
            kernels::correct::color_correct_prepared(s, d, stats, gamma, o, g)
        }),
        Frames::F32(a) if t.float => gammas_into(py, a, out, |s, d, o, g| {
            kernels::correct::color_correct_prepared(s, d, stats, gamma, o, g)
        }),
        _ => Err(PyTypeError::new_err(
            "target: must have the same dtype as the frames (a prepared target keeps its \
            targets' dtype)",
        )),
    }
}

fn lerp_t<'py, T: Element + Sample>(
    py: Python<'py>,
    a: Ro4<'py, T>,
    b: Ro4<'py, T>,
    alpha: &[f64],
) -> PyResult<Bound<'py, PyAny>> {
    let (bd, bs) = view(&b, "b")?;
    let (ad, _) = view(&a, "a")?;
    if ad != bd {
        return Err(PyValueError::new_err(format!(
            "b: expected the shape of a ({}, {}, {}, 3), got ({}, {}, {}, 3)",
            ad.n, ad.h, ad.w, bd.n, bd.h, bd.w
        )));
    }
    Ok(map_batch(py, &a, "a", |s, d, o| {
        kernels::lerp::lerp_frames(s, bs, d, alpha, o)
    })?
    .into_any())
}

#[pyfunction]
fn lerp_frames<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    alpha: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let alpha = read(alpha, "alpha", F64)?;
    let t = vec1(&alpha, "alpha")?;
    let fa = frames(a, "a")?;
    match (same_dtype(b, "b", &fa)?, fa) {
        (Frames::U8(b), Frames::U8(a)) => lerp_t(py, a, b, t),
        (Frames::F32(b), Frames::F32(a)) => lerp_t(py, a, b, t),
        _ => unreachable!("dtypes checked"),
    }
}

fn mean_t<'py, T: Element + Sample>(
    py: Python<'py>,
    a: Ro4<'py, T>,
) -> PyResult<Bound<'py, PyAny>> {
    let (d, s) = view(&a, "frames")?;
    let out = alloc::<T>(py, Dims::new(1, d.h, d.w))?;
    let o = out_slice(&out);
    run(py, || kernels::lerp::mean_frames(s, d, o))?;
    Ok(out.into_any())
}

#[pyfunction]
fn mean_frames<'py>(py: Python<'py>, frames_: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    match frames(frames_, "frames")? {
        Frames::U8(a) => mean_t(py, a),
        Frames::F32(a) => mean_t(py, a),
    }
}

fn yuv_t<'py, T: Element + Sample>(
    py: Python<'py>,
    a: Ro4<'py, T>,
    m: kernels::yuv::Matrix,
    full: bool,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let (d, s) = view(&a, "frames")?;
    if d.h % 2 != 0 || d.w % 2 != 0 {
        return Err(to_py(
            kernels::yuv::rgb_to_yuv420p(s, d, m, full, &mut []).unwrap_err(),
        ));
    }
    // every byte is written (sizes are even): the result buffer cache serves it
    let out: Bound<PyArray3<u8>> = pool::empty(py, [d.n, d.h * 3 / 2, d.w])?;
    let o = out_slice(&out);
    run(py, || kernels::yuv::rgb_to_yuv420p(s, d, m, full, o))?;
    Ok(out)
}

#[pyfunction]
fn rgb_to_yuv420p<'py>(
    py: Python<'py>,
    frames_: &Bound<'py, PyAny>,
    matrix: &str,
    full_range: bool,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let m = kernels::yuv::Matrix::parse(matrix).map_err(to_py)?;
    match frames(frames_, "frames")? {
        Frames::U8(a) => yuv_t(py, a, m, full_range),
        Frames::F32(a) => yuv_t(py, a, m, full_range),
    }
}

#[pyfunction]
fn yuv420p_to_rgb<'py>(
    py: Python<'py>,
    planes: &Bound<'py, PyAny>,
    matrix: &str,
    full_range: bool,
) -> PyResult<Bound<'py, PyArray4<u8>>> {
    let m = kernels::yuv::Matrix::parse(matrix).map_err(to_py)?;
    let a: Ro3<u8> = read(planes, "planes", "a 3-D uint8 array (n, h * 3 / 2, w)")?;
    let s = a.shape();
    let (n, rows, w) = (s[0], s[1], s[2]);
    if rows % 3 != 0 || rows == 0 || w == 0 || n == 0 || w % 2 != 0 {
        return Err(PyValueError::new_err(format!(
            "planes: expected (n, h * 3 / 2, w) I420 planes of an even, non-empty \
             height and width, got shape ({n}, {rows}, {w})"
        )));
    }
    if !a.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "planes: expected a C-contiguous array",
        ));
    }
    let src = a
        .as_slice()
        .map_err(|_| PyValueError::new_err("planes: expected an aligned array"))?;
    let d = Dims::new(n, rows / 3 * 2, w);
    let out = alloc::<u8>(py, d)?;
    let o = out_slice(&out);
    run(py, || {
        kernels::yuv::yuv420p_to_rgb(src, d, m, full_range, o)
    })?;
    Ok(out)
}

#[pyfunction]
fn warp_affine<'py>(
    py: Python<'py>,
    frames_: &Bound<'py, PyAny>,
    matrix: &Bound<'py, PyAny>,
    border: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let matrix = read(matrix, "matrix", F64)?;
    let m = vec1(&matrix, "matrix")?;
    let b = kernels::warp::Border::parse(border).map_err(to_py)?;
    Ok(match frames(frames_, "frames")? {
        Frames::U8(a) => map_batch(py, &a, "frames", |s, d, o| {
            kernels::warp::warp_affine(s, d, m, b, o)
        })?
        .into_any(),
        Frames::F32(a) => map_batch(py, &a, "frames", |s, d, o| {
            kernels::warp::warp_affine(s, d, m, b, o)
        })?
        .into_any(),
    })
}

/// The flow interpolator's per-pixel work (see `kernels::flow`): `pair` is
/// `(2, h, w, 3)` uint8 (the two frames), `flows` `(2, h, w, 2)` float32
/// (`F01`, `F10`); returns `(len(ts), h, w, 3)` uint8.
#[pyfunction]
fn _flow_interpolate<'py>(
    py: Python<'py>,
    pair: &Bound<'py, PyAny>,
    flows: &Bound<'py, PyAny>,
    ts: &Bound<'py, PyAny>,
    sigma: f64,
) -> PyResult<Bound<'py, PyArray4<u8>>> {
    let pair: Ro4<u8> = read(pair, "pair", "a 4-D uint8 array (2, h, w, 3)")?;
    let flows: Ro4<f32> = read(flows, "flows", "a 4-D float32 array (2, h, w, 2)")?;
    let ts = read(ts, "timesteps", F64)?;
    let (d, ab) = view(&pair, "pair")?;
    if d.n != 2 {
        return Err(PyValueError::new_err(format!(
            "pair: expected 2 frames, got {}",
            d.n
        )));
    }
    let fs = flows.shape();
    if fs != [2, d.h, d.w, 2] || !flows.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "flows: expected a C-contiguous (2, {}, {}, 2) array, got shape {fs:?}",
            d.h, d.w
        )));
    }
    let f = flows
        .as_slice()
        .map_err(|_| PyValueError::new_err("flows: expected an aligned C-contiguous array"))?;
    let t = vec1(&ts, "timesteps")?;
    let out = alloc::<u8>(py, Dims::new(t.len(), d.h, d.w))?;
    let o = out_slice(&out);
    let (px3, px2) = (d.h * d.w * 3, d.h * d.w * 2);
    run(py, || {
        kernels::flow::flow_interpolate(
            &ab[..px3],
            &ab[px3..],
            d.h,
            d.w,
            &f[..px2],
            &f[px2..],
            t,
            sigma,
            o,
        )
    })?;
    Ok(out)
}

#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    kernels::parallel::set_num_threads(n).map_err(to_py)
}

#[pyfunction]
fn get_num_threads(py: Python<'_>) -> PyResult<usize> {
    // starts the pool if no kernel has yet: a pool whose threads cannot start
    // panics, which must surface as KernelPanic here too
    run(py, || Ok(kernels::parallel::num_threads()))
}

#[pyfunction]
fn set_buffer_cache(max_bytes: usize) {
    pool::set_max_bytes(max_bytes)
}

/// (limit, bytes held, buffers held) of the result-buffer cache.
#[pyfunction]
fn buffer_cache_info() -> (usize, usize, usize) {
    pool::info()
}

#[pyfunction]
fn simd_level() -> &'static str {
    kernels::simd::level().name()
}

/// Deliberately panic inside a kernel call, so tests can check that panics
/// surface as `KernelPanic` and never abort the interpreter.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    run(py, || -> kernels::Result<()> { panic!("test panic") })
}

#[pymodule]
pub fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // count forks from now on, so a child never takes a parent's pool or record
    // as its own, even with a pid the parent had (see parallel::process_key)
    kernels::parallel::process_key();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("KernelPanic", m.py().get_type::<KernelPanic>())?;
    m.add_function(wrap_pyfunction!(rgb_to_lab, m)?)?;
    m.add_function(wrap_pyfunction!(lab_to_rgb, m)?)?;
    m.add_function(wrap_pyfunction!(match_histograms, m)?)?;
    m.add_function(wrap_pyfunction!(match_histograms_prepared, m)?)?;
    m.add_function(wrap_pyfunction!(blend_luminosity, m)?)?;
    m.add_function(wrap_pyfunction!(adjust_gamma, m)?)?;
    m.add_function(wrap_pyfunction!(match_gamma, m)?)?;
    m.add_function(wrap_pyfunction!(color_correct, m)?)?;
    m.add_function(wrap_pyfunction!(color_correct_prepared, m)?)?;
    m.add_class::<PreparedTarget>()?;
    m.add_class::<PreparedReference>()?;
    m.add_function(wrap_pyfunction!(lerp_frames, m)?)?;
    m.add_function(wrap_pyfunction!(mean_frames, m)?)?;
    m.add_function(wrap_pyfunction!(rgb_to_yuv420p, m)?)?;
    m.add_function(wrap_pyfunction!(yuv420p_to_rgb, m)?)?;
    m.add_function(wrap_pyfunction!(warp_affine, m)?)?;
    m.add_function(wrap_pyfunction!(_flow_interpolate, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_class::<pool::ResultBuffer>()?;
    m.add_function(wrap_pyfunction!(set_buffer_cache, m)?)?;
    m.add_function(wrap_pyfunction!(buffer_cache_info, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(borrow::_reading, m)?)?;
    m.add_class::<borrow::Reading>()?;
    Ok(())
}
