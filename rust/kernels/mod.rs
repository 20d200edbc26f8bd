//! Pure-Rust colour kernels over batches of RGB frames. Nothing here knows Python.
//!
//! Every kernel takes flat C-order buffers plus a [`Dims`], checks them, and
//! writes into a caller-allocated output; errors are [`KernelError`]s naming
//! the argument at fault. Float input must be finite; float RGB is clamped to
//! [0, 1] where a kernel reads it as colour.

pub mod blend;
pub mod correct;
pub mod error;
pub mod flow;
pub mod frames;
pub mod gamma;
pub mod histogram;
pub mod lab;
pub mod lerp;
pub mod parallel;
mod simd;
pub mod srgb;
pub mod warp;
#[cfg(target_arch = "x86_64")]
pub mod x86;
pub mod yuv;

pub use error::{KernelError, Result};
pub use frames::{Dims, Sample};
