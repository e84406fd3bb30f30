"""ActivityNet v1.3 from the official ``activity_net.v1-3.min.json``: ``version``, ``taxonomy``
(nodes ``nodeId``/``nodeName``/``parentId``; the leaves are the 200 classes) and ``database``
(video id -> ``subset``, ``duration``, ``url``, ``annotations`` [{``segment``: [start_s, end_s],
``label``}]). A bare ``database`` object (as in mmaction's ``gt.json``) is read as well; its
classes are then the labels it uses, or a class list given with ``--labels-from``.

Two views:

* ``trimmed``: one entry per labelled segment, id ``<video id>_seg<k>`` (k = the segment's
  position in the official list), its frame range as ``segment``; testing videos (no segments)
  become one unlabelled entry each;
* ``untrimmed``: one entry per video, ``segment`` covering all its frames, the labelled spans in
  ``segments`` and the video's classes in ``labels`` (a few videos have more than one).

Seconds become frames with the video's fps from the store index: a span [s, e] covers the
0-based frames floor(s * fps) .. ceil(e * fps) - 1, clipped to the video; frame numbers then
start at the store's first frame (1 for JPEG). Frames are expected at ``v_<id>`` (the reference
layout: the downloaded ``v_<youtube id>.mp4`` converted). Labels are in the taxonomy's leaf
order by default, as the reference's ActivityNet dataset numbers them.
"""
import logging
import math
from collections import Counter
from pathlib import Path

import simplejson

from storeformat.annotation import AnnotationError

from ..entries import Entry
from ..labels import order_labels
from .common import (BuildOptions, Output, make_document, resolve_entries, root_info,
                     store_fields)

log = logging.getLogger(__name__)

DATASET = "activitynet"
OFFICIAL_NAME = "activity_net.v1-3.min.json"
VIEWS = ("trimmed", "untrimmed")


def find_file(path):
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise AnnotationError(f"{path}: ActivityNet file or folder not found")
    if (path / OFFICIAL_NAME).is_file():
        return path / OFFICIAL_NAME
    candidates = sorted(p for p in path.glob("activity_net*.json"))
    if len(candidates) == 1:
        return candidates[0]
    raise AnnotationError(f"{path}: no {OFFICIAL_NAME}" + (
        f" (several candidates: {[p.name for p in candidates]}; pass the file itself)"
        if candidates else ""))


def leaf_classes(taxonomy, where):
    """Names of the taxonomy's leaves, in taxonomy order."""
    try:
        parents = {node["parentId"] for node in taxonomy}
        return [node["nodeName"] for node in taxonomy if node["nodeId"] not in parents]
    except (TypeError, KeyError) as e:
        raise AnnotationError(f"{where}: malformed taxonomy node ({e})") from None


def read_database(path):
    """(database, taxonomy classes or None, version or None) of an official or bare file."""
    try:
        with open(path, "rb") as f:
            raw = simplejson.load(f)
    except (OSError, ValueError) as e:
        raise AnnotationError(f"{path}: cannot read ActivityNet JSON: {e}") from None
    if not isinstance(raw, dict):
        raise AnnotationError(f"{path}: expected a JSON object")
    if "database" in raw:
        database = raw["database"]
        classes = leaf_classes(raw["taxonomy"], path) if "taxonomy" in raw else None
        version = raw.get("version")
    elif "results" in raw:
        raise AnnotationError(f"{path}: this is a results (prediction) file, not the "
                              f"ground-truth database")
    else:
        database, classes, version = raw, None, None
    if not isinstance(database, dict) or not database:
        raise AnnotationError(f"{path}: 'database' must be a non-empty object")
    return database, classes, version


def read_entries(path, database):
    entries = []
    for vid, item in database.items():
        where = f"{path}: video {vid!r}"
        if not isinstance(item, dict) or "subset" not in item:
            raise AnnotationError(f"{where}: entry without 'subset'")
        subset = item["subset"]
        if subset not in ("training", "validation", "testing"):
            raise AnnotationError(f"{where}: subset {subset!r}")
        segments = []
        for k, ann in enumerate(item.get("annotations") or []):
            seg = ann.get("segment") if isinstance(ann, dict) else None
            if (not isinstance(seg, list) or len(seg) != 2
                    or not all(isinstance(t, (int, float)) for t in seg)
                    or not isinstance(ann.get("label"), str)):
                raise AnnotationError(f"{where}: annotation {k} needs 'segment' [start, end] "
                                      f"seconds and a 'label'")
            start, end = float(seg[0]), float(seg[1])
            if end < start:
                raise AnnotationError(f"{where}: annotation {k} ends before it starts {seg}")
            segments.append({"k": k, "label": ann["label"], "segment_sec": [start, end]})
        extra = {}
        if isinstance(item.get("duration"), (int, float)):
            extra["duration"] = float(item["duration"])
        if isinstance(item.get("url"), str):
            extra["url"] = item["url"]
        path_id = vid if (vid.startswith("v_") and len(vid) == 13) else f"v_{vid}"
        entries.append(Entry(vid, subset, path=path_id, keys=(vid,), segments=segments,
                             extra=extra))
    return entries


def frame_range(start_s, end_s, fps, n_frames):
    """0-based [first, stop) frames overlapping the span [start_s, end_s], clipped."""
    first = max(0, math.floor(start_s * fps))
    stop = min(n_frames, math.ceil(end_s * fps))
    return first, stop


def _video_fps(entry, counts):
    v = entry.store
    if v.fps:
        return float(v.fps)
    duration = entry.extra.get("duration")
    if duration:
        counts["fps estimated from n_frames / duration"] += 1
        return v.n_frames / duration
    return None


def build(path, opts: BuildOptions, views=VIEWS):
    file = find_file(path)
    database, taxonomy_classes, version = read_database(file)
    entries = read_entries(file, database)
    used = [s["label"] for e in entries for s in e.segments]
    if taxonomy_classes is not None:
        unknown = sorted(set(used) - set(taxonomy_classes))
        if unknown:
            raise AnnotationError(f"{file}: labels {unknown[:5]} are not taxonomy leaves")
        found = taxonomy_classes
    else:
        found = sorted(set(used))
        log.info("%s: no taxonomy; classes are the %d labels used", file, len(found))
    labels = order_labels(found, order=opts.label_order, reference=taxonomy_classes,
                          labels_from=opts.labels_from)
    source = opts.name or DATASET
    kept, report = resolve_entries(entries, opts, what="ActivityNet videos")
    root = root_info(opts)
    base = root["frame_base"]
    counts = Counter()
    fps_of = {}
    for e in kept:
        if e.store is not None:
            fps_of[e.id] = _video_fps(e, counts)
            if fps_of[e.id] is None:
                counts["videos without fps: no frame ranges"] += 1
    outputs = []
    for view in views:
        if view not in VIEWS:
            raise AnnotationError(f"unknown ActivityNet view {view!r} (trimmed or untrimmed)")
        make = _trimmed if view == "trimmed" else _untrimmed
        db = make(kept, source, base, fps_of, counts, root["path"])
        for what, n in sorted(counts.items()):
            log.info("ActivityNet %s: %s: %d", view, what, n)
        doc = make_document(labels, db, opts, source=source, dataset=DATASET, files=[file],
                            multi_label=(view == "untrimmed"), report=report,
                            extra_history={"view": view, "version": version})
        log.info("ActivityNet %s: %d classes, %d entries", view, len(labels), len(db))
        outputs.append(Output(f"{source}_{view}.json", doc, report))
        counts.clear()
    return outputs


def _frames_of(entry, span, base, fps_of, counts):
    """[first, stop) frame numbers of a span in seconds, or None (no fps / outside video)."""
    fps = fps_of.get(entry.id)
    if entry.store is None or fps is None:
        return None
    first, stop = frame_range(span[0], span[1], fps, entry.store.n_frames)
    if stop <= first:
        counts["segments outside the stored frames"] += 1
        return None
    return [base + first, base + stop]


def _trimmed(entries, source, base, fps_of, counts, root_path):
    db = {}
    for e in entries:
        fields = store_fields(e, source, root_path)
        fields.update(e.extra)
        if not e.segments:
            if e.subset != "testing":
                counts["labelled videos without segments (left out)"] += 1
                continue
            ann = {}
            if e.store is not None:
                ann["segment"] = [base, base + e.store.n_frames]
            db[e.id] = {"subset": e.subset, "annotations": ann, **fields}
            continue
        for seg in e.segments:
            frames = _frames_of(e, seg["segment_sec"], base, fps_of, counts)
            ann = {"label": seg["label"], "segment_sec": seg["segment_sec"]}
            if frames is not None:
                ann["segment"] = frames
            elif e.store is not None:
                counts["segments left out (no frame range)"] += 1
                continue
            db[f"{e.id}_seg{seg['k']:03d}"] = {"subset": e.subset, "annotations": ann,
                                               "video_id": e.id, **fields}
    return db


def _untrimmed(entries, source, base, fps_of, counts, root_path):
    db = {}
    for e in entries:
        ann = {}
        names = e.class_names()
        if names:
            ann["labels"] = names
            if len(names) == 1:
                ann["label"] = names[0]
            else:
                counts["videos with several classes"] += 1
        if e.store is not None:
            ann["segment"] = [base, base + e.store.n_frames]
        if e.segments:
            segs = []
            for seg in e.segments:
                item = {"label": seg["label"], "segment_sec": seg["segment_sec"]}
                frames = _frames_of(e, seg["segment_sec"], base, fps_of, counts)
                if frames is not None:
                    item["segment"] = frames
                segs.append(item)
            ann["segments"] = segs
        db[e.id] = {"subset": e.subset, "annotations": ann, **store_fields(e, source, root_path),
                    **e.extra}
    return db
