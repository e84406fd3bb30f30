"""Benchmark: building the Kinetics-700 validation annotation (34,173 clips) with frame counts.

Compares, in one run on one machine:

* baseline: the reference implementation's way, re-created here: pandas reads the CSV, a
  Python loop takes each row with ``iloc``, and every clip's frame directory is listed to count
  its ``image_*`` files, then ``json.dump``;
* ``r3d-annotate kinetics --frames-root`` (the fallback: one listing per directory);
* ``r3d-annotate kinetics --index`` with store ids in the reference naming
  (``<label>/<id>_<start:06d>_<end:06d>``);
* the same with downloader naming (``<label with _>/<id>_<start>_<end>``, flat ``<id>``), as
  matched by the Kinetics aliases.

The JPEG store holds `--frames` empty frame files per clip (real clips have about 300; the
baseline only gets slower with more). Timings are wall-clock medians with a warm page cache.

    python tools/bench_annotate.py [--csv .../kinetics700/validate.csv] [--frames 8]
"""
import argparse
import csv
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from annotations.cli import main as annotate  # noqa: E402
from annotations.schema import read_annotation  # noqa: E402
from storeformat import INDEX_NAME, SETTINGS_NAME, frame_name, write_settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV = (Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "annotations"
               / "kinetics700" / "validate.csv")


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["label"], r["youtube_id"], int(r["time_start"]), int(r["time_end"]))
                for r in csv.DictReader(f)]


def clip_id(yt, s, e):
    return f"{yt}_{s:06d}_{e:06d}"


def n_frames_of(i):
    """A made-up but varied frame count per clip (Kinetics clips: 10 s at 25-30 fps)."""
    return 240 + (i * 7919) % 61


def make_jpeg_store(root, rows, frames):
    """The reference layout, <label>/<id>/image_00001.jpg ..., with empty frame files."""
    for label, yt, s, e in rows:
        d = root / label / clip_id(yt, s, e)
        d.mkdir(parents=True, exist_ok=True)
        for k in range(1, frames + 1):
            os.close(os.open(d / frame_name(k), os.O_CREAT | os.O_WRONLY, 0o644))


def make_index(root, rows, naming):
    """index.jsonl as r3d-preprocess writes it (one JSON record per line), ids in the given
    naming. Written in one go: IndexWriter's per-line fsync would only slow the setup."""
    root.mkdir(parents=True, exist_ok=True)
    write_settings(root / SETTINGS_NAME, {"format": "jpg", "height": 240, "short_side": None,
                                          "fps": None, "quality": 90})
    lines = []
    for i, (label, yt, s, e) in enumerate(rows):
        if naming == "reference":
            vid = f"{label}/{clip_id(yt, s, e)}"
        elif i % 2:
            vid = f"{label.replace(' ', '_')}/{yt}_{s}_{e}"
        else:
            vid = yt
        n = n_frames_of(i)
        lines.append(json.dumps({"id": vid, "status": "done", "source": vid + ".mp4",
                                 "format": "jpg", "path": vid, "n_frames": n, "fps": 30.0,
                                 "width": 320, "height": 240, "duration": n / 30.0},
                                ensure_ascii=False))
    (root / INDEX_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")


def baseline(csv_path, store, out):
    """The reference's approach: row-by-row pandas, one directory listing per clip."""
    data = pd.read_csv(csv_path)
    database = {}
    for i in range(data.shape[0]):
        row = data.iloc[i, :]
        key = "%s_%s_%s" % (row["youtube_id"], "%06d" % row["time_start"],
                            "%06d" % row["time_end"])
        database[key] = {"subset": "validation", "annotations": {"label": row["label"]}}
    labels = data["label"].unique().tolist()
    for key, value in database.items():
        video_dir = store / value["annotations"]["label"] / key
        n = len([x for x in video_dir.iterdir() if "image" in x.name and x.name[0] != "."])
        value["annotations"]["segment"] = (1, n + 1)
    with open(out, "w") as f:
        json.dump({"labels": labels, "database": database}, f)


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV,
                   help="Kinetics-700 validate.csv (default: ../shared/fixtures/...)")
    p.add_argument("--frames", type=int, default=8, help="frame files per clip in the JPEG store")
    p.add_argument("--repeat", type=int, default=3, help="runs per path (median reported)")
    p.add_argument("--workdir", type=Path, help="where to build the stores (default: a temp dir)")
    args = p.parse_args(argv)
    if not args.csv.is_file():
        p.error(f"{args.csv}: Kinetics-700 validate.csv not found; pass --csv")
    logging.disable(logging.WARNING)
    rows = read_rows(args.csv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        make_jpeg_store(tmp / "jpg", rows, args.frames)
        make_index(tmp / "index_reference", rows, "reference")
        make_index(tmp / "index_downloader", rows, "downloader")
        print(f"setup: {len(rows)} clips, {len(rows) * args.frames} frame files, "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
        # The JPEG store's own index would make --frames-root use it: the scan needs none.
        out = tmp / "out"
        out.mkdir()
        csv_arg = str(args.csv)
        runs = [
            ("reference-style builder: pandas rows + one listing per clip (baseline)",
             lambda: baseline(args.csv, tmp / "jpg", out / "baseline.json")),
            ("r3d-annotate kinetics --frames-root (scan fallback)",
             lambda: annotate(["kinetics", csv_arg, "--out", str(out / "scan.json"),
                               "--frames-root", str(tmp / "jpg"), "-q"])),
            ("r3d-annotate kinetics --index (reference ids)",
             lambda: annotate(["kinetics", csv_arg, "--out", str(out / "index.json"),
                               "--index", str(tmp / "index_reference"), "-q"])),
            ("the same, whole command in a fresh process (Python start-up included)",
             lambda: subprocess.run([sys.executable, "-m", "annotations", "kinetics", csv_arg,
                                     "--out", str(out / "proc.json"), "--index",
                                     str(tmp / "index_reference"), "-q"], check=True,
                                    cwd=REPO, capture_output=True)),
            ("r3d-annotate kinetics --index (downloader names)",
             lambda: annotate(["kinetics", csv_arg, "--out", str(out / "dl.json"),
                               "--index", str(tmp / "index_downloader"), "--missing", "keep",
                               "-q"])),
        ]
        results = [(name, timed(fn, args.repeat)) for name, fn in runs]
        # The outputs agree where they overlap.
        ref = json.loads((out / "baseline.json").read_text())["database"]
        scan = read_annotation(out / "scan.json")["database"]
        idx = read_annotation(out / "index.json")["database"]
        dl = read_annotation(out / "dl.json")["database"]
        assert len(ref) == len(scan) == len(idx) == len(dl) == len(rows)
        assert all(scan[k]["annotations"]["segment"] == [1, args.frames + 1] for k in ref)
        expected = {clip_id(yt, s, e): n_frames_of(i) for i, (_, yt, s, e) in enumerate(rows)}
        assert all(idx[k]["n_frames"] == n for k, n in expected.items())
        matched = sum("n_frames" in v for v in dl.values())
        assert all(dl[k]["n_frames"] == expected[k] for k in dl if "n_frames" in dl[k])
    base = results[0][1]
    print(f"\nKinetics-700 validation, {len(rows):,} clips; median of {args.repeat}; "
          f"{args.frames} frame files per clip\n")
    print("| path | seconds | speed-up vs baseline |")
    print("|---|---:|---:|")
    for name, sec in results:
        print(f"| {name} | {sec:.2f} | {base / sec:.1f}x |")
    print(f"\ndownloader names matched: {matched:,} of {len(rows):,} clips (a bare youtube id is "
          f"used only when one annotated clip has it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
