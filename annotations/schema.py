"""The unified annotation file as r3d-annotate writes it: a new document, the atomic writer,
and the full-validation reader (both built on storeformat.annotation, which training and
r3d-eval share).

The layout is described in docs/annotations.md. In short: top-level ``labels`` (class index =
position) and ``database`` (video id -> entry with ``subset`` and ``annotations`` holding
``label`` and ``segment`` = [first_frame, last_frame + 1]) as the reference loader expects, plus
``format``/``version``, ``roots`` (named frame stores), ``sources`` (datasets of origin),
``label_sources`` (provenance of each class), ``history`` and per-entry ``store_id``,
``video_path`` (for the reference: absolute, only where its default location is wrong), ``root``,
``source``, ``n_frames``, ``fps``. Files without ``format`` (made by the reference scripts) are
read as version 0 and validated for the reference fields only.
"""
from pathlib import Path

import simplejson

from storeformat.annotation import FORMAT_NAME, SCHEMA_VERSION, load_annotation, validate
from storeformat.atomic import write_atomically


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

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            simplejson.dump(doc, f, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            f.write("\n")
    return write_atomically(path, write, hidden=True)


def read_annotation(path, *, require_frames=False) -> dict:
    """Load and validate an annotation file. `require_frames` also demands a segment on every
    entry (as the reference loader does)."""
    return load_annotation(path, require_frames=require_frames)
