"""The annotation file format, read one way by annotations/, training/ and r3d-eval.

Reading the JSON, checking its shape (or validating it fully), the frame numbering of each root,
an entry's labels and its segments. The layout is described in docs/annotations.md. Files
without ``format`` are the reference's (version 0): only the reference's fields are checked,
and their frame numbering is not stated (a reader uses the store's own).
"""
import functools
import math
from array import array
from pathlib import Path

import numpy as np

from .jsonstream import (NotAnObject, StreamError, cycle_collector_paused, json_errors,
                         load_json, read_object_streaming)
from .paths import name_problem
from .subsets import SUBSETS

FORMAT_NAME = "r3d-annotations"
SCHEMA_VERSION = 1
_SUBSET_NAMES = frozenset(SUBSETS)
#: Kinds of frame store an entry can live in: JPEG frame directories, r3d HDF5 shards and the
#: reference's one-.hdf5-per-video layout.
STORE_FORMATS = ("jpg", "hdf5", "hdf5-video")
#: Number of a video's first frame in the segments of a version-1 file whose root does not say
#: otherwise, whatever the store's format: r3d's builders always state it (1 for JPEG
#: directories and r3d HDF5 shards: image_00001.jpg is frame 1, and so is a shard's element 0),
#: so the default only decides files written by hand or by other tools.
FRAME_BASE = 1
MAX_REPORTED_ERRORS = 20
#: The largest frame number a segment may name: frame counts are 32-bit in the catalogs.
MAX_FRAME = 2 ** 31 - 1


class AnnotationError(ValueError):
    """An annotation file is malformed; the message names the file, the video and the
    problem."""


class AnnotationFileMissing(AnnotationError, FileNotFoundError):
    """The annotation file does not exist (both an AnnotationError and a FileNotFoundError)."""


#: AnnotationError naming the file for a missing or unreadable one, or one that is not JSON.
_reading = functools.partial(json_errors, error=AnnotationError, missing=AnnotationFileMissing,
                             what="annotation file")


def load_annotation(path, *, full=True, require_frames=False) -> dict:
    """Read an annotation file and check it: everything (`full`, what r3d-annotate and
    `check` demand) or only its shape (what the datasets and r3d-eval rely on, leaving the
    entries' contents to them). `require_frames` also demands a segment on every entry."""
    path = Path(path)
    with _reading(path, invalid=(ValueError, UnicodeDecodeError)), \
            open(path, encoding="utf-8") as f, cycle_collector_paused():
        doc = load_json(f)
    if full:
        validate(doc, path, require_frames=require_frames)
    else:
        check_shape(doc, path)
    return doc


#: Top-level fields an entry's reading depends on (a streamed file should give them before
#: its 'database', as r3d-annotate writes them).
HEADER_FIELDS = ("format", "version", "labels", "multi_label", "roots")


def stream_annotation(path, start) -> dict:
    """Read an annotation file entry by entry, for readers that keep columns rather than a
    million dicts: ``start(header)`` gets the document's other top-level fields and returns a
    callable taking (video id, entry), called for each entry in file order. The shape is
    checked as by ``load_annotation(full=False)``, and a video id given twice is refused (the
    whole-file readers would keep the last); errors raise AnnotationError once the file is
    read. Returns the header. A file whose header fields follow its 'database' is read twice
    (start is called again, with the whole header)."""
    path = Path(path)
    header, later = _stream_pass(path, start, None)
    if later:
        header, _ = _stream_pass(path, start, header)
    return header


class _HeaderRead(Exception):
    def __init__(self, header):
        super().__init__()
        self.header = header


def read_header(path) -> dict:
    """The top-level fields an annotation file gives before its 'database' (all of them in
    files r3d-annotate writes), read without parsing the entries; unchecked. {} when the file
    cannot be read that way (the full reader then says why)."""

    def start(header):
        raise _HeaderRead(dict(header))

    try:
        with open(path, encoding="utf-8") as f:
            header, _ = read_object_streaming(f, "database", start)
    except _HeaderRead as e:
        return e.header
    except (OSError, ValueError):
        return {}
    return header if isinstance(header, dict) else {}


def _stream_pass(path, start, known):
    """One reading of `path`; `known`: the whole header, from a first reading. Returns (the
    header, whether another reading is needed: the header was not whole when the entries
    began)."""
    errors, hashes, state = [], array("q"), {}

    def begin(header):
        # Entries are handed over only under a header that is whole and well formed so far;
        # otherwise they are only shape-checked, and a second reading hands them over.
        whole = known is not None or not _top_level_errors(header)
        state.update(seen=set(header), whole=whole)
        version = _top_level_version(known if known is not None else header)
        take = start(known if known is not None else header) if whole else None

        def on_entry(vid, entry):
            hashes.append(hash(vid))
            problem = _entry_shape_problem(entry, version)
            if problem:
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(f"video {vid!r}: {problem}")
            elif take is not None:
                take(vid, entry)
        return on_entry

    with _reading(path, invalid=(StreamError, UnicodeDecodeError)), \
            open(path, encoding="utf-8") as f, cycle_collector_paused():
        try:
            header, streamed = read_object_streaming(f, "database", begin)
        except NotAnObject as e:
            header, streamed = e.value, False
    if streamed:
        late = [k for k in HEADER_FIELDS if k in header and k not in state["seen"]]
        doc = dict(header, database={})
    else:
        late, doc = [], header
    top = []
    _shape_errors(doc, top)
    _raise(top + errors, path)
    if known is None and (late or not state.get("whole", True)):
        return header, True
    _refuse_repeated_ids(path, hashes)
    return header, False


def _top_level_errors(header) -> list:
    """The problems of a document's top-level fields (its entries aside)."""
    errors = []
    _shape_errors(dict(header, database={}), errors)
    return errors


def _top_level_version(header) -> int:
    """The schema version a header states (0, the most lenient for entries, when it does not
    state a valid one)."""
    errors = []
    version = _shape_errors(dict(header, labels=[], database={}), errors)
    return 0 if errors else version


def _refuse_repeated_ids(path, hashes):
    """AnnotationError naming a video id that the file's database gives twice (found by the
    ids' hashes; a second reading names it)."""
    values, counts = np.unique(np.frombuffer(hashes, dtype=np.int64), return_counts=True)
    twice = set(values[counts > 1].tolist())
    if not twice:
        return
    seen, repeated = set(), []

    def begin(header):
        def on_entry(vid, entry):
            if hash(vid) in twice:
                if vid in seen:
                    repeated.append(vid)
                seen.add(vid)
        return on_entry

    with open(path, encoding="utf-8") as f, cycle_collector_paused():
        read_object_streaming(f, "database", begin)
    if repeated:
        raise AnnotationError(f"{path}: video id {repeated[0]!r} appears "
                              f"{1 + repeated.count(repeated[0])} times in 'database' "
                              f"({len(set(repeated))} repeated id(s))")


def file_version(doc) -> int:
    """Schema version of a (shape-checked) document: 0 for the reference's files."""
    return doc["version"] if "format" in doc else 0


def root_frame_base(root) -> int:
    """Number of the first frame in the segments of a version-1 file's entries stored under
    `root` (a ``roots`` item, or None for an entry without one): its ``frame_base``, else 1."""
    return int((root or {}).get("frame_base", FRAME_BASE))


def entry_frame_base(doc, root_name):
    """First frame number of the segments of `doc`'s entries with root `root_name`, or None
    for the reference's files, which do not say (the store's own numbering applies)."""
    if file_version(doc) < 1:
        return None
    return root_frame_base((doc.get("roots") or {}).get(root_name))


def entry_labels(entry) -> list:
    """Every class of an entry, once each, in file order: its ``annotations.labels``, else its
    ``annotations.label``, else the labels of its ``annotations.segments`` (or of the
    reference's ActivityNet list of segments); empty for an unlabelled video."""
    ann = entry.get("annotations") or {}
    if isinstance(ann, list):
        return list(dict.fromkeys(a["label"] for a in ann if a.get("label") is not None))
    if "labels" in ann:
        return list(ann["labels"])
    if ann.get("label") is not None:
        return [ann["label"]]
    return list(dict.fromkeys(s["label"] for s in ann.get("segments") or []
                              if s.get("label") is not None))


def entry_segments(entry) -> list:
    """An entry's labelled spans as (label, frame segment or None, seconds or None): its
    ``annotations.segments``, or the reference's ActivityNet list (segments in seconds)."""
    ann = entry.get("annotations") or {}
    if isinstance(ann, list):
        return [(a.get("label"), None, a.get("segment")) for a in ann]
    return [(s.get("label"), s.get("segment"), s.get("segment_sec"))
            for s in ann.get("segments") or []]


def check_shape(doc, path="<annotation>") -> None:
    """Raise AnnotationError unless `doc` has the structure every reader relies on: a known
    format and version, a list of class names, and a database of entries that each have a
    ``subset`` and an ``annotations`` object (or the reference's ActivityNet list)."""
    errors = []
    _shape_errors(doc, errors)
    _raise(errors, path)


def validate(doc, path="<annotation>", *, require_frames=False) -> None:
    """Raise AnnotationError listing (up to 20 of) the problems of a document (one line when
    there is one)."""
    errors = []
    version = _shape_errors(doc, errors, entries=False)
    if not errors:
        _check_document(doc, version, errors, require_frames)
    _raise(errors, path)


def _raise(errors, path):
    if len(errors) == 1:
        raise AnnotationError(f"{path}: {errors[0]}")
    if errors:
        shown = "\n  ".join(errors[:MAX_REPORTED_ERRORS])
        more = len(errors) - MAX_REPORTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise AnnotationError(f"{path}: {len(errors)} problem(s):\n  {shown}{tail}")


def _shape_errors(doc, errors, entries=True):
    """Append the structural problems of `doc` (and of its entries, with `entries`) to
    `errors`; return its schema version (0 when it cannot be told)."""
    if not isinstance(doc, dict):
        errors.append(f"top level is a {type(doc).__name__}, expected an object")
        return 0
    version = 0
    if "format" in doc:
        if doc["format"] != FORMAT_NAME:
            errors.append(f"'format' is {doc['format']!r}, expected {FORMAT_NAME!r}")
            return 0
        version = doc.get("version")
        if not _is_int(version) or version < 1:
            errors.append(f"'version' is {version!r}, expected a positive integer")
            return 0
        if version > SCHEMA_VERSION:
            errors.append(f"schema version {version} is newer than this reader's "
                          f"({SCHEMA_VERSION}); update r3d")
            return 0
    for key in ("labels", "database"):
        if key not in doc:
            errors.append(f"missing top-level '{key}'")
    if errors:
        return 0
    labels = doc["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        errors.append("'labels' must be a list of non-empty strings")
    elif len(set(labels)) != len(labels):
        seen = set()
        twice = next(x for x in labels if x in seen or seen.add(x))
        errors.append(f"label {twice!r} is given twice in 'labels' "
                      f"({len(labels) - len(set(labels))} repeated name(s))")
    if not isinstance(doc.get("multi_label", False), bool):
        errors.append(f"'multi_label' is {doc['multi_label']!r}: it must be true or false")
    if not isinstance(doc["database"], dict):
        errors.append("'database' must be an object mapping video ids to entries")
    if version >= 1 and not errors:
        _roots_shape(doc.get("roots"), errors)
    if not errors and entries:
        for vid, entry in doc["database"].items():
            problem = _entry_shape_problem(entry, version)
            if problem:
                errors.append(f"video {vid!r}: {problem}")
                if len(errors) >= MAX_REPORTED_ERRORS:
                    break
    return version


def _roots_shape(roots, errors):
    """`roots`: what entry_frame_base reads (the full validation checks the rest)."""
    if roots is None:
        return
    if not isinstance(roots, dict):
        errors.append("'roots' must be an object")
        return
    for name, root in roots.items():
        if not isinstance(root, dict):
            errors.append(f"root {name!r}: must be an object")
        elif root.get("frame_base", FRAME_BASE) not in (0, 1):
            errors.append(f"root {name!r}: frame_base {root.get('frame_base')!r} must be 0 or 1")


def _entry_shape_problem(entry, version):
    """What would keep entry_labels, entry_segments or entry_frame_base from reading an entry,
    or None."""
    if type(entry) is dict and entry.get("subset") in _SUBSET_NAMES:  # the common shape
        ann, root = entry.get("annotations", {}), entry.get("root")
        if type(ann) is dict and "labels" not in ann and "segments" not in ann and \
                (root is None or type(root) is str):
            label, segment = ann.get("label"), ann.get("segment")
            if (label is None or type(label) is str) and (segment is None or (
                    type(segment) is list and len(segment) == 2 and type(segment[0]) is int
                    and type(segment[1]) is int and 0 <= segment[0] < segment[1] <= MAX_FRAME)):
                return None
    if not isinstance(entry, dict):
        return "entry must be an object"
    if "subset" not in entry:
        return "entry without 'subset'"
    subset = entry["subset"]
    if subset not in _SUBSET_NAMES:
        exact = next((name for name in SUBSETS if isinstance(subset, str)
                      and subset.strip().casefold() == name), None)
        hint = f" (names are exact: write {exact!r})" if exact else ""
        return f"subset {subset!r} is not one of {', '.join(SUBSETS)}{hint}"
    if entry.get("root") is not None and not isinstance(entry["root"], str):
        return f"root {entry['root']!r} must be a root's name"
    ann = entry.get("annotations", {})
    if isinstance(ann, list) and version == 0:
        items = ann
    elif isinstance(ann, dict):
        labels = ann.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            return "'labels' must be a list of class names"
        if ann.get("label") is not None and not isinstance(ann["label"], str):
            return f"label {ann['label']!r} must be a class name"
        items = ann.get("segments") or []
        if not isinstance(items, list):
            return "'segments' must be a list"
        problem = _frame_span_problem(ann.get("segment"))
        if problem:
            return problem
    else:
        return "'annotations' must be an object"
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("label", ""), str):
            return "each segment must be an object whose 'label' is a class name"
        # frame spans; the reference's ActivityNet list (version 0) gives seconds instead
        problem = _frame_span_problem(item.get("segment")) if items is not ann else None
        if problem:
            return problem
    return None


def _frame_span_problem(segment):
    """Why `segment` (None: the whole video) is not a frame span [first, last + 1], or None."""
    if segment is None:
        return None
    if not (type(segment) is list and len(segment) == 2 and all(map(_is_int, segment))):
        return f"segment {segment!r} must be [first_frame, last_frame + 1], two integers"
    first, stop = segment
    if not 0 <= first < stop:
        return f"segment {segment!r} is empty or reversed: its first frame must come first"
    if stop > MAX_FRAME:
        return f"segment {segment!r} runs past the largest frame number ({MAX_FRAME})"
    return None


def _check_document(doc, version, errors, require_frames):
    labels = doc["labels"]
    label_set = set(labels)
    roots, sources = {}, {}
    multi = False
    if version >= 1:
        roots = _check_roots(doc.get("roots"), errors)
        sources = doc.get("sources")
        if not isinstance(sources, dict):
            errors.append("'sources' must be an object")
            sources = {}
        multi = doc.get("multi_label", False)
        _check_label_sources(doc.get("label_sources"), len(labels), errors)
        if not isinstance(doc.get("history", []), list):
            errors.append("'history' must be a list")
    bases = {name: entry_frame_base(doc, name) for name in roots}  # read once per root
    bases[None] = entry_frame_base(doc, None)
    fast = version >= 1 and multi is False and not errors
    for vid, entry in doc["database"].items():
        if fast and _plain_entry_ok(entry, bases, label_set, roots, sources, require_frames):
            continue
        if len(errors) > MAX_REPORTED_ERRORS * 5:
            break
        problem = _entry_shape_problem(entry, version)
        if problem:
            errors.append(f"video {vid!r}: {problem}")
            continue
        root = entry.get("root")
        base = bases[root] if root in bases else entry_frame_base(doc, root)
        _check_entry(vid, entry, base, label_set, roots, sources, multi, version,
                     require_frames, errors)


def _plain_entry_ok(entry, bases, label_set, roots, sources, require_frames) -> bool:
    """Whether an entry of the usual shape (one label or none, a frame segment or none, the
    usual fields) is valid, checked in one go: True passes what `_entry_shape_problem` and
    `_check_entry` would; False leaves the entry to them, for the messages (a version-1,
    single-label file)."""
    if type(entry) is not dict:
        return False
    ann = entry.get("annotations")
    if type(ann) is not dict or entry.get("subset") not in _SUBSET_NAMES or "labels" in ann \
            or "segments" in ann:
        return False
    label = ann.get("label")
    root = entry.get("root")
    source = entry.get("source")
    if not ((label is None or (type(label) is str and label in label_set))
            and (root is None or (type(root) is str and root in roots))
            and (source is None or (type(source) is str and source in sources))):
        return False
    n = entry.get("n_frames")
    if n is not None and (type(n) is not int or n < 0):
        return False
    fps = entry.get("fps")
    if fps is not None and not ((type(fps) is float or type(fps) is int) and 0 < fps < math.inf):
        return False
    segment = ann.get("segment")
    if segment is None:
        if require_frames:
            return False
    else:
        if type(segment) is not list or len(segment) != 2:
            return False
        first, stop = segment
        base = bases[root]
        if type(first) is not int or type(stop) is not int or not base <= first < stop or (
                n is not None and stop > base + n):
            return False
    store_id = entry.get("store_id")
    if store_id is not None and name_problem(store_id):
        return False
    path = entry.get("video_path")
    return path is None or _posix_without_dotdot(path)


def _check_roots(roots, errors):
    """What _roots_shape leaves: each root's format and path."""
    roots = roots or {}
    for name, root in roots.items():
        fmt = root.get("format")
        if fmt is not None and fmt not in STORE_FORMATS:
            errors.append(f"root {name!r}: format {fmt!r} is not one of {sorted(STORE_FORMATS)}")
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


def _check_entry(vid, entry, base, label_set, roots, sources, multi, version, require_frames,
                 errors):
    where = f"video {vid!r}"
    ann = entry.get("annotations")
    if version == 0 and isinstance(ann, list):
        _check_reference_list(where, ann, label_set, errors)
        return
    if ann is None:
        errors.append(f"{where}: no 'annotations' object")
        return
    label = ann.get("label")
    if label is not None and label not in label_set:
        errors.append(f"{where}: label {label!r} is not in 'labels'")
    if "labels" in ann:
        tags = ann["labels"]
        if not tags:
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
        store_id = entry.get("store_id")
        problem = None if store_id is None else name_problem(store_id)
        if problem:
            errors.append(f"{where}: store_id {store_id!r} {problem} (it is a path inside "
                          "the store)")
        # the reference's video_path: absolute, or (files written before store_id) a store id
        path = entry.get("video_path")
        if path is not None and not _posix_without_dotdot(path):
            errors.append(f"{where}: video_path {path!r} must be a '/'-separated path "
                          "without '..'")
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
    for k, seg in enumerate(ann.get("segments") or []):
        w = f"{where} segment {k}"
        if seg.get("label") is not None and seg["label"] not in label_set:
            errors.append(f"{w}: label {seg['label']!r} is not in 'labels'")
        if seg.get("segment") is not None:
            _check_segment(w, seg["segment"], base, n_frames, errors)
        sec = seg.get("segment_sec")
        if sec is not None and not _is_span(sec):
            errors.append(f"{w}: segment_sec {sec!r} must be [start, end] seconds")


def _check_reference_list(where, ann, label_set, errors):
    """The reference's ActivityNet entries: a list of {label, segment: [start, end] seconds}."""
    for k, seg in enumerate(ann):
        w = f"{where} segment {k}"
        if seg.get("label") is not None and seg["label"] not in label_set:
            errors.append(f"{w}: label {seg['label']!r} is not in 'labels'")
        if not _is_span(seg.get("segment")):
            errors.append(f"{w}: segment {seg.get('segment')!r} must be [start, end] seconds")


def _check_segment(where, segment, base, n_frames, errors):
    """`base` None (a reference file): frames may count from 0 or from 1."""
    if not (isinstance(segment, list) and len(segment) == 2 and all(map(_is_int, segment))):
        errors.append(f"{where}: segment {segment!r} must be [first_frame, last_frame + 1]")
        return
    first, stop = segment
    lowest = 0 if base is None else base
    if first < lowest or stop <= first:
        errors.append(f"{where}: segment {segment} is empty or starts before frame {lowest}")
    elif n_frames is not None and stop > (1 if base is None else base) + n_frames:
        errors.append(f"{where}: segment {segment} runs past the video's {n_frames} frames")


def _is_span(sec):
    return (isinstance(sec, list) and len(sec) == 2
            and all(isinstance(t, (int, float)) and not isinstance(t, bool)
                    and math.isfinite(t) for t in sec) and sec[0] <= sec[1])


def _is_int(x):
    return type(x) is int or (isinstance(x, int) and not isinstance(x, bool))


def _posix_without_dotdot(path):
    return (isinstance(path, str) and bool(path) and "\\" not in path
            and ".." not in path.split("/"))
