"""Benchmark r3d-features against the model's bare forward pass on the same windows.

Encodes a few real videos (ffmpeg's testsrc2, H.264, 320x240, 25 fps), converts them with
r3d-preprocess (not timed) and saves a ResNet-18 checkpoint (random weights, 16x112x112
clips). Then, in alternating rounds so that load from other jobs hits all alike, times:

* ``raw``: r3d-features on the video files (decoded in memory, ffmpeg + JPEG);
* ``store``: r3d-features on the JPEG store and an annotation file;
* ``forward``: ``model.forward_features`` alone on the same windows, already decoded and
  transformed in memory, in batches of the same size.

The commands are timed whole (checkpoint loading and hashing, decoding, transforms, the
forward pass, writing the file), in wall time and in CPU time (this process's threads and the
ffmpeg processes); command/forward is the share of the time spent in the model. Prints a
table; the last line is one JSON object.

    python tools/bench_features.py                        # 2 videos x 64 frames, batch 8
    python tools/bench_features.py --videos 4 --frames 64 --rounds 3
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import encode_video  # noqa: E402
from preprocess import convert_dataset  # noqa: E402
from training.data.sampling import SlidingWindow  # noqa: E402
from training.data.stores import open_store  # noqa: E402
from training.job.checkpoint_info import describe_run, inference_transforms  # noqa: E402
from training.job.options import build_parser  # noqa: E402
from training.models import generate_model, save_checkpoint  # noqa: E402
from videoapps.cli import features_main  # noqa: E402


def make_inputs(root: Path, n_videos: int, n_frames: int):
    """Videos, their JPEG store, an annotation file and a ResNet-18 checkpoint."""
    for i in range(n_videos):
        encode_video(root / "videos" / f"v{i}.mp4", frames=n_frames)
    assert convert_dataset(root / "videos", root / "store", progress=False).ok
    doc = {"labels": ["x"], "database": {f"v{i}": {"subset": "validation",
                                                   "annotations": {"label": "x"}}
                                         for i in range(n_videos)}}
    (root / "ann.json").write_text(json.dumps(doc))
    args = build_parser().parse_args(["--video-path", "s", "--annotation-path", "a",
                                      "--result-path", "r", "--model-depth", "18",
                                      "--n-classes", "400"])
    info = describe_run(args, [f"class{i}" for i in range(400)])
    model = generate_model(**info["model_spec"]).eval()
    save_checkpoint(root / "ck.pth", model, 1, "resnet-18", **info)
    return model, info["clip"]


def window_inputs(root: Path, clip, n_videos: int):
    """Every window of the stored videos, decoded and transformed (crops x C x T x H x W)."""
    store = open_store(root / "store")
    tf, = inference_transforms(clip)
    sampler = SlidingWindow(clip["sample_duration"])
    out = []
    for i in range(n_videos):
        n, first = store.n_frames(f"v{i}"), store.first_frame
        for s in sampler.starts(n):
            out.append(tf(store.read(f"v{i}", sampler.clip_at(range(first, first + n), s))))
    return out


def measure(fn):
    """(wall seconds, CPU seconds) of fn(): the CPU time of this process's threads and of the
    child processes it waited for (ffmpeg), which a busy machine inflates much less than the
    wall time."""
    def cpu():
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    wall, used = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - wall, cpu() - used


def forward(model, windows, batch):
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            model.forward_features(torch.stack(windows[i:i + batch]))


def command(argv):
    rc = features_main(argv)
    if rc != 0:
        raise SystemExit(f"r3d-features exited with {rc}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--frames", type=int, default=64, help="frames per video")
    p.add_argument("--batch", type=int, default=8, help="windows per forward pass")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared machine, fewer threads "
                        "waiting on each other)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    root = Path(tempfile.mkdtemp(prefix="bench-features-"))
    try:
        model, clip = make_inputs(root, a.videos, a.frames)
        windows = window_inputs(root, clip, a.videos)
        common = ["--checkpoint", str(root / "ck.pth"), "--batch", str(a.batch), "--device",
                  "cpu", "--no-progress", "--overwrite"]
        raw = [str(root / "videos" / f"v{i}.mp4") for i in range(a.videos)] + common + [
            "--out", str(root / "raw.h5")]
        stored = ["--video-path", str(root / "store"), "--annotation-path",
                  str(root / "ann.json"), "--out", str(root / "store.h5")] + common
        runs = {"forward": lambda: forward(model, windows, a.batch),
                "store": lambda: command(stored), "raw": lambda: command(raw)}
        times = {k: [] for k in runs}
        forward(model, windows[:a.batch], a.batch)  # warm-up
        for _ in range(a.rounds):
            for k, run in runs.items():
                times[k].append(measure(run))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = len(windows)
    wall = {k: n / statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: n / statistics.median(t[1] for t in v) for k, v in times.items()}
    print(f"{a.videos} videos x {a.frames} frames, {n} windows of 16x112x112, ResNet-18, "
          f"batch {a.batch}, {torch.get_num_threads()} torch threads, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'path':<10}{'windows/s':>11}{'vs forward':>12}{'windows/CPU s':>15}"
          f"{'vs forward':>12}")
    for k in runs:
        print(f"{k:<10}{wall[k]:>11.2f}{wall[k] / wall['forward']:>12.2f}{cpu[k]:>15.2f}"
              f"{cpu[k] / cpu['forward']:>12.2f}")
    print(json.dumps({"windows": n, "windows_per_s": wall, "windows_per_cpu_s": cpu,
                      "torch_threads": torch.get_num_threads(),
                      "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
