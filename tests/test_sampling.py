"""Temporal samplers: exact frame numbers on known inputs."""
import random

import pytest

from training.data.sampling import (SlidingWindow, TemporalCenterCrop, TemporalEvenCrop,
                                    TemporalRandomCrop, loop_pad)


def frames(n, first=1):
    return list(range(first, first + n))


def test_loop_pad():
    assert loop_pad([1, 2, 3], 7) == [1, 2, 3, 1, 2, 3, 1]
    assert loop_pad([5], 3) == [5, 5, 5]
    assert loop_pad(range(1, 5), 4) == [1, 2, 3, 4]
    assert loop_pad([1, 2, 3, 4, 5], 3) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        loop_pad([], 4)


def test_random_crop_reaches_every_start_including_the_last():
    sampler = TemporalRandomCrop(4)
    rng = random.Random(0)
    starts = set()
    for _ in range(2000):
        [clip] = sampler(frames(10), rng)
        assert clip == list(range(clip[0], clip[0] + 4))
        starts.add(clip[0])
    assert starts == set(range(1, 8))  # 1..7: the clip [7, 8, 9, 10] ends on the last frame


def test_random_crop_with_stride_and_short_videos():
    rng = random.Random(1)
    seen = set()
    for _ in range(1000):
        [clip] = TemporalRandomCrop(4, t_stride=2)(frames(10), rng)
        assert clip == list(range(clip[0], clip[0] + 8, 2))
        seen.add(clip[0])
    assert seen == {1, 2, 3, 4}  # span 7: last start 4 -> [4, 6, 8, 10]
    assert TemporalRandomCrop(8)(frames(3), rng) == [[1, 2, 3, 1, 2, 3, 1, 2]]
    assert TemporalRandomCrop(3)(frames(3), rng) == [[1, 2, 3]]
    # a stride wider than the video: the frames it reaches, loop-padded
    assert TemporalRandomCrop(4, t_stride=3)(frames(5), rng) == [[1, 4, 1, 4]]


def test_center_crop():
    assert TemporalCenterCrop(4)(frames(10)) == [[4, 5, 6, 7]]
    assert TemporalCenterCrop(4)(frames(11)) == [[4, 5, 6, 7]]
    assert TemporalCenterCrop(16)(frames(20)) == [list(range(3, 19))]  # the reference's start
    assert TemporalCenterCrop(4, t_stride=2)(frames(10)) == [[2, 4, 6, 8]]
    assert TemporalCenterCrop(6)(frames(4)) == [[1, 2, 3, 4, 1, 2]]
    assert TemporalCenterCrop(4)(range(0, 10)) == [[3, 4, 5, 6]]


def test_even_crop():
    assert TemporalEvenCrop(4, 3)(frames(10)) == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]]
    assert TemporalEvenCrop(4, 1)(frames(10)) == [[4, 5, 6, 7]]  # k = 1: the centre clip
    assert TemporalEvenCrop(2, 4)(frames(8)) == [[1, 2], [3, 4], [5, 6], [7, 8]]
    # starts 0, 2.5 -> 3, 5 (half rounded up)
    assert [c[0] for c in TemporalEvenCrop(3, 3)(frames(8))] == [1, 4, 6]
    # too short for 3 distinct clips: no duplicates
    assert TemporalEvenCrop(4, 3)(frames(5)) == [[1, 2, 3, 4], [2, 3, 4, 5]]
    assert TemporalEvenCrop(4, 3)(frames(4)) == [[1, 2, 3, 4]]
    assert TemporalEvenCrop(4, 3)(frames(2)) == [[1, 2, 1, 2]]
    # with a stride, every clip keeps it
    assert TemporalEvenCrop(3, 2, t_stride=2)(frames(10)) == [[1, 3, 5], [6, 8, 10]]
    with pytest.raises(ValueError):
        TemporalEvenCrop(4, 0)


def test_sliding_window():
    assert SlidingWindow(4)(frames(8)) == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert SlidingWindow(4)(frames(10)) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 9, 10]]
    assert SlidingWindow(4, step=2)(frames(8)) == [[1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 8],
                                                    [7, 8, 7, 8]]
    assert SlidingWindow(4)(frames(3)) == [[1, 2, 3, 1]]
    # with a frame stride, windows are still disjoint by default
    assert SlidingWindow(3, t_stride=2)(frames(10)) == [[1, 3, 5], [7, 9, 7]]
    assert SlidingWindow(3, step=3, t_stride=2)(frames(10)) == [[1, 3, 5], [4, 6, 8], [7, 9, 7]]
    assert SlidingWindow(16).starts(32) == [0, 16]
    assert SlidingWindow(16).starts(33) == [0, 16, 32]


def test_the_stride_is_applied_the_same_way_everywhere():
    """Every sampler's clip is `size` frames exactly `t_stride` apart (when the video is long
    enough), in training, validation and inference alike."""
    video = frames(100)
    rng = random.Random(3)
    samplers = [TemporalRandomCrop(8, 3), TemporalCenterCrop(8, 3), TemporalEvenCrop(8, 5, 3),
                SlidingWindow(8, 10, 3)]
    for sampler in samplers:
        clips = sampler(video, rng)
        full = [c for c in clips if c[-1] - c[0] == 21]
        assert full, sampler
        for clip in full:
            assert [b - a for a, b in zip(clip, clip[1:])] == [3] * 7, sampler


def test_bad_arguments():
    with pytest.raises(ValueError):
        TemporalRandomCrop(0)
    with pytest.raises(ValueError):
        TemporalRandomCrop(4, t_stride=0)
    with pytest.raises(ValueError):
        TemporalCenterCrop(4)([])
    assert repr(SlidingWindow(16, 8)) == "SlidingWindow(size=16, t_stride=1, step=8)"
