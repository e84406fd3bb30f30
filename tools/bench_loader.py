"""Benchmark r3d's clip loading against a faithful re-implementation of the reference's loader.

Source videos are encoded with ffmpeg (several test patterns, 640x480, 25 fps) and converted by
r3d-preprocess into a JPEG-directory store and an HDF5 store of 320x240 frames. Every path runs
the paper's training pipeline on the same frames: a random 16-frame clip, multi-scale corner
crop to 112, horizontal flip, Kinetics normalisation, a float tensor 3 x 16 x 112 x 112.

* baseline: the reference's path: per frame, ``image_%05d.jpg`` checked, opened and converted
  with PIL, cropped, resized, flipped, converted to a tensor and normalised; frames stacked;
* r3d from JPEG directories and from HDF5 shards (training.data.datasets.TrainingClips, defaults);
* the decode bound: 16 x the time libjpeg-turbo (simplejpeg) takes to decode one frame held in
  memory;
* r3d decoding whole frames with simplejpeg (what it does where training.data.region's decoder,
  which decodes only each frame's crop, cannot be built), and without DCT-domain scaling.

Single-process figures (torch limited to one thread: per core) are medians of interleaved
rounds, timed in process CPU time; DataLoader figures are wall-clock with --workers processes.
The memory check reads the resident size (/proc/PID/status) of every DataLoader worker while
it delivers --memory-clips clips.
The last line printed is one JSON object.

    python tools/bench_loader.py --videos 8 --seconds 6 --rounds 7 --workers 2
"""
import argparse
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ffmpeg
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from preprocess import convert_dataset  # noqa: E402
from preprocess.ffmpeg_bin import ffmpeg_exe  # noqa: E402
from storeformat import read_index  # noqa: E402
from training.data.datasets import TrainingClips  # noqa: E402
from training.data.decode import decode_frame  # noqa: E402
from training.data.presets import NORM_PRESETS  # noqa: E402
from training.data.region import region_decoder, unavailable_reason  # noqa: E402
from training.data.stores import open_store  # noqa: E402
from training.data.transforms import MULTISCALE_SCALES  # noqa: E402

SOURCES = [  # lavfi sources with the detail of real footage at 320x240 (12-23 kB per frame)
    ("testsrc2=size=640x480:rate=25", {"alls": 8, "allf": "t"}),
    ("mandelbrot=size=640x480:rate=25", None),
    ("testsrc2=size=640x480:rate=25", None),
    ("life=size=640x480:rate=25:mold=10:ratio=0.1:death_color=#C83232:life_color=#00ff00",
     None),
]
CLIP = 16
SIZE = 112
#: Single-process paths are timed in CPU time of this process (user + system, page faults
#: included), which other jobs on a shared machine disturb far less than wall-clock time.
CLOCK = time.process_time


def make_videos(folder: Path, n: int, seconds: float):
    for i in range(n):
        source, noise = SOURCES[i % len(SOURCES)]
        path = folder / f"class{i % 4}" / f"v_{i:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = ffmpeg.input(source, f="lavfi", t=seconds)
        if source.startswith("life"):
            stream = stream.filter("boxblur", 2)
        if noise:
            stream = stream.filter("noise", **noise)
        (stream.output("file:" + str(path), vcodec="libx264", pix_fmt="yuv420p", crf=18)
         .global_args("-nostdin", "-loglevel", "error").overwrite_output()
         .run(cmd=ffmpeg_exe()))


def annotation_for(store: Path) -> dict:
    """A reference-schema annotation file with every video of the store as training data."""
    records = [r for r in read_index(store / "index.jsonl").values() if r["status"] == "done"]
    database = {}
    for r in records:
        label, name = r["id"].split("/")
        database[name] = {"subset": "training",
                          "annotations": {"label": label, "segment": [1, r["n_frames"] + 1]}}
    labels = sorted({v["annotations"]["label"] for v in database.values()})
    return {"labels": labels, "database": database}


# --- the reference's loader, re-implemented faithfully (PIL, one frame at a time) ----------

class ReferenceStyleClips(Dataset):
    """The reference's VideoDataset with its training transforms, from JPEG directories."""

    def __init__(self, doc, root: Path):
        mean, std = NORM_PRESETS["kinetics"]
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)
        self.items = []
        for vid, entry in doc["database"].items():
            label = entry["annotations"]["label"]
            first, stop = entry["annotations"]["segment"]
            self.items.append((root / label / vid, list(range(first, stop)),
                               doc["labels"].index(label)))

    def __len__(self):
        return len(self.items)

    @staticmethod
    def temporal_random_crop(indices, size):
        rand_end = max(0, len(indices) - size - 1)
        begin = random.randint(0, rand_end)
        out = indices[begin:begin + size]
        for index in out:
            if len(out) >= size:
                break
            out.append(index)
        return out

    @staticmethod
    def pil_loader(path):
        with path.open("rb") as f:
            with Image.open(f) as img:
                return img.convert("RGB")

    def to_tensor(self, pic):
        img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        img = img.view(pic.size[1], pic.size[0], 3).permute((2, 0, 1)).contiguous()
        return img.to(dtype=torch.float32).div(255)

    def normalize(self, tensor):
        tensor = tensor.clone()
        return tensor.sub_(self.mean[:, None, None]).div_(self.std[:, None, None])

    def __getitem__(self, index):
        path, indices, label = self.items[index]
        frames = self.temporal_random_crop(list(indices), CLIP)
        clip = []
        for i in frames:
            image_path = path / f"image_{i:05d}.jpg"
            if image_path.exists():
                clip.append(self.pil_loader(image_path))
        scale = MULTISCALE_SCALES[random.randint(0, len(MULTISCALE_SCALES) - 1)]
        position = ["c", "tl", "tr", "bl", "br"][random.randint(0, 4)]
        flip_p = random.random()
        out = []
        for img in clip:
            w, h = img.size
            side = int(min(w, h) * scale)
            if position == "c":
                top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
            else:
                top = 0 if position[0] == "t" else h - side
                left = 0 if position[1] == "l" else w - side
            img = img.crop((left, top, left + side, top + side))
            img = img.resize((SIZE, SIZE), Image.BILINEAR)
            if flip_p < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            tensor = self.to_tensor(img)
            tensor *= 1  # ScaleValue(value_scale = 1)
            out.append(self.normalize(tensor))
        return torch.stack(out, 0).permute(1, 0, 2, 3), label


def region_matches_whole_frames(doc, store, n=30):
    """r3d's clips with region decoding equal those decoded from whole frames (same draws:
    each clip's come from its item and epoch, so n clips over several epochs differ)."""
    whole = TrainingClips(doc, store, region_decode=False)
    region = TrainingClips(doc, store)
    for i in range(n):
        for ds in (whole, region):
            ds.set_epoch(i // len(ds))
        a, _ = whole[i % len(whole)]
        b, _ = region[i % len(region)]
        if not torch.equal(a, b):
            return False
    return True


# --- measurements ------------------------------------------------------------------------

def clips_per_s(dataset, n, seed):
    rng = random.Random(seed)
    order = [rng.randrange(len(dataset)) for _ in range(n)]
    random.seed(seed)
    start = CLOCK()
    for i in order:
        clip, _ = dataset[i]
    elapsed = CLOCK() - start
    assert clip.shape == (3, CLIP, SIZE, SIZE), clip.shape
    return n / elapsed


def decode_bound_per_s(frames, n_clips, seed):
    """Clips/s if a clip cost exactly 16 full-size decodes of frames already in memory."""
    rng = random.Random(seed)
    picks = [frames[rng.randrange(len(frames))] for _ in range(n_clips * CLIP)]
    start = CLOCK()
    for data in picks:
        decode_frame(data)
    return n_clips / (CLOCK() - start)


def sample_frames(store_root: Path, count=400, seed=0):
    store = open_store(store_root)
    records = [r for r in read_index(store_root / "index.jsonl").values()
               if r["status"] == "done"]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        r = rng.choice(records)
        out.extend(store.read_bytes(r["id"], [store.first_frame + rng.randrange(r["n_frames"])]))
    return out


def decoder_ms(frames, rounds=5):
    """Per-frame decode time (ms, CPU) of the JPEG decoders available to Python here."""
    def pil(data):
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")

    decoders = {"simplejpeg": decode_frame, "Pillow": pil}
    try:
        from turbojpeg import TurboJPEG
        decoders["PyTurboJPEG"] = TurboJPEG().decode
    except Exception as e:  # not installed, or its libturbojpeg is missing
        print(f"PyTurboJPEG not measured: {type(e).__name__}: {str(e).splitlines()[0]}")
    times = {name: [] for name in decoders}
    for _ in range(rounds):
        for name, decode in decoders.items():
            start = CLOCK()
            for data in frames:
                decode(data)
            times[name].append((CLOCK() - start) / len(frames) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def loader_clips_per_s(dataset, workers, batches, batch_size=16):
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                        sampler=RandomSampler(dataset, replacement=True,
                                              num_samples=(batches + 2) * batch_size),
                        persistent_workers=False, prefetch_factor=4 if workers else None)
    it = iter(loader)
    next(it)  # workers started and warm
    start = time.perf_counter()
    n = 0
    for clips, _ in it:
        n += len(clips)
    return n / (time.perf_counter() - start)


def scaling_clips_per_s(dataset, workers, batches, batch_size=16):
    """Wall-clock clips/s through a DataLoader as r3d-train runs it: float clips normalised in
    the worker, or uint8 clips normalised here after collation (dataset.output)."""
    normalizer = dataset.transform.normalizer() if dataset.output == "uint8" else None
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                        sampler=RandomSampler(dataset, replacement=True,
                                              num_samples=(batches + 2) * batch_size),
                        persistent_workers=False, prefetch_factor=4 if workers else None)
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    n = 0
    for clips, _ in it:
        if normalizer is not None:
            clips = normalizer.batch(clips)
        n += len(clips)
    return n / (time.perf_counter() - start)


def private_rss_mb(pid):
    """Resident private memory (RssAnon) of a process, in MB: what a leak would grow. (VmRSS
    also counts the shared-memory batches a worker hands to the main process.)"""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker_memory(dataset, workers, total, every=100, window=2000, batch_size=16):
    """Private RSS (MB) of the DataLoader workers over `total` clips: sampled every `every`
    clips, summarised per `window` clips as the median over samples of the largest worker.
    (A single sample catches a worker holding a batch or not: tens of MB apart.)"""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                        sampler=RandomSampler(dataset, replacement=True, num_samples=total))
    it = iter(loader)
    pids = [w.pid for w in it._workers]
    samples, seen, mark = [], 0, every
    for clips, _ in it:
        seen += len(clips)
        if seen >= mark:
            samples.append((seen, max(private_rss_mb(p) for p in pids)))
            mark += every
    out = []
    for end in range(window, total + 1, window):
        values = [mb for n, mb in samples if end - window < n <= end]
        if values:
            out.append((end, round(statistics.median(values), 1)))
    return out


def process_memory(dataset, total, every=1000):
    """Private RSS (MB) of this process after every `every` clips loaded in it."""
    out = []
    for i in range(1, total + 1):
        dataset[random.randrange(len(dataset))]
        if i % every == 0:
            out.append(round(private_rss_mb(os.getpid()), 1))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    p.add_argument("--clips", type=int, default=60, help="clips per path and round")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (0: skip)")
    p.add_argument("--loader-batches", type=int, default=20, help="batches per loader round")
    p.add_argument("--loader-rounds", type=int, default=3)
    p.add_argument("--memory-clips", type=int, default=10000,
                   help="clips delivered while worker memory is watched (0: skip)")
    p.add_argument("--workdir", type=Path, help="keep the videos and stores here (reused)")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    tmp = None
    work = args.workdir
    if work is None:
        tmp = tempfile.mkdtemp(prefix="bench_loader_")
        work = Path(tmp)
    try:
        src, jpg, h5 = work / "src", work / "jpg", work / "hdf5"
        if not (jpg / "index.jsonl").exists() or not (h5 / "index.jsonl").exists():
            print(f"encoding {args.videos} videos of {args.seconds:g} s and converting them "
                  f"with r3d-preprocess (height 240)...", flush=True)
            make_videos(src, args.videos, args.seconds)
            for fmt, dst in (("jpg", jpg), ("hdf5", h5)):
                summary = convert_dataset(src, dst, fmt=fmt, height=240, jobs=2, progress=False)
                if not summary.ok:
                    raise SystemExit(f"preprocess failed: {summary.failed}")
        doc = annotation_for(jpg)
        frames = sample_frames(h5)
        w, h = Image.open(io.BytesIO(frames[0])).size
        n_frames = sum(len(e["annotations"]["segment"]) and
                       e["annotations"]["segment"][1] - 1 for e in doc["database"].values())
        print(f"{len(doc['database'])} videos, {n_frames} frames of {w}x{h}, "
              f"{np.mean([len(f) for f in frames]) / 1024:.1f} kB per JPEG on average")

        per_frame = decoder_ms(frames)
        print("decode one frame (ms, median): " + ", ".join(f"{k} {v:.3f}"
                                                            for k, v in per_frame.items()))
        paths = {
            "baseline": ReferenceStyleClips(doc, jpg),
            "jpg": TrainingClips(doc, jpg),
            "hdf5": TrainingClips(doc, h5),
            "jpg_whole_frames": TrainingClips(doc, jpg, region_decode=False),
            "hdf5_whole_frames": TrainingClips(doc, h5, region_decode=False),
            "hdf5_whole_no_dct": TrainingClips(doc, h5, region_decode=False,
                                               reduced_decode=False),
        }
        region = region_decoder() is not None
        exact = region and region_matches_whole_frames(doc, h5)
        print(f"region decoding: {'on' if region else 'unavailable: ' + unavailable_reason()}"
              + (f"; clips identical to whole-frame decoding: {exact}" if region else ""))
        rates = {name: [] for name in list(paths) + ["decode_bound"]}
        for name, ds in paths.items():  # warm-up: file cache, handles
            clips_per_s(ds, 5, 0)
        for r in range(args.rounds):
            for name, ds in paths.items():
                n = max(10, args.clips // 3) if name == "baseline" else args.clips
                rates[name].append(clips_per_s(ds, n, seed=r))
            rates["decode_bound"].append(decode_bound_per_s(frames, args.clips, seed=r))
        single = {k: statistics.median(v) for k, v in rates.items()}

        print(f"\nsingle process, 1 thread, CPU time (median of {args.rounds} interleaved "
              f"rounds):")
        print(f"  {'path':<26}{'clips/s':>9}{'vs baseline':>13}{'vs decode bound':>17}")
        for name, rate in single.items():
            print(f"  {name:<26}{rate:9.1f}{rate / single['baseline']:13.2f}"
                  f"{rate / single['decode_bound']:17.2f}")
        result = {
            "baseline_clips_s": round(single["baseline"], 1),
            "jpg_clips_s": round(single["jpg"], 1),
            "hdf5_clips_s": round(single["hdf5"], 1),
            "decode_bound_clips_s": round(single["decode_bound"], 1),
            "jpg_whole_frames_clips_s": round(single["jpg_whole_frames"], 1),
            "hdf5_whole_frames_clips_s": round(single["hdf5_whole_frames"], 1),
            "hdf5_whole_no_dct_clips_s": round(single["hdf5_whole_no_dct"], 1),
            "region_decode": region,
            "region_identical": exact,
            "jpg_vs_baseline": round(single["jpg"] / single["baseline"], 2),
            "hdf5_vs_baseline": round(single["hdf5"] / single["baseline"], 2),
            "bound_over_jpg": round(single["decode_bound"] / single["jpg"], 3),
            "bound_over_hdf5": round(single["decode_bound"] / single["hdf5"], 3),
            "frame_kb": round(float(np.mean([len(f) for f in frames])) / 1024, 1),
            "decode_frame_ms": {k: round(v, 3) for k, v in per_frame.items()},
        }

        if args.workers:
            print(f"\nDataLoader, {args.workers} workers, batches of 16, wall-clock (median of "
                  f"{args.loader_rounds} interleaved rounds):")
            loaded = {name: [] for name in ("baseline", "jpg", "hdf5")}
            for _ in range(args.loader_rounds):
                for name in loaded:
                    loaded[name].append(loader_clips_per_s(paths[name], args.workers,
                                                           args.loader_batches))
            loaded = {name: statistics.median(v) for name, v in loaded.items()}
            for name, rate in loaded.items():
                print(f"  {name:<26}{rate:9.1f} clips/s{rate / loaded['baseline']:8.2f}x baseline")
            result["workers"] = args.workers
            result.update({f"{k}_workers_clips_s": round(v, 1) for k, v in loaded.items()})

        if args.workers:
            print(f"\nDataLoader scaling, HDF5 store: 0 workers (in process) vs {args.workers}, "
                  f"float32 clips from the workers vs uint8 normalised after collation "
                  f"(median of {args.loader_rounds} interleaved rounds):")
            kinds = {"float": TrainingClips(doc, h5),
                     "uint8": TrainingClips(doc, h5, output="uint8")}
            rates = {(k, w): [] for k in kinds for w in (0, args.workers)}
            for _ in range(args.loader_rounds):
                for k, w in rates:
                    rates[k, w].append(scaling_clips_per_s(kinds[k], w, args.loader_batches))
            for k in kinds:
                one = statistics.median(rates[k, 0])
                many = statistics.median(rates[k, args.workers])
                print(f"  {k:<6} 0 workers {one:8.1f} clips/s   {args.workers} workers "
                      f"{many:8.1f} clips/s   {many / one:5.2f}x")
                result[f"scaling_{k}_0_clips_s"] = round(one, 1)
                result[f"scaling_{k}_{args.workers}_clips_s"] = round(many, 1)
                result[f"scaling_{k}_ratio"] = round(many / one, 2)

        if args.memory_clips and args.workers:
            print(f"\nworker memory over {args.memory_clips} clips (private RSS of the largest "
                  f"worker, MB, median per 2,000 clips):")
            for name in ("hdf5", "jpg"):
                windows = worker_memory(paths[name], args.workers, args.memory_clips)
                growth = windows[-1][1] - windows[len(windows) // 2 - 1][1]
                print(f"  {name:<5} " + ", ".join(f"{mb:.1f}" for _, mb in windows)
                      + f"   (second half: {growth:+.1f} MB)")
                result[f"{name}_worker_rss_mb"] = [mb for _, mb in windows]
                result[f"{name}_worker_rss_growth_second_half_mb"] = round(growth, 1)
            n = args.memory_clips // 2
            print(f"this process over {n} clips (private RSS, MB, every 1,000 clips): no "
                  f"batches in flight, so any growth would be the loader's own")
            for name in ("hdf5", "jpg"):
                rss = process_memory(paths[name], n)
                print(f"  {name:<5} " + ", ".join(f"{mb:.1f}" for mb in rss))
                result[f"{name}_process_rss_mb"] = rss
        print(json.dumps(result))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
