"""Temporal sampling: which frames of a video make up its clips.

A sampler maps the frame numbers of a video (or of an annotated segment), in order, to a list of
clips, each a list of `size` frame numbers. Every sampler takes the frame stride `t_stride`
(``--sample-t-stride``): a clip is `size` frames taken `t_stride` apart, so it spans
``(size - 1) * t_stride + 1`` frames. Training, validation and inference apply the stride in the
same way. (The reference subsampled the frame list first, which made the validation and
inference samplers, which rebuilt clips with ``range``, ignore the stride.)

When a video is shorter than a clip's span, the frames it has are repeated in order until the
clip is full (loop padding), as in the reference.

The crops take `rule`: "r3d" (the default, described on each class) or "reference", the
reference implementation's positions exactly, for reproducing its runs (r3d-train
--reference-defaults): the frame list is first thinned to every `t_stride`-th frame; its even
crop steps ``max(1, ceil((n - 1 - size) / (n_clips - 1)))`` entries from the first, each clip
being the `size` consecutive frame numbers from its start (the stride is not applied inside a
clip) and the first one that runs past the end, loop-padded, being the last; its centre crop
starts at entry ``n // 2 - size // 2`` (at least 0); its random crop never starts at the last
possible entry.
"""
import random as _random

RULES = ("r3d", "reference")


def loop_pad(frames, size: int) -> list:
    """Repeat `frames` cyclically until there are `size` of them: [1, 2, 3], 7 ->
    [1, 2, 3, 1, 2, 3, 1]. Longer inputs are returned unchanged."""
    out = list(frames)
    if not out:
        raise ValueError("cannot loop-pad an empty frame list")
    frames = list(out)
    while len(out) < size:
        out.extend(frames[:size - len(out)])
    return out


class TemporalSampler:
    """Base class: `size` frames per clip, `t_stride` apart, placed by `rule` (r3d or
    reference, see the module docstring)."""

    def __init__(self, size: int, t_stride: int = 1, rule: str = "r3d"):
        if size < 1 or t_stride < 1:
            raise ValueError(f"clip size and frame stride must be >= 1, got {size}, {t_stride}")
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        self.size = int(size)
        self.t_stride = int(t_stride)
        self.rule = rule

    @property
    def span(self) -> int:
        """Number of consecutive frames one clip covers."""
        return (self.size - 1) * self.t_stride + 1

    def clip_at(self, frames, start: int) -> list:
        """The clip starting at position `start` of `frames`, loop-padded if the video ends."""
        return loop_pad(frames[start:start + self.span:self.t_stride], self.size)

    def __call__(self, frames, rng=None) -> list:
        raise NotImplementedError

    def __repr__(self):
        extra = "".join(f", {k}={v}" for k, v in self._extra().items())
        if self.rule != "r3d":
            extra += f", rule={self.rule!r}"
        return f"{type(self).__name__}(size={self.size}, t_stride={self.t_stride}{extra})"

    def _extra(self):
        return {}

    @staticmethod
    def _frames(frames):
        if not isinstance(frames, (list, range)):
            frames = list(frames)
        if not frames:
            raise ValueError("no frames to sample from")
        return frames


class TemporalRandomCrop(TemporalSampler):
    """One clip at a uniformly random start; every start whose clip fits is possible, the last
    one included (the reference never drew the last)."""

    def __call__(self, frames, rng=None) -> list:
        frames = self._frames(frames)
        if self.rule == "reference":
            frames = frames[::self.t_stride]
            start = (rng or _random).randint(0, max(0, len(frames) - self.size - 1))
            return [loop_pad(frames[start:start + self.size], self.size)]
        last_start = max(0, len(frames) - self.span)
        start = (rng or _random).randint(0, last_start)
        return [self.clip_at(frames, start)]


class TemporalCenterCrop(TemporalSampler):
    """One clip in the middle of the frames (the extra frame, if any, left at the end)."""

    def __call__(self, frames, rng=None) -> list:
        frames = self._frames(frames)
        if self.rule == "reference":
            frames = frames[::self.t_stride]
            start = max(0, len(frames) // 2 - self.size // 2)
            return [loop_pad(frames[start:start + self.size], self.size)]
        return [self.clip_at(frames, max(0, (len(frames) - self.span) // 2))]


class TemporalEvenCrop(TemporalSampler):
    """`n_clips` clips evenly spaced over the frames, the first starting at the first frame and
    the last ending at the last frame; a single clip (`n_clips` = 1) is the centre clip.

    A video too short to hold distinct clips gives fewer (never duplicates); one shorter than a
    clip gives a single loop-padded clip."""

    def __init__(self, size: int, n_clips: int = 1, t_stride: int = 1, rule: str = "r3d"):
        super().__init__(size, t_stride, rule)
        if n_clips < 1:
            raise ValueError(f"n_clips must be >= 1, got {n_clips}")
        self.n_clips = int(n_clips)

    def _extra(self):
        return {"n_clips": self.n_clips}

    def starts(self, n_frames: int) -> list:
        room = n_frames - self.span
        if room <= 0:
            return [0]
        if self.n_clips == 1:
            return [room // 2]
        out = []
        for i in range(self.n_clips):
            s = (2 * i * room + (self.n_clips - 1)) // (2 * (self.n_clips - 1))  # round half up
            if not out or s != out[-1]:
                out.append(s)
        return out

    def __call__(self, frames, rng=None) -> list:
        frames = self._frames(frames)
        if self.rule == "reference":
            return self._reference_clips(frames[::self.t_stride])
        return [self.clip_at(frames, s) for s in self.starts(len(frames))]

    def _reference_clips(self, frames):
        n = len(frames)
        step = 1
        if self.n_clips > 1:
            step = max(1, -(-(n - 1 - self.size) // (self.n_clips - 1)))  # ceil division
        clips = []
        for first in frames[::step][:self.n_clips]:
            clip = list(range(first, min(frames[-1] + 1, first + self.size)))
            clips.append(loop_pad(clip, self.size))
            if len(clip) < self.size:
                break
        return clips


class SlidingWindow(TemporalSampler):
    """Windows starting at the first frame and every `step` frames after it (default:
    ``size * t_stride``, windows that do not overlap), up to and including the first window that
    runs past the end, which is loop-padded (the reference's windows)."""

    def __init__(self, size: int, step: int = None, t_stride: int = 1):
        super().__init__(size, t_stride)
        self.step = int(step) if step else self.size * self.t_stride
        if self.step < 1:
            raise ValueError(f"window step must be >= 1, got {step}")

    def _extra(self):
        return {"step": self.step}

    def starts(self, n_frames: int) -> list:
        out = []
        for s in range(0, n_frames, self.step):
            out.append(s)
            if s + self.span > n_frames:
                break
        return out

    def __call__(self, frames, rng=None) -> list:
        frames = self._frames(frames)
        return [self.clip_at(frames, s) for s in self.starts(len(frames))]
