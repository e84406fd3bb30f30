"""Options r3d-predict and r3d-features share: the checkpoint and, for reference checkpoints,
the model and clip options r3d-train takes (same names); the frame rule of r3d-preprocess for
raw videos; the store and annotation of stored videos; the device."""
import argparse
import hashlib
import logging
import os
from pathlib import Path

import torch

from preprocess.extract import FrameSettings
from training import distributed
from training.checkpoint_info import (clip_settings, model_from_checkpoint, model_spec,
                                      norm_settings)
from training.models import MODEL_NAMES, read_checkpoint
from training.options import parse_store_paths
from training.sampling import SlidingWindow
from training.transforms import NORM_PRESETS

from .sources import file_sources, store_sources

log = logging.getLogger(__name__)

#: Decoding processes used by default with CUDA.
MAX_DEFAULT_WORKERS = 8

#: r3d-train's model options: attribute -> generate_model option.
MODEL_OPTIONS = {"n_classes": "n_classes", "conv1_t_size": "conv1_t_size",
                 "conv1_t_stride": "conv1_t_stride", "resnet_shortcut": "shortcut_type",
                 "resnet_widen_factor": "widen_factor", "wide_resnet_k": "k",
                 "resnext_cardinality": "cardinality"}


def add_input_options(p):
    g = p.add_argument_group("input: raw videos (VIDEO...) or a store and its annotation file")
    g.add_argument("videos", nargs="*", metavar="VIDEO",
                   help="video files in any container r3d-preprocess reads")
    g.add_argument("--video-path", action="append", default=[], metavar="[NAME=]PATH",
                   help="frame store written by r3d-preprocess (or the reference's layouts); "
                        "NAME=PATH for the named roots of a merged annotation file")
    g.add_argument("--annotation-path", type=Path, default=None,
                   help="annotation file listing the store's videos")
    g.add_argument("--subset", default=None,
                   help="only the videos of this subset (default: every video of the file)")
    g = p.add_argument_group("frame rule for raw videos (as r3d-preprocess; use the store's)")
    g.add_argument("--height", type=int, default=240, help="frame height (default: %(default)s)")
    g.add_argument("--short-side", type=int, default=None,
                   help="scale the short side to this instead of --height")
    g.add_argument("--fps", type=float, default=None, help="resample to this frame rate")
    g.add_argument("--quality", type=int, default=90, help="JPEG quality of the frames")


def add_model_options(p):
    g = p.add_argument_group("model (r3d checkpoints record these; needed for reference ones)")
    g.add_argument("--checkpoint", type=Path, required=True, help="r3d or reference checkpoint")
    g.add_argument("--weights-only", choices=("yes", "no"), default="yes",
                   help="torch.load(weights_only=...); 'no' only for files you trust")
    g.add_argument("--model", choices=MODEL_NAMES, default=None)
    g.add_argument("--model-depth", type=int, default=None)
    g.add_argument("--n-classes", type=int, default=None)
    g.add_argument("--conv1-t-size", type=int, default=None)
    g.add_argument("--conv1-t-stride", type=int, default=None)
    g.add_argument("--no-max-pool", action="store_true", default=None)
    g.add_argument("--resnet-shortcut", choices=("A", "B"), default=None)
    g.add_argument("--resnet-widen-factor", type=float, default=None)
    g.add_argument("--wide-resnet-k", type=int, default=None)
    g.add_argument("--resnext-cardinality", type=int, default=None)
    g = p.add_argument_group("clip settings (default: the checkpoint's, else r3d-train's)")
    g.add_argument("--sample-size", type=int, default=None, help="crop height and width")
    g.add_argument("--sample-duration", type=int, default=None, help="frames per window")
    g.add_argument("--sample-t-stride", type=int, default=None, help="take every N-th frame")
    g.add_argument("--mean-dataset", choices=sorted(NORM_PRESETS), default=None,
                   help="normalisation preset (with --value-scale, --no-mean-norm, "
                        "--no-std-norm: as r3d-train)")
    g.add_argument("--value-scale", type=int, choices=(1, 255), default=None)
    g.add_argument("--no-mean-norm", action="store_true")
    g.add_argument("--no-std-norm", action="store_true")
    g = p.add_argument_group("hardware")
    g.add_argument("--device", default="auto",
                   help="auto (the GPU when CUDA is available), cpu, or cuda[:N]")
    g.add_argument("--batch", type=int, default=32,
                   help="windows per forward pass (default: %(default)s)")
    g.add_argument("--workers", type=int, default=None,
                   help="processes decoding videos and windows, each taking every N-th video "
                        "(default: 0 on the CPU, where a background thread does it; "
                        f"min({MAX_DEFAULT_WORKERS}, CPU cores) with CUDA; at most the CPU "
                        "cores)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


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
