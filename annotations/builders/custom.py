"""A new dataset, from a folder of class folders or from a CSV file.

Folder: ``SRC/<class>/<video file or frame directory>``, or with subset folders first
(``SRC/train/<class>/...``, ``val``/``validation``/``test`` ...). Only directories become
classes; files beside the class folders and non-video files inside them are skipped with a log
line. Video ids are the file stems when those are unique, else the relative paths.

CSV: one row per video with a path (or ``youtube_id,time_start,time_end`` as in Kinetics and
HVU), a label and optionally a subset column, with or without a header. Multi-label data (HVU:
``Tags,youtube_id,time_start,time_end`` with ``|``-separated tags, or one row per tag) gives
entries with a ``labels`` list.

Without subsets, every video is training data, and ``val_fraction`` moves that share of each
class to validation, chosen by a seeded hash of the video id: deterministic, independent of
file order, and a video keeps its subset when others are added.
"""
import csv
import hashlib
import logging
from collections import Counter, OrderedDict
from pathlib import Path, PurePosixPath

from storeformat.annotation import AnnotationError
from storeformat.subsets import SUBSET_ALIASES

from ..entries import Entry, normalize_subset
from .common import BuildOptions, build_single_label
from .kinetics import store_alias

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".flv", ".mpg", ".mpeg",
                  ".wmv", ".3gp", ".ogv", ".ts", ".hdf5", ".h5"}
PATH_COLUMNS = ("path", "video_path", "video", "file", "filename", "video_id", "id")
LABEL_COLUMNS = ("label", "labels", "tags", "tag", "class", "class_name", "category", "action")
SUBSET_COLUMNS = ("subset", "split")


def build_from_folder(folder, opts: BuildOptions, *, val_fraction=0.0, seed=0):
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: dataset folder not found")
    top = _visible_dirs(folder)
    skipped = Counter()
    if top and all(d.name.lower() in SUBSET_ALIASES for d in top):
        layout = [(normalize_subset(d.name, str(d)), d, f"{d.name}/") for d in top]
        if val_fraction:
            raise AnnotationError(f"{folder}: has subset folders; --val-fraction applies only "
                                  f"to a folder of class folders")
    else:
        layout = [("training", folder, "")]
    _count_stray_files(folder, skipped, "files beside the class folders")
    entries = []
    for subset, base, prefix in layout:
        if prefix:
            _count_stray_files(base, skipped, "files beside the class folders")
        for class_dir in _visible_dirs(base):
            label = class_dir.name
            found = 0
            for item in sorted(class_dir.iterdir()):
                if item.name.startswith("."):
                    continue
                if item.is_dir() or item.suffix.lower() in VIDEO_SUFFIXES:
                    rel = f"{prefix}{label}/{item.stem if item.is_file() else item.name}"
                    entries.append(Entry(rel, subset, label, path=rel))
                    found += 1
                else:
                    skipped["non-video files in class folders"] += 1
            if not found:
                skipped["empty class folders (not classes)"] += 1
    for what, n in skipped.items():
        log.warning("%s: skipped %d %s", folder, n, what)
    if not entries:
        raise AnnotationError(f"{folder}: no videos in class folders")
    _short_ids(entries)
    if val_fraction:
        _split_validation(entries, val_fraction, seed)
    labels = sorted({e.label for e in entries})
    return [build_single_label(entries, labels, opts, dataset="custom", files=[folder],
                               filename=f"{opts.name or folder.name}.json",
                               source=folder.name, same_folder=True)]


def _visible_dirs(folder):
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _count_stray_files(folder, skipped, what):
    n = sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if n:
        skipped[what] += n


def _short_ids(entries):
    """Use file stems as ids when they are unique (the reference's style), else keep paths."""
    stems = Counter(PurePosixPath(e.path).name for e in entries)
    if all(n == 1 for n in stems.values()):
        for e in entries:
            e.id = PurePosixPath(e.path).name
    else:
        log.info("file names repeat across folders; video ids are relative paths")


def _split_validation(entries, fraction, seed):
    """Move round(fraction * n) videos of each class (multi-label: of each first tag) from
    training to validation, by a seeded hash of the id; at least one stays in training."""
    if not 0 < fraction < 1:
        raise AnnotationError(f"--val-fraction must be between 0 and 1, not {fraction}")
    by_class = OrderedDict()
    for e in entries:
        if e.subset == "training":
            key = e.label if e.labels is None else e.labels[0]
            by_class.setdefault(key, []).append(e)
    moved = 0
    for members in by_class.values():
        members.sort(key=lambda e: hashlib.sha1(f"{seed}:{e.id}".encode()).hexdigest())
        n_val = min(round(fraction * len(members)), len(members) - 1)
        for e in members[:n_val]:
            e.subset = "validation"
        moved += max(n_val, 0)
    log.info("moved %d of %d training videos to validation (fraction %g, seed %d)", moved,
             sum(len(m) for m in by_class.values()), fraction, seed)


def build_from_csv(path, opts: BuildOptions, *, multi_label=False, label_sep="|",
                   path_column=None, label_column=None, subset_column=None,
                   val_fraction=0.0, seed=0, default_subset="training"):
    path = Path(path)
    rows, cols = _read_table(path, path_column, label_column, subset_column)
    entries = OrderedDict()
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        vid, rel, aliases = _video_of(row, cols, where)
        tags = _tags(row, cols, where, multi_label, label_sep)
        subset = (normalize_subset(row[cols["subset"]], where) if cols.get("subset") is not None
                  else default_subset)
        e = entries.get(vid)
        if e is None:
            entries[vid] = Entry(vid, subset, None if multi_label else tags[0],
                                 labels=list(tags) if multi_label else None, path=rel,
                                 keys=(PurePosixPath(rel).name,), aliases=aliases)
        elif not multi_label:
            raise AnnotationError(f"{where}: video {vid!r} is listed again; for several tags per "
                                  f"video use --multi-label")
        elif e.subset != subset:
            raise AnnotationError(f"{where}: video {vid!r} is in {e.subset} and {subset}")
        else:
            e.labels.extend(t for t in tags if t not in e.labels)
    entries = list(entries.values())
    if not entries:
        raise AnnotationError(f"{path}: no rows")
    if cols.get("youtube_id") is None:
        _short_ids(entries)
    if val_fraction:
        if cols.get("subset") is not None:
            raise AnnotationError(f"{path}: has a subset column; --val-fraction applies only "
                                  f"without one")
        _split_validation(entries, val_fraction, seed)
    labels = sorted({t for e in entries for t in e.class_names()})
    return [build_single_label(entries, labels, opts, dataset="custom", files=[path],
                               filename=f"{opts.name or path.stem}.json",
                               alias=store_alias if cols.get("youtube_id") is not None else None,
                               multi_label=multi_label, source=path.stem)]


def _read_table(path, path_column, label_column, subset_column):
    """Rows (line number, fields) and the column index of each role."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(4096)
            f.seek(0)
            delimiter = "\t" if "\t" in sample.split("\n", 1)[0] else ","
            raw = [(n, row) for n, row in enumerate(csv.reader(f, delimiter=delimiter), 1)
                   if row and any(x.strip() for x in row)]
    except FileNotFoundError:
        raise AnnotationError(f"{path}: file not found") from None
    if not raw:
        raise AnnotationError(f"{path}: empty file")
    header = [h.strip().lower() for h in raw[0][1]]
    known = set(PATH_COLUMNS + LABEL_COLUMNS + SUBSET_COLUMNS + ("youtube_id",))
    named = {path_column, label_column, subset_column} - {None}
    if any(h in known for h in header) or named:
        cols = {"path": _column(header, path_column, PATH_COLUMNS, path),
                "label": _column(header, label_column, LABEL_COLUMNS, path),
                "subset": _column(header, subset_column, SUBSET_COLUMNS, path)}
        if "youtube_id" in header and path_column is None:
            for c in ("youtube_id", "time_start", "time_end"):
                if c not in header:
                    raise AnnotationError(f"{path}: 'youtube_id' needs 'time_start' and "
                                          f"'time_end' columns")
            cols.update(path=None, youtube_id=header.index("youtube_id"),
                        time_start=header.index("time_start"), time_end=header.index("time_end"))
        elif cols["path"] is None:
            raise AnnotationError(f"{path}: no path column (one of {PATH_COLUMNS} or "
                                  f"youtube_id/time_start/time_end)")
        if cols["label"] is None:
            raise AnnotationError(f"{path}: no label column (one of {LABEL_COLUMNS})")
        rows = raw[1:]
    else:
        width = len(raw[0][1])
        if width < 2:
            raise AnnotationError(f"{path}: expected 'path,label[,subset]' rows")
        cols = {"path": 0, "label": 1, "subset": 2 if width > 2 else None}
        rows = raw
    need = max(i for i in cols.values() if i is not None)
    for n, row in rows:
        if len(row) <= need:
            raise AnnotationError(f"{path}:{n}: {len(row)} fields, expected at least {need + 1}")
    return rows, cols


def _column(header, name, choices, path):
    if name is not None:
        if name.lower() not in header:
            raise AnnotationError(f"{path}: no column {name!r} in header {header}")
        return header.index(name.lower())
    for c in choices:
        if c in header:
            return header.index(c)
    return None


def _video_of(row, cols, where):
    if cols.get("youtube_id") is not None:
        yt = row[cols["youtube_id"]].strip()
        start = _time(row[cols["time_start"]], where)
        end = _time(row[cols["time_end"]], where)
        vid = f"{yt}_{start}_{end}"
        aliases = ()
        if isinstance(start, str) and start.isdigit() and end.isdigit():
            aliases = (f"yt:{yt}:{int(start)}:{int(end)}", f"yt:{yt}")
        return vid, vid, aliases
    raw = row[cols["path"]].strip().replace("\\", "/")
    if not raw:
        raise AnnotationError(f"{where}: empty path")
    p = PurePosixPath(raw)
    if p.is_absolute() or ".." in p.parts:
        raise AnnotationError(f"{where}: path {raw!r} must be relative to the dataset folder")
    rel = str(p.with_suffix("")) if p.suffix.lower() in VIDEO_SUFFIXES else str(p)
    return rel, rel, ()


def _time(text, where):
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f"{where}: time {text!r} is not a number") from None
    return f"{int(value):06d}" if value == int(value) else repr(value)


def _tags(row, cols, where, multi_label, sep):
    cell = row[cols["label"]].strip()
    tags = [t.strip() for t in cell.split(sep)] if multi_label else [cell]
    tags = [t for t in tags if t]
    if not tags:
        raise AnnotationError(f"{where}: no label")
    return list(dict.fromkeys(tags))
