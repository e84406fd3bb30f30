"""Sliding windows of whole videos, batched for a model: the windows follow training's
SlidingWindow rule (the last one loop-padded), each window is decoded and transformed as
training's inference does, and batches count windows, across videos, so a long video never
needs more memory than one batch.

`window_stream` yields events in order: ``VideoStarted`` when a video is loaded (its windows
known), ``VideoFailed`` for one that cannot be used, and ``Batch`` holding the next windows.
All windows of a video come before those of the next one."""
import queue
import threading
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
import torch

from training.decode import DecodeError, decode_clip

from .sources import VIDEO_ERRORS


@dataclass
class VideoStarted:
    slot: int
    source: object
    video: object
    first: np.ndarray   # first frame (0-based) of each window
    last: np.ndarray    # last real frame (0-based) of each window


@dataclass
class VideoFailed:
    source: object
    reason: str
    slot: int = None    # set when the video had started: drop what it has so far


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


def window_stream(sources, sampler, transforms, batch_size):
    """Events (VideoStarted, VideoFailed, Batch) for every window of `sources`, in order."""
    pending, owners, shape = [], [], None

    def flush():
        nonlocal pending, owners
        out = Batch(torch.stack(pending), owners)
        pending, owners = [], []
        return out

    for slot, source in enumerate(sources):
        try:
            video = source.load()
            starts, clips = window_positions(video.n_frames, sampler)
            windows = [load_window(video, clips[0], transforms)]
        except VIDEO_ERRORS as e:
            yield VideoFailed(source, str(e))
            continue
        yield VideoStarted(slot, source, video, np.asarray(starts, dtype=np.int64),
                           np.asarray([max(c) for c in clips], dtype=np.int64))
        for w in range(len(clips)):
            try:
                x = windows.pop() if w == 0 else load_window(video, clips[w], transforms)
            except VIDEO_ERRORS as e:
                keep = [i for i, (s, _) in enumerate(owners) if s != slot]
                pending, owners = [pending[i] for i in keep], [owners[i] for i in keep]
                yield VideoFailed(source, str(e), slot)
                break
            if pending and (len(pending) == batch_size or x.shape != shape):
                yield flush()
            pending.append(x)
            owners.append((slot, w))
            shape = x.shape
    if pending:
        yield flush()


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
