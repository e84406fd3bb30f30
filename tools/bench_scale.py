"""Benchmark r3d at mega scale: Kinetics-700 + Moments in Time (about 1.47M videos).

Synthesises under DIR/data (tools/scale_data.py) both datasets' metadata in r3d's own
formats: the official files (Kinetics' 2020 train.csv / validate.csv, MiT's
moments_categories.txt, trainingSet.csv, validationSet.csv; real class names when
../shared/fixtures has them), and for each a store as r3d-preprocess writes it: store.json, index.jsonl (one record per video, 0.5% failed) and real
HDF5 shards of 100 videos each (storeformat.hdf5.write_video) holding tiny JPEG frames, so
1.47M videos make about 14,700 shards. `--scale 0.05` makes 5% of it. The data is reused by
later runs with the same settings.

Each section runs r3d's commands in child processes and reports their wall time, CPU time
(user + system: steadier than wall time on a shared machine) and peak resident memory
(ru_maxrss from wait4), next to a plain-json baseline doing the same job in the same run
(json.load + dict operations + json.dump; for check: index records compared with the shard
files' existence):

* annotate: r3d-annotate kinetics / mit --index (built from the store index);
* merge: r3d-annotate merge of both (1,039 classes);
* subset: r3d-annotate subset --categories 0.3 and --instances 0.3 of the merged file;
* check: r3d-annotate check of the merged file; check_deep: the same with --deep (no
  baseline: it reads what no json baseline reads).

A section is a function in SECTIONS taking the Context and returning Row objects; `--only`
picks sections. The last line printed is one JSON object with every row.

    python tools/bench_scale.py /tmp/scale --scale 0.05 [--only merge subset] [--jobs 2]
"""
import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout

from scale_data import SIZES, make_data  # noqa: E402  (beside this file)
from storeformat import INDEX_NAME  # noqa: E402

# ---------------------------------------------------------------- baselines (child processes)

def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _dump(doc, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))


def _read_index(store):
    records = {}
    with open(Path(store) / INDEX_NAME, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            records[rec["id"]] = rec
    return records


def _entry(subset, label, rec):
    return {"subset": subset, "annotations": {"label": label, "segment": [1, rec["n_frames"] + 1]},
            "video_path": rec["id"], "n_frames": rec["n_frames"], "fps": rec["fps"]}


def baseline_annotate(dataset, official, store, out):
    """CSV rows joined with the index records by store id, dumped."""
    index = _read_index(store)
    official = Path(official)
    database, labels = {}, set()
    if dataset == "kinetics700":
        for name, subset in (("train.csv", "training"), ("validate.csv", "validation")):
            with open(official / name, newline="", encoding="utf-8") as f:
                for r in csv.DictReader(f):
                    clip = f"{r['youtube_id']}_{int(r['time_start']):06d}_" \
                           f"{int(r['time_end']):06d}"
                    rec = index.get(f"{r['label']}/{clip}")
                    if rec is not None and rec["status"] == "done":
                        database[clip] = _entry(subset, r["label"], rec)
                        labels.add(r["label"])
    else:
        for name, subset in (("trainingSet.csv", "training"),
                             ("validationSet.csv", "validation")):
            with open(official / name, newline="", encoding="utf-8") as f:
                for path, label, *_ in csv.reader(f):
                    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
                    rec = index.get(f"{subset}/{label}/{stem}")
                    if rec is not None and rec["status"] == "done":
                        database[stem] = _entry(subset, label, rec)
                        labels.add(label)
    _dump({"labels": sorted(labels), "database": database}, out)


def baseline_merge(a, b, out):
    """Label lists concatenated (shared names qualified), databases joined."""
    docs = [_load(a), _load(b)]
    names = [Path(a).stem, Path(b).stem]
    shared = set(docs[0]["labels"]) & set(docs[1]["labels"])
    labels, database = [], {}
    for name, doc in zip(names, docs):
        labels += [f"{name}:{x}" if x in shared else x for x in doc["labels"]]
        for vid, entry in doc["database"].items():
            ann = entry["annotations"]
            if ann.get("label") in shared:
                ann["label"] = f"{name}:{ann['label']}"
            database[f"{name}:{vid}" if vid in database else vid] = entry
    _dump({"labels": labels, "database": database}, out)


def _rank(seed, name):
    return hashlib.sha1(f"{seed}:{name}".encode("utf-8")).hexdigest()


def baseline_subset(inp, out, kind, fraction):
    """Whole classes (categories) or a share of every class's training videos (instances)."""
    doc = _load(inp)
    if kind == "categories":
        fraction = float(fraction)
        k = max(1, round(fraction * len(doc["labels"])))
        chosen = set(sorted(doc["labels"], key=lambda n: _rank(0, n))[:k])
        doc["labels"] = [x for x in doc["labels"] if x in chosen]
        doc["database"] = {v: e for v, e in doc["database"].items()
                           if e["annotations"].get("label") in chosen}
    else:
        by_class = {}
        for vid, e in doc["database"].items():
            if e["subset"] == "training":
                by_class.setdefault(e["annotations"]["label"], []).append(vid)
        keep = set()
        for members in by_class.values():
            members.sort(key=lambda v: _rank(0, v))
            keep.update(members[:max(1, round(float(fraction) * len(members)))])
        doc["database"] = {v: e for v, e in doc["database"].items()
                           if e["subset"] != "training" or v in keep}
    _dump(doc, out)


def baseline_check(annotation):
    """Every entry's index record looked up by its video_path; its shard file must exist and
    the frame counts agree."""
    doc = _load(annotation)
    indexes = {name: _read_index(root["path"]) for name, root in doc["roots"].items()}
    exists = {}
    problems = 0
    for entry in doc["database"].values():
        root = doc["roots"][entry["root"]]["path"]
        rec = indexes[entry["root"]].get(entry.get("store_id") or entry.get("video_path"))
        if rec is None or rec["status"] != "done" or rec["n_frames"] != entry["n_frames"]:
            problems += 1
            continue
        shard = os.path.join(root, rec["path"])
        if shard not in exists:
            exists[shard] = os.path.isfile(shard)
        problems += not exists[shard]
    print(f"{problems} problems")


BASELINES = {"annotate": baseline_annotate, "merge": baseline_merge, "subset": baseline_subset,
             "check": baseline_check}


# ---------------------------------------------------------------- measuring

class Row:
    """One step: r3d's and the baseline's Measure (the baseline may be None)."""

    def __init__(self, name, r3d, baseline=None, note=""):
        self.name, self.r3d, self.baseline, self.note = name, r3d, baseline, note

    def as_dict(self):
        return {"step": self.name, "r3d": self.r3d._asdict(),
                "baseline": self.baseline and self.baseline._asdict(), "note": self.note}


#: A child process's wall seconds, CPU seconds (user + system) and peak resident MiB.
Measure = namedtuple("Measure", "wall cpu peak_mib")


class Context:
    """What sections share: the data manifest, an output folder, and runners that measure a
    child process."""

    def __init__(self, manifest, out):
        self.manifest, self.out = manifest, out
        self.env = dict(os.environ, PYTHONPATH=str(REPO))
        self.made = set()  # annotation files written in this run (older ones are not reused)

    def store(self, dataset):
        return self.manifest["datasets"][dataset]["store"]

    def official(self, dataset):
        return self.manifest["datasets"][dataset]["official"]

    def measure(self, argv, ok=(0,), stdout=subprocess.DEVNULL):
        """The Measure of a child process running `argv`."""
        with tempfile.TemporaryFile() as err:
            t = time.perf_counter()
            child = subprocess.Popen(list(map(str, argv)), cwd=REPO, env=self.env,
                                     stdout=stdout, stderr=err)
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - t
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode not in ok:
                err.seek(0)
                raise SystemExit(f"{' '.join(map(str, argv))} exited {child.returncode}:\n"
                                 + err.read().decode(errors="replace")[-2000:])
        return Measure(round(seconds, 2), round(usage.ru_utime + usage.ru_stime, 2),
                       round(usage.ru_maxrss / 1024))

    def r3d(self, *args, ok=(0,)):
        return self.measure([sys.executable, "-m", "annotations", *map(str, args), "-q"], ok)

    def baseline(self, name, *args):
        return self.measure([sys.executable, __file__, "--baseline", name, *map(str, args)])

    def annotation(self, name):
        """out/<name>.json, built by the annotate or merge step when no earlier section of
        this run has made it."""
        path = self.out / f"{name}.json"
        if name not in self.made:
            self.made.add(name)
            if name == "km":
                self.r3d("merge", self.annotation("kinetics700"), self.annotation("mit"),
                         "-o", path)
            else:
                self.r3d("kinetics" if name == "kinetics700" else "mit", self.official(name),
                         "--out", path, "--index", self.store(name))
        return path


# ---------------------------------------------------------------- sections

def section_annotate(ctx):
    rows = []
    for dataset in SIZES:
        out = ctx.out / f"{dataset}.json"
        r3d = ctx.r3d("kinetics" if dataset == "kinetics700" else "mit", ctx.official(dataset),
                      "--out", out, "--index", ctx.store(dataset))
        base = ctx.baseline("annotate", dataset, ctx.official(dataset), ctx.store(dataset),
                            ctx.out / f"baseline_{dataset}.json")
        rows.append(Row(f"annotate {dataset} --index", r3d, base))
        ctx.made.add(dataset)
    return rows


def section_merge(ctx):
    a, b = ctx.annotation("kinetics700"), ctx.annotation("mit")
    r3d = ctx.r3d("merge", a, b, "-o", ctx.out / "km.json")
    ctx.made.add("km")
    base = ctx.baseline("merge", a, b, ctx.out / "baseline_km.json")
    return [Row("merge kinetics700 + mit", r3d, base)]


def section_subset(ctx):
    km = ctx.annotation("km")
    rows = []
    for kind in ("categories", "instances"):
        r3d = ctx.r3d("subset", km, f"--{kind}", 0.3, "-o", ctx.out / f"km_{kind}.json")
        base = ctx.baseline("subset", km, ctx.out / f"baseline_km_{kind}.json", kind, 0.3)
        rows.append(Row(f"subset --{kind} 0.3", r3d, base))
    return rows


def section_check(ctx):
    km = ctx.annotation("km")
    return [Row("check", ctx.r3d("check", km), ctx.baseline("check", km))]


def section_check_deep(ctx):
    return [Row("check --deep", ctx.r3d("check", "--deep", ctx.annotation("km")), None,
                "reads every video's group and offsets in every shard")]


# ---------------------------------------------------------------- training (child probes)

def _run_data(annotation, k700, mit, workdir):
    """r3d-train's datasets for the merged file, built as r3d-train builds them."""
    from training.job.loaders import build_data, build_transforms
    from training.job.options import parse
    args = parse(["--video-path", f"kinetics700={k700}", "--video-path", f"mit={mit}",
                  "--annotation-path", str(annotation), "--result-path", str(workdir),
                  "--sample-size", "32", "--n-threads", "0", "--no-progress",
                  "--lr-scheduler", "multistep"])
    return build_data(args, build_transforms(args))


def _rss_mib(pid="self"):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _private_mib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return sum(int(line.split()[1]) for line in f
                   if line.startswith(("Private_Clean", "Private_Dirty"))) / 1024


def _children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return out


def probe_setup(annotation, k700, mit, workdir):
    import gc

    import training.job.loaders  # noqa: F401  (imports are not setup: torch alone takes ~1.5 s)
    import training.job.options  # noqa: F401
    t = time.perf_counter()
    data = _run_data(annotation, k700, mit, workdir)
    seconds = time.perf_counter() - t
    gc.collect()
    print(json.dumps({"seconds": round(seconds, 1), "rss_after_mib": round(_rss_mib()),
                      "training": len(data.train), "validation": len(data.val),
                      "validation_windows": len(data.val_videos)}))


def probe_json(annotation):
    with open(annotation, "rb") as f:
        json.load(f)


def probe_workers(annotation, k700, mit, workdir, workers):
    import torch
    from torch.utils.data import DataLoader

    from training.data.order import EpochSampler
    torch.set_num_threads(1)
    ds = _run_data(annotation, k700, mit, workdir).train
    loader = DataLoader(ds, batch_size=64, sampler=EpochSampler(len(ds), 1),
                        num_workers=int(workers), persistent_workers=True, prefetch_factor=2)
    it = iter(loader)
    next(it)
    pids = _children(os.getpid())
    start = {p: _private_mib(p) for p in pids}
    t, n = time.perf_counter(), 0
    for clips, _ in it:
        n += len(clips)
    seconds = time.perf_counter() - t
    added = [_private_mib(p) - start[p] for p in pids]
    print(json.dumps({"videos": len(ds), "workers": len(pids), "clips_s": round(n / seconds),
                      "added_mib_max": round(max(added), 1),
                      "added_mib_mean": round(sum(added) / len(added), 1),
                      "added_bytes_per_video_max": round(max(added) * 2**20 / len(ds), 1)}))


def probe_reads(annotation, k700, mit, workdir, rounds=5, clips=2000):
    import random
    import statistics

    import torch
    torch.set_num_threads(1)
    ds = _run_data(annotation, k700, mit, workdir).train
    rng = random.Random(0)
    rates = {"all": [], "hot": []}
    for r in range(int(rounds)):
        for name, population in (("all", len(ds)), ("hot", min(1024, len(ds)))):
            keys = [(r, rng.randrange(population)) for _ in range(int(clips))]
            t = time.process_time()
            for key in keys:
                ds[key]
            rates[name].append(len(keys) / (time.process_time() - t))
    all_, hot = statistics.median(rates["all"]), statistics.median(rates["hot"])
    print(json.dumps({"all_clips_per_cpu_s": round(all_), "hot_clips_per_cpu_s": round(hot),
                      "all_over_hot": round(all_ / hot, 2)}))


def probe_loader(annotation, k700, mit, workdir, rounds=3, batches=30):
    import statistics

    import torch
    from torch.utils.data import DataLoader, RandomSampler
    torch.set_num_threads(1)
    ds = _run_data(annotation, k700, mit, workdir).train
    rates = {w: [] for w in (0, 1, 2)}
    for _ in range(int(rounds)):
        for w in rates:
            loader = DataLoader(ds, batch_size=64, num_workers=w,
                                sampler=RandomSampler(ds, replacement=True,
                                                      num_samples=(int(batches) + 2) * 64))
            it = iter(loader)
            next(it)
            t, n = time.perf_counter(), 0
            for clips, _ in it:
                n += len(clips)
            rates[w].append(n / (time.perf_counter() - t))
    med = {w: statistics.median(v) for w, v in rates.items()}
    print(json.dumps({f"workers_{w}_clips_s": round(v) for w, v in med.items()}
                     | {"two_workers_over_in_process": round(med[2] / med[0], 2)}))


PROBES = {"setup": probe_setup, "json": probe_json, "workers": probe_workers,
          "reads": probe_reads, "loader": probe_loader}


def _train_probe(ctx, name, *extra):
    """(Measure, printed JSON) of a training probe on the merged file in a child process."""
    argv = [sys.executable, __file__, "--probe", name, ctx.annotation("km"),
            ctx.store("kinetics700"), ctx.store("mit"), ctx.out / "train", *map(str, extra)]
    out = ctx.out / f"probe_{name}.json"
    with open(out, "wb") as f:
        measure = ctx.measure(argv, stdout=f)
    return measure, json.loads(out.read_text().strip().splitlines()[-1])


def section_catalog(ctx):
    stores = [ctx.store(d) for d in SIZES]
    rebuild = ctx.measure([sys.executable, "-m", "training.data.catalog", "--rebuild", *stores])
    again = ctx.measure([sys.executable, "-m", "training.data.catalog", *stores])
    return [Row("catalog: derive both stores", rebuild, None, "once per store"),
            Row("catalog: open both (up to date)", again, None, "")]


def section_setup(ctx):
    measure, info = _train_probe(ctx, "setup")
    base = ctx.measure([sys.executable, __file__, "--probe", "json", ctx.annotation("km")])
    return [Row("r3d-train data setup (train + val)", measure, base,
                f"{info}; baseline: json.load of the file alone")]


def section_workers(ctx):
    measure, info = _train_probe(ctx, "workers", ctx.workers)
    return [Row(f"full pass, {ctx.workers} workers", measure, None, str(info))]


def section_reads(ctx):
    measure, info = _train_probe(ctx, "reads")
    return [Row("clips from all videos vs a hot set", measure, None, str(info))]


def section_loader(ctx):
    measure, info = _train_probe(ctx, "loader")
    return [Row("DataLoader 0 / 1 / 2 workers", measure, None, str(info))]


SECTIONS = {"annotate": section_annotate, "merge": section_merge, "subset": section_subset,
            "check": section_check, "check_deep": section_check_deep,
            "catalog": section_catalog, "setup": section_setup, "workers": section_workers,
            "reads": section_reads, "loader": section_loader}


# ---------------------------------------------------------------- report

def _table(rows):
    lines = ["| step | r3d wall s | r3d CPU s | baseline wall s | baseline CPU s | CPU ratio | "
             "r3d peak MiB | baseline peak MiB | memory ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        a, b = r.r3d, r.baseline
        if b:
            lines.append(f"| {r.name} | {a.wall:.1f} | {a.cpu:.1f} | {b.wall:.1f} | {b.cpu:.1f} | "
                         f"{a.cpu / b.cpu:.2f} | {a.peak_mib:,} | {b.peak_mib:,} | "
                         f"{a.peak_mib / b.peak_mib:.2f} |")
        else:
            lines.append(f"| {r.name} | {a.wall:.1f} | {a.cpu:.1f} | | | | {a.peak_mib:,} | | |")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--baseline"]:
        BASELINES[argv[1]](*argv[2:])
        return 0
    if argv[:1] == ["--probe"]:
        PROBES[argv[1]](*argv[2:])
        return 0
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path, help="where the data (DIR/data) and outputs (DIR/out) go")
    p.add_argument("--scale", type=float, default=1.0,
                   help="share of the full size to make (default 1: about 1.47M videos)")
    p.add_argument("--frames", type=int, default=16,
                   help="frames per video, plus 0-7 (default 16)")
    p.add_argument("--size", type=int, default=32, help="frame width and height (default 32)")
    p.add_argument("--only", nargs="+", choices=sorted(SECTIONS), metavar="SECTION",
                   help=f"run only these sections ({', '.join(SECTIONS)})")
    p.add_argument("--jobs", type=int, default=2, help="processes writing shards (default 2)")
    p.add_argument("--workers", type=int, default=8,
                   help="DataLoader workers of the 'workers' section (default 8)")
    args = p.parse_args(argv)
    t = time.perf_counter()
    print(f"data under {args.dir / 'data'} (scale {args.scale}):", file=sys.stderr)
    manifest = make_data(args.dir / "data", args.scale, args.frames, args.size, args.jobs)
    print(f"  ready in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    out = args.dir / "out"
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(manifest, out)
    ctx.workers = args.workers
    rows = []
    for name in args.only or SECTIONS:
        print(f"{name} ...", file=sys.stderr)
        rows.extend(SECTIONS[name](ctx))
    videos = sum(d["videos"] for d in manifest["datasets"].values())
    shards = sum(d["shards"] for d in manifest["datasets"].values())
    print(f"\n{videos:,} videos in {shards:,} shards (scale {args.scale}); "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print(_table(rows))
    for r in rows:
        if r.note:
            print(f"- {r.name}: {r.note}")
    print(json.dumps({"scale": args.scale, "videos": videos, "shards": shards,
                      "rows": [r.as_dict() for r in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
