"""Options r3d-predict and r3d-features share: the checkpoint and, for reference checkpoints,
the model and clip options r3d-train takes (same names); the frame rule of r3d-preprocess for
raw videos; the store and annotation of stored videos; the device."""
import argparse
import hashlib
import logging
import os

import torch

from preprocess.extract import FrameSettings
from training.job import distributed
from training.job.checkpoint_info import (clip_settings, model_from_checkpoint, model_spec,
                                          norm_settings)
from training.models import read_checkpoint
from training.job.options import parse_store_paths
from training.data.sampling import SlidingWindow

from .arguments import MAX_DEFAULT_WORKERS
from .sources import file_sources, store_sources

log = logging.getLogger(__name__)


#: r3d-train's model options: attribute -> generate_model option.
MODEL_OPTIONS = {"n_classes": "n_classes", "conv1_t_size": "conv1_t_size",
                 "conv1_t_stride": "conv1_t_stride", "resnet_shortcut": "shortcut_type",
                 "resnet_widen_factor": "widen_factor", "wide_resnet_k": "k",
                 "resnext_cardinality": "cardinality"}


def model_overrides(args) -> dict:
    """generate_model arguments given on the command line."""
    out = {}
    if args.model is not None:
        out["model"] = args.model
    if args.model_depth is not None:
        out["depth"] = args.model_depth
    for attr, option in MODEL_OPTIONS.items():
        if getattr(args, attr) is not None:
            out[option] = getattr(args, attr)
    if args.no_max_pool:
        out["no_max_pool"] = True
    if ("model" in out) != ("depth" in out):
        raise ValueError("give --model and --model-depth together")
    return out


def clip_overrides(args) -> dict:
    """Clip settings given on the command line (None: not given); any normalisation option
    gives the whole normalisation, its other values at r3d-train's defaults."""
    out = {"sample_size": args.sample_size, "sample_duration": args.sample_duration,
           "sample_t_stride": args.sample_t_stride}
    if args.mean_dataset is not None or args.value_scale is not None or args.no_mean_norm \
            or args.no_std_norm:
        out["norm"] = norm_settings(argparse.Namespace(
            mean_dataset=args.mean_dataset or "kinetics", value_scale=args.value_scale or 1,
            no_mean_norm=args.no_mean_norm, no_std_norm=args.no_std_norm))
    return out


def file_hash(path, block=1 << 20) -> str:
    """SHA-256 of a file (hex), naming exactly which weights produced an output."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(block)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


class Loaded:
    """What the options load: the checkpoint, its model's generate_model arguments and the
    model (eval mode, on the device), its clip settings, the window sampler, the device
    context, the number of decoding processes."""

    def __init__(self, args, window=None, stride=None):
        for name in ("batch", "sample_size", "sample_duration", "sample_t_stride", "window",
                     "stride"):
            value = getattr(args, name, None)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        self.ckpt = read_checkpoint(args.checkpoint, weights_only=args.weights_only == "yes")
        self.clip = clip_settings(self.ckpt, clip_overrides(args))
        if self.clip.get("input_type", "rgb") != "rgb":
            raise ValueError(f"{args.checkpoint}: a {self.clip['input_type']} model; these "
                             f"commands read RGB frames")
        self.ctx = distributed.setup(args.device)
        self.spec = model_spec(self.ckpt, model_overrides(args))
        self.model = model_from_checkpoint(self.ckpt, self.spec).to(self.ctx.device)
        duration = int(window or self.clip["sample_duration"])
        t_stride = int(self.clip["sample_t_stride"])
        self.sampler = SlidingWindow(duration, stride, t_stride)
        self.workers = args.workers
        if self.workers is None:
            self.workers = (min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)
                            if self.ctx.device.type == "cuda" else 0)
        elif self.workers < 0:
            raise ValueError("--workers must be 0 or more")
        self.workers = cap_workers(self.workers, "--workers")


def cap_workers(n, option) -> int:
    """`n` processes, or the CPU cores when there are fewer (with a logged note): more only
    compete for the same cores, and thousands would exhaust memory and hang the run."""
    cores = os.cpu_count() or 1
    if n > cores:
        log.warning("%s %d is more than the %d CPU cores; using %d", option, n, cores, cores)
        return cores
    return n


def frame_settings(args) -> FrameSettings:
    return FrameSettings(height=None if args.short_side else args.height,
                         short_side=args.short_side, fps=args.fps, quality=args.quality)


def sources(args, keep_paths=False, root=None) -> list:
    """The videos the input options name (raw files, or a store with its annotation file)."""
    if args.videos and args.video_path:
        raise ValueError("give either VIDEO files or --video-path with --annotation-path")
    if args.video_path:
        if args.annotation_path is None:
            raise ValueError("--video-path needs --annotation-path, which lists its videos")
        stores = parse_store_paths(args.video_path)
        return store_sources(stores, args.annotation_path, args.subset)
    if not args.videos:
        raise ValueError("no input: give VIDEO files or --video-path and --annotation-path")
    return file_sources(args.videos, frame_settings(args), root=root, keep_paths=keep_paths)


def to_device(inputs, ctx):
    return inputs.to(ctx.device, non_blocking=ctx.device.type == "cuda")


def forward_crops(fn, inputs, ctx) -> torch.Tensor:
    """fn over a batch of windows x crops x C x T x H x W, averaged over the crops."""
    n, k = inputs.shape[:2]
    out = fn(to_device(inputs.flatten(0, 1), ctx))
    return out.float().view(n, k, -1).mean(1).cpu()
