"""Merging annotation files into one label space, as the mega-scale paper does
(Kinetics-700 + Moments in Time = 700 + 339 = 1,039 classes).

Label spaces are concatenated in the order of the inputs. A class name found in more than one
input is kept apart and qualified with its source (``kinetics700:clapping``,
``mit:clapping``), unless `unify` asks for same-named classes to become one. Video ids found in
more than one input are qualified the same way (``mit:<id>``, the old id kept as
``original_id``); nothing is overwritten. Subsets, frame stores (``roots``) and sources are
carried over; ``label_sources`` says where every class came from. An entry found by the
reference's layout rule (no ``store_id``, as in reference-made files) whose class or id the
merge renames gets the ``store_id`` that rule gave it (``<label>/<id>``, ``test/<id>`` when
unlabelled), so its video is still found.
"""
import logging
from collections import Counter
from pathlib import Path

from storeformat.annotation import AnnotationError

from .schema import new_document

log = logging.getLogger(__name__)


class _Input:
    """One input seen as a version-1 document, without copying its videos. What merging
    changes in an entry (a reference-made file's missing source and root, renamed sources,
    roots and classes) is applied to a copy of just the entries it changes."""

    def __init__(self, path, doc, default_source):
        self.path = path
        self.labels = doc["labels"]
        self.database = doc["database"]
        self.default = None
        sources, roots = doc.get("sources"), doc.get("roots")
        if "format" not in doc:
            self.default = default_source
            sources = {default_source: {"dataset": default_source, "files": []}}
            roots = {default_source: {"path": None, "format": None, "frame_base": 1}}
        if not sources:
            sources = {default_source: {"dataset": default_source, "files": []}}
        self.sources = dict(sources)
        self.roots = dict(roots or {})
        self.label_sources = doc.get("label_sources")
        if self.label_sources is None:
            only = next(iter(self.sources))
            self.label_sources = [[{"source": only, "name": name}] for name in self.labels]
        self.history = doc.get("history", [])
        self.multi_label = doc.get("multi_label", False)
        self.source_map = {}
        #: An entry's root (as the input names it) -> its root in the result.
        self.root_map = {name: name for name in self.roots}

    def rename_source(self, old, new):
        """Rename a source, and the root of the same name (builders name the root after the
        source)."""
        self.sources[new] = self.sources.pop(old)
        if old in self.roots and new not in self.roots:
            self.roots[new] = self.roots.pop(old)
            self.root_map[old] = new
        self.label_sources = [[dict(item, source=new) if item["source"] == old else item
                               for item in items] for items in self.label_sources]
        if old != new:
            self.source_map[old] = new


def merge_annotations(inputs, *, unify=False, names=None):
    """Merge [(path, document)] into a new document.

    `names` (one per input) renames the single source of each input, which is needed when two
    inputs carry the same source name. The inputs are left unchanged; the result shares their
    unchanged entries. It is validated when written (write_annotation); the inputs are
    expected to be valid, as read_annotation returns them."""
    if len(inputs) < 2:
        raise AnnotationError("merge needs at least two annotation files")
    if names is not None and len(names) != len(inputs):
        raise AnnotationError(f"--names needs one name per input ({len(inputs)})")
    docs = []
    for i, (path, doc) in enumerate(inputs):
        d = _Input(path, doc, Path(path).stem)
        if names is not None:
            if len(d.sources) != 1:
                raise AnnotationError(f"{path}: --names renames a file's single source, but it "
                                      f"has {len(d.sources)}: {sorted(d.sources)}")
            d.rename_source(next(iter(d.sources)), names[i])
        docs.append(d)
    owner = {}
    for d in docs:
        for src in d.sources:
            if src in owner:
                raise AnnotationError(f"source {src!r} is in both {owner[src]} and {d.path}; "
                                      f"give the inputs distinct names with --names")
            owner[src] = d.path

    labels, label_sources, label_maps = _merge_labels(docs, unify)
    roots = _merge_roots(docs)
    multi = any(d.multi_label for d in docs)
    database = _merge_videos(docs, label_maps, multi)

    total_in = sum(len(d.database) for d in docs)
    if len(database) != total_in:
        raise AssertionError(f"merge lost videos: {total_in} in, {len(database)} out")
    sources = {}
    for d in docs:
        sources.update(d.sources)
    history = [{"op": "merge", "unify_classes": bool(unify),
                "inputs": [{"file": str(d.path), "sources": sorted(d.sources),
                            "classes": len(d.labels), "videos": len(d.database),
                            "history": d.history} for d in docs]}]
    out = new_document(labels, database, sources=sources, roots=roots,
                       label_sources=label_sources, multi_label=multi, history=history)
    log.info("merged %d files: %d classes, %d videos", len(docs), len(labels), len(database))
    return out


def _merge_labels(docs, unify):
    """Kept apart, classes are compared by their original name (so a class already qualified
    by an earlier merge still clashes with a new input's class of that name); unified, by the
    name they have now."""
    def key(name, prov):
        return name if unify else prov[0]["name"]

    counts = Counter(k for d in docs
                     for k in {key(n, p) for n, p in zip(d.labels, d.label_sources)})
    shared = {k for k, n in counts.items() if n > 1}
    labels, label_sources, maps = [], [], []
    position = {}
    for d in docs:
        mapping = {}
        for name, prov in zip(d.labels, d.label_sources):
            if unify or key(name, prov) not in shared:
                new = name
            else:
                new = f"{prov[0]['source']}:{prov[0]['name']}"
            mapping[name] = new
            if new in position:
                if not unify:
                    raise AnnotationError(f"{d.path}: class {new!r} would appear twice after "
                                          f"qualifying names; rename a source with --names")
                label_sources[position[new]].extend(prov)
            else:
                position[new] = len(labels)
                labels.append(new)
                label_sources.append(list(prov))
        maps.append(mapping)
    if shared:
        how = "unified" if unify else "kept apart, qualified with their source"
        log.info("%d class names occur in several inputs (%s), e.g. %s", len(shared), how,
                 sorted(shared)[:3])
    return labels, label_sources, maps


def _merge_roots(docs):
    """The roots of the result; a name two inputs give to different stores gets a suffix in
    the later one (each input's root_map follows)."""
    roots = {}
    for d in docs:
        mapping = {}
        for name, info in d.roots.items():
            new, k = name, 2
            while new in roots and roots[new] != info:
                new, k = f"{name}-{k}", k + 1
            roots[new] = info
            mapping[name] = new
        d.root_map = {old: mapping[now] for old, now in d.root_map.items()}
    return roots


def _duplicate_ids(docs):
    """Video ids found in more than one input."""
    dup = set()
    for i, d in enumerate(docs):
        for other in docs[i + 1:]:
            dup.update(d.database.keys() & other.database.keys())
    return dup


def _merge_videos(docs, label_maps, multi):
    dup = _duplicate_ids(docs)
    database = {}
    n_renamed = 0
    for d, lmap in zip(docs, label_maps):
        first_source = next(iter(d.sources))
        for vid, entry in d.database.items():
            try:
                new_entry = _edited(entry, d, lmap, multi)
            except KeyError as e:
                raise AnnotationError(f"{d.path}: video {vid!r}: {e} is not a class or root "
                                      f"of the file") from None
            new = vid
            if vid in dup:
                n_renamed += 1
                if new_entry is entry:
                    new_entry = dict(entry)
                new = f"{new_entry.get('source') or first_source}:{vid}"
                new_entry.setdefault("original_id", vid)
            if new_entry is not entry or new != vid:
                new_entry = _with_layout_store_id(new_entry, entry, vid)
            if new in database:
                raise AnnotationError(f"{d.path}: video id {vid!r} collides with another "
                                      f"input's even after qualifying it as {new!r}")
            database[new] = new_entry
    if n_renamed:
        log.warning("%d videos have ids found in several inputs; they are renamed "
                    "'<source>:<id>' (the old id is kept as original_id)", n_renamed)
    return database


def _with_layout_store_id(new_entry, entry, vid):
    """`new_entry` with the store id the reference's layout gave `entry` (id `vid`) when it
    has no store id of its own and merging renamed its class or id."""
    path = entry.get("video_path")
    if "store_id" in entry or (isinstance(path, str) and not path.startswith("/")):
        return new_entry
    ann = entry.get("annotations")
    if not isinstance(ann, dict) or "labels" in ann:
        return new_entry
    label = ann.get("label")
    renamed = ann is not new_entry.get("annotations") and new_entry["annotations"].get(
        "label") != label
    if not renamed and "original_id" not in new_entry:
        return new_entry
    out = new_entry if new_entry is not entry else dict(entry)
    out["store_id"] = f"{label}/{vid}" if label is not None else f"test/{vid}"
    return out


def _edited(entry, d, lmap, multi):
    """`entry` as the result holds it: the entry itself when merging changes nothing in it,
    else a copy (fields keep their places; new ones come last, as setdefault puts them)."""
    out = entry
    if d.default is not None and ("source" not in entry or "root" not in entry):
        out = dict(entry)
        out.setdefault("source", d.default)
        out.setdefault("root", d.default)
    source = out.get("source")
    if source in d.source_map:
        out = out if out is not entry else dict(entry)
        out["source"] = d.source_map[source]
    root = out.get("root")
    if root is not None and d.root_map[root] != root:
        out = out if out is not entry else dict(entry)
        out["root"] = d.root_map[root]
    ann = entry["annotations"]
    new_ann = _edited_annotations(ann, lmap, multi)
    if new_ann is not ann:
        out = out if out is not entry else dict(entry)
        out["annotations"] = new_ann
    return out


def _edited_annotations(ann, lmap, multi):
    """An entry's annotations with classes renamed (and, merging into a multi-label file,
    the single label also given as 'labels'): `ann` itself when nothing changes, else a copy."""
    out = ann
    label = ann.get("label")
    if label is not None and lmap[label] != label:
        out = dict(ann)
        out["label"] = lmap[label]
    if "labels" in ann:
        tags = [lmap[t] for t in ann["labels"]]
        if tags != ann["labels"]:
            out = out if out is not ann else dict(ann)
            out["labels"] = tags
    elif multi and "label" in ann:
        out = out if out is not ann else dict(ann)
        out["labels"] = [out["label"]]
    segments = ann.get("segments")
    if segments and any(s.get("label") is not None and lmap[s["label"]] != s["label"]
                        for s in segments):
        out = out if out is not ann else dict(ann)
        out["segments"] = [s if s.get("label") is None else dict(s, label=lmap[s["label"]])
                           for s in segments]
    return out
