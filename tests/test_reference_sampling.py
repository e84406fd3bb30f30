"""The reference implementation's clip positions under rule="reference" (r3d-train
--reference-defaults): its TemporalEvenCrop for every video length 1..400 and its
TemporalCenterCrop, written here from their documented behaviour; r3d's own rule is unchanged."""
import math
import random

import pytest

from training.data.sampling import TemporalCenterCrop, TemporalEvenCrop, TemporalRandomCrop


def reference_even(n_frames, size, n_samples):
    """The reference's validation clips of frames 1..n_frames: starts every
    max(1, ceil((n - 1 - size) / (n_samples - 1))) frames from frame 1, at most n_samples of
    them; a clip is `size` consecutive frames, and one cut short by the video's end is
    filled by repeating its own frames and ends the list."""
    step = max(1, math.ceil((n_frames - 1 - size) / (n_samples - 1))) if n_samples > 1 else 1
    clips = []
    start = 1
    while len(clips) < n_samples and start <= n_frames:
        clip = [f for f in range(start, start + size) if f <= n_frames]
        short = len(clip) < size
        clips.append([clip[i % len(clip)] for i in range(size)])
        if short:
            break
        start += step
    return clips


def reference_center(n_frames, size):
    """The reference's centre clip: from index n // 2 - size // 2 (not before 0), repeated
    cyclically when the video is shorter than the clip."""
    frames = list(range(1, n_frames + 1))
    begin = max(0, n_frames // 2 - size // 2)
    clip = frames[begin:begin + size]
    return [clip[i % len(clip)] for i in range(size)]


@pytest.mark.parametrize("size, n_samples", [(16, 3), (16, 1), (8, 5), (15, 2)])
def test_even_crop_matches_the_reference_for_every_length(size, n_samples):
    sampler = TemporalEvenCrop(size, n_samples, rule="reference")
    for n in range(1, 401):
        assert sampler(range(1, n + 1)) == reference_even(n, size, n_samples), n


def test_hand_checked_reference_even_clips():
    sampler = TemporalEvenCrop(16, 3, rule="reference")
    # 20 frames: step ceil(3 / 2) = 2 -> clips at frames 1, 3, 5.
    assert [c[0] for c in sampler(range(1, 21))] == [1, 3, 5]
    # 17 frames: step 1; the third clip (3..17) is one frame short and is loop-padded.
    clips = sampler(range(1, 18))
    assert [c[0] for c in clips] == [1, 2, 3] and clips[2] == list(range(3, 18)) + [3]
    # Shorter than a clip: one loop-padded clip.
    assert sampler(range(1, 6)) == [[1, 2, 3, 4, 5] * 3 + [1]]


def test_where_the_r3d_rule_differs():
    ours, ref = TemporalEvenCrop(16, 3), TemporalEvenCrop(16, 3, rule="reference")
    differ = [n for n in range(1, 401) if ours(range(1, n + 1)) != ref(range(1, n + 1))]
    # 16 and 17 frames: the reference adds a loop-padded clip r3d leaves out (no duplicates);
    # 191 other lengths: a clip starts one frame apart.
    assert len(differ) == 193 and differ[:2] == [16, 17]
    for n in differ[2:]:
        a, b = ours(range(1, n + 1)), ref(range(1, n + 1))
        assert len(a) == len(b) and max(abs(x[0] - y[0]) for x, y in zip(a, b)) == 1, n


@pytest.mark.parametrize("size", [15, 16, 7])
def test_center_crop_matches_the_reference(size):
    sampler = TemporalCenterCrop(size, rule="reference")
    for n in range(1, 401):
        assert sampler(range(1, n + 1)) == [reference_center(n, size)], n
    # r3d's own rule puts the extra frame at the end: odd sizes start one frame earlier.
    if size % 2:
        assert TemporalCenterCrop(size)(range(1, 21))[0][0] == \
            sampler(range(1, 21))[0][0] - 1


def test_reference_random_crop_never_starts_at_the_last_position():
    sampler = TemporalRandomCrop(16, rule="reference")
    rng = random.Random(0)
    starts = {sampler(range(1, 21), rng)[0][0] for _ in range(400)}
    assert starts == {1, 2, 3, 4}  # 20 frames: 5 possible starts, the reference draws 4
    assert {TemporalRandomCrop(16)(range(1, 21), rng)[0][0] for _ in range(400)} == \
        {1, 2, 3, 4, 5}


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule"):
        TemporalEvenCrop(16, 3, rule="other")
