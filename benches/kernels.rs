//! Criterion benches of the pure-Rust kernels (no Python): `cargo bench --bench kernels`.
//! Throughput is in pixels per second; inputs are deterministic pseudo-random frames.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

use _native::kernels::{blend, correct, gamma, histogram, lab, lerp, yuv, Dims};

fn frame(d: Dims, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..d.len())
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // a gradient with noise, so histograms are spread like a photograph's
            ((i / 3 % d.w * 200 / d.w) as u64 + (s >> 59)) as u8
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernels");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for (w, h) in [(512usize, 512usize), (1920, 1080)] {
        let d = Dims::new(1, h, w);
        let size = format!("{w}x{h}");
        let src = frame(d, 1);
        let target = frame(d, 2);
        let srcf: Vec<f32> = src.iter().map(|&v| v as f32 / 255.0).collect();
        let mut lab_out = vec![0f32; d.len()];
        let mut out = vec![0u8; d.len()];
        g.throughput(Throughput::Elements((w * h) as u64));
        g.bench_function(BenchmarkId::new("rgb_to_lab_u8", &size), |b| {
            b.iter(|| lab::rgb_to_lab(&src, d, &mut lab_out).unwrap())
        });
        g.bench_function(BenchmarkId::new("rgb_to_lab_f32", &size), |b| {
            b.iter(|| lab::rgb_to_lab(&srcf, d, &mut lab_out).unwrap())
        });
        lab::rgb_to_lab(&src, d, &mut lab_out).unwrap();
        g.bench_function(BenchmarkId::new("lab_to_rgb_u8", &size), |b| {
            b.iter(|| lab::lab_to_rgb(&lab_out, d, &mut out).unwrap())
        });
        let mut rgbf_out = vec![0f32; d.len()];
        g.bench_function(BenchmarkId::new("lab_to_rgb_f32", &size), |b| {
            b.iter(|| lab::lab_to_rgb(&lab_out, d, &mut rgbf_out).unwrap())
        });
        g.bench_function(BenchmarkId::new("match_histograms_u8", &size), |b| {
            b.iter(|| histogram::match_histograms(&src, d, &target, d, &mut out).unwrap())
        });
        g.bench_function(BenchmarkId::new("blend_luminosity", &size), |b| {
            b.iter(|| blend::blend_luminosity(&src, &target, d, &mut out).unwrap())
        });
        g.bench_function(BenchmarkId::new("adjust_gamma", &size), |b| {
            b.iter(|| gamma::adjust_gamma(&src, d, &[1.3], &mut out).unwrap())
        });
        g.bench_function(BenchmarkId::new("lerp_frames", &size), |b| {
            b.iter(|| lerp::lerp_frames(&src, &target, d, &[0.3], &mut out).unwrap())
        });
        // mean of two frames: throughput counts output pixels
        let pair: Vec<u8> = src.iter().chain(target.iter()).copied().collect();
        let d2 = Dims::new(2, h, w);
        g.bench_function(BenchmarkId::new("mean_frames_2", &size), |b| {
            b.iter(|| lerp::mean_frames(&pair, d2, &mut out).unwrap())
        });
        let mut gammas = [0.0];
        g.bench_function(BenchmarkId::new("color_correct", &size), |b| {
            b.iter(|| {
                correct::color_correct(&src, d, &target, d, true, &mut out, &mut gammas).unwrap()
            })
        });
        let mut yuv_out = vec![0u8; d.len() / 2];
        g.bench_function(BenchmarkId::new("rgb_to_yuv420p", &size), |b| {
            b.iter(|| {
                yuv::rgb_to_yuv420p(&src, d, yuv::Matrix::Bt709, false, &mut yuv_out).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
