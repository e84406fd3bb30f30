"""The synthetic Kinetics-700 + Moments in Time data that tools/bench_scale.py measures.

For each dataset: the official files (real class names when ../shared/fixtures has them) and a
store as r3d-preprocess writes it (store.json, index.jsonl with 0.5% failed records, HDF5
shards of 100 videos holding one tiny JPEG per frame). `make_data` reuses what an earlier run
made with the same settings.
"""
import base64
import csv
import json
import os
import shutil
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout

from storeformat import INDEX_NAME, SETTINGS_NAME, write_settings  # noqa: E402
from storeformat.hdf5 import mark_layout, write_video  # noqa: E402

SHARED = REPO.parent / "shared" / "fixtures" / "annotations"
#: Videos per dataset and subset at scale 1 (Kinetics-700 2020 and MiT v1 sizes).
SIZES = {"kinetics700": {"training": 599_827, "validation": 34_173},
         "mit": {"training": 802_264, "validation": 33_900}}
VIDEOS_PER_SHARD = 100  # r3d-preprocess's default
FAILED_EVERY = 200  # one failed conversion in 200 videos
DATA_VERSION = 1



def _classes(dataset):
    """Real class names when the shared fixtures hold them (their overlaps make merge qualify
    names as it does for the real datasets), else made-up ones with a few shared names."""
    if dataset == "kinetics700":
        path = SHARED / "kinetics700" / "validate.csv"
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                return sorted({r["label"] for r in csv.DictReader(f)})
        return sorted([f"kinetics action {i:03d}" for i in range(690)]
                      + [f"shared action {i}" for i in range(10)])
    path = SHARED / "moments_in_time" / "category_momentsv1.txt"
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [f"moment{i:03d}" for i in range(329)] + [f"shared action {i}" for i in range(10)]


def _youtube_id(i, salt):
    """An 11-character youtube-like id, different for every (i, salt)."""
    x = (i * 0x9E3779B97F4A7C15 + salt) % (1 << 64)
    return base64.urlsafe_b64encode(x.to_bytes(8, "big")).decode()[:11]


def _videos(dataset, scale, frames):
    """(store id, subset, label, official-file row, n_frames) of every video of a dataset."""
    classes = _classes(dataset)
    out = []
    i = 0
    for subset, n in SIZES[dataset].items():
        for _ in range(max(1, round(n * scale))):
            label = classes[i % len(classes)]
            n_frames = frames + i % 8
            if dataset == "kinetics700":
                yt = _youtube_id(i, 1)
                start = (i * 7) % 290
                clip = f"{yt}_{start:06d}_{start + 10:06d}"
                row = [label, yt, start, start + 10, "train" if subset == "training" else
                       "validate"]
                out.append((f"{label}/{clip}", subset, label, row, n_frames))
            else:
                stem = f"yt-{_youtube_id(i, 2)}_{i % 40}"
                row = [f"{label}/{stem}.mp4", label, 3, 0]
                out.append((f"{subset}/{label}/{stem}", subset, label, row, n_frames))
            i += 1
    return classes, out


def _tiny_jpeg(size):
    import simplejpeg

    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    image = np.stack([np.add.outer(ramp, ramp) // 2] * 3, axis=-1).astype(np.uint8)
    return simplejpeg.encode_jpeg(np.ascontiguousarray(image), quality=90)


def _write_shard(job):
    """One shard, written as r3d-preprocess writes it (temporary name, then renamed)."""
    import h5py

    path, videos, jpeg = job
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as h5:
        mark_layout(h5)
        for vid, source, meta in videos:
            write_video(h5, vid, [jpeg] * meta["n_frames"], {**meta, "source": source})
    os.replace(tmp, path)
    return len(videos)


def _write_store(store, videos, jpeg, size, jobs):
    """store.json, index.jsonl and the shards of one dataset's store."""
    store.mkdir(parents=True)
    write_settings(store / SETTINGS_NAME, {"layout": "r3d", "version": 1, "format": "hdf5",
                                           "height": size, "short_side": None, "fps": None,
                                           "quality": 90})
    lines, shards, current = [], [], []
    for i, (vid, _, _, _, n) in enumerate(videos):
        source = vid + ".mp4"
        if i % FAILED_EVERY == FAILED_EVERY - 1:
            lines.append({"id": vid, "status": "failed", "source": source,
                          "reason": "Invalid data found when processing input (synthetic)"})
            continue
        if len(current) == VIDEOS_PER_SHARD:
            shards.append(current)
            current = []
        shard = f"shard-{len(shards):05d}.h5"
        meta = {"n_frames": n, "fps": 30.0, "width": size, "height": size,
                "duration": round(n / 30.0, 6)}
        current.append((vid, source, meta))
        lines.append({"id": vid, "status": "done", "source": source, "format": "hdf5",
                      "path": shard, "key": "videos/" + vid, **meta})
    shards.append(current)
    with open(store / INDEX_NAME, "w", encoding="utf-8") as f:
        for rec in lines:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    work = [(store / f"shard-{k:05d}.h5", part, jpeg) for k, part in enumerate(shards)]
    with Pool(jobs) as pool:
        for _ in pool.imap_unordered(_write_shard, work, chunksize=8):
            pass
    return len(shards)


def _write_official(dataset, folder, classes, videos):
    folder.mkdir(parents=True)
    if dataset == "kinetics700":
        for name, subset in (("train.csv", "training"), ("validate.csv", "validation")):
            with open(folder / name, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
                w.writerows(row for _, s, _, row, _ in videos if s == subset)
        return
    (folder / "moments_categories.txt").write_text(
        "".join(f"{name},{i}\n" for i, name in enumerate(classes)), encoding="utf-8")
    for name, subset in (("trainingSet.csv", "training"), ("validationSet.csv", "validation")):
        with open(folder / name, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(row for _, s, _, row, _ in videos if s == subset)


def make_data(root, scale, frames, size, jobs):
    """The synthetic datasets under root (reused when made with the same settings); returns
    the manifest ({dataset: {"official", "store", "videos", "shards"}})."""
    settings = {"version": DATA_VERSION, "scale": scale, "frames": frames, "size": size}
    manifest_path = root / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest["settings"] == settings:
            return manifest
        for dataset in SIZES:
            shutil.rmtree(root / dataset, ignore_errors=True)
        manifest_path.unlink()
    elif root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root}: exists without a manifest.json (an interrupted run, or not "
                         f"bench_scale's); remove it or give another DIR")
    jpeg = _tiny_jpeg(size)
    manifest = {"settings": settings, "datasets": {}}
    for dataset in SIZES:
        t = time.perf_counter()
        classes, videos = _videos(dataset, scale, frames)
        _write_official(dataset, root / dataset / "official", classes, videos)
        n_shards = _write_store(root / dataset / "store", videos, jpeg, size, jobs)
        manifest["datasets"][dataset] = {
            "official": str(root / dataset / "official"), "store": str(root / dataset / "store"),
            "videos": len(videos), "classes": len(classes), "shards": n_shards}
        print(f"  {dataset}: {len(videos):,} videos, {n_shards:,} shards, "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest
