# Stub for the Rust extension module (rust/py/mod.rs). The wrappers in
# loopwave.color normalise input first: 4-D, C-contiguous, batch axis present.
from typing import Any, final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "__version__",
    "KernelPanic",
    "rgb_to_lab",
    "lab_to_rgb",
    "match_histograms",
    "match_histograms_prepared",
    "blend_luminosity",
    "adjust_gamma",
    "match_gamma",
    "color_correct",
    "color_correct_prepared",
    "PreparedReference",
    "PreparedTarget",
    "lerp_frames",
    "mean_frames",
    "rgb_to_yuv420p",
    "yuv420p_to_rgb",
    "warp_affine",
    "set_num_threads",
    "get_num_threads",
    "simd_level",
    "set_buffer_cache",
    "buffer_cache_info",
    "ResultBuffer",
    "_flow_interpolate",
    "_panic_for_tests",
    "_reading",
    "Reading",
]

class KernelPanic(RuntimeError): ...

@final
class ResultBuffer:
    """Owner (the ``base``) of a large result's memory; see ``loopwave.set_buffer_cache``."""

def rgb_to_lab(frames_: npt.NDArray[Any]) -> npt.NDArray[np.float32]: ...
def lab_to_rgb(lab: npt.NDArray[np.float32], to_uint8: bool) -> npt.NDArray[Any]: ...
def match_histograms(
    frames_: npt.NDArray[Any], reference: npt.NDArray[Any]
) -> npt.NDArray[Any]: ...

@final
class PreparedReference:
    """A reference's histograms for ``match_histograms_prepared``
    (``loopwave.HistogramReference``)."""
    def __new__(cls, reference: npt.NDArray[Any]) -> PreparedReference: ...
    @property
    def n(self) -> int: ...
    @property
    def is_float(self) -> bool: ...
    @property
    def size(self) -> tuple[int, int]: ...
    def state(self) -> bytes: ...
    @staticmethod
    def from_state(
        state: bytes, is_float: bool, dims: tuple[int, int, int]
    ) -> PreparedReference: ...

def match_histograms_prepared(
    frames_: npt.NDArray[Any], reference: PreparedReference
) -> npt.NDArray[Any]: ...
def blend_luminosity(color: npt.NDArray[Any], luma: npt.NDArray[Any]) -> npt.NDArray[Any]: ...
def adjust_gamma(frames_: npt.NDArray[Any], gamma: npt.NDArray[np.float64]) -> npt.NDArray[Any]: ...
def match_gamma(
    frames_: npt.NDArray[Any], reference: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]: ...
def color_correct(
    frames_: npt.NDArray[Any],
    target: npt.NDArray[Any],
    gamma: bool,
    out: npt.NDArray[Any] | None = None,
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]: ...

@final
class PreparedTarget:
    """A target's statistics for ``color_correct_prepared`` (``loopwave.ColorTarget``)."""
    def __new__(cls, target: npt.NDArray[Any]) -> PreparedTarget: ...
    @property
    def n(self) -> int: ...
    @property
    def is_float(self) -> bool: ...
    @property
    def size(self) -> tuple[int, int]: ...
    @property
    def mean_lightness(self) -> list[float]: ...
    def state(self) -> bytes: ...
    @staticmethod
    def from_state(state: bytes, is_float: bool, size: tuple[int, int]) -> PreparedTarget: ...

def color_correct_prepared(
    frames_: npt.NDArray[Any],
    target: PreparedTarget,
    gamma: bool,
    out: npt.NDArray[Any] | None = None,
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]: ...
def lerp_frames(
    a: npt.NDArray[Any], b: npt.NDArray[Any], alpha: npt.NDArray[np.float64]
) -> npt.NDArray[Any]: ...
def mean_frames(frames_: npt.NDArray[Any]) -> npt.NDArray[Any]: ...
def rgb_to_yuv420p(
    frames_: npt.NDArray[Any], matrix: str, full_range: bool
) -> npt.NDArray[np.uint8]: ...
def yuv420p_to_rgb(
    planes: npt.NDArray[np.uint8], matrix: str, full_range: bool
) -> npt.NDArray[np.uint8]: ...
def warp_affine(
    frames_: npt.NDArray[Any], matrix: npt.NDArray[np.float64], border: str
) -> npt.NDArray[Any]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_level() -> str: ...
def set_buffer_cache(max_bytes: int) -> None: ...
def buffer_cache_info() -> tuple[int, int, int]: ...
def _panic_for_tests() -> None: ...

@final
class Reading:
    """A read claim on an array's memory while Python code copies it (a context manager)."""

    def __enter__(self) -> Reading: ...
    def __exit__(self, kind: object, value: object, tb: object) -> bool: ...

def _reading(array: npt.NDArray[Any], arg: str) -> Reading: ...
def _flow_interpolate(
    pair: npt.NDArray[np.uint8],
    flows: npt.NDArray[np.float32],
    ts: npt.NDArray[np.float64],
    sigma: float,
) -> npt.NDArray[np.uint8]: ...
