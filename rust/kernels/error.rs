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
            Self::Shape { arg, .. } | Self::NonFinite { arg } | Self::Value { arg, .. } => arg,
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
        }
    }
}

impl std::error::Error for KernelError {}

pub type Result<T> = std::result::Result<T, KernelError>;
