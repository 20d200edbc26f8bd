"""Many Python threads at once, and the thread-count setting."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from conftest import drift

import loopwave as lw


def _work(photos, i):
    names = sorted(photos)
    img = photos[names[i % 4]]
    frame = drift(img, 0.5 + 0.1 * i)
    return (
        lw.color_correct(frame, img),
        lw.rgb_to_lab(frame),
        lw.match_histograms(frame, photos[names[(i + 1) % 4]]),
    )


def test_eight_threads_give_the_serial_results(photos):
    serial = [_work(photos, i) for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda i: _work(photos, i), range(16)))
    for s, p in zip(serial, parallel, strict=True):
        for a, b in zip(s, p, strict=True):
            np.testing.assert_array_equal(a, b)


def test_thread_count_setting_does_not_change_results(photos):
    batch = np.stack([drift(p) for p in photos.values()])
    target = photos["coffee"]
    default = lw.get_num_threads()
    want = lw.color_correct(batch, target)
    try:
        lw.set_num_threads(1)
        assert lw.get_num_threads() == 1
        np.testing.assert_array_equal(lw.color_correct(batch, target), want)
        lw.set_num_threads(3)
        assert lw.get_num_threads() == 3
        np.testing.assert_array_equal(lw.color_correct(batch, target), want)
    finally:
        lw.set_num_threads(0)
    assert lw.get_num_threads() == default
