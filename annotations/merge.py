"""Merging annotation files into one label space, as the mega-scale paper does
(Kinetics-700 + Moments in Time = 700 + 339 = 1,039 classes).

Label spaces are concatenated in the order of the inputs. A class name found in more than one
input is kept apart and qualified with its source (``kinetics700:clapping``,
``mit:clapping``), unless `unify` asks for same-named classes to become one. Video ids found in
more than one input are qualified the same way (``mit:<id>``, the old id kept as
``original_id``); nothing is overwritten. Subsets, frame stores (``roots``) and sources are
carried over; ``label_sources`` says where every class came from.
"""
import copy
import logging
from collections import Counter
from pathlib import Path

from .schema import AnnotationError, new_document, validate

log = logging.getLogger(__name__)


def _as_v1(doc, default_source):
    """A copy of `doc` with sources, roots and label_sources filled in (reference files lack
    them: their videos get the file's name as source)."""
    doc = copy.deepcopy(doc)
    if "format" not in doc:
        doc["sources"] = {default_source: {"dataset": default_source, "files": []}}
        doc["roots"] = {default_source: {"path": None, "format": None, "frame_base": 1}}
        for entry in doc["database"].values():
            entry.setdefault("source", default_source)
            entry.setdefault("root", default_source)
    if not doc.get("sources"):
        doc["sources"] = {default_source: {"dataset": default_source, "files": []}}
    if doc.get("label_sources") is None:
        only = next(iter(doc["sources"]))
        doc["label_sources"] = [[{"source": only, "name": name}] for name in doc["labels"]]
    doc.setdefault("roots", {})
    doc.setdefault("history", [])
    doc.setdefault("multi_label", False)
    return doc


def _rename_source(doc, old, new):
    """Rename a source, and the root of the same name (builders name the root after the source)."""
    doc["sources"][new] = doc["sources"].pop(old)
    rename_root = old in doc["roots"] and new not in doc["roots"]
    if rename_root:
        doc["roots"][new] = doc["roots"].pop(old)
    for items in doc["label_sources"]:
        for item in items:
            if item["source"] == old:
                item["source"] = new
    for entry in doc["database"].values():
        if entry.get("source") == old:
            entry["source"] = new
        if rename_root and entry.get("root") == old:
            entry["root"] = new


def merge_annotations(inputs, *, unify=False, names=None):
    """Merge [(path, document)] into a new document.

    `names` (one per input) renames the single source of each input, which is needed when two
    inputs carry the same source name."""
    if len(inputs) < 2:
        raise AnnotationError("merge needs at least two annotation files")
    if names is not None and len(names) != len(inputs):
        raise AnnotationError(f"--names needs one name per input ({len(inputs)})")
    docs = []
    for i, (path, doc) in enumerate(inputs):
        d = _as_v1(doc, Path(path).stem)
        if names is not None:
            if len(d["sources"]) != 1:
                raise AnnotationError(f"{path}: --names renames a file's single source, but it "
                                      f"has {len(d['sources'])}: {sorted(d['sources'])}")
            _rename_source(d, next(iter(d["sources"])), names[i])
        docs.append((path, d))
    owner = {}
    for path, d in docs:
        for src in d["sources"]:
            if src in owner:
                raise AnnotationError(f"source {src!r} is in both {owner[src]} and {path}; "
                                      f"give the inputs distinct names with --names")
            owner[src] = path

    labels, label_sources, label_maps = _merge_labels(docs, unify)
    roots, root_maps = _merge_roots(docs)
    multi = any(d["multi_label"] for _, d in docs)
    database = _merge_videos(docs, label_maps, root_maps, multi)

    total_in = sum(len(d["database"]) for _, d in docs)
    if len(database) != total_in:
        raise AssertionError(f"merge lost videos: {total_in} in, {len(database)} out")
    sources = {}
    for _, d in docs:
        sources.update(d["sources"])
    history = [{"op": "merge", "unify_classes": bool(unify),
                "inputs": [{"file": str(p), "sources": sorted(d["sources"]),
                            "classes": len(d["labels"]), "videos": len(d["database"]),
                            "history": d["history"]} for p, d in docs]}]
    out = new_document(labels, database, sources=sources, roots=roots,
                       label_sources=label_sources, multi_label=multi, history=history)
    validate(out, "merged annotation")
    log.info("merged %d files: %d classes, %d videos", len(docs), len(labels), len(database))
    return out


def _merge_labels(docs, unify):
    """Kept apart, classes are compared by their original name (so a class already qualified
    by an earlier merge still clashes with a new input's class of that name); unified, by the
    name they have now."""
    def key(name, prov):
        return name if unify else prov[0]["name"]

    counts = Counter(k for _, d in docs
                     for k in {key(n, p) for n, p in zip(d["labels"], d["label_sources"])})
    shared = {k for k, n in counts.items() if n > 1}
    labels, label_sources, maps = [], [], []
    position = {}
    for path, d in docs:
        mapping = {}
        for name, prov in zip(d["labels"], d["label_sources"]):
            if unify or key(name, prov) not in shared:
                new = name
            else:
                new = f"{prov[0]['source']}:{prov[0]['name']}"
            mapping[name] = new
            if new in position:
                if not unify:
                    raise AnnotationError(f"{path}: class {new!r} would appear twice after "
                                          f"qualifying names; rename a source with --names")
                label_sources[position[new]].extend(copy.deepcopy(prov))
            else:
                position[new] = len(labels)
                labels.append(new)
                label_sources.append(copy.deepcopy(prov))
        maps.append(mapping)
    if shared:
        how = "unified" if unify else "kept apart, qualified with their source"
        log.info("%d class names occur in several inputs (%s), e.g. %s", len(shared), how,
                 sorted(shared)[:3])
    return labels, label_sources, maps


def _merge_roots(docs):
    roots, maps = {}, []
    for _, d in docs:
        mapping = {}
        for name, info in d["roots"].items():
            new, k = name, 2
            while new in roots and roots[new] != info:
                new, k = f"{name}-{k}", k + 1
            roots[new] = info
            mapping[name] = new
        maps.append(mapping)
    return roots, maps


def _merge_videos(docs, label_maps, root_maps, multi):
    counts = Counter(vid for _, d in docs for vid in d["database"])
    database = {}
    for (path, d), lmap, rmap in zip(docs, label_maps, root_maps):
        for vid, entry in d["database"].items():
            entry = copy.deepcopy(entry)
            ann = entry["annotations"]
            if "label" in ann:
                ann["label"] = lmap[ann["label"]]
            if "labels" in ann:
                ann["labels"] = [lmap[t] for t in ann["labels"]]
            elif multi and "label" in ann:
                ann["labels"] = [ann["label"]]
            for seg in ann.get("segments") or []:
                if seg.get("label") is not None:
                    seg["label"] = lmap[seg["label"]]
            if entry.get("root") is not None:
                entry["root"] = rmap[entry["root"]]
            new = vid
            if counts[vid] > 1:
                new = f"{entry.get('source') or next(iter(d['sources']))}:{vid}"
                entry.setdefault("original_id", vid)
            if new in database:
                raise AnnotationError(f"{path}: video id {vid!r} collides with another input's "
                                      f"even after qualifying it as {new!r}")
            database[new] = entry
    n_renamed = sum(n for n in counts.values() if n > 1)
    if n_renamed:
        log.warning("%d videos have ids found in several inputs; they are renamed "
                    "'<source>:<id>' (the old id is kept as original_id)", n_renamed)
    return database
