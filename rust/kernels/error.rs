//! The one error type every kernel returns.

use std::fmt;

/// Why a kernel refused its input. Every variant names the argument at fault.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelError {
    /// A buffer's length or a shape does not fit what the kernel expects.
    Shape {
        arg: &'static str,
        expected: String,
        got: String,
    },
    /// A float buffer holds NaN or an infinity.
    NonFinite { arg: &'static str },
    /// A scalar option is out of its domain.
    Value { arg: &'static str, message: String },
    /// No memory for a kernel's working buffer of `bytes` for `arg` (`vec!` would abort
    /// the process there).
    NoMemory { arg: &'static str, bytes: usize },
}

impl KernelError {
    pub fn shape(arg: &'static str, expected: impl Into<String>, got: impl Into<String>) -> Self {
        Self::Shape {
            arg,
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub fn value(arg: &'static str, message: impl Into<String>) -> Self {
        Self::Value {
            arg,
            message: message.into(),
        }
    }

    /// The argument the error is about.
    pub fn arg(&self) -> &'static str {
        match self {
            Self::Shape { arg, .. }
            | Self::NonFinite { arg }
            | Self::Value { arg, .. }
            | Self::NoMemory { arg, .. } => arg,
        }
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shape { arg, expected, got } => {
                write!(f, "{arg}: expected {expected}, got {got}")
            }
            Self::NonFinite { arg } => write!(
                f,
                "{arg}: contains NaN or infinity; only finite values are accepted"
            ),
            Self::Value { arg, message } => write!(f, "{arg}: {message}"),
            Self::NoMemory { arg, bytes } => {
                write!(f, "{arg}: no memory for a working buffer of {bytes} bytes")
            }
        }
    }
}

impl std::error::Error for KernelError {}

pub type Result<T> = std::result::Result<T, KernelError>;

/// Numbers whose all-zero bytes are the value 0.
pub trait Zeroable: Copy {}
impl Zeroable for u16 {}
impl Zeroable for f32 {}
impl Zeroable for u64 {}

/// `n` zeros, fresh from the allocator as `vec![0; n]` gets them (zeroed pages, no
/// memset), or [`KernelError::NoMemory`] for `arg` where the allocator has none (where
/// `vec!` aborts the process: a Python caller's interpreter went with it).
pub fn try_zeroed<T: Zeroable>(n: usize, arg: &'static str) -> Result<Vec<T>> {
    let no_memory = || KernelError::NoMemory {
        arg,
        bytes: n.saturating_mul(std::mem::size_of::<T>()),
    };
    let layout = std::alloc::Layout::array::<T>(n).map_err(|_| no_memory())?;
    if layout.size() == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the layout has a non-zero size; a non-null result is an allocation of it,
    // zeroed, which for a Zeroable T is n valid values; Vec frees it with that layout
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<T>();
        if p.is_null() {
            return Err(no_memory());
        }
        Ok(Vec::from_raw_parts(p, n, n))
    }
}

/// An empty vector with room for `n` items, or [`KernelError::NoMemory`] for `arg` where
/// the allocator has none (as [`try_zeroed`], for what is pushed rather than zeroed).
pub fn vec_with_room<T>(n: usize, arg: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| KernelError::NoMemory {
        arg,
        bytes: n.saturating_mul(std::mem::size_of::<T>()),
    })?;
    Ok(v)
}
