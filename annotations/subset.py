"""Deterministic, stratified subsets of an annotation file (the papers' 10-90% experiments).

* categories: keep round(fraction x classes) whole classes; labels are re-indexed (kept classes
  in their old relative order) and every subset, validation included, keeps only the videos of
  kept classes. Unlabelled videos (a test set without labels) are kept.
* instances: keep round(fraction x n) videos of every class (at least one, so no class is lost)
  in the chosen subsets (training by default); the others are left whole.

Choices follow a seeded hash of the class name or video id: the same seed gives the same subset
on any machine, and changing the seed gives an independent one.
"""
import hashlib
import logging
from collections import OrderedDict

from storeformat.annotation import AnnotationError, entry_labels

log = logging.getLogger(__name__)


def _rank(seed, name):
    return hashlib.sha1(f"{seed}:{name}".encode("utf-8")).hexdigest()


def _check_fraction(value, what):
    if not 0 < value <= 1:
        raise AnnotationError(f"--{what} must be in (0, 1], not {value}")


def make_subset(doc, *, categories=None, instances=None, seed=0, subsets=("training",),
           source_file=None):
    """A new document holding a subset of `doc` (see the module docstring). `doc` is left
    unchanged and expected to be valid (as read_annotation returns it); the result shares its
    unchanged entries and is validated when written (write_annotation)."""
    if categories is None and instances is None:
        raise AnnotationError("give --categories and/or --instances")
    out = dict(doc)
    step = {"op": "subset", "seed": seed}
    if source_file is not None:
        step["from"] = str(source_file)
    if categories is not None:
        _check_fraction(categories, "categories")
        _keep_categories(out, categories, seed)
        step["categories"] = categories
    if instances is not None:
        _check_fraction(instances, "instances")
        _keep_instances(out, instances, seed, set(subsets))
        step["instances"] = instances
        step["instance_subsets"] = sorted(subsets)
    if "history" in out:
        out["history"] = out["history"] + [step]
    return out


def _keep_categories(doc, fraction, seed):
    labels = doc["labels"]
    k = max(1, round(fraction * len(labels)))
    chosen = set(sorted(labels, key=lambda name: _rank(seed, name))[:k])
    keep_idx = [i for i, name in enumerate(labels) if name in chosen]
    doc["labels"] = [labels[i] for i in keep_idx]
    if doc.get("label_sources") is not None:
        doc["label_sources"] = [doc["label_sources"][i] for i in keep_idx]
    database, dropped, unlabelled = {}, 0, 0
    for vid, entry in doc["database"].items():
        ann = entry["annotations"]
        tags = entry_labels(entry)
        if not tags:
            unlabelled += 1
            database[vid] = entry
            continue
        kept = [t for t in tags if t in chosen]
        if not kept:
            dropped += 1
            continue
        if "labels" in ann or "segments" in ann:
            entry = dict(entry, annotations=_kept_tags(ann, kept, chosen))
        database[vid] = entry
    doc["database"] = database
    log.info("kept %d of %d classes; %d videos dropped, %d kept (%d unlabelled kept)",
             k, len(labels), dropped, len(database), unlabelled)


def _kept_tags(ann, kept, chosen):
    """A copy of an entry's annotations keeping only the classes chosen (`kept` of its tags)."""
    ann = dict(ann)
    if "labels" in ann:
        ann["labels"] = kept
        if len(kept) == 1:
            ann["label"] = kept[0]
        else:
            ann.pop("label", None)
    if "segments" in ann:
        ann["segments"] = [s for s in ann["segments"]
                           if s.get("label") is None or s["label"] in chosen]
    return ann


def _keep_instances(doc, fraction, seed, subsets):
    unknown = subsets - {"training", "validation", "testing"}
    if unknown:
        raise AnnotationError(f"unknown subset(s) {sorted(unknown)}")
    by_class = OrderedDict((name, []) for name in doc["labels"])
    pool = []
    later = {}  # class -> the videos tagged with it after their first tag (multi-label)
    for vid, entry in doc["database"].items():
        if entry["subset"] in subsets:
            tags = entry_labels(entry)
            if tags:
                pool.append(vid)
                by_class[tags[0]].append(vid)
                for t in tags[1:]:
                    later.setdefault(t, []).append(vid)
    keep = set()
    for members in by_class.values():
        if members:
            members.sort(key=lambda v: _rank(seed, v))
            keep.update(members[:max(1, round(fraction * len(members)))])
    # Multi-label: a class seen only as a later tag keeps one video too (a class seen first
    # somewhere is covered by the videos kept above).
    if later:
        covered = {t for vid in keep for t in entry_labels(doc["database"][vid])}
        for t, vids in later.items():
            if t not in covered:
                best = min(vids, key=lambda v: _rank(seed, v))
                keep.add(best)
                covered.update(entry_labels(doc["database"][best]))
    pool_set = set(pool)
    doc["database"] = {vid: e for vid, e in doc["database"].items()
                       if vid not in pool_set or vid in keep}
    log.info("kept %d of %d videos of %s (every class keeps at least one)", len(keep),
             len(pool), ", ".join(sorted(subsets)))
