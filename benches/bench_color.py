"""Side-by-side benchmark: loopwave's kernels vs the libraries the seed uses.

    python benches/bench_color.py [--quick] [--sizes 512x512,1920x1080] [--batch 8]
                                  [--markdown OUT.md]

Frames are skimage's photographs resized to each size (a drifted copy as frames,
the original as target), uint8 RGB. loopwave is timed on one call over the batch,
the baselines frame by frame (as the seed calls them); both are reported per
frame, as the median of several runs after a warm-up. "x floor" compares each
loopwave kernel with the time it would take just to read its input and write its
output at the machine's measured copy bandwidth.

OPENBLAS_NUM_THREADS is set to 1 so numpy's idle BLAS threads do not spin on the
cores both sides share.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import loopwave as lw  # noqa: E402
from loopwave.bench import median_time  # noqa: E402


@dataclass
class Row:
    kernel: str
    size: str
    ours_ms: float
    baseline: str
    base_ms: float | None
    floor_ms: float | None

    @property
    def ratio(self) -> float | None:
        return None if self.base_ms is None else self.base_ms / self.ours_ms


def copy_bandwidth() -> float:
    """Bytes per second of reading plus writing a large array (np.copyto)."""
    src = np.ones(256 << 20, np.uint8)
    dst = np.empty_like(src)
    t = median_time(lambda: np.copyto(dst, src), 5)
    return 2 * src.nbytes / t


def photos(h: int, w: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage import data
    from skimage.transform import resize

    names = ["astronaut", "coffee", "chelsea", "rocket"]
    imgs = [
        (resize(getattr(data, k)()[..., :3], (h, w), anti_aliasing=False) * 255 + 0.5).astype(
            np.uint8
        )
        for k in names
    ]
    targets = np.stack([imgs[i % 4] for i in range(n)])
    x = targets.astype(np.float32) / 255
    x = 0.5 + (x - 0.5) * 1.4
    x *= np.array([1.15, 1.04, 0.85], np.float32)
    frames = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    return frames, targets


def seed_step(original: np.ndarray, target: np.ndarray, blend: Any = None) -> np.ndarray:
    """The seed's per-frame colour step with the libraries it names; ``blend``: another
    copy of ``blendmodes.blend`` to blend with (see bench_seed_ratio.py --blendmodes)."""
    import cv2
    from PIL import Image
    from skimage import exposure

    if blend is None:
        from blendmodes import blend
    BlendType, blendLayers = blend.BlendType, blend.blendLayers  # noqa: N806

    base = cv2.cvtColor(original, cv2.COLOR_RGB2LAB)
    corr = cv2.cvtColor(target, cv2.COLOR_RGB2LAB)
    hist = exposure.match_histograms(base, corr, channel_axis=2)
    hist = cv2.cvtColor(hist.astype("uint8"), cv2.COLOR_LAB2RGB)
    img = blendLayers(Image.fromarray(hist), Image.fromarray(original), BlendType.LUMINOSITY)
    l1, l2 = base[..., 0].astype(float), corr[..., 0].astype(float)
    scale = (l2.std() / l1.std()) * ((l2.mean() - l1.mean()) / l1.mean())  # the seed's formula
    return exposure.adjust_gamma(np.asarray(img.convert("RGB")), max(1.0 + scale, 0.05))


def bench_size(h: int, w: int, n: int, repeats: int, bw: float, slow_frames: int) -> list[Row]:
    import cv2
    from blendmodes.blend import BlendType, blendLayers
    from PIL import Image
    from skimage import color, exposure

    frames, targets = photos(h, w, n)
    ff = frames.astype(np.float32) / 255
    ff_target = targets[0].astype(np.float32) / 255
    lab = lw.rgb_to_lab(frames)
    target = targets[0]
    px = h * w
    size = f"{w}x{h}"
    rows: list[Row] = []

    def add(
        kernel,
        ours,
        bytes_per_frame,
        base_name=None,
        base=None,
        base_frames=n,
        per_call=n,
        pool=None,
    ):
        """Time ours and the baseline (if any) with their calls alternating, so a change
        in the machine's load while the row runs reaches both sides alike (``pool``: a
        list the baseline's times per frame are added to)."""
        k = min(base_frames, n)
        base_ms = None
        if base is not None:
            t_ours, t_base = alternating(
                ours, lambda: base(k), repeats, base_repeats(repeats), pool, k
            )
            ours_ms, base_ms = t_ours / per_call * 1e3, t_base / k * 1e3
        else:
            ours_ms = median_time(ours, repeats) / per_call * 1e3
        floor = bytes_per_frame / bw * 1e3 if bytes_per_frame else None
        rows.append(Row(kernel, size, ours_ms, base_name or "", base_ms, floor))
        print(
            f"  {kernel:<32} {ours_ms:9.2f} ms  {base_name or '':<36} "
            f"{'' if base_ms is None else f'{base_ms:9.2f} ms'}",
            file=sys.stderr,
            flush=True,
        )

    add(
        "rgb_to_lab float32",
        lambda: lw.rgb_to_lab(ff),
        24 * px,
        "cv2.cvtColor RGB2LAB float32",
        lambda k: [cv2.cvtColor(f, cv2.COLOR_RGB2LAB) for f in ff[:k]],
    )
    add(
        "rgb_to_lab uint8",
        lambda: lw.rgb_to_lab(frames),
        15 * px,
        "cv2.cvtColor RGB2LAB uint8 (8-bit Lab)",
        lambda k: [cv2.cvtColor(f, cv2.COLOR_RGB2LAB) for f in frames[:k]],
    )
    # a second baseline for the same kernel: loopwave is timed again, in turns with it
    add(
        "rgb_to_lab uint8",
        lambda: lw.rgb_to_lab(frames),
        15 * px,
        "skimage rgb2lab (float64)",
        lambda k: [color.rgb2lab(f) for f in frames[:k]],
        base_frames=slow_frames,
    )
    add(
        "lab_to_rgb float32 -> uint8",
        lambda: lw.lab_to_rgb(lab),
        15 * px,
        "cv2.cvtColor LAB2RGB float32",
        lambda k: [cv2.cvtColor(f, cv2.COLOR_LAB2RGB) for f in lab[:k]],
    )
    add(
        "lab_to_rgb float32 -> float32",
        lambda: lw.lab_to_rgb(lab, dtype=np.float32),
        24 * px,
        "cv2.cvtColor LAB2RGB float32",
        lambda k: [cv2.cvtColor(f, cv2.COLOR_LAB2RGB) for f in lab[:k]],
    )
    add(
        "match_histograms uint8",
        lambda: lw.match_histograms(frames, target),
        6 * px + 3 * px / n,
        "skimage match_histograms",
        lambda k: [exposure.match_histograms(f, target, channel_axis=-1) for f in frames[:k]],
        base_frames=slow_frames,
    )
    # a video graded a frame at a time toward one reference: the reference counted on
    # every call, or once (HistogramReference)
    counted_once = lw.HistogramReference(target)
    add(
        "match_histograms 1 frame, prepared",
        lambda: [lw.match_histograms(f, counted_once) for f in frames],
        6 * px,
        "match_histograms 1 frame, array",
        lambda k: [lw.match_histograms(f, target) for f in frames[:k]],
    )
    add(
        "match_histograms float32",
        lambda: lw.match_histograms(ff, ff[0]),
        24 * px + 12 * px / n,
        "skimage match_histograms float32",
        lambda k: [exposure.match_histograms(f, ff[0], channel_axis=-1) for f in ff[:k]],
        base_frames=slow_frames,
    )
    add(
        "blend_luminosity",
        lambda: lw.blend_luminosity(frames, targets),
        9 * px,
        "blendmodes LUMINOSITY",
        lambda k: [
            blendLayers(Image.fromarray(a), Image.fromarray(b), BlendType.LUMINOSITY)
            for a, b in zip(frames[:k], targets[:k], strict=True)
        ],
        base_frames=slow_frames,
    )
    add(
        "adjust_gamma",
        lambda: lw.adjust_gamma(frames, 1.3),
        6 * px,
        "skimage adjust_gamma",
        lambda k: [exposure.adjust_gamma(f, 1.3) for f in frames[:k]],
    )
    add(
        "adjust_gamma float32",
        lambda: lw.adjust_gamma(ff, 1.3),
        24 * px,
        "skimage adjust_gamma float32",
        lambda k: [exposure.adjust_gamma(f, 1.3) for f in ff[:k]],
    )

    def lightness(x: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(x, cv2.COLOR_RGB2LAB)[..., 0].astype(float)

    def seed_gamma(f: np.ndarray, l2: np.ndarray) -> np.ndarray:
        """The seed's gamma step: its formula on OpenCV's L (8-bit for uint8 frames, L* in
        0..100 for float32; the target's worked out once), then adjust_gamma."""
        l1 = lightness(f)
        scale = (l2.std() / l1.std()) * ((l2.mean() - l1.mean()) / l1.mean())
        return exposure.adjust_gamma(f, max(1.0 + scale, 0.05))

    for name, fs, t, bpp, base in [
        ("match_gamma", frames, target, 1, "seed's gamma"),
        ("match_gamma float32", ff, ff_target, 4, "seed's gamma float32"),
    ]:
        l2 = lightness(t)
        add(
            name,
            lambda fs=fs, t=t: lw.match_gamma(fs, t),
            bpp * (6 * px + 3 * px / n),
            f"{base} (cv2 L* stats + adjust_gamma)",
            lambda k, fs=fs, l2=l2: [seed_gamma(f, l2) for f in fs[:k]],
        )
    add(
        "lerp_frames",
        lambda: lw.lerp_frames(frames, targets, 0.3),
        9 * px,
        "PIL Image.blend",
        lambda k: [
            np.asarray(Image.blend(Image.fromarray(a), Image.fromarray(b), 0.3))
            for a, b in zip(frames[:k], targets[:k], strict=True)
        ],
    )
    add(
        "mean_frames (per input frame)",
        lambda: lw.mean_frames(frames),
        3 * px + 3 * px / n,
        "numpy mean(0)",
        lambda k: np.rint(frames[:k].mean(0)).astype(np.uint8),
        per_call=n,
    )
    add(
        "rgb_to_yuv420p",
        lambda: lw.rgb_to_yuv420p(frames),
        4.5 * px,
        "cv2 RGB2YUV_I420",
        lambda k: [cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420) for f in frames[:k]],
    )
    planes = lw.rgb_to_yuv420p(frames)
    add(
        "yuv420p_to_rgb",
        lambda: lw.yuv420p_to_rgb(planes),
        4.5 * px,
        "cv2 YUV2RGB_I420",
        lambda k: [cv2.cvtColor(p, cv2.COLOR_YUV2RGB_I420) for p in planes[:k]],
    )
    # every color_correct row times the seed's step again, alternating with its own
    # calls, so each is measured side by side at one moment (the host's load moves); the
    # seed's times of all these rows are then pooled, and each row's ratio is taken
    # against their median: a few seconds of seed steps per row swung by 35% from row to
    # row in one run (65.6-86.1x for one kernel), more than the rows differ
    seed = "seed step (cv2+skimage+blendmodes)"
    seed_times: list[float] = []
    colour_rows: list[Row] = []
    turn = itertools.count()

    def seed_frames(k: int) -> range:
        """The next ``k`` frames in turn, so every photograph of the batch is timed."""
        first = next(turn) * k
        return range(first, first + k)

    def seed_shared(k: int) -> list[np.ndarray]:
        return [seed_step(frames[i % n], target) for i in seed_frames(k)]

    def vs_seed(
        kernel: str,
        ours: Callable[[], object],
        bytes_per_frame: float,
        base: Callable[[int], object] = seed_shared,
    ) -> None:
        add(kernel, ours, bytes_per_frame, seed, base, base_frames=slow_frames, pool=seed_times)
        colour_rows.append(rows[-1])

    vs_seed(
        "color_correct (shared target)",
        lambda: lw.color_correct(frames, target),
        6 * px + 3 * px / n,
    )
    # the same call writing into one reused array, as a video loop would
    reused = np.empty_like(frames)
    vs_seed(
        "color_correct (shared target, out=)",
        lambda: lw.color_correct(frames, target, out=reused),
        6 * px + 3 * px / n,
    )
    # a new array for every result, as before the buffer cache: the OS maps and zeroes
    # fresh pages for each (glibc returns blocks over 32 MiB to it on every free)
    limit = lw.buffer_cache_info()["max_bytes"]
    lw.set_buffer_cache(0)
    try:
        vs_seed(
            "color_correct (shared target, cache off)",
            lambda: lw.color_correct(frames, target),
            6 * px + 3 * px / n,
        )
    finally:
        lw.set_buffer_cache(limit)
    # float32 frames, against the (8-bit) seed step
    target_f = target.astype(np.float32) / 255
    vs_seed(
        "color_correct float32 (shared target)",
        lambda: lw.color_correct(ff, target_f),
        24 * px + 12 * px / n,
    )
    vs_seed(
        "color_correct (target per frame)",
        lambda: lw.color_correct(frames, targets),
        9 * px,
        lambda k: [seed_step(frames[i % n], targets[i % n]) for i in seed_frames(k)],
    )
    pooled = statistics.median(seed_times) * 1e3
    print(
        f"  seed step: median of {len(seed_times)} frames {pooled:.2f} ms "
        f"(the rows' own: {', '.join(f'{r.base_ms:.0f}' for r in colour_rows)})",
        file=sys.stderr,
    )
    for r in colour_rows:
        r.base_ms = pooled
    return rows


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(
                (k.strip(), v.strip())
                for k, _, v in (line.partition(":") for line in itertools.islice(f, 12))
            )
        cpu = info.get("model name", cpu)
        if "cpu family" in info:  # (one name, "AMD EPYC", stands for several generations)
            cpu += f" (family {info['cpu family']}, model {info.get('model', '?')})"
    except OSError:
        pass
    import cv2

    return (
        f"{cpu}, {os.cpu_count()} cores, loopwave threads {lw.get_num_threads()} "
        f"({lw.simd_level()}), "
        f"OpenCV threads {cv2.getNumThreads()}; {loopwave_source()}"
    )


TREE = Path(__file__).resolve().parents[1]


def loopwave_source(tree: Path = TREE) -> str:
    """Which loopwave the benchmark measures: its folder, and a warning on stderr where it
    is older than ``tree``'s sources (a virtual environment's copy installed before the
    last change, imported in place of the tree's: run with ``PYTHONPATH=python``, after
    building, to measure the tree)."""
    import loopwave._native as native

    pkg = Path(lw.__file__).resolve().parent
    stale = stale_sources(Path(native.__file__), pkg, tree)
    if stale:
        print(f"warning: the loopwave measured ({pkg}) is out of date: {stale}", file=sys.stderr)
    return f"loopwave from {pkg}" + (" (STALE)" if stale else "")


def stale_sources(native: Path, pkg: Path, tree: Path) -> str | None:
    """What in ``tree`` the loopwave at ``pkg`` (its native module ``native``) was not
    built from: Rust sources or build files newer than ``native``, or, where ``pkg`` is
    not ``tree``'s own package, Python sources whose bytes differ from ``pkg``'s (by
    content: times said nothing of an older copy installed later); None where neither
    (or ``tree`` is not a checkout)."""
    if not (tree / "Cargo.toml").is_file():
        return None
    build = [*(tree / "rust").rglob("*.rs"), *(tree / n for n in ("Cargo.toml", "Cargo.lock"))]
    if max(q.stat().st_mtime for q in build if q.is_file()) > native.stat().st_mtime:
        return (
            f"the Rust sources or build files in {tree} are newer than its native module "
            "(rebuild it)"
        )
    own = tree / "python" / "loopwave"
    if own.resolve() != pkg:
        changed = [
            q.name
            for q in sorted(own.glob("*.py"))
            if not (pkg / q.name).is_file() or (pkg / q.name).read_bytes() != q.read_bytes()
        ]
        if changed:
            return f"its Python sources differ from {own}'s ({', '.join(changed[:4])})"
    return None


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = [f"Python {platform.python_version()}", f"loopwave {lw.__version__}"]
    for dist in (
        "numpy",
        "opencv-python-headless",
        "opencv-python",
        "scikit-image",
        "blendmodes",
        "pillow",
    ):
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def markdown(rows: list[Row], header: str, info: str) -> str:
    out = [
        "### Colour kernels: loopwave vs the seed's libraries",
        "",
        info,
        "",
        ABOUT,
        "",
        header.replace("\n", "  \n"),
        "",
        "| kernel | size | loopwave ms/frame | frames/s | baseline | baseline ms/frame "
        "| speed-up | x bandwidth floor |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        base = "" if r.base_ms is None else f"{r.base_ms:.2f}"
        ratio = "" if r.ratio is None else f"{r.ratio:.1f}x"
        floor = "" if r.floor_ms is None else f"{r.ours_ms / r.floor_ms:.1f}"
        out.append(
            f"| {r.kernel} | {r.size} | {r.ours_ms:.2f} | {1e3 / r.ours_ms:.0f} | "
            f"{r.baseline} | {base} | {ratio} | {floor} |"
        )
    return "\n".join(out) + "\n"


def alternating(
    a: Callable[[], object],
    b: Callable[[], object],
    runs_a: int,
    runs_b: int,
    pool: list[float] | None = None,
    per_b: int = 1,
) -> tuple[float, float]:
    """Median wall times of ``a`` and ``b``, each warmed up once, then called in turn;
    ``b``'s times divided by ``per_b`` are also added to ``pool`` if given."""
    a(), b()
    ta: list[float] = []
    tb: list[float] = []
    for i in range(max(runs_a, runs_b)):
        for fn, ts, runs in ((a, ta, runs_a), (b, tb, runs_b)):
            if i < runs:
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
    if pool is not None:
        pool.extend(t / per_b for t in tb)
    return statistics.median(ta), statistics.median(tb)


def base_repeats(repeats: int) -> int:
    """Timed runs of a baseline: about half of ours, as some take seconds."""
    return max(1, (repeats + 1) // 2)


def run_info(argv: Sequence[str] | None) -> str:
    """The command line, the date and the git commit, for the markdown."""
    import datetime
    import shlex
    import subprocess

    args = sys.argv[1:] if argv is None else list(argv)
    cmd = shlex.join(["python", "benches/bench_color.py", *args])
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Command: `{cmd}`; run {date} at commit `{commit}`."


def slow_count(batch: int, pixels: int) -> int:
    """Frames the slow baselines (skimage rgb2lab, match_histograms, blendmodes, the seed
    step) are timed over: the whole batch up to 512x512, else 2."""
    return batch if pixels <= 512 * 512 else min(batch, 2)


def slow_frames_desc(batch: int) -> str:
    if batch <= 2:
        return f"{batch} frames"
    return f"{batch} frames up to 512x512 and 2 above"


ABOUT = (
    "loopwave is timed on one call over the whole batch, the baselines frame by frame as the "
    "seed calls them; both are reported per frame. speed-up = baseline / loopwave. "
    '"x bandwidth floor" = loopwave\'s time / the time just to read its input and write its '
    "output once at the measured copy bandwidth (1.0 would be memory-bound; the target of "
    "match_histograms and color_correct is counted once per batch when shared). Both sides "
    "allocate their outputs on every call, as the public APIs do; loopwave's large results "
    "reuse the memory of results already dropped (its buffer cache, lw.set_buffer_cache), as "
    "in any loop that calls it, except in the row marked cache off (a new array every call). "
    "In the row marked out=, loopwave writes into one array reused from call to call, as a "
    "video loop can (color_correct's out= argument). The seed step is timed in every "
    "color_correct row, in turns with it, over the batch's photographs in turn; all these "
    "rows share one seed figure, the median of those times pooled (each row's own few "
    "seconds of seed steps swung by a third from row to row in one run). The seed step "
    "uses the installed blendmodes (2025 and later: before 2025 its LUMINOSITY looped over "
    "the pixels in Python, the whole step about 2x slower at 1080p; see "
    "benches/bench_seed_ratio.py --blendmodes)."
)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="512x512,1920x1080", help="WxH list")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=7, help="timed calls of ours")
    p.add_argument("--quick", action="store_true", help="a smoke run: 128x128, 2 frames, 1 repeat")
    p.add_argument("--markdown", help="also write the table as markdown to this file")
    a = p.parse_args(argv)
    if a.quick:
        a.sizes, a.batch, a.repeats = "128x128", 2, 1
    bw = copy_bandwidth()
    header = (
        f"Machine: {machine()}; copy bandwidth {bw / 1e9:.1f} GB/s (np.copyto, read + write).\n"
        f"Versions: {versions()}.\n"
        f"Batch {a.batch} frames; loopwave: median of {a.repeats} calls over the batch, after a "
        f"warm-up; baselines: median of {base_repeats(a.repeats)} runs over the batch "
        f"(the slow ones over {slow_frames_desc(a.batch)}), frame by frame; within a row "
        "the two sides' calls alternate."
    )
    print(header, file=sys.stderr)
    rows: list[Row] = []
    for s in a.sizes.split(","):
        w, h = (int(v) for v in s.lower().split("x"))
        print(f"{w}x{h}:", file=sys.stderr)
        slow = slow_count(a.batch, w * h)
        rows += bench_size(h, w, a.batch, a.repeats, bw, slow)
    table = markdown(rows, header, run_info(argv))
    print(table)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table)
    return rows


if __name__ == "__main__":
    main()
