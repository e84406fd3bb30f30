"""The datasets and DataLoaders of an r3d-train run, built once from one reading of the
annotation file and one set of open stores, and shared by training, validation, video-level
evaluation and inference. The parsed annotation is dropped once the datasets hold their
samples.

Workers send uint8 clips; `Inputs` (training.job.engine) converts and normalises whole batches on
the device. The training order and every random draw come from training.data.order, so they
do not depend on the workers.
"""
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from torch.utils.data import DataLoader

from storeformat import VIDEO_EXTENSIONS
from storeformat.jsonstream import cycle_collector_paused
from storeformat.subsets import UnknownSubset, resolve_subset

from ..data.datasets import (BadVideos, InferenceWindows, StoreSet, TrainingClips, ValidationClips,
                             collate_multi_clips, collate_windows)
from ..data.errors import VideoNotFound
from ..data.order import EpochSampler, ShardSampler, VideoBatchSampler
from ..data.samples import read_samples
from ..data.sampling import SlidingWindow, TemporalCenterCrop, TemporalEvenCrop, TemporalRandomCrop
from ..data.transforms import eval_transform, train_transform
from .builders import TrainingSetupError
from .engine import Inputs


class FirstChannels:
    """A transform whose output keeps only its first `n` channels (2 for optical flow stored as
    the x and y channels of JPEG frames); everything else is the wrapped transform's."""

    def __init__(self, transform, n):
        self.transform, self.n = transform, n

    def __getattr__(self, name):
        return getattr(self.transform, name)

    def apply(self, clip, plan, **kwargs):
        return self.transform.apply(clip, plan, **kwargs)[:self.n]


def build_transforms(args):
    """(training, validation, inference) transforms from the options."""
    norm = dict(norm=args.mean_dataset, value_scale=args.value_scale,
                mean_norm=not args.no_mean_norm, std_norm=not args.no_std_norm)
    train = train_transform(args.sample_size, crop=args.train_crop, hflip=not args.no_hflip,
                            color_jitter=args.colorjitter_strengths,
                            min_scale=args.train_crop_min_scale,
                            min_ratio=args.train_crop_min_ratio, **norm)
    val = eval_transform(args.sample_size, crop="center", **norm)
    infer = eval_transform(args.sample_size,
                           crop="center" if args.inference_crop == "center" else "none", **norm)
    if args.input_type == "flow":
        train, val, infer = (FirstChannels(t, 2) for t in (train, val, infer))
    return train, val, infer


def input_pipe(transform, ctx, args) -> Inputs:
    """What turns a batch made with `transform` into the model's input on ctx.device."""
    channels = 2 if args.input_type == "flow" else None
    return Inputs(ctx.device, transform.normalizer(), channels,
                  args.channels_last and ctx.device.type == "cuda")


@dataclass
class RunData:
    """The run's datasets (None where the options need none) and what the file says."""
    class_names: list
    multilabel: bool
    train: Optional[TrainingClips] = None
    val: Optional[ValidationClips] = None
    val_videos: Optional[InferenceWindows] = None
    infer: Optional[InferenceWindows] = None
    infer_subset: Optional[str] = None


def build_data(args, transforms) -> RunData:
    """Read the annotation once, entry by entry, into the samples of every subset, and build
    the datasets the options ask for from them (with the cycle collector paused: a million
    videos' columns are acyclic)."""
    with cycle_collector_paused():
        return _build_data(args, transforms)


def run_stores(args, header) -> StoreSet:
    """The --video-path stores or, when none is given, the stores the annotation file's roots
    record paths for."""
    stores = dict(args.stores)
    if not stores:
        stores = {name: root["path"] for name, root in (header.get("roots") or {}).items()
                  if isinstance(root, dict) and root.get("path")}
    if not stores:
        raise TrainingSetupError(f"--video-path is required: {args.annotation_path} records "
                                 f"no store path for its videos")
    return StoreSet(stores, header)


def raw_video_example(path):
    """A video file directly in `path` or in one of its folders (a folder of raw videos, not
    of frames), or None."""
    path = Path(path)
    if not path.is_dir():
        return None
    for entry in sorted(path.iterdir()):
        inner = sorted(entry.iterdir()) if entry.is_dir() else [entry]
        for f in inner[:50]:
            if f.is_file() and f.suffix.lower().lstrip(".") in VIDEO_EXTENSIONS:
                return f
    return None


def _build_data(args, transforms) -> RunData:
    try:
        return _datasets(args, transforms)
    except (VideoNotFound, ValueError) as e:
        for path in args.stores.values():
            example = raw_video_example(path)
            if example is not None:
                raise TrainingSetupError(
                    f"--video-path {path}: this looks like a folder of raw videos (e.g. "
                    f"{example.name}), not of frames: convert it with r3d-preprocess first "
                    f"(docs/preprocess.md), then pass the converted store") from None
        if isinstance(e, BadVideos):
            raise BadVideos(e.listing, "pass --on-bad-video skip to leave them out") from None
        raise


def _datasets(args, transforms) -> RunData:
    read = read_samples(args.annotation_path, None, lambda header: run_stores(args, header))
    train_tf, val_tf, infer_tf = transforms
    common = dict(on_bad=args.on_bad_video, output="uint8", seed=args.manual_seed)

    def subset(name):
        try:
            return resolve_subset(read.present_subsets, name)
        except UnknownSubset as e:
            raise TrainingSetupError(f"{args.annotation_path}: {e}") from None

    data = RunData(list(read.header["labels"]), bool(read.header.get("multi_label")))
    if not args.no_train:
        sampler_cls = TemporalRandomCrop if args.train_t_crop == "random" else TemporalCenterCrop
        data.train = TrainingClips(read, None, subset("training"), train_tf,
                                   sampler_cls(args.sample_duration, args.sample_t_stride,
                                               rule=args.temporal_rule), **common)
    if not args.no_val:
        val = subset("validation")
        data.val = ValidationClips(read, None, val, val_tf,
                                   TemporalEvenCrop(args.sample_duration, args.n_val_samples,
                                                    args.sample_t_stride,
                                                    rule=args.temporal_rule), **common)
        data.val_videos = InferenceWindows(read, None, val, val_tf, _windows(args), **common)
    if args.inference:
        data.infer_subset = subset(args.inference_subset)
        data.infer = InferenceWindows(read, None, data.infer_subset, infer_tf, _windows(args),
                                      **common)
    return data


def _windows(args):
    return SlidingWindow(args.sample_duration, args.inference_stride, args.sample_t_stride)


def _options(args, ctx, persistent=True):
    workers = args.n_threads
    return {"num_workers": workers, "pin_memory": ctx.device.type == "cuda",
            "persistent_workers": persistent and workers > 0}


class CappedSampler:
    """The first `n` keys of an epoch sampler's epoch (--max-iters-per-epoch)."""

    def __init__(self, sampler, n):
        self.sampler, self.n = sampler, n

    def set_epoch(self, epoch):
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.n)

    def __len__(self):
        return min(self.n, len(self.sampler))


def train_loader(ds, args, ctx) -> DataLoader:
    """Batches of (epoch, index) keys drawn by an EpochSampler: call
    loader.sampler.set_epoch(epoch) before each epoch."""
    sampler = EpochSampler(len(ds), args.manual_seed, ctx.rank, ctx.world_size)
    if args.max_iters_per_epoch is not None:
        sampler = CappedSampler(sampler, args.max_iters_per_epoch * args.batch_size)
    return DataLoader(ds, batch_size=args.batch_size, sampler=sampler,
                      **_options(args, ctx))


def val_loader(ds, args, ctx) -> DataLoader:
    per_batch = max(1, args.batch_size // args.n_val_samples)
    return DataLoader(ds, batch_size=per_batch, collate_fn=collate_multi_clips,
                      sampler=ShardSampler(len(ds), ctx.rank, ctx.world_size),
                      **_options(args, ctx))


def window_loader(ds, args, ctx, nocrop=False) -> DataLoader:
    """Windows in batches of --inference-batch-size; with uncropped frames, whose size differs
    between videos, a batch holds windows of one video only."""
    opts = _options(args, ctx, persistent=False)
    if nocrop:
        batches = VideoBatchSampler(ds.video_of_window, args.inference_batch_size, ctx.rank,
                                    ctx.world_size)
        return DataLoader(ds, batch_sampler=batches, collate_fn=collate_windows, **opts)
    return DataLoader(ds, batch_size=args.inference_batch_size, collate_fn=collate_windows,
                      sampler=ShardSampler(len(ds), ctx.rank, ctx.world_size), **opts)
