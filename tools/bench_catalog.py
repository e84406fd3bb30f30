"""Benchmark: clip reads from r3d shards through the store catalog (one pread per clip) against
the Hdf5Store that preceded it (HDF5 metadata work per clip), from every video of a store of
many shards and from a hot set of a few videos.

Synthesises DIR/store once (reused by later runs with the same settings): shards of videos
written with r3d's shard writer (storeformat.hdf5.write_video, as r3d-preprocess does) holding
one tiny JPEG per frame, and its index.jsonl. The previous Hdf5Store is loaded from the git
history of this checkout (OLD_STORES), unchanged. Every read fetches the JPEG bytes of a random
run of 8 frames (no decoding: the read path alone), single process; clips per second of CPU
time, medians of interleaved rounds. A floor row does the same preads with every byte range
computed beforehand. Also reported: the catalog's one-time derivation, and the private memory
(Private_Dirty) a forked reader adds reading every video once and then once more, as a
DataLoader worker would over two epochs.

    python tools/bench_catalog.py /tmp/bench-catalog [--shards 2000] [--rounds 5]
    python tools/bench_catalog.py /tmp/unused --store /tmp/scale/data/kinetics700/store
"""
import argparse
import importlib.util
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout

from storeformat import INDEX_NAME, SETTINGS_NAME, write_settings  # noqa: E402
from storeformat.hdf5 import mark_layout, write_video  # noqa: E402
from training.data.catalog import StoreCatalog  # noqa: E402
from training.data.catalogfiles import CATALOG_DIR  # noqa: E402
from training.data.files import default_max_open_files  # noqa: E402

#: training/stores.py before the catalog (Hdf5Store reading through h5py metadata per clip).
OLD_STORES = "02eee008d4cf390bfb42072e802ad50e5b7cc3ae:training/stores.py"
CLIP = 8


def _tiny_jpeg():
    import simplejpeg
    ramp = np.linspace(0, 255, 32, dtype=np.uint8)
    image = np.stack([np.add.outer(ramp, ramp) // 2] * 3, axis=-1).astype(np.uint8)
    return simplejpeg.encode_jpeg(np.ascontiguousarray(image), quality=90)


def _write_shard(job):
    import h5py
    path, videos = job
    jpeg = _tiny_jpeg()
    with h5py.File(path, "w") as h5:
        mark_layout(h5)
        for vid, n in videos:
            meta = {"source": vid + ".mp4", "n_frames": n, "fps": 30.0, "width": 32,
                    "height": 32, "duration": n / 30}
            write_video(h5, vid, [jpeg] * n, meta)


def make_store(root: Path, shards: int, per_shard: int, jobs: int):
    settings = {"shards": shards, "per_shard": per_shard, "version": 1}
    if (root / "bench.json").is_file() and \
            json.loads((root / "bench.json").read_text()) == settings:
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    write_settings(root / SETTINGS_NAME, {"format": "hdf5", "height": 32})
    work, lines = [], []
    for s in range(shards):
        name = f"shard-{s:05d}.h5"
        videos = [(f"class{(s * per_shard + v) % 400:03d}/video{s:05d}_{v:02d}",
                   16 + (s + v) % 8) for v in range(per_shard)]
        work.append((root / name, videos))
        lines += [{"id": vid, "status": "done", "source": vid + ".mp4", "format": "hdf5",
                   "path": name, "key": "videos/" + vid, "n_frames": n, "fps": 30.0}
                  for vid, n in videos]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        pool.map(_write_shard, work, chunksize=16)
    (root / INDEX_NAME).write_text("".join(json.dumps(r) + "\n" for r in lines))
    (root / "bench.json").write_text(json.dumps(settings))


def old_stores_module():
    """The previous training/stores.py, from git, as a module of the training package."""
    try:
        source = subprocess.run(["git", "show", OLD_STORES], cwd=REPO, check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"cannot read {OLD_STORES} from git: {e}")
    spec = importlib.util.spec_from_loader("training._stores_before_catalog", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "training.data"
    exec(compile(source, "training/stores.py@" + OLD_STORES[:8], "exec"), module.__dict__)
    return module


class RawReads:
    """The least a read can cost: one os.pread per clip of a byte range computed beforehand,
    every shard open, then the frames cut out of it (what any reader must do)."""

    def __init__(self, catalog):
        # straight from the catalog's files (docs/data.md), as any reader could
        meta, tag = catalog.meta, catalog.meta["tag"]
        self.fds = [os.open(catalog.root / rel, os.O_RDONLY) for rel, _ in meta["shards"]]
        self.shard, self.data, self.start, self.offsets = (
            np.load(catalog.directory / f"{tag}.{name}.npy")
            for name in ("shard", "data", "start", "offsets"))

    def read(self, row, frames):
        s = self.start[row]
        offsets = self.offsets[s + frames.start:s + frames.stop + 1].tolist()
        base = offsets[0]
        span = os.pread(self.fds[self.shard[row]], offsets[-1] - base,
                        int(self.data[row]) + base)
        return [span[a - base:b - base] for a, b in zip(offsets[:-1], offsets[1:])]


def _plan(videos, n_frames, count, seed):
    """(video, first frame) of `count` random clips over `videos`."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(videos), count)
    return [(videos[i], int(rng.integers(0, n_frames[i] - CLIP + 1))) for i in picks]


def clips_per_second(read, plan):
    """Clips per second of the process's CPU time (user and system: the reads' copies from
    the page cache included), which other jobs sharing the cores do not inflate."""
    t = time.process_time()
    for video, start in plan:
        read(video, range(start, start + CLIP))
    return len(plan) / (time.process_time() - t)


def _private_dirty():
    """Memory only this process holds (pages it wrote or copied from its parent on write;
    RssAnon would also count the pages it still shares with its parent)."""
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1]) * 1024
    return 0


def _growth_child(read, videos, passes, queue):
    marks = [_private_dirty()]
    for _ in range(passes):
        for video in videos:
            read(video, range(CLIP))
        marks.append(_private_dirty())
    queue.put([b - a for a, b in zip(marks, marks[1:])])


def worker_growth(read, videos, passes=2):
    """Private memory a forked child adds reading every video once, then once more (bytes):
    a DataLoader worker's first epoch and the next."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_growth_child, args=(read, videos, passes, queue))
    child.start()
    grown = queue.get(timeout=600)
    child.join()
    return grown


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path, help="where the synthetic store goes (DIR/store)")
    p.add_argument("--store", type=Path,
                   help="measure this r3d HDF5 store instead (e.g. one of bench_scale.py's); "
                        "its catalog is derived again in it")
    p.add_argument("--old-growth-videos", type=int, default=20000, metavar="N",
                   help="videos the previous store's reader reads for its memory (it is slow)")
    p.add_argument("--shards", type=int, default=2000)
    p.add_argument("--videos-per-shard", type=int, default=10)
    p.add_argument("--clips", type=int, default=20000, help="clips per catalog path and round")
    p.add_argument("--old-clips", type=int, default=1000,
                   help="clips per round of the previous Hdf5Store (slower)")
    p.add_argument("--hot", type=int, default=64, help="videos in the hot set")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2, help="processes writing shards")
    p.add_argument("--few-open", type=int, default=128,
                   help="open shards of the second catalog path (fewer than the shards)")
    args = p.parse_args(argv)
    root = args.store or args.dir / "store"
    if args.store is None:
        t = time.perf_counter()
        make_store(root, args.shards, args.videos_per_shard, args.jobs)
        print(f"store ready in {time.perf_counter() - t:.0f} s", file=sys.stderr)

    shutil.rmtree(root / CATALOG_DIR, ignore_errors=True)
    t = time.perf_counter()
    catalog = StoreCatalog.open(root, progress=False)
    derive_s = time.perf_counter() - t
    t = time.perf_counter()
    StoreCatalog.open(root)
    open_ms = (time.perf_counter() - t) * 1000

    old = old_stores_module().Hdf5Store(root)
    videos = [catalog.key(r) for r in range(len(catalog))]
    n_frames = [catalog.n_frames(r) for r in range(len(catalog))]
    rows = list(range(len(catalog)))
    rng = np.random.default_rng(0)
    hot = sorted(rng.choice(len(rows), args.hot, replace=False).tolist())
    few = StoreCatalog.open(root, max_open_files=args.few_open)
    floor = RawReads(catalog)
    paths = {  # name: (read, its video ids, clips per round)
        "previous Hdf5Store (32 open shards)": (old.read_bytes, videos, args.old_clips),
        f"catalog, {catalog.max_open_files} open shards (default)":
            (catalog.read_bytes, rows, args.clips),
        f"catalog, {args.few_open} open shards": (few.read_bytes, rows, args.clips),
        "floor: the same preads, byte ranges known, every shard open": (floor.read, rows,
                                                                        args.clips),
    }
    rates = {(name, scope): [] for name in paths for scope in ("all", "hot")}
    for r in range(-1, args.rounds):  # round -1 warms up (page cache, open shards), untimed
        for scope in ("all", "hot"):
            pick = range(len(rows)) if scope == "all" else hot
            for name, (read, ids, count) in paths.items():
                plan = _plan([ids[i] for i in pick], [n_frames[i] for i in pick], count,
                             seed=r + 1)
                rate = clips_per_second(read, plan)
                if r >= 0:
                    rates[name, scope].append(rate)
    # The previous store's reads are slow: one pass (a second adds nothing) over at most
    # --old-growth-videos videos.
    growth = {name: worker_growth(read, ids, 2) if read != old.read_bytes else
              worker_growth(read, ids[:args.old_growth_videos], 1)
              for name, (read, ids, _) in paths.items() if read != floor.read}
    read_by = {name: len(rows) if read != old.read_bytes else min(len(rows),
                                                                  args.old_growth_videos)
               for name, (read, _, _) in paths.items()}

    load = os.getloadavg()
    print(f"\n{len(rows):,} videos in {len(catalog.meta['shards']):,} shards; catalog derived in "
          f"{derive_s:.1f} s,"
          f" opened again in {open_ms:.1f} ms; default open shards {default_max_open_files()}; "
          f"load average {load[0]:.2f} {load[1]:.2f}\n")
    print("| path | clips/s, all videos | clips/s, hot set | all / hot | reader's growth, "
          "1st pass, MB | bytes per video | 2nd pass, MB |\n|---|---:|---:|---:|---:|---:|---:|")
    result = {"videos": len(rows), "shards": len(catalog.meta['shards']), "derive_s": derive_s,
              "load": load[0], "paths": {}}
    for name in paths:
        a, h = (statistics.median(rates[name, s]) for s in ("all", "hot"))
        first, second = (growth.get(name, [0]) + [None])[:2]
        again = f"{second / 1e6:.1f}" if second is not None else "not run"
        print(f"| {name} | {a:,.0f} | {h:,.0f} | {a / h:.2f} | {first / 1e6:.1f} | "
              f"{first / read_by[name]:,.0f} | {again} |")
        result["paths"][name] = {"all": a, "hot": h, "growth_first_pass": first,
                                 "growth_second_pass": second}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
