//! The sRGB transfer curve (IEC 61966-2-1): exact f64 references and the lookup
//! tables the fast kernels use.
//!
//! * `u8` → linear: a 256-entry table, exact to f32 rounding.
//! * `f32` → linear: 4096 linear segments; max error 2e-7, mostly f32 rounding (measured by the tests
//!   against the f64 curve).
//! * linear → sRGB: 16384 linear segments; max error 4e-6, far below half a
//!   `u8` level (2e-3), so `u8` output rounds exactly as the f64 curve would
//!   except within 4e-6 of a rounding boundary.

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

/// Linear light in [0, 1] to the sRGB-encoded value (f64 reference).
pub fn encode_f64(v: f64) -> f64 {
    if v <= 0.0031308 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// A function on [0, 1] sampled at `n + 1` points, evaluated by linear interpolation.
pub struct InterpLut {
    scale: f32,
    last: usize,
    /// (value at the segment start, rise over the segment)
    table: Vec<[f32; 2]>,
}

impl InterpLut {
    pub fn new(n: usize, f: impl Fn(f64) -> f64) -> Self {
        let ys: Vec<f64> = (0..=n).map(|i| f(i as f64 / n as f64)).collect();
        let table = ys
            .windows(2)
            .map(|w| [w[0] as f32, (w[1] - w[0]) as f32])
            .collect();
        Self {
            scale: n as f32,
            last: n - 1,
            table,
        }
    }

    /// f(x) for x in [0, 1]; x outside is clamped. x must not be NaN.
    #[inline(always)]
    pub fn eval(&self, x: f32) -> f32 {
        // max/min rather than clamp so NaN lands on 0
        let t = clamp01(x) * self.scale;
        // SAFETY: t is in [0, n] with n < 2^24, so the truncation fits u32.
        let i = (unsafe { t.to_int_unchecked::<u32>() } as usize).min(self.last);
        let [v, d] = self.table[i];
        v + d * (t - i as f32)
    }
}

/// 256-entry table: `u8` sRGB code → linear light.
pub fn decode_table_u8() -> &'static [f32; 256] {
    static T: OnceLock<[f32; 256]> = OnceLock::new();
    T.get_or_init(|| std::array::from_fn(|i| decode_f64(i as f64 / 255.0) as f32))
}

/// Interpolated table for sRGB `f32` in [0, 1] → linear light.
pub fn decode_table() -> &'static InterpLut {
    static T: OnceLock<InterpLut> = OnceLock::new();
    T.get_or_init(|| InterpLut::new(4096, decode_f64))
}

/// Interpolated table for linear light in [0, 1] → sRGB `f32`.
pub fn encode_table() -> &'static InterpLut {
    static T: OnceLock<InterpLut> = OnceLock::new();
    T.get_or_init(|| InterpLut::new(16384, encode_f64))
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

#[inline(always)]
pub fn decode_u8(v: u8) -> f32 {
    decode_table_u8()[v as usize]
}

#[inline(always)]
pub fn decode_f32(v: f32) -> f32 {
    decode_table().eval(v)
}

#[inline(always)]
pub fn encode_f32(v: f32) -> f32 {
    encode_table().eval(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_the_f64_curve() {
        let mut worst_dec = 0.0f64;
        let mut worst_enc = 0.0f64;
        for i in 0..=100_000 {
            let x = i as f64 / 100_000.0;
            worst_dec = worst_dec.max((decode_f32(x as f32) as f64 - decode_f64(x)).abs());
            worst_enc = worst_enc.max((encode_f32(x as f32) as f64 - encode_f64(x)).abs());
        }
        assert!(worst_dec < 2e-7, "decode error {worst_dec}");
        let worst_poly = (0..=100_000)
            .map(|i| i as f64 / 100_000.0)
            .map(|x| (decode_poly(x as f32) as f64 - decode_f64(x)).abs())
            .fold(0.0, f64::max);
        assert!(worst_poly < 5e-7, "polynomial decode error {worst_poly}");
        assert!(worst_enc < 5e-6, "encode error {worst_enc}");
        for v in 0..=255u8 {
            assert!((decode_u8(v) as f64 - decode_f64(v as f64 / 255.0)).abs() < 1e-7);
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
