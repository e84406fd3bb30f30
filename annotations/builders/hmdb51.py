"""HMDB-51 from the official ``testTrainMulti_7030_splits`` folder: ``<class>_test_split{1,2,3}
.txt`` with lines ``<file>.avi <id> `` (1 = training, 2 = testing, used as validation as the
reference does, 0 = not used; a trailing space). One file per split, ``hmdb51_N.json``.

The classes are the names of the split files: anything else in the folder (a README, stray
files) is ignored and never becomes a class. Video ids are the file stems, frames are expected
at ``<class>/<id>``. The reference's hmdb51_json sorts the class names, so its label order and
``sorted`` are the same.
"""
import logging
import re
from pathlib import Path, PurePosixPath

from storeformat.annotation import AnnotationError

from ..entries import Entry
from ..labels import read_text_lines
from .common import BuildOptions, build_single_label

log = logging.getLogger(__name__)

DATASET = "hmdb51"
SPLITS = (1, 2, 3)
_SPLIT_FILE = re.compile(r"^(?P<label>.+)_test_split(?P<split>[123])\.txt$")
_SUBSET = {"1": "training", "2": "validation"}


def split_files(folder):
    """{split: {class: path}} for the split files in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: HMDB-51 split folder not found")
    found = {s: {} for s in SPLITS}
    for p in sorted(folder.iterdir()):
        m = _SPLIT_FILE.match(p.name)
        if m and p.is_file():
            found[int(m.group("split"))][m.group("label")] = p
    return found


def build(folder, opts: BuildOptions, splits=SPLITS):
    found = split_files(folder)
    classes = sorted(set().union(*(found[s] for s in SPLITS)))
    if not classes:
        raise AnnotationError(f"{folder}: no '<class>_test_split<N>.txt' files")
    outputs = []
    for split in splits:
        if split not in SPLITS:
            raise AnnotationError(f"HMDB-51 has splits 1, 2, 3, not {split}")
        missing = [c for c in classes if c not in found[split]]
        if missing:
            raise AnnotationError(f"{folder}: split {split} lacks the files of classes "
                                  f"{missing[:5]} (e.g. {missing[0]}_test_split{split}.txt)")
        entries, unused = [], 0
        for label in classes:
            path = found[split][label]
            for lineno, line in read_text_lines(path):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise AnnotationError(f"{path}:{lineno}: expected '<file>.avi 0|1|2', "
                                          f"got {line!r}")
                if parts[1] == "0":
                    unused += 1
                    continue
                vid = PurePosixPath(parts[0]).stem
                entries.append(Entry(vid, _SUBSET[parts[1]], label, path=f"{label}/{vid}"))
        log.info("HMDB-51 split %d: %d videos marked 0 (unused) left out", split, unused)
        outputs.append(build_single_label(
            entries, classes, opts, dataset=DATASET,
            files=[Path(folder) / f"<class>_test_split{split}.txt"],
            filename=f"hmdb51_{split}.json", reference=classes))
    return outputs
