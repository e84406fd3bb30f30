"""An annotation file's videos as samples: catalog rows, frame ranges, labels and ids in numpy
arrays (bytes per video, no Python object per video).

`read_samples` builds every subset's samples in one pass over the file's entries, streamed
from disk (`storeformat.annotation.stream_annotation`), so that no entry outlives its turn:
a run's datasets then each `select` theirs. Entries of the common shape (one label or none, a
frame segment or none, a ``store_id``, a root with a declared frame base searched in one
store) are looked up and checked in batches with numpy (`SimpleEntries`); every other entry,
and any simple one that misses or does not fit its video, goes through `_entry_samples`, whose
rules and messages are the reference.
"""
import math
from array import array

import numpy as np

from storeformat import video_key
from storeformat.annotation import (entry_frame_base, entry_labels, entry_segments,
                                    stream_annotation)

from .errors import FrameReadError

#: How an entry with labelled segments becomes samples: one per segment, or one per video.
SEGMENT_MODES = ("each", "video")
_MODE_BITS = {"each": 1, "video": 2}
#: Group path prefix of a video inside an r3d HDF5 shard (storeformat.video_key).
SHARD_GROUP_PREFIX = video_key("")
#: Simple entries looked up together (their entries are kept until then, for the slow path).
BATCH = 16384
_UNSET = object()


class Sample:
    """One unit of a dataset as a Python object: a video (or a segment of it) in a store.
    Datasets hold their samples as arrays (`SampleTable`); this is a view of one, for
    callers and messages."""
    __slots__ = ("video_id", "store", "key", "frames", "label", "labels", "shift")

    def __init__(self, video_id, store, key, frames, label, labels, shift=0):
        self.video_id, self.store, self.key, self.frames = video_id, store, key, frames
        self.label, self.labels, self.shift = label, labels, shift

    def __repr__(self):
        return (f"Sample({self.video_id!r}, key={self.key!r}, frames=[{self.frames.start}, "
                f"{self.frames.stop}), label={self.label})")


def _gather(values, ptr, index, block=1 << 16):
    """The variable-length items `index` of a CSR pair (values, ptr), as a new pair; a block
    of items at a time, so that the positions gathered (8 bytes per value) stay small."""
    lengths = ptr[index + 1] - ptr[index]
    new_ptr = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_ptr[1:])
    out = np.empty(int(new_ptr[-1]), dtype=values.dtype)
    for s in range(0, len(index), block):
        e = min(s + block, len(index))
        lo, hi = int(new_ptr[s]), int(new_ptr[e])
        at = np.repeat(ptr[index[s:e]] - new_ptr[s:e], lengths[s:e]) + np.arange(lo, hi)
        out[lo:hi] = values[at]
    return out, new_ptr


class SampleTable:
    """A dataset's samples as numpy arrays: catalog row, frames [start, stop) in the store's
    numbering, label (-1: none), the shift from the file's numbering to the store's, every
    label (CSR: `label_ptr`, `label_values`) and the annotation's video id (UTF-8 bytes, CSR:
    `id_ptr`, `id_bytes`). Indexing gives a `Sample` view."""

    def __init__(self, catalog, rows, starts, stops, labels, shifts, label_ptr, label_values,
                 id_ptr, id_bytes):
        self.catalog = catalog
        self.rows = np.asarray(rows, dtype=np.int64)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.stops = np.asarray(stops, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int32)
        self.shifts = np.asarray(shifts, dtype=np.int8)
        self.label_ptr = np.asarray(label_ptr, dtype=np.int64)
        self.label_values = np.asarray(label_values, dtype=np.int32)
        self.id_ptr = np.asarray(id_ptr, dtype=np.int64)
        self.id_bytes = np.asarray(id_bytes, dtype=np.uint8)

    def __len__(self):
        return len(self.rows)

    def take(self, index) -> "SampleTable":
        """The samples at `index` (an integer array), in that order."""
        index = np.asarray(index, dtype=np.int64)
        labels, label_ptr = _gather(self.label_values, self.label_ptr, index)
        ids, id_ptr = _gather(self.id_bytes, self.id_ptr, index)
        return SampleTable(self.catalog, self.rows[index], self.starts[index],
                           self.stops[index], self.labels[index], self.shifts[index],
                           label_ptr, labels, id_ptr, ids)

    def frames(self, i) -> range:
        return range(int(self.starts[i]), int(self.stops[i]))

    def labels_of(self, i) -> tuple:
        return tuple(self.label_values[self.label_ptr[i]:self.label_ptr[i + 1]].tolist())

    def video_id(self, i) -> str:
        return self.id_bytes[self.id_ptr[i]:self.id_ptr[i + 1]].tobytes().decode(
            "utf-8", "surrogateescape")

    def __getitem__(self, i) -> Sample:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        row = int(self.rows[i])
        return Sample(self.video_id(i), self.catalog.store(row), self.catalog.key(row),
                      self.frames(i), int(self.labels[i]), self.labels_of(i),
                      int(self.shifts[i]))

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class AnnotationSamples:
    """Every sample of an annotation file, with its subset and the segment modes it belongs
    to, and the entries that gave none, with the reason; the file's top-level fields in
    `header` (labels, multi_label, roots...)."""

    def __init__(self, source, header, catalog, table, subsets, modes, subset_names,
                 problems):
        self.source = source  # the file, for messages
        self.header, self.catalog, self.table = header, catalog, table
        self.subsets, self.modes = subsets, modes
        self.subset_names = subset_names  # subset code -> the name the file spells
        self.problems = problems  # (subset code, mode bits, video id, reason), in file order

    @property
    def present_subsets(self) -> set:
        """The subsets the file's entries name (usable or not)."""
        return set(self.subset_names)

    def select(self, subset, segments="each"):
        """(SampleTable, [(video id, reason)]) of subset `subset` (None: all) in mode
        `segments`, in file order."""
        if segments not in SEGMENT_MODES:
            raise ValueError(f"segments must be one of {SEGMENT_MODES}, got {segments!r}")
        bit = _MODE_BITS[segments]
        keep = (self.modes & bit) != 0
        code = None
        if subset is not None:
            code = self.subset_names.index(subset) if subset in self.subset_names else -2
            keep &= self.subsets == code
        problems = [(vid, reason) for s, bits, vid, reason in self.problems
                    if bits & bit and (code is None or s == code)]
        return self.table.take(np.flatnonzero(keep)), problems


def read_samples(annotation, catalog, catalog_for=None) -> AnnotationSamples:
    """Every sample of an annotation file (a path, streamed, or a document dict) in the stores
    of `catalog` (a training.data.videos.VideoCatalog); `catalog_for(header)` builds the catalog
    from the file's header instead, when the caller has none yet."""
    builders = []

    def start(header):
        builder = SampleBuilder(header, catalog if catalog is not None else catalog_for(header))
        builders[:] = [builder]
        return builder.add

    if isinstance(annotation, dict):
        header = {k: v for k, v in annotation.items() if k != "database"}
        add = start(header)
        for vid, entry in annotation["database"].items():
            add(vid, entry)
    else:
        header = stream_annotation(annotation, start)
        if not builders:  # a file without entries
            start(header)
    source = "<annotation>" if isinstance(annotation, dict) else str(annotation)
    return builders[0].finish(source, header)


class SampleBuilder:
    """Samples gathered entry by entry: simple entries in batches (`SimpleEntries`), the
    others one at a time (`_entry_samples`); `finish` puts them in file order."""

    def __init__(self, header, catalog):
        self.header, self.catalog = header, catalog
        self.class_index = {name: i for i, name in enumerate(header["labels"])}
        self.bases = {}  # root -> declared frame base
        # position, row, start, stop, label, shift, subset code, mode bits
        self.columns = [array(t) for t in "qqqqibbb"]
        self.label_ptr, self.label_values = array("q", [0]), array("i")
        self.id_ptr, self.id_bytes = array("q", [0]), bytearray()
        self.subset_codes, self.problems = {}, []
        self.position = 0
        self.simple = SimpleEntries(self)

    def base(self, root):
        if root not in self.bases:
            self.bases[root] = entry_frame_base(self.header, root)
        return self.bases[root]

    def add(self, vid, entry):
        """Take the next entry of the file."""
        subset = entry.get("subset")
        code = self.subset_codes.get(subset) if type(subset) is str else -1
        if code is None:
            code = self.subset_codes[subset] = len(self.subset_codes)
        position = self.position
        self.position += 1
        if not self.simple.take(position, code, vid, entry):
            self.slow(position, code, vid, entry)

    def slow(self, position, code, vid, entry):
        """The entry-by-entry rules: in both segment modes when they differ (an entry with
        segments), else once for both."""
        ann = entry.get("annotations")
        modes = ["each", "video"] if isinstance(ann, list) or (
            isinstance(ann, dict) and ann.get("segments")) else [None]
        for mode in modes:
            bits = _MODE_BITS[mode] if mode else 3
            try:
                found = _entry_samples(vid, entry, self, mode or "each")
            except (ValueError, LookupError, FrameReadError) as e:
                self.problems.append((position, code, bits, vid, str(e)))
                continue
            for row, frames, label, labels, shift in found:
                self.append(position, row, frames.start, frames.stop, label, shift, code, bits,
                            labels, vid)

    def append(self, position, row, start, stop, label, shift, code, bits, labels, vid):
        for column, value in zip(self.columns, (position, row, start, stop, label, shift, code,
                                                bits)):
            column.append(value)
        self.label_values.extend(labels)
        self.label_ptr.append(len(self.label_values))
        self.id_bytes += vid.encode("utf-8", "surrogateescape")
        self.id_ptr.append(len(self.id_bytes))

    def finish(self, source, header) -> AnnotationSamples:
        self.simple.flush()
        self.catalog.freeze()
        columns = [np.frombuffer(c, dtype=c.typecode) if len(c) else
                   np.zeros(0, dtype=c.typecode) for c in self.columns]
        order = np.argsort(columns[0], kind="stable")
        label_ptr = np.frombuffer(self.label_ptr, dtype=np.int64)
        id_ptr = np.frombuffer(self.id_ptr, dtype=np.int64)
        label_values = np.frombuffer(self.label_values, dtype=np.int32) \
            if len(self.label_values) else np.zeros(0, dtype=np.int32)
        table = SampleTable(self.catalog, *(c for c in columns[1:6]), label_ptr, label_values,
                            id_ptr, np.frombuffer(bytes(self.id_bytes), dtype=np.uint8))
        self.problems.sort(key=lambda p: p[0])
        return AnnotationSamples(source, header, self.catalog, table.take(order), columns[6][order],
                                 columns[7][order], list(self.subset_codes),
                                 [p[1:] for p in self.problems])


class SimpleEntries:
    """The entries of the fast path, gathered one by one and looked up a batch at a time."""

    def __init__(self, builder):
        self.builder = builder
        self.catalog, self.class_index = builder.catalog, builder.class_index
        self._roots = {}  # root -> declared frame base, or None when not simple
        self._reset()

    def _reset(self):
        # root -> ([position, subset code, label, start, stop, ...], [(store id, video id,
        # entry), ...])
        self.groups = {}
        self.n = 0

    def _base(self, root):
        if root not in self._roots:
            base = self.builder.base(root)
            try:
                one_store = len(self.catalog.stores_for(root)) == 1
            except LookupError:
                one_store = False
            self._roots[root] = base if one_store else None
        return self._roots[root]

    def take(self, position, code, vid, entry) -> bool:
        """Keep an entry of the simple shape for the next lookup; False for any other."""
        ann = entry.get("annotations")
        key = entry.get("store_id")
        if type(ann) is not dict or type(key) is not str or not key or "key" in entry \
                or "segments" in ann or "labels" in ann:
            return False
        root = entry.get("root")
        base = self._roots.get(root, _UNSET)
        if base is None or (base is _UNSET and self._base(root) is None):
            return False
        name = ann.get("label")
        label = -1 if name is None else self.class_index.get(name)
        segment = ann.get("segment")
        if label is None:
            return False
        if segment is None:
            a, b, whole = 0, 0, 1
        elif type(segment) is list and len(segment) == 2 and type(segment[0]) is int \
                and type(segment[1]) is int:
            (a, b), whole = segment, 0
        else:
            return False
        group = self.groups.get(root)
        if group is None:
            group = self.groups[root] = ([], [])
        group[0].extend((position, code, label, a, b, whole))
        group[1].append((key, vid, entry))
        self.n += 1
        if self.n >= BATCH:
            self.flush()
        return True

    def flush(self):
        """Look up the gathered entries: those found whose segment fits their video become
        samples, the others go through the entry-by-entry rules."""
        builder, catalog = self.builder, self.catalog
        for root, group in self.groups.items():
            numbers = np.array(group[0], dtype=np.int64).reshape(-1, 6)
            positions, codes, labels, starts, stops, whole = numbers.T
            whole = whole.astype(bool)  # no segment: the whole video
            keys, vids, entries = zip(*group[1])
            rows = catalog.find_many(root, keys)
            n = np.zeros(len(rows), dtype=np.int64)
            first = np.zeros(len(rows), dtype=np.int64)
            found = rows >= 0
            n[found] = catalog.n_frames_many(rows[found])
            first[found] = catalog.first_frames(rows[found])
            shift = first - self._roots[root]
            a = np.where(whole, first, starts + shift)
            b = np.where(whole, first + n, stops + shift)
            kept = found & (n >= 1) & (first <= a) & (a < b) & (b <= first + n)
            for i in np.flatnonzero(~kept).tolist():
                builder.slow(int(positions[i]), int(codes[i]), vids[i], entries[i])
            keep = np.flatnonzero(kept)
            values = (positions, rows, a, b, labels, shift, codes, np.full(len(a), 3))
            for column, v in zip(builder.columns, values):
                _extend(column, v[keep])
            # one label each (or none): the CSR columns extended all at once
            labelled = labels[keep] >= 0
            _extend(builder.label_ptr, len(builder.label_values) + np.cumsum(labelled))
            _extend(builder.label_values, labels[keep][labelled])
            encoded = [vids[i].encode("utf-8", "surrogateescape") for i in keep.tolist()]
            _extend(builder.id_ptr, len(builder.id_bytes) + np.cumsum(
                np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))))
            builder.id_bytes += b"".join(encoded)
        self._reset()


def _extend(column, values):
    """Append numpy `values` to an array.array, converted to its type."""
    column.frombytes(np.asarray(values).astype(column.typecode, copy=False).tobytes())


def candidate_keys(video_id, entry, label_names=()) -> list:
    """Store keys an entry's video may have, most specific first: the r3d shard group
    (``key`` = videos/<id>), ``store_id`` (r3d-annotate's), ``video_path`` (with a per-video
    file's suffix dropped), then the reference's rule: <label>/<id> for labelled videos (each
    label of a multi-label one), test/<id> for unlabelled ones, <id>, and v_<id>
    (ActivityNet)."""
    keys = []
    group = entry.get("key")
    if isinstance(group, str) and group.startswith(SHARD_GROUP_PREFIX):
        keys.append(group[len(SHARD_GROUP_PREFIX):])
    if isinstance(entry.get("store_id"), str) and entry["store_id"]:
        keys.append(entry["store_id"])
    path = entry.get("video_path")
    if path:
        keys.append(path)
        for suffix in (".hdf5", ".h5"):
            if path.endswith(suffix):
                keys.append(path[:-len(suffix)])
    keys += [f"{name}/{video_id}" for name in label_names]
    if not label_names:
        keys.append(f"test/{video_id}")
    keys += [video_id, f"v_{video_id}"]
    return list(dict.fromkeys(keys))


def _guess_frame_base(ann, spans, first, n):
    """Numbering of a file that does not declare it (the reference's files): the store's own,
    unless the frame segments fit the video only when counted from the other base (0 or 1),
    e.g. the reference's [1, n + 1] for a whole video read from an HDF5 store."""
    segments = [s for _, s, _ in spans if s is not None]
    if isinstance(ann, dict) and ann.get("segment") is not None:
        segments.append(ann["segment"])

    def fits(base):
        return all(base <= int(a) < int(b) <= base + n for a, b in segments)

    other = 1 - first
    return other if segments and not fits(first) and fits(other) else first


def _entry_samples(vid, entry, builder, mode):
    stores, class_index = builder.catalog, builder.class_index
    ann = entry.get("annotations") or {}
    spans = entry_segments(entry)
    names = entry_labels(entry)
    for name in names:
        if name not in class_index:
            raise ValueError(f"label {name!r} is not in the file's labels")
    row = stores.find(entry.get("root"),
                      candidate_keys(vid, entry, names if isinstance(ann, dict) else ()), vid)
    n = stores.n_frames(row)
    if n < 1:
        raise ValueError(f"{stores.store(row)}: '{stores.key(row)}' has no frames")
    first = stores.first_frame(row)
    declared = builder.base(entry.get("root"))
    if declared is None:
        declared = _guess_frame_base(ann, spans, first, n)
    shift = first - declared
    whole = range(first, first + n)

    def frames_of(segment, seconds):
        if segment is not None:
            a, b = int(segment[0]) + shift, int(segment[1]) + shift
            if not (first <= a < b <= first + n):
                raise ValueError(f"segment {list(segment)} lies outside the {n} frames of "
                                 f"{stores.store(row)}: '{stores.key(row)}' (frames "
                                 f"{first - shift}.."
                                 f"{first + n - 1 - shift} in the file's numbering)")
            return range(a, b)
        if seconds is None:
            raise ValueError("a segment with neither 'segment' (frames) nor 'segment_sec'")
        fps = entry.get("fps") or stores.fps(row)
        if not fps:
            raise ValueError("segment given in seconds, but neither the entry nor the store "
                             "index has the video's fps")
        # The reference's conversion: frame floor(t * fps) counted from the first frame; the
        # end is clamped to the video (annotations often run past a shortened download).
        a = first + int(math.floor(seconds[0] * fps))
        b = min(first + int(math.floor(seconds[1] * fps)), first + n)
        if not a < b:
            raise ValueError(f"segment {list(seconds)} s (fps {fps}) holds no frame of the "
                             f"{n}-frame video")
        return range(a, b)

    indices = tuple(class_index[x] for x in names)
    if spans and mode == "each":
        return [(row, frames_of(seg, sec), class_index.get(name, -1),
                 (class_index[name],) if name is not None else (), shift)
                for name, seg, sec in spans]
    segment = ann.get("segment") if isinstance(ann, dict) else None
    frames = frames_of(segment, None) if segment is not None else whole
    return [(row, frames, indices[0] if indices else -1, indices, shift)]
