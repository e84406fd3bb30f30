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
`training.randomness.EpochSampler` yields), and every random draw for it (temporal start,
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
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from storeformat import video_key

from .annotation_file import read_annotation_file, root_frame_base
from .decode import ClipBuffers, DecodeError, decode_clip, jpeg_size, scaled_size
from .region import decode_region_clip, region_decoder
from .randomness import item_rng
from .sampling import SlidingWindow, TemporalEvenCrop, TemporalRandomCrop
from .stores import FrameReadError, FrameStore, VideoNotFound, open_store
from .transforms import eval_transform, train_transform

log = logging.getLogger(__name__)

ON_BAD = ("raise", "skip")
OUTPUTS = ("float", "uint8")
#: Group path prefix of a video inside an r3d HDF5 shard (storeformat.video_key).
SHARD_GROUP_PREFIX = video_key("")
SEGMENT_MODES = ("each", "video")
#: A crop covering more of the frame than this is decoded whole (a region decode gains little).
REGION_MAX_SHARE = 0.9
#: How many following items a dataset tries, under on_bad="skip", before giving up.
MAX_SUBSTITUTES = 20
MAX_LISTED_PROBLEMS = 10


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


class Sample:
    """One unit of a dataset: a video (or a segment of it) in a store."""
    __slots__ = ("video_id", "store", "key", "frames", "label", "labels", "shift")

    def __init__(self, video_id, store, key, frames, label, labels, shift=0):
        self.video_id, self.store, self.key, self.frames = video_id, store, key, frames
        self.label, self.labels, self.shift = label, labels, shift

    def __repr__(self):
        return (f"Sample({self.video_id!r}, key={self.key!r}, frames=[{self.frames.start}, "
                f"{self.frames.stop}), label={self.label})")


class StoreSet:
    """The stores an annotation file's videos live in.

    `stores` is one store (a FrameStore or a path), or a dict mapping the file's root names to
    stores. Stores given by the caller always win over the paths a file records: one store
    given without a name serves every entry, whatever root it names (a file with several
    roots then needs them named); a named store serves the entries of that root, and a root
    the caller did not name is opened from the path the file records for it. A name that is
    not one of the file's roots is an error."""

    def __init__(self, stores, doc=None):
        if isinstance(stores, (FrameStore, str, Path)):
            stores = {None: stores}
        if not isinstance(stores, dict) or not stores:
            raise TypeError("stores must be a FrameStore, a path, or a non-empty dict of them")
        self._roots = (doc or {}).get("roots") or {}
        unknown = sorted(str(n) for n in stores if n is not None and n not in self._roots)
        if unknown and self._roots:
            known = ", ".join(sorted(self._roots)) or "none"
            raise ValueError(f"store given for root {unknown[0]!r}, which the annotation file "
                             f"does not name (its roots: {known})")
        if None in stores and len(self._roots) > 1 and len(stores) == 1:
            raise ValueError(f"the annotation file's videos are in {len(self._roots)} roots "
                             f"({', '.join(sorted(self._roots))}): give one store per root "
                             f"as NAME=PATH")
        self._stores = {name: self._open(s) for name, s in stores.items()}

    @staticmethod
    def _open(store):
        return store if isinstance(store, FrameStore) else open_store(store)

    def for_root(self, name):
        """Stores to search for an entry of root `name` (None: no root named)."""
        if name is None:
            return list(self._stores.values())
        if name in self._stores:
            return [self._stores[name]]
        if None in self._stores and len(self._stores) == 1:
            return [self._stores[None]]
        path = (self._roots.get(name) or {}).get("path")
        if not path:
            raise VideoNotFound(f"root {name!r} has no path in the annotation file: pass its "
                                f"store as stores={{{name!r}: ...}}")
        self._stores[name] = self._open(path)
        return [self._stores[name]]

    def locate(self, video_id, entry, label_names=()):
        """(store, key) of an entry's video; raises VideoNotFound listing what was tried."""
        stores = self.for_root(entry.get("root"))
        keys = candidate_keys(video_id, entry, label_names)
        for store in stores:
            for key in keys:
                if key in store:
                    return store, key
        reasons = [f"{s}: {r}" for s in stores for r in map(s.failure, keys) if r]
        detail = f" (conversion failed: {reasons[0]})" if reasons else ""
        raise VideoNotFound(f"video {video_id!r} not found as {' or '.join(map(repr, keys))} in "
                            f"{', '.join(map(str, stores))}{detail}")


def candidate_keys(video_id, entry, label_names=()) -> list:
    """Store keys an entry's video may have, most specific first: the r3d shard group
    (``key`` = videos/<id>), ``store_id`` (r3d-annotate's), ``video_path`` (with a per-video
    file's suffix dropped), then the reference's rule: <label>/<id> for labelled videos (each
    label of a multi-label one), <id>, and v_<id> (ActivityNet)."""
    keys = []
    group = entry.get("key")
    if isinstance(group, str) and group.startswith(SHARD_GROUP_PREFIX):
        keys.append(group[len(SHARD_GROUP_PREFIX):])
    if isinstance(entry.get("store_id"), str) and entry["store_id"]:
        keys.append(entry["store_id"])
    path = entry.get("video_path")
    if path:
        keys.append(path)
        for suffix in (".hdf5", ".h5"):
            if path.endswith(suffix):
                keys.append(path[:-len(suffix)])
    keys += [f"{name}/{video_id}" for name in label_names]
    keys += [video_id, f"v_{video_id}"]
    return list(dict.fromkeys(keys))


def _segment_list(ann):
    """An entry's labelled spans: [(label name, frame segment or None, seconds or None)]."""
    if isinstance(ann, list):  # the reference's ActivityNet files: segments in seconds
        return [(a.get("label"), None, a.get("segment")) for a in ann]
    return [(s.get("label"), s.get("segment"), s.get("segment_sec"))
            for s in ann.get("segments") or []]


def build_samples(doc, stores: StoreSet, subset, segments="each"):
    """The samples of `subset` (None: all) and the problems found, as (video id, reason)."""
    if segments not in SEGMENT_MODES:
        raise ValueError(f"segments must be one of {SEGMENT_MODES}, got {segments!r}")
    class_index = {name: i for i, name in enumerate(doc["labels"])}
    samples, problems = [], []
    for vid, entry in doc["database"].items():
        if subset is not None and entry.get("subset") != subset:
            continue
        try:
            samples.extend(_entry_samples(vid, entry, doc, stores, class_index, segments))
        except (ValueError, LookupError, FrameReadError) as e:
            problems.append((vid, str(e)))
    return samples, problems


def _guess_frame_base(ann, spans, first, n):
    """Numbering of a file that does not declare it (the reference's files): the store's own,
    unless the frame segments fit the video only when counted from the other base (0 or 1),
    e.g. the reference's [1, n + 1] for a whole video read from an HDF5 store."""
    segments = [s for _, s, _ in spans if s is not None]
    if isinstance(ann, dict) and ann.get("segment") is not None:
        segments.append(ann["segment"])

    def fits(base):
        return all(base <= int(a) < int(b) <= base + n for a, b in segments)

    other = 1 - first
    return other if segments and not fits(first) and fits(other) else first


def _entry_samples(vid, entry, doc, stores, class_index, mode):
    ann = entry.get("annotations") or {}
    spans = _segment_list(ann)
    if isinstance(ann, dict):
        names = list(ann["labels"]) if "labels" in ann else (
            [ann["label"]] if ann.get("label") is not None else [])
    else:
        names = []
    if not names:
        names = list(dict.fromkeys(s[0] for s in spans if s[0] is not None))
    for name in names:
        if name not in class_index:
            raise ValueError(f"label {name!r} is not in the file's labels")
    store, key = stores.locate(vid, entry, names if isinstance(ann, dict) else ())
    n = store.n_frames(key)
    if n < 1:
        raise ValueError(f"{store}: '{key}' has no frames")
    first = store.first_frame
    declared = root_frame_base(doc, entry.get("root"))
    if declared is None:
        declared = _guess_frame_base(ann, spans, first, n)
    shift = first - declared
    whole = range(first, first + n)

    def frames_of(segment, seconds):
        if segment is not None:
            a, b = int(segment[0]) + shift, int(segment[1]) + shift
            if not (first <= a < b <= first + n):
                raise ValueError(f"segment {list(segment)} lies outside the {n} frames of "
                                 f"{store}: '{key}' (frames {first - shift}.."
                                 f"{first + n - 1 - shift} in the file's numbering)")
            return range(a, b)
        if seconds is None:
            raise ValueError("a segment with neither 'segment' (frames) nor 'segment_sec'")
        fps = entry.get("fps") or store.fps(key)
        if not fps:
            raise ValueError("segment given in seconds, but neither the entry nor the store "
                             "index has the video's fps")
        # The reference's conversion: frame floor(t * fps) counted from the first frame; the
        # end is clamped to the video (annotations often run past a shortened download).
        a = first + int(math.floor(seconds[0] * fps))
        b = min(first + int(math.floor(seconds[1] * fps)), first + n)
        if not a < b:
            raise ValueError(f"segment {list(seconds)} s (fps {fps}) holds no frame of the "
                             f"{n}-frame video")
        return range(a, b)

    indices = tuple(class_index[x] for x in names)
    if spans and mode == "each":
        return [Sample(vid, store, key, frames_of(seg, sec), class_index.get(name, -1),
                       (class_index[name],) if name is not None else (), shift)
                for name, seg, sec in spans]
    segment = ann.get("segment") if isinstance(ann, dict) else None
    frames = frames_of(segment, None) if segment is not None else whole
    return [Sample(vid, store, key, frames, indices[0] if indices else -1, indices, shift)]


class ClipDataset(Dataset):
    """Shared machinery of the clip datasets: annotation reading, store lookup, bad-data policy
    and clip loading (read the frames once, plan the transform from the frame size, decode at
    the smallest size the plan allows, transform each clip).

    `target`: 'label' (class index, -1 if unlabelled), 'multilabel' (multi-hot float vector) or
    None to follow the file's ``multi_label`` flag. `reduced_decode`: decode at 1/2, 1/4 or 1/8
    size when the clip is scaled down that much anyway (see training.decode); on by default
    for training only, so that evaluation sees exactly the reference's pixels. `region_decode`:
    decode only the part of each frame the crop keeps, when training.region's decoder is
    available (identical pixels; faster). `keep_memory`: call `keep_freed_memory` in every
    process that loads clips (the first time it does)."""

    def __init__(self, annotation, stores, subset, transform, sampler, *, target=None,
                 segments="each", on_bad="raise", reduced_decode=True, max_decode_factor=8,
                 region_decode=True, keep_memory=True, output="float", seed=0):
        if on_bad not in ON_BAD:
            raise ValueError(f"on_bad must be one of {ON_BAD}, got {on_bad!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        doc = annotation if isinstance(annotation, dict) else read_annotation_file(annotation)
        self.source = "<annotation>" if isinstance(annotation, dict) else str(annotation)
        self.class_names = list(doc["labels"])
        if target is None:
            target = "multilabel" if doc.get("multi_label") else "label"
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
        # Built (or found) here, before DataLoader workers fork, so they inherit it loaded.
        self._region_lib = region_decoder() if region_decode else None
        store_set = stores if isinstance(stores, StoreSet) else StoreSet(stores, doc)
        self.samples, problems = build_samples(doc, store_set, subset, segments)
        self._report(problems)
        if not self.samples:
            raise ValueError(f"{self.source}: no usable videos in subset {subset!r}")
        self._bad = set()
        self._buffers = ClipBuffers()

    def __getstate__(self):
        # A loaded C library does not pickle (spawned DataLoader workers): load it again there.
        state = self.__dict__.copy()
        state["_region_lib"] = state["_region_lib"] is not None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._region_lib = region_decoder() if state["_region_lib"] else None

    def _check_targets(self):
        """Single-label targets need single-label samples."""
        if self.target_type == "label":
            multi = [s.video_id for s in self.samples if len(s.labels) > 1]
            if multi:
                raise ValueError(f"{self.source}: {len(multi)} videos have several labels "
                                 f"(e.g. {multi[0]!r}): use target='multilabel'")

    def _report(self, problems):
        if not problems:
            return
        listed = "\n  ".join(f"{v}: {r}" for v, r in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        msg = (f"{self.source}: {len(problems)} video(s) of subset {self.subset!r} cannot be "
               f"used:\n  {listed}{tail}")
        if self.on_bad == "raise":
            raise ValueError(msg + "\n(pass on_bad='skip' to leave them out)")
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
        return [s.video_id for s in self.samples]

    def target(self, sample):
        if self.target_type == "label":
            return sample.label
        t = torch.zeros(len(self.class_names), dtype=torch.float32)
        if sample.labels:
            t[list(sample.labels)] = 1.0
        return t

    def load_clips(self, sample, clips, rng=None) -> list:
        """Read, decode and transform the clips (lists of frame numbers) of one sample, with
        the random parameters drawn from `rng` (a random.Random)."""
        if self._setup_pid != os.getpid():
            self._setup_pid = os.getpid()
            if self.keep_memory:
                keep_freed_memory()
        flat = clips[0] if len(clips) == 1 else [f for c in clips for f in c]
        unique = list(dict.fromkeys(flat))
        data = sample.store.read_bytes(sample.key, unique)
        try:
            hw = jpeg_size(data[0])
        except DecodeError as e:
            raise FrameReadError(sample.store, sample.key, unique[0], e.reason) from None
        plans = [self.transform.plan(hw, rng) for _ in clips]
        factor = 1
        if self.reduced_decode:
            factor = min(self.transform.decode_factor(hw, p, self.max_decode_factor)
                         for p in plans)
        decoded_hw = scaled_size(*hw, factor)
        boxes, region = self._region(hw, decoded_hw, plans)
        try:
            if region is not None:
                array = decode_region_clip(self._region_lib, data, factor, region, unique,
                                           self._buffers)
            else:
                array = decode_clip(data, factor, names=unique, buffers=self._buffers)
        except DecodeError as e:
            frame = unique[e.position] if e.position is not None else None
            raise FrameReadError(sample.store, sample.key, frame, e.reason) from None
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
        if self._region_lib is None or any(b is None for b in boxes):
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
        sample = self.samples[index]
        clips = self.sampler(sample.frames, rng)
        return self.load_clips(sample, clips[:1], rng)[0], self.target(sample)

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
        sample = self.samples[index]
        clips = self.load_clips(sample, self.sampler(sample.frames, rng), rng)
        return torch.stack(clips), self.target(sample), index

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
        starts = [sampler.starts(len(s.frames)) for s in self.samples]
        self._video = np.repeat(np.arange(len(self.samples)), [len(x) for x in starts])
        self._start = np.concatenate([np.asarray(x, dtype=np.int64) for x in starts])

    def __len__(self):
        return len(self._video)

    def _get(self, index, rng):
        v = int(self._video[index])
        sample = self.samples[v]
        clip = self.sampler.clip_at(sample.frames, int(self._start[index]))
        segment = torch.tensor([min(clip) - sample.shift, max(clip) + 1 - sample.shift])
        return self.load_clips(sample, [clip], rng)[0], v, segment

    def __getitem__(self, key):
        """(clip, video index, segment); under on_bad='skip' an unreadable window gives None
        (left out by `collate_windows`)."""
        return self._load(key, self._get, substitute=False)


def collate_windows(batch):
    """Batch `InferenceWindows` items, leaving out skipped (None) ones; None if all were."""
    batch = [b for b in batch if b is not None]
    return default_collate(batch) if batch else None
