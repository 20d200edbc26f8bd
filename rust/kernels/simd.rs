//! Runtime dispatch of hot loops to AVX-512 and AVX2 builds.
//!
//! The block kernels are straight-line f32 code the compiler vectorises; built
//! for the x86-64 baseline that means SSE2, 4 lanes. [`simd_dispatch!`] defines
//! a function that calls its `#[inline(always)]` implementation through a
//! `#[target_feature]` copy for the widest level the CPU has: AVX-512 (16
//! lanes), AVX2 with FMA (8 lanes), or the baseline. Rust never contracts
//! `a * b + c` into a fused multiply-add; where code asks for one
//! (`f32::mul_add`) the wide builds use the FMA instruction and the baseline
//! build the C library's `fmaf`, and fused multiply-add, division and square
//! root are all correctly rounded, so every build gives bit-identical results.
//! The environment variable `LOOPWAVE_SIMD` (`avx512`, `avx2` or `baseline`,
//! read once) caps the level, which is how the tests compare the builds.

use std::sync::OnceLock;

/// Instruction-set levels the kernels are built for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Baseline,
    Avx2,
    Avx512,
}

impl Level {
    /// The level's name, as `LOOPWAVE_SIMD` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }
}

/// The widest level this CPU supports.
fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        // the AVX-512 builds enable AVX2 and FMA too (and run the AVX2 kernels): a
        // hypervisor may hide those while it shows AVX-512, so they are required here too
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if avx2
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// The level in use: the CPU's widest, capped by `LOOPWAVE_SIMD` when that
/// names a level, in any case and spacing (other values are ignored).
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let var = std::env::var("LOOPWAVE_SIMD").unwrap_or_default();
        let cap = match var.trim().to_ascii_lowercase().as_str() {
            "baseline" => Level::Baseline,
            "avx2" => Level::Avx2,
            _ => Level::Avx512,
        };
        detect().min(cap)
    })
}

/// `simd_dispatch!(pub fn name<T: Sample>(args) -> R = implementation);`
macro_rules! simd_dispatch {
    ($vis:vis fn $name:ident<$T:ident: $B:path>($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? = $imp:ident) => {
        $vis fn $name<$T: $B>($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::kernels::simd::{level, Level};
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
                fn avx512<$T: $B>($($a: $t),*) $(-> $r)? {
                    $imp::<$T>($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<$T: $B>($($a: $t),*) $(-> $r)? {
                    $imp::<$T>($($a),*)
                }
                match level() {
                    // SAFETY: `level` is at most what the CPU was detected to support.
                    Level::Avx512 => return unsafe { avx512::<$T>($($a),*) },
                    // SAFETY: as above.
                    Level::Avx2 => return unsafe { avx2::<$T>($($a),*) },
                    Level::Baseline => {}
                }
            }
            $imp::<$T>($($a),*)
        }
    };
}

pub(crate) use simd_dispatch;

/// How far ahead of a block the streaming loops ask for their data, in
/// blocks. On the AMD EPYC VM measured, the hardware prefetcher alone left
/// the loops waiting on memory: asking ahead made `color_correct`'s pass one
/// about 9% faster and `rgb_to_yuv420p` about 1.5 times as fast.
pub const PREFETCH_BLOCKS: usize = 4;

/// [`prefetch`] of the block [`PREFETCH_BLOCKS`] blocks after `block`, where
/// a loop walks blocks of `block.len()` items laid end to end (past a
/// buffer's end this only wastes a few lines).
#[inline(always)]
pub fn prefetch_ahead<T>(block: &[T]) {
    let bytes = std::mem::size_of_val(block);
    prefetch(block, PREFETCH_BLOCKS * bytes, bytes);
}

/// A hint to bring the `bytes` bytes that start `ahead` bytes past the start of
/// `s` into the cache. The addresses need not be inside `s`: a prefetch never
/// faults, and one past the end of a buffer only wastes a line.
#[inline(always)]
pub fn prefetch<T>(s: &[T], ahead: usize, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = s.as_ptr() as *const i8;
        for line in (0..bytes).step_by(64) {
            // SAFETY: a prefetch reads nothing the program sees and never faults
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(ahead + line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, ahead, bytes);
}
