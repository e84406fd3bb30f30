"""Benchmark r3d-preprocess against plain ffmpeg writing JPEGs, on the same videos and cores.

The baseline is what the reference's extraction script runs: one `ffmpeg -i VIDEO -vf
scale=-2:240 -threads 1 DIR/image_%05d.jpg` process per video, JOBS of them at a time. r3d is
measured writing JPEG directories and HDF5 shards with the same number of jobs. Prints frames/s,
bytes per frame and ratios; the last line is one JSON object.

    python tools/bench_preprocess.py --videos 8 --seconds 8 --jobs 2
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ffmpeg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from preprocess import convert_dataset  # noqa: E402
from preprocess.ffmpeg_bin import ffmpeg_exe  # noqa: E402


def make_videos(folder: Path, n: int, seconds: float, width: int, height: int):
    """UCF-101-like sources: MPEG-4 part 2 in AVI, 25 fps, a moving, noisy test pattern."""
    paths = []
    for i in range(n):
        path = folder / f"class{i % 4}" / f"v_{i:03d}.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        (ffmpeg.input(f"testsrc2=size={width}x{height}:rate=25:duration={seconds}", f="lavfi")
         .filter("noise", alls=12, allf="t")
         .output("file:" + str(path), vcodec="mpeg4", qscale=4)
         .global_args("-nostdin", "-loglevel", "error").overwrite_output()
         .run(cmd=ffmpeg_exe()))
        paths.append(path)
    return paths


def plain_ffmpeg(videos, src: Path, out: Path, jobs: int, qscale: int) -> int:
    """The baseline: one plain ffmpeg command per video writing image_%05d.jpg."""
    def one(video):
        d = out / video.relative_to(src).with_suffix("")
        d.mkdir(parents=True, exist_ok=True)
        (ffmpeg.input("file:" + str(video))
         .output("file:" + str(d / "image_%05d.jpg"), vf="scale=-2:240", threads=1,
                 **{"q:v": qscale})
         .global_args("-nostdin", "-loglevel", "error").overwrite_output()
         .run(cmd=ffmpeg_exe()))
        return len(os.listdir(d))

    with ThreadPoolExecutor(jobs) as pool:
        return sum(pool.map(one, videos))


def clip_reads_per_s(store: Path, clips: int, length: int = 16, seed: int = 0) -> float:
    """Random `length`-frame clips read (JPEG bytes, not decoded) per second from an HDF5
    store, every file opened once: the cost of the layout itself."""
    import random

    import h5py
    from storeformat import read_frame_bytes, read_index

    records = [r for r in read_index(store / "index.jsonl").values() if r["status"] == "done"]
    files = {}
    groups = {}
    for r in records:
        f = files.get(r["path"]) or files.setdefault(r["path"], h5py.File(store / r["path"], "r"))
        groups[r["id"]] = (f[r["key"]], f[r["key"]]["offsets"][()], r["n_frames"])
    rng = random.Random(seed)
    ids = sorted(groups)
    t = time.perf_counter()
    for _ in range(clips):
        group, offsets, n = groups[rng.choice(ids)]
        start = rng.randrange(max(n - length, 0) + 1)
        read_frame_bytes(group, range(start, min(start + length, n)), offsets)
    rate = clips / (time.perf_counter() - t)
    for f in files.values():
        f.close()
    return rate


def bytes_per_frame(folder: Path) -> float:
    files = list(folder.rglob("*.jpg"))
    return sum(f.stat().st_size for f in files) / max(len(files), 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=3, help="runs of each; the median is kept")
    p.add_argument("--quality", type=int, default=90, help="r3d JPEG quality (1-100)")
    p.add_argument("--qscale", type=int, default=2, help="baseline ffmpeg -q:v (2-31)")
    p.add_argument("--clips", type=int, default=5000, help="random clip reads per layout")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    try:
        src = work / "src"
        videos = make_videos(src, args.videos, args.seconds, args.width, args.height)
        times = {"ffmpeg": [], "r3d_jpg": [], "r3d_hdf5": []}
        frames = {}
        size = {}
        for _ in range(args.repeats):
            for name in times:
                out = work / name
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                if name == "ffmpeg":
                    frames[name] = plain_ffmpeg(videos, src, out, args.jobs, args.qscale)
                else:
                    s = convert_dataset(src, out, fmt=name[4:], quality=args.quality,
                                        jobs=args.jobs, progress=False)
                    assert s.ok, s.failed
                    frames[name] = s.frames
                times[name].append(time.perf_counter() - t)
                if name != "r3d_hdf5":
                    size[name] = bytes_per_frame(out)
        assert len(set(frames.values())) == 1, f"frame counts differ: {frames}"
        # Layout: shards (default) against one file per video, for the training reads.
        per_video = work / "per_video"
        shutil.rmtree(per_video, ignore_errors=True)
        convert_dataset(src, per_video, fmt="hdf5", quality=args.quality, jobs=args.jobs,
                        videos_per_shard=1, progress=False)
        reads = {"shards": clip_reads_per_s(work / "r3d_hdf5", args.clips),
                 "per_video": clip_reads_per_s(per_video, args.clips)}
        n_files = {"shards": len(list((work / "r3d_hdf5").glob("*.h5"))),
                   "per_video": len(list(per_video.glob("*.h5")))}
        fps = {k: frames[k] / statistics.median(v) for k, v in times.items()}
        print(f"{args.videos} videos x {args.seconds:g} s at {args.width}x{args.height} "
              f"({frames['ffmpeg']} frames), {args.jobs} jobs, median of {args.repeats} runs")
        print(f"{'path':<10} {'frames/s':>9} {'vs ffmpeg':>9}  bytes/frame")
        for k in times:
            b = f"{size[k]:.0f}" if k in size else "-"
            print(f"{k:<10} {fps[k]:9.0f} {fps[k] / fps['ffmpeg']:9.2f}  {b}")
        for k in reads:
            print(f"hdf5 {k:<9}: {n_files[k]:4d} files, {reads[k]:8.0f} random 16-frame clip "
                  f"reads/s (bytes only)")
        print(json.dumps({
            "videos": args.videos, "frames": frames["ffmpeg"], "jobs": args.jobs,
            "ffmpeg_fps": round(fps["ffmpeg"], 1), "r3d_jpg_fps": round(fps["r3d_jpg"], 1),
            "r3d_hdf5_fps": round(fps["r3d_hdf5"], 1),
            "jpg_ratio": round(fps["r3d_jpg"] / fps["ffmpeg"], 3),
            "hdf5_ratio": round(fps["r3d_hdf5"] / fps["ffmpeg"], 3),
            "hdf5_vs_jpg": round(fps["r3d_hdf5"] / fps["r3d_jpg"], 3),
            "shard_clip_reads_s": round(reads["shards"]),
            "per_video_clip_reads_s": round(reads["per_video"])}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
