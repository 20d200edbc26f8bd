//! The sRGB transfer curve (IEC 61966-2-1): exact f64 references and the forms
//! the fast kernels decode with.
//!
//! * `u8` → linear: a 256-entry table, exact to f32 rounding.
//! * `f32` → linear: [`decode_poly`], a polynomial in straight-line code that
//!   vectorises; max error 4e-7 (measured by the tests against the f64 curve).
//!
//! Linear → sRGB is `lab::encode_oct` (an octave table times a polynomial).

use std::sync::OnceLock;

use super::frames::clamp01;

/// sRGB-encoded value in [0, 1] to linear light (f64 reference).
pub fn decode_f64(v: f64) -> f64 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

/// Linear light in [0, 1] to the sRGB-encoded value (f64 reference, for the tests).
#[cfg(test)]
pub fn encode_f64(v: f64) -> f64 {
    if v <= 0.0031308 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// 256-entry table: `u8` sRGB code → linear light.
pub fn decode_table_u8() -> &'static [f32; 256] {
    static T: OnceLock<[f32; 256]> = OnceLock::new();
    T.get_or_init(|| std::array::from_fn(|i| decode_f64(i as f64 / 255.0) as f32))
}

/// Coefficients (lowest first) of a degree-10 polynomial fit to the sRGB decode
/// curve on [0.04045, 1] (Chebyshev least squares, fitted with numpy); max
/// error 4e-7 evaluated in f32.
const DECODE_POLY: [f32; 11] = [
    0.000_842_175_55,
    0.035_896_846,
    0.474_977_24,
    0.951_303_64,
    -1.292_132,
    2.186_806_2,
    -2.999_647_2,
    2.954_543_4,
    -1.923_655_6,
    0.735_727_7,
    -0.124_662_4,
];

/// sRGB `f32` → linear light in straight-line code that vectorises (no table):
/// the linear segment, else [`DECODE_POLY`] by Horner's rule. Clamps to [0, 1].
#[inline(always)]
pub fn decode_poly(v: f32) -> f32 {
    let x = clamp01(v);
    let mut p = DECODE_POLY[10];
    for &c in DECODE_POLY[..10].iter().rev() {
        p = p * x + c;
    }
    if x <= 0.040_45 {
        x * (1.0 / 12.92)
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_match_the_f64_curve() {
        let worst_poly = (0..=100_000)
            .map(|i| i as f64 / 100_000.0)
            .map(|x| (decode_poly(x as f32) as f64 - decode_f64(x)).abs())
            .fold(0.0, f64::max);
        assert!(worst_poly < 5e-7, "polynomial decode error {worst_poly}");
        let table = decode_table_u8();
        for v in 0..=255u8 {
            assert!((table[v as usize] as f64 - decode_f64(v as f64 / 255.0)).abs() < 1e-7);
        }
    }

    #[test]
    fn curve_round_trips() {
        for i in 0..=1000 {
            let x = i as f64 / 1000.0;
            assert!((encode_f64(decode_f64(x)) - x).abs() < 1e-12);
        }
    }
}
