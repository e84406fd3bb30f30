"""r3d-features: a checkpoint's pooled activations for every sliding window of every video, with
the windows' frames and times, in one HDF5 file (or .npy files and a manifest); resumable, and
under torchrun each process takes a disjoint share of the videos."""
import contextlib
import logging
import os
import sys
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from storeformat.lock import output_lock
from storeformat.paths import is_inside
from training.job import distributed
from training.job.checkpoint_info import inference_transforms
from training.job.engine import autocast

from .arguments import PENULTIMATE
from .featurefile import FeatureOutput
from .options import Loaded, file_hash, forward_crops, frame_settings, sources
from .sources import VideoFile, check_video_id
from .windows import Batch, VideoFailed, VideoStarted, window_events

log = logging.getLogger(__name__)


def feature_function(model, layer):
    """x -> [N, D]: the penultimate features, or the output of module `layer` averaged over
    every dimension after the channels."""
    if layer == PENULTIMATE:
        return model.forward_features
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        top = ", ".join(n for n, _ in model.named_children())
        raise ValueError(f"--layer {layer!r} is not a module of the model; top-level modules: "
                         f"{top} (or {PENULTIMATE}; nested names as 'layer4.1.conv2')")
    captured = []
    modules[layer].register_forward_hook(lambda module, inputs, output: captured.append(output))

    def run(x):
        captured.clear()
        model(x)
        y = captured[-1]
        return y.flatten(2).mean(2) if y.dim() > 2 else y

    return run


def run_settings(args, loaded, sources_are_files) -> dict:
    """The file-level attributes: what made the features."""
    spec = loaded.spec
    clip, sampler = loaded.clip, loaded.sampler
    norm = clip["norm"]
    settings = {"model": spec["model"], "depth": int(spec["depth"]),
                "checkpoint": str(args.checkpoint),
                "checkpoint_sha256": file_hash(args.checkpoint), "layer": args.layer,
                "window": sampler.size, "stride": sampler.step, "t_stride": sampler.t_stride,
                "crop": args.crop, "sample_size": int(clip["sample_size"]),
                "norm_mean": [float(x) for x in norm["mean"]],
                "norm_std": [float(x) for x in norm["std"]],
                "value_scale": float(norm["value_scale"]), "dtype": args.dtype}
    if sources_are_files:
        fs = frame_settings(args)
        settings.update(frame_height=fs.height, frame_short_side=fs.short_side,
                        frame_fps=fs.fps, frame_quality=fs.quality)
    return settings


def extract(args) -> dict:
    """Run r3d-features; returns {'videos', 'windows', 'failed': [(id, reason)], 'skipped',
    'total'} ('total': videos in the output, None on processes other than the first)."""
    loaded = Loaded(args, window=args.window, stride=args.stride)
    try:
        return _extract(args, loaded, loaded.ctx)
    finally:
        distributed.teardown(loaded.ctx)


def _extract(args, loaded, ctx):
    fn = feature_function(loaded.model, args.layer)
    transforms = inference_transforms(loaded.clip, args.crop)
    srcs = sources(args, root=args.root)
    for s in srcs:
        check_video_id(s.video_id)
    check_not_an_input(args.out, srcs)
    output = FeatureOutput(args.out, args.format,
                           run_settings(args, loaded, sources_are_files=bool(args.videos)))
    with contextlib.ExitStack() as held:
        problem = None
        if ctx.is_main:
            try:
                output.path.parent.mkdir(parents=True, exist_ok=True)
                held.enter_context(output_lock(output.lock_path, output.path, "r3d-features"))
                output.prepare(overwrite=args.overwrite)
            except (ValueError, OSError, RuntimeError) as e:
                problem = str(e)
        problem = distributed.broadcast_object(ctx, problem)  # every process stops
        if problem:
            raise ValueError(problem)
        done = output.done_ids()
        mine = [s for i, s in enumerate(srcs)
                if i % ctx.world_size == ctx.rank and s.video_id not in done]
        stats = _run(mine, fn, transforms, loaded, output, args, ctx)
        parts = distributed.gather_objects(ctx, stats)
        total = output.merge() if ctx.is_main else None
        distributed.barrier(ctx)
    return {"videos": sum(p["videos"] for p in parts), "windows": sum(p["windows"] for p in parts),
            "failed": [f for p in parts for f in p["failed"]], "skipped": len(done),
            "total": total}


def check_not_an_input(out, srcs):
    """ValueError when `out` is one of the raw videos `srcs` or (a folder) holds one of them:
    the output must never replace or hold an input."""
    real_out = os.path.realpath(out)
    for s in srcs:
        if not isinstance(s, VideoFile):
            continue
        path = s.path
        real = os.path.realpath(path)
        if real == real_out:
            raise ValueError(f"{out}: is an input video of this run (--overwrite never "
                             f"replaces one); --out must name a new file or an earlier "
                             f"r3d-features output")
        if is_inside(real, real_out):
            raise ValueError(f"{out}: holds the input video {path}; --out must name a new "
                             f"folder or an earlier r3d-features output")


def _run(mine, fn, transforms, loaded, output, args, ctx):
    dtype = np.float16 if args.dtype == "float16" else np.float32
    stats = {"videos": 0, "windows": 0, "failed": []}
    current = {}
    bar = tqdm(total=len(mine), unit="video", disable=args.no_progress or not ctx.is_main,
               dynamic_ncols=True, desc="r3d-features", file=sys.stderr)
    start = time.perf_counter()
    events = window_events(mine, loaded.sampler, transforms, args.batch, loaded.workers)
    with torch.no_grad():
        for e in events:
            if isinstance(e, VideoStarted):
                current[e.slot] = [e, [None] * len(e.first), 0]
            elif isinstance(e, VideoFailed):
                current.pop(e.slot, None)
                stats["failed"].append((e.video_id, e.reason))
                log.warning("skipping %s: %s", e.video_id, e.reason)
                bar.update(1)
            elif isinstance(e, Batch):
                with autocast(ctx.device, args.amp):
                    feats = forward_crops(fn, e.inputs, ctx).numpy()
                for (slot, w), f in zip(e.owners, feats):
                    if slot not in current:  # its video failed after this batch was made
                        continue
                    entry = current[slot]
                    entry[1][w] = f
                    entry[2] += 1
                    if entry[2] == len(entry[1]):
                        del current[slot]
                        _finish(entry, output, dtype)
                        stats["videos"] += 1
                        stats["windows"] += entry[2]
                        bar.update(1)
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(windows_s=f"{stats['windows'] / elapsed:.1f}",
                                videos_s=f"{stats['videos'] / elapsed:.2f}", refresh=False)
    bar.close()
    return stats


def _finish(entry, output, dtype):
    started, rows, _ = entry
    output.write_video(started.video_id, np.stack(rows).astype(dtype), started.first,
                       started.last, started.seconds, started.fps, started.n_frames,
                       started.source)


if __name__ == "__main__":  # python -m / torchrun -m
    from .cli import features_main
    sys.exit(features_main())
