"""UCF-101 from the official ``ucfTrainTestlist`` folder: ``classInd.txt``,
``trainlist0{1,2,3}.txt`` (``Class/v_Class_gXX_cYY.avi idx``) and ``testlist0{1,2,3}.txt``
(``Class/v_Class_gXX_cYY.avi``), CRLF line endings. One file per split, ``ucf101_0N.json``.

The class of a video is its folder name, which is the classInd spelling; the file names keep
the official case quirk (folder ``HandstandPushups``, files ``v_HandStandPushups_*``). Video ids
are the file stems, as the reference names them; frames are expected at ``<class>/<id>``.
Labels are in classInd.txt's order by default, as the reference's ucf101_json gives them.
"""
from pathlib import Path, PurePosixPath

from storeformat.annotation import AnnotationError

from ..entries import Entry
from ..labels import read_class_list, read_text_lines
from .common import BuildOptions, build_single_label

DATASET = "ucf101"
SPLITS = (1, 2, 3)


def build(folder, opts: BuildOptions, splits=SPLITS):
    folder = Path(folder)
    class_file = folder / "classInd.txt"
    classes = read_class_list(class_file)
    class_set = set(classes)
    outputs = []
    for split in splits:
        if split not in SPLITS:
            raise AnnotationError(f"UCF-101 has splits 1, 2, 3, not {split}")
        train = folder / f"trainlist0{split}.txt"
        test = folder / f"testlist0{split}.txt"
        entries = (_read_list(train, "training", classes, class_set)
                   + _read_list(test, "validation", classes, class_set))
        outputs.append(build_single_label(
            entries, classes, opts, dataset=DATASET, files=[class_file, train, test],
            filename=f"ucf101_0{split}.json", reference=classes))
    return outputs


def _read_list(path, subset, classes, class_set):
    entries = []
    for lineno, line in read_text_lines(path):
        parts = line.split()
        where = f"{path}:{lineno}"
        if len(parts) not in (1, 2):
            raise AnnotationError(f"{where}: expected 'Class/file.avi [index]', got {line!r}")
        rel = PurePosixPath(parts[0])
        if len(rel.parts) != 2:
            raise AnnotationError(f"{where}: {parts[0]!r} is not 'Class/file.avi'")
        label = rel.parts[0]
        if label not in class_set:
            raise AnnotationError(f"{where}: class folder {label!r} is not in classInd.txt")
        if len(parts) == 2:
            try:
                idx = int(parts[1])
            except ValueError:
                raise AnnotationError(f"{where}: class index {parts[1]!r} is not a number") \
                    from None
            if not 1 <= idx <= len(classes) or classes[idx - 1] != label:
                raise AnnotationError(f"{where}: class index {idx} does not name folder "
                                      f"{label!r} in classInd.txt")
        vid = rel.stem
        entries.append(Entry(vid, subset, label, path=f"{label}/{vid}"))
    if not entries:
        raise AnnotationError(f"{path}: no videos listed")
    return entries
