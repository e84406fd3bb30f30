"""Kinetics-400/600/700 from the official CSV files, in either naming:

* 2017 release: ``kinetics-<N>_train.csv``, ``kinetics-<N>_val.csv``, ``kinetics-<N>_test.csv``
  (or the first names ``kinetics_train.csv`` ...), header ``label,youtube_id,time_start,
  time_end,split[,is_cc]``;
* 2020 re-release: ``train.csv``, ``validate.csv``, ``test.csv``, same columns without ``is_cc``.

Test files may lack the label column. Video ids are ``{youtube_id}_{start:06d}_{end:06d}`` as the
reference names them; frames are expected at ``<label>/<id>`` (``test/<id>`` without a label).
Downloaders name files differently, so a store video also matches by youtube id and times parsed
from its file name (``<id>_<start>_<end>`` with or without zero padding, or just ``<id>`` when
only one clip of that youtube video is annotated).

Labels are, by default, in the reference's order (its kinetics_json): the order in which they
first appear in the training CSV, which is read for that even when only other subsets are
built. Classes the training file lacks follow in order of appearance; without a training file
the order is that of first appearance in the files read (logged).
"""
import csv
import logging
import re
from pathlib import Path

from storeformat.annotation import AnnotationError

from ..entries import Entry, last_part
from .common import BuildOptions, build_single_label

log = logging.getLogger(__name__)

_RELEASE_2017 = re.compile(r"^kinetics(?:-(?P<n>\d+))?_(?P<role>train|val|test)\.csv$")
_RELEASE_2020 = {"train.csv": "training", "validate.csv": "validation", "test.csv": "testing"}
_ROLE_2017 = {"train": "training", "val": "validation", "test": "testing"}
_STORE_NAME = re.compile(r"^(?P<yt>[A-Za-z0-9_-]{11})(?:_(?P<s>\d+)_(?P<e>\d+))?$")
_REQUIRED = ("youtube_id", "time_start", "time_end")


def clip_id(youtube_id, start, end):
    """The reference's video id of a Kinetics clip."""
    return f"{youtube_id}_{start:06d}_{end:06d}"


def store_alias(store_id):
    """Match keys of a downloaded clip from its file name (see module docstring)."""
    m = _STORE_NAME.match(last_part(store_id))
    if m is None:
        return ()
    if m.group("s") is None:
        return (f"yt:{m.group('yt')}",)
    return (f"yt:{m.group('yt')}:{int(m.group('s'))}:{int(m.group('e'))}",)


def find_files(path, release=None):
    """{subset: csv path} in a folder (or the single CSV given), in one naming only."""
    path = Path(path)
    if path.is_file():
        subset = _subset_of(path.name)
        if subset is None:
            raise AnnotationError(f"{path}: not a Kinetics CSV name (kinetics-<N>_train/val/test"
                                  f".csv or train/validate/test.csv)")
        return {subset: path}
    if not path.is_dir():
        raise AnnotationError(f"{path}: Kinetics folder not found")
    by_release = {"2017": {}, "2020": {}}
    for p in sorted(path.iterdir()):
        if p.name in _RELEASE_2020:
            by_release["2020"][_RELEASE_2020[p.name]] = [p]
            continue
        m = _RELEASE_2017.match(p.name)
        if m:
            by_release["2017"].setdefault(_ROLE_2017[m.group("role")], []).append(p)
    present = [r for r in ("2017", "2020") if by_release[r]]
    if release is not None:
        present = [r for r in present if r == release]
    if not present:
        raise AnnotationError(f"{path}: no Kinetics CSV files (kinetics-<N>_train/val/test.csv "
                              f"or train/validate/test.csv)" + (f" of release {release}"
                                                                if release else ""))
    if len(present) > 1:
        raise AnnotationError(f"{path}: holds both the 2017 and the 2020 file names; choose "
                              f"one with --release 2017 or --release 2020")
    files = {}
    for subset, paths in by_release[present[0]].items():
        if len(paths) > 1:
            raise AnnotationError(f"{path}: several {subset} files: "
                                  f"{', '.join(p.name for p in paths)}; pass one file instead")
        files[subset] = paths[0]
    return files


def _subset_of(name):
    if name in _RELEASE_2020:
        return _RELEASE_2020[name]
    m = _RELEASE_2017.match(name)
    return _ROLE_2017[m.group("role")] if m else None


def read_csv(path, subset):
    """Entries of one Kinetics CSV file."""
    entries = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise AnnotationError(f"{path}: empty file") from None
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise AnnotationError(f"{path}: header {header} lacks column(s) {missing}")
        i_yt, i_s, i_e = (header.index(c) for c in _REQUIRED)
        i_label = header.index("label") if "label" in header else None
        width = len(header)
        for lineno, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) != width:
                raise AnnotationError(f"{path}:{lineno}: {len(row)} fields, header has {width}")
            yt = row[i_yt].strip()
            start, end = _seconds(row[i_s], path, lineno), _seconds(row[i_e], path, lineno)
            label = row[i_label].strip() if i_label is not None else None
            if label == "":
                label = None
            vid = clip_id(yt, start, end)
            folder = label if label is not None else "test"
            entries.append(Entry(vid, subset, label, path=f"{folder}/{vid}",
                                 aliases=(f"yt:{yt}:{start}:{end}", f"yt:{yt}")))
    if not entries:
        raise AnnotationError(f"{path}: no rows")
    return entries


def _seconds(text, path, lineno):
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f"{path}:{lineno}: time {text!r} is not a number") from None
    if value != int(value) or value < 0:
        raise AnnotationError(f"{path}:{lineno}: time {text!r} is not a whole second")
    return int(value)


def build(path, opts: BuildOptions, subsets=None, release=None):
    files = find_files(path, release)
    train_file = files.get("training")
    if subsets:
        wanted = set(subsets)
        absent = wanted - set(files)
        if absent:
            raise AnnotationError(f"{path}: no file for subset(s) {sorted(absent)} "
                                  f"(found {sorted(files)})")
        files = {s: p for s, p in files.items() if s in wanted}
    entries, found = [], []
    for subset in ("training", "validation", "testing"):
        if subset in files:
            part = read_csv(files[subset], subset)
            log.info("%s: %d clips", files[subset], len(part))
            entries.extend(part)
            found.extend(e.label for e in part if e.label is not None)
    found = list(dict.fromkeys(found))
    reference = _reference_order(train_file, entries if "training" in files else None)
    n = _class_count(files, len(found))
    dataset = f"kinetics{n}" if n else "kinetics"
    name = opts.name or dataset
    return [build_single_label(entries, found, opts, dataset=dataset,
                               files=[files[s] for s in files], filename=f"{name}.json",
                               reference=reference or found, alias=store_alias)]


def _reference_order(train_file, entries=None):
    """Labels in order of first appearance in the training CSV (its `entries` when already
    read), or None without one."""
    if train_file is None:
        log.warning("no Kinetics training CSV: the reference's label order (first appearance in "
                    "the training file) is approximated by first appearance in the files read")
        return None
    if entries is None:
        entries = read_csv(train_file, "training")
    return list(dict.fromkeys(e.label for e in entries
                              if e.subset == "training" and e.label is not None))


def _class_count(files, n_found):
    for p in files.values():
        m = _RELEASE_2017.match(p.name)
        if m and m.group("n"):
            return int(m.group("n"))
    return n_found if n_found in (400, 600, 700) else None
