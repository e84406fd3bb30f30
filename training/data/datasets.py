"""Datasets of clips read from frame stores, as described by an annotation file.

* `TrainingClips`: one clip per video (or per labelled segment) and item: ``(clip, target)``.
* `ValidationClips`: k clips per video: ``(clips K x C x T x H x W, target, video index)``;
  batch with `collate_multi_clips`.
* `InferenceWindows`: every sliding window of every video, one per item:
  ``(clip, video index, segment)`` with segment = [first frame, last frame + 1].

All read the reference's annotation files and r3d's unified ones (untrimmed ``segments``,
multi-label ``labels``, per-entry ``root`` / ``video_path`` for files spanning several stores).
A video is found in its store under its ``video_path`` (or shard ``key``) when the entry has
one, else where the reference puts it: ``<label>/<video id>`` for labelled videos,
``<video id>`` otherwise (and ``v_<id>`` as ActivityNet frame folders are named).

Bad data never becomes an empty or wrong tensor: a video that is missing, whose segment lies
outside its frames, or whose frames cannot be read raises an error naming the video (and the
frame); with ``on_bad="skip"`` it is left out with a logged warning instead (a training item is
replaced by the next readable one; a validation or inference item comes back empty, so that no
video is counted twice).

Randomness is data: an item is indexed by ``index`` or by ``(epoch, index)`` (what
`training.data.order.EpochSampler` yields), and every random draw for it (temporal start,
crop, flip, jitter) comes from a generator derived from (seed, epoch, index). A plain index uses
the epoch set with `set_epoch`.

``output="uint8"`` returns clips as uint8 C x T x H x W (cropped, resized, flipped) and leaves
the conversion to float and the normalisation to `transform.normalizer()`, applied to whole
batches after collation (on the GPU, after a pinned copy): a worker then sends a quarter of the
bytes. The default, ``output="float"``, returns normalised float32 clips.
"""
import ctypes
import ctypes.util
import logging
import os

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from .decode import ClipBuffers, DecodeError, decode_clip, jpeg_size, scaled_size
from .errors import FrameReadError, VideoNotFound
from .order import item_rng
from .region import decode_region_clip, region_decoder
from .samples import AnnotationSamples, candidate_keys, read_samples
from .sampling import SlidingWindow, TemporalEvenCrop, TemporalRandomCrop
from .transforms import eval_transform, train_transform
from .videos import VideoCatalog

log = logging.getLogger(__name__)

ON_BAD = ("raise", "skip")
OUTPUTS = ("float", "uint8")
#: A crop covering more of the frame than this is decoded whole (a region decode gains little).
REGION_MAX_SHARE = 0.9
#: How many following items a dataset tries, under on_bad="skip", before giving up.
MAX_SUBSTITUTES = 20
MAX_LISTED_PROBLEMS = 10


class BadVideos(ValueError):
    """Videos of the annotation that cannot be used (missing, unreadable, a segment that does
    not fit), listed; `listing` is the list, the message adds how to leave them out."""

    def __init__(self, listing, hint="pass on_bad='skip' to leave them out"):
        super().__init__(f"{listing}\n({hint})")
        self.listing = listing


class ClipLoadError(RuntimeError):
    """A clip could not be loaded in a DataLoader worker. The DataLoader re-raises it in the
    main process with the worker's traceback as the message; only the reason is kept, so that
    r3d-train reports one line, as it does without workers."""

    MARK = "ClipLoadError: "

    def __init__(self, message):
        message = str(message)
        if "Original Traceback" in message and self.MARK in message:
            message = message.rsplit(self.MARK, 1)[1].strip()
        super().__init__(message)


def _split_key(key):
    """(epoch or None, index) of a dataset key: an index or an (epoch, index) pair."""
    if isinstance(key, tuple):
        epoch, index = key
        return int(epoch), int(index)
    return None, int(key)


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory in the process instead of returning it to the
    system after every clip (``mallopt``: no trimming below 16 MiB, no ``mmap`` for blocks
    under 32 MiB).

    A clip's buffers (several MB) would otherwise be handed back and faulted in again, one page
    fault per 4 kB, for every clip: a fifth of the loading time in our measurements
    (docs/benchmarks.md). The process's memory then stays at its working size instead of
    shrinking between clips. Returns False where it does not apply (not glibc)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 16 << 20))


class StoreSet(VideoCatalog):
    """The stores an annotation file's videos live in (a training.data.videos.VideoCatalog), with
    `locate` for callers that want a (store, key) pair rather than a catalog row."""

    def locate(self, video_id, entry, label_names=()):
        """(store, key) of an entry's video; raises VideoNotFound listing what was tried."""
        row = self.find(entry.get("root"), candidate_keys(video_id, entry, label_names),
                        video_id)
        return self.store(row), self.key(row)


class ClipDataset(Dataset):
    """Shared machinery of the clip datasets: annotation reading, store lookup, bad-data policy
    and clip loading (read the frames once, plan the transform from the frame size, decode at
    the smallest size the plan allows, transform each clip).

    `target`: 'label' (class index, -1 if unlabelled), 'multilabel' (multi-hot float vector) or
    None to follow the file's ``multi_label`` flag. `reduced_decode`: decode at 1/2, 1/4 or 1/8
    size when the clip is scaled down that much anyway (see training.data.decode); on by default
    for training only, so that evaluation sees exactly the reference's pixels. `region_decode`:
    decode only the part of each frame the crop keeps, when training.data.region's decoder is
    available (identical pixels; faster). `keep_memory`: call `keep_freed_memory` in every
    process that loads clips (the first time it does)."""

    def __init__(self, annotation, stores, subset, transform, sampler, *, target=None,
                 segments="each", on_bad="raise", reduced_decode=True, max_decode_factor=8,
                 region_decode=True, keep_memory=True, output="float", seed=0):
        if on_bad not in ON_BAD:
            raise ValueError(f"on_bad must be one of {ON_BAD}, got {on_bad!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if isinstance(annotation, AnnotationSamples):
            if stores is not None and stores is not annotation.catalog:
                raise ValueError("these samples were read for other stores: pass stores=None")
            read = annotation
        else:
            read = read_samples(annotation, stores if isinstance(stores, VideoCatalog) else None,
                                lambda header: StoreSet(stores, header))
        self.source = read.source
        header = read.header
        self.class_names = list(header["labels"])
        if target is None:
            target = "multilabel" if header.get("multi_label") else "label"
        if target not in ("label", "multilabel"):
            raise ValueError(f"target must be 'label' or 'multilabel', got {target!r}")
        self.target_type = target
        self.subset = subset
        self.transform = transform
        self.sampler = sampler
        self.on_bad = on_bad
        self.output = output
        self.seed = int(seed)
        self.epoch = 0
        self.reduced_decode = reduced_decode
        self.max_decode_factor = max_decode_factor
        self.keep_memory = keep_memory
        self._setup_pid = None
        #: The region decoder (training.data.region), or None: frames are decoded whole. Built
        #: (or found) here, before DataLoader workers fork, so that they inherit it loaded.
        self.region_lib = region_decoder() if region_decode else None
        self.samples, problems = read.select(subset, segments)
        self._report(problems)
        if not self.samples:
            raise ValueError(f"{self.source}: no usable videos in subset {subset!r}")
        self._bad = set()
        self._buffers = ClipBuffers()

    def __getstate__(self):
        # A loaded C library does not pickle (spawned DataLoader workers): load it again there.
        state = self.__dict__.copy()
        state["region_lib"] = state["region_lib"] is not None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.region_lib = region_decoder() if state["region_lib"] else None

    def _check_targets(self):
        """Single-label targets need single-label samples."""
        if self.target_type == "label":
            multi = np.flatnonzero(np.diff(self.samples.label_ptr) > 1)
            if len(multi):
                raise ValueError(f"{self.source}: {len(multi)} videos have several labels "
                                 f"(e.g. {self.samples.video_id(multi[0])!r}): use "
                                 f"target='multilabel'")

    def _report(self, problems):
        if not problems:
            return
        listed = "\n  ".join(f"{v}: {r}" for v, r in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        msg = (f"{self.source}: {len(problems)} video(s) of subset {self.subset!r} cannot be "
               f"used:\n  {listed}{tail}")
        if self.on_bad == "raise":
            raise BadVideos(msg)
        log.warning("%s\nleaving them out (on_bad='skip')", msg)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose draws plain integer indices get (keys from EpochSampler carry
        their own)."""
        self.epoch = int(epoch)

    def rng(self, key):
        """(index, generator of the item's random draws) of a dataset key."""
        epoch, index = _split_key(key)
        return index, item_rng(self.seed, self.epoch if epoch is None else epoch, index)

    @property
    def video_ids(self):
        return [self.samples.video_id(i) for i in range(len(self.samples))]

    def target(self, i):
        """Sample i's target: its class index, or a multi-hot vector."""
        if self.target_type == "label":
            return int(self.samples.labels[i])
        t = torch.zeros(len(self.class_names), dtype=torch.float32)
        labels = self.samples.labels_of(i)
        if labels:
            t[list(labels)] = 1.0
        return t

    def _read_error(self, i, frame, reason):
        row = int(self.samples.rows[i])
        catalog = self.samples.catalog
        return FrameReadError(catalog.store(row), catalog.key(row), frame, reason)

    def load_clips(self, i, clips, rng=None) -> list:
        """Read, decode and transform the clips (lists of frame numbers) of sample i, with
        the random parameters drawn from `rng` (a random.Random)."""
        if self._setup_pid != os.getpid():
            self._setup_pid = os.getpid()
            if self.keep_memory:
                keep_freed_memory()
        flat = clips[0] if len(clips) == 1 else [f for c in clips for f in c]
        unique = list(dict.fromkeys(flat))
        data = self.samples.catalog.read_bytes(int(self.samples.rows[i]), unique)
        try:
            hw = jpeg_size(data[0])
        except DecodeError as e:
            raise self._read_error(i, unique[0], e.reason) from None
        plans = [self.transform.plan(hw, rng) for _ in clips]
        factor = 1
        if self.reduced_decode:
            factor = min(self.transform.decode_factor(hw, p, self.max_decode_factor)
                         for p in plans)
        decoded_hw = scaled_size(*hw, factor)
        boxes, region = self._region(hw, decoded_hw, plans)
        try:
            if region is not None:
                array = decode_region_clip(self.region_lib, data, factor, region, unique,
                                           self._buffers)
            else:
                array = decode_clip(data, factor, names=unique, buffers=self._buffers)
        except DecodeError as e:
            frame = unique[e.position] if e.position is not None else None
            raise self._read_error(i, frame, e.reason) from None
        decoded = torch.from_numpy(array)
        position = None if len(unique) == len(flat) and len(clips) == 1 else {
            f: i for i, f in enumerate(unique)}
        out = []
        for clip, plan, box in zip(clips, plans, boxes):
            frames = decoded if position is None else decoded[[position[f] for f in clip]]
            result = self.transform.apply(frames, plan, full_hw=hw, box=box,
                                          normalize=self.output == "float")
            # The decode buffer is reused for the next clip: nothing returned may share it.
            if result.untyped_storage().data_ptr() == decoded.untyped_storage().data_ptr():
                result = result.clone()
            out.append(result)
        return out

    def _region(self, hw, decoded_hw, plans):
        """The crop boxes of the plans within the decoded clip, and the part of the frames to
        decode: the boxes' bounding box when a region decode saves enough, else None (all)."""
        first_box = getattr(self.transform, "first_box", None)
        boxes = [first_box(hw, p, decoded_hw) for p in plans] if first_box else [None] * len(plans)
        if self.region_lib is None or any(b is None for b in boxes):
            return boxes, None
        top = min(b[0] for b in boxes)
        left = min(b[1] for b in boxes)
        bottom = max(b[0] + b[2] for b in boxes)
        right = max(b[1] + b[3] for b in boxes)
        area = (bottom - top) * (right - left)
        if area > REGION_MAX_SHARE * decoded_hw[0] * decoded_hw[1]:
            return boxes, None
        return ([(b[0] - top, b[1] - left, b[2], b[3]) for b in boxes],
                (top, left, bottom - top, right - left))

    def _load(self, key, get, substitute):
        """get(index, rng) for a dataset key. A bad item raises, or under on_bad='skip' is
        logged and replaced by the next readable item (`substitute`, training) or by None.
        In a DataLoader worker, errors cross to the main process as one-line ClipLoadError."""
        try:
            return self._with_fallback(key, get, substitute)
        except (FrameReadError, VideoNotFound, ValueError, RuntimeError) as e:
            from torch.utils.data import get_worker_info
            if get_worker_info() is None or isinstance(e, ClipLoadError):
                raise
            raise ClipLoadError(str(e)) from None

    def _with_fallback(self, key, get, substitute):
        index, rng = self.rng(key)
        try:
            return get(index, rng)
        except (FrameReadError, VideoNotFound) as e:
            if self.on_bad == "raise":
                raise
            log.warning("skipping item %d: %s", index, e)
            self._bad.add(index)
            first_error = e
        if not substitute:
            return None
        for k in range(1, MAX_SUBSTITUTES + 1):
            j = (index + k) % len(self)
            if j in self._bad:
                continue
            try:
                return get(j, rng)
            except (FrameReadError, VideoNotFound) as e:
                log.warning("skipping item %d: %s", j, e)
                self._bad.add(j)
        raise RuntimeError(f"{MAX_SUBSTITUTES + 1} items in a row from item {index} are "
                           f"unreadable; first: {first_error}")


class TrainingClips(ClipDataset):
    """One clip per video (or per labelled segment of an untrimmed video) and item:
    ``(clip C x T x H x W, target)``. Defaults: the paper's 16-frame random clip, multi-scale
    corner crop to 112, flip, Kinetics normalisation."""

    def __init__(self, annotation, stores, subset="training", transform=None, sampler=None,
                 **options):
        super().__init__(annotation, stores, subset, transform or train_transform(),
                         sampler or TemporalRandomCrop(16), **options)
        self._check_targets()

    def __len__(self):
        return len(self.samples)

    def _get(self, index, rng):
        clips = self.sampler(self.samples.frames(index), rng)
        return self.load_clips(index, clips[:1], rng)[0], self.target(index)

    def __getitem__(self, key):
        return self._load(key, self._get, substitute=True)


class ValidationClips(ClipDataset):
    """k clips per video, evenly spaced (`n_clips`), item: ``(clips K x C x T x H x W, target,
    video index)``; K is smaller for videos too short for k distinct clips. Use
    `collate_multi_clips` to batch. Default transform: resize + centre crop to 112."""

    def __init__(self, annotation, stores, subset="validation", transform=None, sampler=None,
                 n_clips=3, **options):
        options.setdefault("reduced_decode", False)
        super().__init__(annotation, stores, subset, transform or eval_transform(),
                         sampler or TemporalEvenCrop(16, n_clips), **options)
        self._check_targets()

    def __len__(self):
        return len(self.samples)

    def _get(self, index, rng):
        clips = self.load_clips(index, self.sampler(self.samples.frames(index), rng), rng)
        return torch.stack(clips), self.target(index), index

    def __getitem__(self, key):
        """(clips, target, video index); under on_bad='skip' an unreadable video gives None
        (left out by `collate_multi_clips`)."""
        return self._load(key, self._get, substitute=False)


def collate_multi_clips(batch):
    """Batch `ValidationClips` items: (clips N x C x T x H x W, targets N, video index N), one
    row per clip, so clip scores can be averaged per video. Skipped (None) items are left
    out."""
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    clips = torch.cat([b[0] for b in batch])
    counts = [len(b[0]) for b in batch]
    targets = default_collate([b[1] for b, n in zip(batch, counts) for _ in range(n)])
    videos = torch.tensor([b[2] for b, n in zip(batch, counts) for _ in range(n)])
    return clips, targets, videos


class InferenceWindows(ClipDataset):
    """Every sliding window of every video (`sampler`: a SlidingWindow, default 16 frames,
    non-overlapping), one per item: ``(clip, video index, segment)`` where segment is the
    LongTensor [first frame, last frame + 1] in the annotation's numbering. Batches therefore
    count clips, however long the videos. Untrimmed videos are taken whole."""

    def __init__(self, annotation, stores, subset="validation", transform=None, sampler=None,
                 **options):
        options.setdefault("segments", "video")
        options.setdefault("reduced_decode", False)
        sampler = sampler or SlidingWindow(16)
        if not hasattr(sampler, "starts"):
            raise TypeError("InferenceWindows needs a sampler with starts(), e.g. SlidingWindow")
        super().__init__(annotation, stores, subset, transform or eval_transform(), sampler,
                         **options)
        lengths = self.samples.stops - self.samples.starts
        starts = [sampler.starts(int(n)) for n in lengths]
        #: the video (sample number) of each window, in order
        self.video_of_window = np.repeat(np.arange(len(self.samples)), [len(x) for x in starts])
        self._start = np.concatenate([np.asarray(x, dtype=np.int64) for x in starts])

    def __len__(self):
        return len(self.video_of_window)

    def _get(self, index, rng):
        v = int(self.video_of_window[index])
        clip = self.sampler.clip_at(self.samples.frames(v), int(self._start[index]))
        shift = int(self.samples.shifts[v])
        segment = torch.tensor([min(clip) - shift, max(clip) + 1 - shift])
        return self.load_clips(v, [clip], rng)[0], v, segment

    def __getitem__(self, key):
        """(clip, video index, segment); under on_bad='skip' an unreadable window gives None
        (left out by `collate_windows`)."""
        return self._load(key, self._get, substitute=False)


def collate_windows(batch):
    """Batch `InferenceWindows` items, leaving out skipped (None) ones; None if all were."""
    batch = [b for b in batch if b is not None]
    return default_collate(batch) if batch else None
