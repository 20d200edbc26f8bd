"""loopwave: fast, headless tooling for Stable-Diffusion loopback morph videos.

The colour kernels run in Rust over frame batches (see :mod:`loopwave.color`).
``import loopwave`` needs only numpy; heavier parts import their extras lazily.
"""

from ._native import KernelPanic
from ._native import __version__ as _native_version
from .color import (
    ColorTarget,
    HistogramReference,
    adjust_gamma,
    blend_luminosity,
    buffer_cache_info,
    color_correct,
    get_num_threads,
    lab_to_rgb,
    lerp_frames,
    match_gamma,
    match_histograms,
    mean_frames,
    motion_matrix,
    rgb_to_lab,
    rgb_to_yuv420p,
    set_buffer_cache,
    set_num_threads,
    simd_level,
    warp_affine,
    yuv420p_to_rgb,
)

__version__ = _native_version

__all__ = [
    "ColorTarget",
    "HistogramReference",
    "KernelPanic",
    "__version__",
    "adjust_gamma",
    "blend_luminosity",
    "buffer_cache_info",
    "color_correct",
    "get_num_threads",
    "lab_to_rgb",
    "lerp_frames",
    "match_gamma",
    "match_histograms",
    "mean_frames",
    "motion_matrix",
    "rgb_to_lab",
    "rgb_to_yuv420p",
    "set_buffer_cache",
    "set_num_threads",
    "simd_level",
    "warp_affine",
    "yuv420p_to_rgb",
]
