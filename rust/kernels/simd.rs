//! Runtime dispatch of hot loops to an AVX2 build.
//!
//! The block kernels are straight-line f32 code the compiler vectorises; built
//! for the x86-64 baseline that means SSE2, 4 lanes. [`avx2_dispatch!`] defines a
//! function that calls its `#[inline(always)]` implementation through a
//! `#[target_feature(enable = "avx2")]` copy when the CPU has AVX2, so the same
//! source vectorises 8 wide. No FMA: Rust never contracts `a * b + c`, so both
//! builds give bit-identical results and the tests cover both.

/// `avx2_dispatch!(pub fn name<T: Sample>(args) -> R = implementation);`
macro_rules! avx2_dispatch {
    ($vis:vis fn $name:ident<$T:ident: $B:path>($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? = $imp:ident) => {
        $vis fn $name<$T: $B>($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2<$T: $B>($($a: $t),*) $(-> $r)? {
                    $imp::<$T>($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU was just checked to support AVX2.
                    return unsafe { avx2::<$T>($($a),*) };
                }
            }
            $imp::<$T>($($a),*)
        }
    };
}

pub(crate) use avx2_dispatch;
