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
pub mod simd;
pub mod srgb;
pub mod warp;
#[cfg(target_arch = "x86_64")]
pub mod x86;
pub mod yuv;

pub use error::{KernelError, Result};
pub use frames::{Dims, Sample};

/// Helpers shared by the kernels' unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    /// `n` pseudo-random bytes (a 64-bit LCG's top byte), the same for the same seed.
    pub fn lcg_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }
}
