"""Moments in Time from its official files: the class list ``moments_categories.txt``
(``name,idx`` lines; a plain one-name-per-line list such as ``category_momentsv1.txt`` works
too, given with ``--classes``), ``trainingSet.csv`` and ``validationSet.csv``
(``label/file.mp4,label,agreement,disagreement``, no header) and optionally ``testingSet.csv``
(``file.mp4``). One file, ``mit.json``.

Video ids are the file stems as the reference names them (a stem found in several classes
keeps its ``label/stem`` path as id instead, with a warning). Frames are expected at
``<label>/<id>``; the layout of the official archive (``training/<label>/<file>``) matches too.
Labels are in the class list's line order by default, as the reference's mit_json reads it
(for ``moments_categories.txt``, whose lines are in index order, that is the index order).
"""
import csv
import logging
from collections import Counter
from pathlib import Path, PurePosixPath

from storeformat.annotation import AnnotationError

from ..entries import Entry
from ..labels import read_class_list
from .common import BuildOptions, build_single_label

log = logging.getLogger(__name__)

DATASET = "mit"
CLASS_FILE = "moments_categories.txt"
SET_FILES = {"training": "trainingSet.csv", "validation": "validationSet.csv",
             "testing": "testingSet.csv"}


def build(folder, opts: BuildOptions, classes_file=None):
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: Moments in Time folder not found")
    class_path = Path(classes_file) if classes_file else folder / CLASS_FILE
    if not class_path.is_file():
        others = sorted(p.name for p in folder.glob("*.txt"))
        raise AnnotationError(f"{class_path}: class list not found; pass one with --classes"
                              + (f" (candidates here: {others})" if others else ""))
    classes = read_class_list(class_path)
    reference = read_class_list(class_path, by_index=False)
    files = [class_path]
    entries = []
    for subset, name in SET_FILES.items():
        path = folder / name
        if not path.is_file():
            if subset != "testing":
                raise AnnotationError(f"{path}: not found")
            continue
        files.append(path)
        part = _read_set(path, subset, set(classes))
        log.info("%s: %d videos", path, len(part))
        entries.extend(part)
    _unique_ids(entries)
    return [build_single_label(entries, classes, opts, dataset=DATASET, files=files,
                               filename=f"{opts.name or DATASET}.json", reference=reference)]


def _read_set(path, subset, class_set):
    entries = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or not row[0].strip():
                continue
            rel = PurePosixPath(row[0].strip())
            where = f"{path}:{lineno}"
            if subset == "testing":
                vid = rel.stem
                entries.append(Entry(vid, subset, path=f"testing/{vid}", keys=(rel.stem,)))
                continue
            if len(row) < 2 or len(rel.parts) != 2:
                raise AnnotationError(f"{where}: expected 'label/file.mp4,label,...', got "
                                      f"{','.join(row)!r}")
            label = row[1].strip()
            if rel.parts[0] != label:
                raise AnnotationError(f"{where}: folder {rel.parts[0]!r} and label {label!r} "
                                      f"differ")
            if label not in class_set:
                raise AnnotationError(f"{where}: label {label!r} is not in the class list")
            vid = rel.stem
            folder = "training" if subset == "training" else "validation"
            entries.append(Entry(vid, subset, label, path=f"{label}/{vid}",
                                 keys=(f"{folder}/{label}/{vid}",)))
    return entries


def _unique_ids(entries):
    """Give entries whose stem repeats their label/stem path as id, saying how many."""
    counts = Counter(e.id for e in entries)
    clashes = [e for e in entries if counts[e.id] > 1]
    for e in clashes:
        e.id = e.path
    if clashes:
        log.warning("%d videos share a file name with another class's video; their ids are "
                    "'<label>/<file stem>' instead (e.g. %s)", len(clashes), clashes[0].id)
