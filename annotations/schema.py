"""The unified annotation file: constants, a validating reader and an atomic writer.

The layout is described in docs/annotations.md. In short: top-level ``labels`` (class index =
position) and ``database`` (video id -> entry with ``subset`` and ``annotations`` holding
``label`` and ``segment`` = [first_frame, last_frame + 1]) as the reference loader expects, plus
``format``/``version``, ``roots`` (named frame stores), ``sources`` (datasets of origin),
``label_sources`` (provenance of each class), ``history`` and per-entry ``video_path``, ``root``,
``source``, ``n_frames``, ``fps``. Files without ``format`` (made by the reference scripts) are
read as version 0 and validated for the reference fields only.
"""
import math
import os
from pathlib import Path

import simplejson

FORMAT_NAME = "r3d-annotations"
SCHEMA_VERSION = 1
SUBSETS = ("training", "validation", "testing")
#: Kinds of frame store an entry can live in: JPEG frame directories, r3d HDF5 shards and the
#: reference's one-.hdf5-per-video layout.
STORE_FORMATS = ("jpg", "hdf5", "hdf5-video")
#: Number of a video's first frame in the segments r3d writes, whatever the store (the JPEG
#: layout's image_00001.jpg is frame 1; r3d's trainer numbers HDF5 frames the same way).
FRAME_BASE = 1
MAX_REPORTED_ERRORS = 20


class AnnotationError(ValueError):
    """An annotation file (or the data it was built from) is malformed; the message names the
    file, the video and the problem."""


def frame_base(root) -> int:
    """Number of the first frame in the segments of entries stored under `root` (a ``roots``
    item; files converted from the reference's HDF5 annotations may say 0)."""
    return int((root or {}).get("frame_base", FRAME_BASE))


def annotation_classes(ann) -> list:
    """Classes of an entry's ``annotations``: its ``labels``, else its ``label``, else the
    labels of its ``segments`` (empty for an unlabelled video)."""
    if "labels" in ann:
        return list(ann["labels"])
    if "label" in ann:
        return [ann["label"]]
    return list(dict.fromkeys(s["label"] for s in ann.get("segments") or [] if s.get("label")))


def new_document(labels, database, *, sources=None, roots=None, label_sources=None,
                 multi_label=False, history=None) -> dict:
    """Assemble a version-1 document; keys in the order a reader of the file expects them."""
    doc = {"format": FORMAT_NAME, "version": SCHEMA_VERSION, "multi_label": bool(multi_label),
           "labels": list(labels)}
    if label_sources is not None:
        doc["label_sources"] = label_sources
    doc["sources"] = sources or {}
    doc["roots"] = roots or {}
    doc["history"] = history or []
    doc["database"] = database
    return doc


def write_annotation(doc: dict, path) -> Path:
    """Validate `doc` and write it with simplejson, atomically (a crash leaves the old file)."""
    path = Path(path)
    validate(doc, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            simplejson.dump(doc, f, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_annotation(path, *, require_frames=False) -> dict:
    """Load and validate an annotation file. `require_frames` also demands a segment on every
    entry (as the reference loader does)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            doc = simplejson.load(f)
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such annotation file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: not valid JSON: {e}") from None
    validate(doc, path, require_frames=require_frames)
    return doc


def validate(doc, path="<annotation>", *, require_frames=False) -> None:
    """Raise AnnotationError listing (up to 20 of) the problems of a document."""
    errors = []
    _check_document(doc, errors, require_frames)
    if errors:
        shown = "\n  ".join(errors[:MAX_REPORTED_ERRORS])
        more = len(errors) - MAX_REPORTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise AnnotationError(f"{path}: {len(errors)} problem(s):\n  {shown}{tail}")


def _check_document(doc, errors, require_frames):
    if not isinstance(doc, dict):
        errors.append(f"top level is a {type(doc).__name__}, expected an object")
        return
    version = 0
    if "format" in doc:
        if doc["format"] != FORMAT_NAME:
            errors.append(f"'format' is {doc['format']!r}, expected {FORMAT_NAME!r}")
            return
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            errors.append(f"'version' is {version!r}, expected a positive integer")
            return
        if version > SCHEMA_VERSION:
            errors.append(f"schema version {version} is newer than this reader's "
                          f"({SCHEMA_VERSION}); update r3d")
            return
    for key in ("labels", "database"):
        if key not in doc:
            errors.append(f"missing top-level '{key}'")
    if errors:
        return
    labels = doc["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        errors.append("'labels' must be a list of non-empty strings")
        return
    label_set = set(labels)
    if len(label_set) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        errors.append(f"'labels' repeats {len(labels) - len(label_set)} name(s): {dup[:5]}")
    database = doc["database"]
    if not isinstance(database, dict):
        errors.append("'database' must be an object mapping video ids to entries")
        return
    roots, sources = {}, {}
    multi = False
    if version >= 1:
        roots = _check_roots(doc.get("roots"), errors)
        sources = doc.get("sources")
        if not isinstance(sources, dict):
            errors.append("'sources' must be an object")
            sources = {}
        multi = doc.get("multi_label", False)
        if not isinstance(multi, bool):
            errors.append("'multi_label' must be true or false")
        _check_label_sources(doc.get("label_sources"), len(labels), errors)
        if not isinstance(doc.get("history", []), list):
            errors.append("'history' must be a list")
    for vid, entry in database.items():
        if len(errors) > MAX_REPORTED_ERRORS * 5:
            break
        _check_entry(vid, entry, label_set, roots, sources, multi, version, require_frames,
                     errors)


def _check_roots(roots, errors):
    if roots is None:
        return {}
    if not isinstance(roots, dict):
        errors.append("'roots' must be an object")
        return {}
    for name, root in roots.items():
        if not isinstance(root, dict):
            errors.append(f"root {name!r}: must be an object")
            continue
        fmt = root.get("format")
        if fmt is not None and fmt not in STORE_FORMATS:
            errors.append(f"root {name!r}: format {fmt!r} is not one of {sorted(STORE_FORMATS)}")
        if root.get("frame_base", FRAME_BASE) not in (0, 1):
            errors.append(f"root {name!r}: frame_base {root.get('frame_base')!r} must be 0 or 1")
        if root.get("path") is not None and not isinstance(root["path"], str):
            errors.append(f"root {name!r}: path must be a string or null")
    return roots


def _check_label_sources(label_sources, n_labels, errors):
    if label_sources is None:
        return
    if not isinstance(label_sources, list) or len(label_sources) != n_labels:
        errors.append(f"'label_sources' must be a list of {n_labels} entries, one per label")
        return
    for i, item in enumerate(label_sources):
        if (not isinstance(item, list) or not item or not all(
                isinstance(x, dict) and isinstance(x.get("source"), str)
                and isinstance(x.get("name"), str) for x in item)):
            errors.append(f"'label_sources'[{i}] must be a non-empty list of "
                          "{'source', 'name'} objects")
            return


def _check_entry(vid, entry, label_set, roots, sources, multi, version, require_frames, errors):
    where = f"video {vid!r}"
    if not isinstance(entry, dict):
        errors.append(f"{where}: entry must be an object")
        return
    subset = entry.get("subset")
    if subset not in SUBSETS:
        errors.append(f"{where}: subset {subset!r} is not one of {', '.join(SUBSETS)}")
    ann = entry.get("annotations")
    if not isinstance(ann, dict):
        errors.append(f"{where}: 'annotations' must be an object")
        return
    label = ann.get("label")
    if label is not None and label not in label_set:
        errors.append(f"{where}: label {label!r} is not in 'labels'")
    if "labels" in ann:
        tags = ann["labels"]
        if not isinstance(tags, list) or not tags:
            errors.append(f"{where}: 'labels' must be a non-empty list")
        else:
            unknown = [t for t in tags if t not in label_set]
            if unknown:
                errors.append(f"{where}: labels {unknown[:3]} are not in 'labels'")
            if len(set(tags)) != len(tags):
                errors.append(f"{where}: 'labels' repeats a class")
            if label is not None and (len(tags) != 1 or tags[0] != label):
                errors.append(f"{where}: 'label' {label!r} disagrees with 'labels' {tags}")
    elif multi and label is not None:
        errors.append(f"{where}: a multi-label file needs 'labels' on every labelled entry")
    if version >= 1:
        root_name = entry.get("root")
        if root_name is not None and root_name not in roots:
            errors.append(f"{where}: root {root_name!r} is not in 'roots'")
        src = entry.get("source")
        if src is not None and src not in sources:
            errors.append(f"{where}: source {src!r} is not in 'sources'")
        path = entry.get("video_path")
        if path is not None and not _relative_posix(path):
            errors.append(f"{where}: video_path {path!r} must be a relative '/'-separated path")
    # Reference-made files number HDF5 frames from 0 and JPEG frames from 1: accept both.
    base = frame_base(roots.get(entry.get("root"))) if version >= 1 else 0
    n_frames = entry.get("n_frames")
    if n_frames is not None and (not _is_int(n_frames) or n_frames < 0):
        errors.append(f"{where}: n_frames {n_frames!r} must be a non-negative integer")
        n_frames = None
    fps = entry.get("fps")
    if fps is not None and (not isinstance(fps, (int, float)) or isinstance(fps, bool)
                            or not math.isfinite(fps) or fps <= 0):
        errors.append(f"{where}: fps {fps!r} must be a positive number")
    segment = ann.get("segment")
    if segment is None:
        if require_frames:
            errors.append(f"{where}: no 'segment' (built without frame counts)")
    else:
        _check_segment(where, segment, base, n_frames, errors)
    segs = ann.get("segments")
    if segs is not None:
        if not isinstance(segs, list):
            errors.append(f"{where}: 'segments' must be a list")
            return
        for k, seg in enumerate(segs):
            w = f"{where} segment {k}"
            if not isinstance(seg, dict):
                errors.append(f"{w}: must be an object")
                continue
            if seg.get("label") is not None and seg["label"] not in label_set:
                errors.append(f"{w}: label {seg['label']!r} is not in 'labels'")
            if seg.get("segment") is not None:
                _check_segment(w, seg["segment"], base, n_frames, errors)
            sec = seg.get("segment_sec")
            if sec is not None and not (isinstance(sec, list) and len(sec) == 2
                                        and all(isinstance(t, (int, float)) for t in sec)
                                        and sec[0] <= sec[1]):
                errors.append(f"{w}: segment_sec {sec!r} must be [start, end] seconds")


def _check_segment(where, segment, base, n_frames, errors):
    if not (isinstance(segment, list) and len(segment) == 2 and all(map(_is_int, segment))):
        errors.append(f"{where}: segment {segment!r} must be [first_frame, last_frame + 1]")
        return
    first, stop = segment
    if first < base or stop <= first:
        errors.append(f"{where}: segment {segment} is empty or starts before frame {base}")
    elif n_frames is not None and stop > base + n_frames:
        errors.append(f"{where}: segment {segment} runs past the video's {n_frames} frames")


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _relative_posix(path):
    if not isinstance(path, str) or not path or "\\" in path or path.startswith("/"):
        return False
    return ".." not in path.split("/")
