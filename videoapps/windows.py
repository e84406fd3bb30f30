"""Sliding windows of whole videos, batched for a model: the windows follow training's
SlidingWindow rule (the last one loop-padded), each window is decoded and transformed as
training's inference does, and batches count windows, across videos, so a long video never
needs more memory than one batch.

`window_events` yields, in order: ``VideoStarted`` when a video is loaded (its windows known),
``VideoFailed`` for one that cannot be used, and ``Batch`` holding the next windows. With
`workers` > 0, that many DataLoader processes each take every N-th video (raw videos are then
decoded in parallel too) and their events interleave; without, one background thread prepares
the events while the model runs. Each video is known by its `slot` (its position in the list).
"""
import queue
import threading
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from training.data.decode import DecodeError, decode_clip

from .sources import VIDEO_ERRORS


@dataclass
class VideoStarted:
    slot: int
    video_id: str
    source: str
    fps: float          # None when unknown
    n_frames: int
    first: np.ndarray   # first frame (0-based) of each window
    last: np.ndarray    # last frame (0-based) each window takes
    seconds: np.ndarray = None  # [windows, 2]: start of `first`, end of `last`; None: unknown


@dataclass
class VideoFailed:
    slot: int
    video_id: str
    reason: str         # windows of the slot seen before are to be dropped


@dataclass
class Batch:
    inputs: torch.Tensor             # windows x crops x C x T x H x W
    owners: List[Tuple[int, int]]    # (video slot, window number) per window


def window_positions(n_frames, sampler):
    """(starts, clips) of a video of `n_frames` frames: each window's first position and its
    frame positions (0-based), by the sampler's sliding-window rule."""
    positions = range(n_frames)
    starts = sampler.starts(n_frames)
    return starts, [sampler.clip_at(positions, s) for s in starts]


def window_seconds(first, last, video):
    """[windows, 2] seconds each window covers, from the start of its first frame to the end of
    its last: the frames' own times where the video has them (a variable frame rate stays
    exact), else frame i spanning i / fps to (i + 1) / fps; None when neither is known."""
    if video.times is not None:
        times = np.asarray(video.times, dtype=np.float64)
        return np.stack([times[first], times[last + 1]], 1)
    if not video.fps:
        return None
    return np.stack([first / video.fps, (last + 1) / video.fps], 1)


def load_window(video, clip, transforms) -> torch.Tensor:
    """The crops (crops x C x T x H x W) of one window given as 0-based frame positions."""
    numbers = [video.frames[i] for i in clip]
    unique = list(dict.fromkeys(numbers))
    data = video.store.read_bytes(video.key, unique)
    try:
        decoded = decode_clip(data, names=unique)
    except DecodeError as e:
        raise ValueError(f"{video.source}: {e}") from None
    if len(unique) != len(numbers):
        where = {f: i for i, f in enumerate(unique)}
        decoded = decoded[[where[f] for f in numbers]]
    clip_t = torch.from_numpy(decoded)
    return torch.stack([t(clip_t) for t in transforms])


def window_stream(slots_and_sources, sampler, transforms, batch_size):
    """Events for every window of the (slot, source) pairs, in order, in this process."""
    pending, owners, shape = [], [], None

    def flush():
        nonlocal pending, owners
        out = Batch(torch.stack(pending), owners)
        pending, owners = [], []
        return out

    for slot, source in slots_and_sources:
        try:
            video = source.load()
            starts, clips = window_positions(video.n_frames, sampler)
            windows = [load_window(video, clips[0], transforms)]
        except VIDEO_ERRORS as e:
            yield VideoFailed(slot, source.video_id, str(e))
            continue
        first = np.asarray(starts, dtype=np.int64)
        last = np.asarray([max(c) for c in clips], dtype=np.int64)
        yield VideoStarted(slot, source.video_id, video.source, video.fps, video.n_frames,
                           first, last, window_seconds(first, last, video))
        for w in range(len(clips)):
            try:
                x = windows.pop() if w == 0 else load_window(video, clips[w], transforms)
            except VIDEO_ERRORS as e:
                yield VideoFailed(slot, source.video_id, str(e))
                break
            if pending and (len(pending) == batch_size or x.shape != shape):
                yield flush()
            pending.append(x)
            owners.append((slot, w))
            shape = x.shape
    if pending:
        yield flush()


class _WorkerShares(IterableDataset):
    """window_stream in DataLoader workers, worker k taking the videos k, k + n, ..."""

    def __init__(self, sources, sampler, transforms, batch_size):
        self.sources, self.sampler = sources, sampler
        self.transforms, self.batch_size = transforms, batch_size

    def __iter__(self):
        info = get_worker_info()
        k, n = (info.id, info.num_workers) if info is not None else (0, 1)
        share = [(s, src) for s, src in enumerate(self.sources) if s % n == k]
        return window_stream(share, self.sampler, self.transforms, self.batch_size)


def _as_is(event):
    return event


def window_events(sources, sampler, transforms, batch_size, workers=0):
    """Events (VideoStarted, VideoFailed, Batch) for every window of `sources`."""
    if workers < 1:
        return prefetch(window_stream(enumerate(sources), sampler, transforms, batch_size))
    return iter(DataLoader(_WorkerShares(sources, sampler, transforms, batch_size),
                           batch_size=None, num_workers=min(workers, len(sources)) or 1,
                           collate_fn=_as_is))


def prefetch(events, depth=2):
    """Run the generator `events` in a background thread, `depth` events ahead, so that
    decoding overlaps the model; exceptions reach the consumer."""
    q = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for e in events:
                if stop.is_set():
                    return
                q.put(e)
            q.put(done)
        except BaseException as e:  # handed to the consumer, which re-raises it
            q.put(e)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            e = q.get()
            if e is done:
                return
            if isinstance(e, BaseException):
                raise e
            yield e
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
