"""Reading an annotation file: the one place where training parses the JSON.

training does not import the annotations package (data flows one way); this reader checks only
what the datasets rely on. It accepts the reference's files (top-level ``labels`` and
``database``) and r3d's unified files (``format`` "r3d-annotations", ``version`` 1, with
``roots``, per-entry ``root`` / ``video_path`` / ``n_frames`` / ``fps``, multi-label ``labels``
and untrimmed ``segments``; see docs/annotations.md).
"""
import json
from pathlib import Path

FORMAT_NAME = "r3d-annotations"
READABLE_VERSIONS = (1,)
#: First frame number of each store format named in a file's ``roots``.
ROOT_FRAME_BASE = {"jpg": 1, "hdf5": 0, "hdf5-video": 0}


def read_annotation_file(path) -> dict:
    """Load an annotation file, raising ValueError (naming the file) when it is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such annotation file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON annotation file: {e}") from None
    check_document(doc, path)
    return doc


def check_document(doc, path="<annotation>") -> None:
    """The minimal structure the datasets need: a label list and a database of entries."""
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: top level is a {type(doc).__name__}, expected an object")
    if "format" in doc:
        if doc["format"] != FORMAT_NAME or doc.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"{path}: format {doc.get('format')!r} version "
                             f"{doc.get('version')!r} is not one this reader knows "
                             f"({FORMAT_NAME} {READABLE_VERSIONS})")
    labels, database = doc.get("labels"), doc.get("database")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{path}: 'labels' must be a list of class names")
    if not isinstance(database, dict):
        raise ValueError(f"{path}: 'database' must map video ids to entries")
    for vid, entry in database.items():
        if not isinstance(entry, dict) or "subset" not in entry:
            raise ValueError(f"{path}: video {vid!r}: entry without 'subset'")
        ann = entry.get("annotations")
        if ann is not None and not isinstance(ann, (dict, list)):
            raise ValueError(f"{path}: video {vid!r}: 'annotations' must be an object")


def root_frame_base(doc, root_name):
    """First frame number the file's segments use for videos of root `root_name`, or None when
    the file does not say (reference files: the store's own numbering is assumed)."""
    root = (doc.get("roots") or {}).get(root_name) if root_name is not None else None
    if not root:
        return None
    if "frame_base" in root:
        return int(root["frame_base"])
    return ROOT_FRAME_BASE.get(root.get("format"))
