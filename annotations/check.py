"""Checking an annotation file against its frame stores.

Reports, per store (``roots`` entry): annotated videos that are missing, empty or failed in the
store, ambiguous ones, videos the index lists but whose frames are not on disk, videos whose
frame count in the file differs from the store's, and store videos the file does not mention.
Each store is read from its index.jsonl when it has one, else scanned. The on-disk test uses
the files alone (seconds for a million videos): an r3d shard exists and is one (each opened
once, its layout attribute read), a reference .hdf5 video file exists, a JPEG directory has its
first and last frame files. ``deep`` also reads what every frame needs: the video's group in
its shard with its offsets (n_frames + 1 of them, rising, ending at the size of its JPEG
data), the length of a reference file's ``video`` dataset, every frame file of a directory.
Each video not on disk gets a reason naming the file. Index paths are untrusted: each goes
through storeformat.paths.inside before anything is opened, and ``deep`` refuses a group whose
datasets would be read from another file (storeformat.h5local).
"""
import os
import re
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np

from storeformat import HDF5_LAYOUT, INDEX_NAME, frame_name, frame_path, video_key
from storeformat.annotation import STORE_FORMATS, AnnotationError, root_frame_base
from storeformat.h5local import outside_problem
from storeformat.hdf5 import attr_value
from storeformat.paths import UnsafePath, inside, name_problem

from .entries import Entry
from .matching import find_videos, match_entries
from .store import StoreListing, StoreColumns
from .builders.kinetics import store_alias

_KINETICS_ID = re.compile(r"^(?P<yt>[A-Za-z0-9_-]{11})_(?P<s>\d{6})_(?P<e>\d{6})$")
PROBLEMS = ("missing", "empty", "failed", "ambiguous", "not_on_disk", "frame_count_mismatch")


class CheckResult:
    """Outcome for one store."""

    def __init__(self, root, origin, n_videos, problems, unclaimed, reasons=None):
        self.root = root
        self.origin = origin
        self.n_videos = n_videos
        self.problems = problems
        self.unclaimed = unclaimed
        #: Why each video is not on disk (its file and what is wrong), by annotation id.
        self.reasons = reasons or {}

    @property
    def ok(self):
        return not any(self.problems.values())

    def lines(self, limit=5):
        out = [f"store {self.root!r} ({self.origin}): {self.n_videos} annotated videos"]
        for what in PROBLEMS:
            ids = self.problems.get(what) or []
            if ids:
                out.append(f"  {len(ids)} {what.replace('_', ' ')}: "
                           + ", ".join(ids[:limit]) + (" ..." if len(ids) > limit else ""))
                if what == "not_on_disk":
                    out.extend(self._reason_lines(ids, limit))
        if self.unclaimed:
            out.append(f"  {len(self.unclaimed)} store videos are not in the annotation: "
                       + ", ".join(self.unclaimed[:limit])
                       + (" ..." if len(self.unclaimed) > limit else ""))
        if self.ok:
            out.append("  every annotated video has its frames in the store")
        return out

    def _reason_lines(self, ids, limit):
        """The reasons videos are not on disk, the most frequent first (a missing shard is one
        line, whatever the number of its videos)."""
        counts = Counter(self.reasons[i] for i in ids if i in self.reasons)
        first = {}
        for i in ids:
            first.setdefault(self.reasons.get(i), i)
        out = [f"    {reason} ({n} videos)" if n > 1 else f"    {reason} ({first[reason]})"
               for reason, n in counts.most_common(limit)]
        if len(counts) > limit:
            out.append(f"    ... and {len(counts) - limit} more reasons")
        return out

    def to_dict(self):
        return {"root": self.root, "store": self.origin, "videos": self.n_videos,
                "problems": self.problems, "not_in_annotation": self.unclaimed,
                "reasons": self.reasons}


def check_stores(doc, *, index=None, frames_root=None, root=None, deep=False, prepared=None):
    """Check every store a document uses (or only `root`); `index` / `frames_root` name the
    store to use instead of the path the file records (then for `root`, or the only root).
    `deep` reads every video's frame metadata too (see the module docstring). `prepared`:
    {root name: PreparedStore or a future of one}, read ahead by `prepare_stores`."""
    groups = OrderedDict()
    for vid, entry in doc["database"].items():
        groups.setdefault(entry.get("root"), []).append((vid, entry))
    roots = doc.get("roots") or {}
    if root is not None:
        if root not in groups:
            raise AnnotationError(f"no video of the file lives in root {root!r} "
                                  f"(roots: {sorted(r for r in groups if r)})")
        groups = OrderedDict([(root, groups[root])])
    override = index is not None or frames_root is not None
    if override and len(groups) > 1:
        raise AnnotationError(f"the file spans roots {sorted(map(str, groups))}; say which one "
                              f"--index/--frames-root stands for with --root")
    results = []
    for name, items in groups.items():
        store = (prepared or {}).get(root if override else name)
        if store is not None:
            store = store.result() if hasattr(store, "result") else store
        else:
            store = _store_for(name, roots, index, frames_root, deep)
        info = roots.get(name) or {}
        if isinstance(store, PreparedStore):
            results.append(_check_columns(name, items, store, info, deep))
        else:
            results.append(_check_root(name, items, store, info, deep))
    return results


def store_source(name, roots, index=None, frames_root=None):
    """(index file or None, frames root or None) of root `name`'s store: the options', else
    the path the file records (its index when it has one, else the directory to scan)."""
    if index is not None or frames_root is not None:
        return index, frames_root
    path = (roots.get(name) or {}).get("path")
    if path is None:
        raise AnnotationError(f"root {name!r} records no store path; pass --index or "
                              f"--frames-root")
    if (Path(path) / INDEX_NAME).is_file():
        return Path(path), None
    return None, Path(path)


def _store_for(name, roots, index, frames_root, deep):
    index, frames_root = store_source(name, roots, index, frames_root)
    if index is not None:
        return prepare_store(index, frames_root, deep)
    return StoreListing.scan(frames_root)


def prepare_stores(header, *, index=None, frames_root=None, root=None, deep=False,
                   workers=None) -> tuple:
    """Start reading the indexed stores an annotation file's `header` names (its top-level
    fields; see storeformat.annotation.read_header) in worker processes, so that they are
    read while the file is: (executor or None, {root name: future of a PreparedStore}).
    With --index/--frames-root the one store is read under the name of `root` (None: the
    file's only root). Stores that cannot be told from the header are read later, in
    process."""
    roots = header.get("roots") if isinstance(header.get("roots"), dict) else {}
    if index is not None or frames_root is not None:
        names = [root]
    else:
        names = [root] if root is not None else list(roots)
    jobs = {}
    for name in names:
        try:
            source = store_source(name, roots, index, frames_root)
        except AnnotationError:
            continue
        if source[0] is not None:
            jobs[name] = source
    if not jobs:
        return None, {}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=min(len(jobs), workers or os.cpu_count() or 1),
                               mp_context=multiprocessing.get_context("spawn"))
    return pool, {name: pool.submit(prepare_store, i, f, deep) for name, (i, f) in jobs.items()}


class PreparedStore:
    """An indexed store read for checking: its index as columns, and (unless deep) which of
    its videos are not on disk, by row."""

    def __init__(self, columns, off_disk=None):
        self.columns, self.off_disk = columns, off_disk


def prepare_store(index, frames_root=None, deep=False) -> PreparedStore:
    """Read a store index and, unless `deep` (done for the annotated videos only), look for
    every video's files on disk: what `check_stores` needs of a store, in a form worth sending
    between processes (check reads stores in workers while it reads the annotation)."""
    columns = StoreColumns.from_index(index, root=frames_root)
    off_disk = None if deep else _column_disk_problems(
        columns, np.flatnonzero(columns.status == 0), False)
    return PreparedStore(columns, off_disk)


def _relative(path):
    """A video_path that is a store id (older files), else None (the reference's absolute one)."""
    return path if isinstance(path, str) and not path.startswith("/") else None


def _aliases(video_id):
    """Kinetics match keys of an annotation id (youtube id and times), as builders give them."""
    m = _KINETICS_ID.match(video_id)
    if m is None:
        return ()
    return (f"yt:{m['yt']}:{int(m['s'])}:{int(m['e'])}", f"yt:{m['yt']}")


def _location(vid, entry):
    """(where an entry says its video is, its id): its store id (``store_id``; files written
    before it have r3d's store id in ``video_path``), else its base id; entries with the same
    location are one video of the store."""
    store_id = entry.get("store_id") or _relative(entry.get("video_path"))
    base_id = entry.get("video_id") or entry.get("original_id") or vid
    return (store_id or base_id, entry.get("video_id")), store_id, base_id


def _entry_for(vid, entry, known=()):
    """The matching rules' Entry for an annotation entry; aliases only when its store id is
    not in the store as it is (`known`)."""
    _, store_id, base_id = _location(vid, entry)
    aliases = () if store_id in known else _aliases(base_id)
    return Entry(base_id, entry["subset"], path=store_id, keys=(vid,), aliases=aliases)


def _check_root(name, items, listing, root_info, deep=False):
    """Check against a store read as objects (a scanned store): the matching rules, entry by
    entry."""
    locations = OrderedDict()
    for vid, entry in items:
        loc = _location(vid, entry)[0]
        group = locations.get(loc)
        if group is None:
            locations[loc] = group = (_entry_for(vid, entry, listing.videos), [])
        group[1].append((vid, entry))
    entries = [e for e, _ in locations.values()]
    report = match_entries(entries, listing, store_alias)
    problems = {p: [] for p in PROBLEMS}
    base_file = root_frame_base(root_info)
    off_disk = _disk_problems(listing.root, [e.store for e in entries if e.store], deep)
    reasons = {}
    for e, members in locations.values():
        if e.problem:
            problems[e.problem].append(e.id)
            continue
        if e.store.id in off_disk:
            problems["not_on_disk"].append(e.id)
            reasons[e.id] = off_disk[e.store.id]
            continue
        n_store = e.store.n_frames
        for vid, entry in members:
            n = entry.get("n_frames")
            seg = _segment(entry)
            too_long = seg is not None and seg[1] - base_file > n_store
            if (n is not None and n != n_store) or too_long:
                problems["frame_count_mismatch"].append(
                    f"{vid} (file {n if n is not None else seg}, store {n_store})")
    return CheckResult(name, listing.origin, len(entries), problems, report.unclaimed, reasons)


def _segment(entry):
    ann = entry.get("annotations")
    return ann.get("segment") if isinstance(ann, dict) else None


def _mismatch(vid, entry, n_store):
    n = entry.get("n_frames")
    return f"{vid} (file {n if n is not None else _segment(entry)}, store {n_store})"


def _check_columns(name, items, store, root_info, deep):
    """`_check_root` for an indexed store read as columns: entries whose store id is in the
    store as it is (all of them, in files r3d-annotate writes) are looked up together; the
    others go through the matching rules; claims, problems and their order are
    `_check_root`'s."""
    cols = store.columns
    row_of, n_of = cols.row_map(), cols.n_frames.tolist()
    base = root_frame_base(root_info)
    # per location: number, first entry, row, store frame count; entries whose frame counts
    # may disagree (checked once the rows are final), as (entry, location)
    where, first, rows, n_loc, suspects = {}, [], [], [], []
    for k, (vid, entry) in enumerate(items):  # _location and _segment, inlined (1M entries)
        get = entry.get
        video_id = get("video_id")
        key = get("store_id") or _relative(get("video_path")) or video_id or \
            get("original_id") or vid
        loc = key if video_id is None else (key, video_id)
        i = where.get(loc)
        if i is None:
            i = where[loc] = len(first)
            first.append(k)
            row = row_of.get(key, -1)
            rows.append(row)
            n_loc.append(n_store := n_of[row] if row >= 0 else -2)
        else:
            n_store = n_loc[i]
        n = get("n_frames")
        ann = get("annotations")
        seg = ann.get("segment") if type(ann) is dict else None
        if (n is not None and n != n_store) or (seg is not None and seg[1] - base > n_store):
            suspects.append((k, i))
    rows = np.array(rows, dtype=np.int64)
    slow = np.flatnonzero(rows < 0)
    if len(slow):
        listing = cols.listing()
        entries = [_entry_for(*items[first[i]], listing.videos) for i in slow.tolist()]
        ids = find_videos(entries, listing.videos, store_alias)
        rows[slow] = [row_of[v] if v is not None else -1 for v in ids]
    found = rows >= 0
    claims = np.bincount(rows[found], minlength=len(cols))
    problem = np.zeros(len(first), dtype=np.int8)  # 0 none, 1 missing, 2 ambiguous, 3 empty, 4 failed
    problem[~found] = 1
    at = np.where(found, rows, 0)
    status = cols.status[at]
    problem[found & (status == 1)] = 3
    problem[found & (status == 2)] = 4
    problem[found & (claims[at] > 1)] = 2
    ok_rows = rows[problem == 0]
    off_disk = store.off_disk if store.off_disk is not None else \
        _column_disk_problems(cols, ok_rows, deep)
    on_disk = np.ones(len(cols), dtype=bool)
    on_disk[list(off_disk)] = False
    problems = {p: [] for p in PROBLEMS}
    reasons = {}

    def location_id(i):
        return _location(*items[first[i]])[2]

    names = {1: "missing", 2: "ambiguous", 3: "empty", 4: "failed"}
    gone = (problem == 0) & ~on_disk[at]
    for i in np.flatnonzero((problem != 0) | gone).tolist():
        if problem[i]:
            problems[names[int(problem[i])]].append(location_id(i))
        else:
            vid = location_id(i)
            problems["not_on_disk"].append(vid)
            reasons[vid] = off_disk[int(rows[i])]
    # frame counts of every entry of a location found on disk, by location, then entry
    usable = (problem == 0) & on_disk[at]
    for k, i in sorted(suspects, key=lambda s: s[1]):
        if usable[i]:
            n, seg, n_store = items[k][1].get("n_frames"), _segment(items[k][1]), n_of[rows[i]]
            if (n is not None and n != n_store) or (seg is not None and seg[1] - base > n_store):
                problems["frame_count_mismatch"].append(_mismatch(*items[k], n_store))
    unclaimed = [cols.video_id(r) for r in np.flatnonzero(claims == 0).tolist()]
    return CheckResult(name, cols.origin, len(first), problems, unclaimed, reasons)


def _column_disk_problems(cols, rows, deep) -> dict:
    """{row: reason} for the rows of `cols` whose frames are not where the index says (see
    the module docstring); every shard is opened once."""
    rows = np.asarray(rows, dtype=np.int64)
    found = {}
    in_shards = cols.formats[rows] == STORE_FORMATS.index("hdf5")
    shard_rows = rows[in_shards]
    codes, inverse = np.unique(cols.path_codes[shard_rows], return_inverse=True)
    order = np.argsort(inverse, kind="stable")  # rows grouped by shard
    ends = np.cumsum(np.bincount(inverse, minlength=len(codes))).tolist()
    for j, code in enumerate(codes.tolist()):
        members = shard_rows[order[ends[j - 1] if j else 0:ends[j]]]
        rel = cols.paths[code]
        if not deep:
            reason = _shard_file_problem(cols.root, rel)
            if reason:
                found.update(dict.fromkeys(members.tolist(), reason))
            continue
        videos = [cols.video(r) for r in members.tolist()]
        by_id = {v.id: r for v, r in zip(videos, members.tolist())}
        for vid, reason in _shard_problems(cols.root, rel, videos, deep).items():
            found[by_id[vid]] = reason
    for r in rows[~in_shards].tolist():
        v = cols.video(r)
        reason = _file_problem(cols.root, v, deep)
        if reason:
            found[r] = reason
    return found


def _disk_problems(root, videos, deep):
    """{store id: reason} for the store videos whose frames are not where the index says (see
    the module docstring); every shard is opened once."""
    if root is None:
        return {}
    found, by_shard = {}, {}
    for v in videos:
        if v.format == "hdf5":
            by_shard.setdefault(v.path, []).append(v)
            continue
        reason = _file_problem(root, v, deep)
        if reason:
            found[v.id] = reason
    for rel, members in by_shard.items():
        found.update(_shard_problems(root, rel, members, deep))
    return found


def _file_problem(root, v, deep):
    """Why a video kept outside shards (a frame directory, a reference file) is not on disk."""
    reason = _outside(root, v.path)
    if reason:
        return reason
    if v.format == "hdf5-video":
        return _video_file_problem(root, v, deep)
    return _jpeg_problem(root, v, deep)


def _outside(root, rel):
    """Why a path from the index leaves the store (it is untrusted input: a '..', absolute or
    NUL name, or a symbolic link out; see storeformat.paths.inside), or None."""
    try:
        inside(root, rel, "index path")
    except UnsafePath:
        why = name_problem(rel) or "a symbolic link leads out"
        return f"{rel!r}: not a path inside the store ({why})"
    return None


def _jpeg_problem(root, v, deep):
    d = root / v.path
    if not deep:
        for k in (1, v.n_frames):
            if not frame_path(d, k).is_file():
                return f"{v.path}: no {frame_name(k)}"
        return None
    try:
        names = set(os.listdir(d))
    except OSError:
        return f"{v.path}: no such frame directory"
    missing = [k for k in range(1, v.n_frames + 1) if frame_name(k) not in names]
    if missing:
        return (f"{v.path}: {len(missing)} of {v.n_frames} frame files missing "
                f"(first {frame_name(missing[0])})")
    return None


def _video_file_problem(root, v, deep):
    """A reference per-video .hdf5 file: it exists; deep: its 'video' dataset's length."""
    path = root / v.path
    if not path.is_file():
        return f"{v.path}: no such file"
    if not deep:
        return None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            linked = outside_problem(f, "/", ("video",))
            n = len(f["video"]) if "video" in f and not linked else None
    except OSError as e:
        return f"{v.path}: not a readable HDF5 file ({e})"
    if linked:
        return f"{v.path}: {linked}"
    if n is None:
        return f"{v.path}: no 'video' dataset"
    if n != v.n_frames:
        return f"{v.path}: {n} frames, the index says {v.n_frames}"
    return None


def _shard_file_problem(root, rel):
    """Why shard `rel` is not an r3d shard (missing, unreadable, another layout), or None;
    read with HDF5's low-level calls (half of h5py.File's cost, for thousands of shards)."""
    import h5py  # only stores in HDF5 need it

    reason = _outside(root, rel)
    if reason:
        return reason
    path = os.fsencode(root / rel)
    if not os.path.isfile(path):
        return f"{rel}: no such shard file"
    try:
        fid = h5py.h5f.open(path, h5py.h5f.ACC_RDONLY)
    except OSError as e:
        return f"{rel}: not a readable HDF5 file ({e})"
    try:
        layout = None
        if h5py.h5a.exists(fid, b"layout"):
            attr = h5py.h5a.open(fid, b"layout")
            value = np.empty((), dtype=attr.dtype)
            attr.read(value)
            layout = attr_value(value[()])
    except OSError as e:
        return f"{rel}: not a readable HDF5 file ({e})"
    finally:
        fid.close()
    if layout != HDF5_LAYOUT:
        return f"{rel}: not an r3d shard (layout attribute {layout!r})"
    return None


def _shard_problems(root, rel, videos, deep):
    """{store id: reason} for the videos of one shard: all of them when the file is missing or
    is not an r3d shard; deep: those whose group or offsets are wrong."""
    import h5py

    reason = _shard_file_problem(root, rel)
    if reason is None and not deep:
        return {}
    if reason is None:
        try:
            with h5py.File(root / rel, "r") as f:
                out = {}
                for v in videos:
                    problem = _group_problem(f, v)
                    if problem:
                        out[v.id] = f"{rel}: {problem}"
                return out
        except OSError as e:
            reason = f"{rel}: not a readable HDF5 file ({e})"
    return {v.id: reason for v in videos}


def _group_problem(f, v):
    """What is wrong with a video's group in an open shard, or None."""
    import h5py

    key = v.key or video_key(v.id)
    linked = outside_problem(f, key)
    if linked:
        return linked
    g = f.get(key)
    offsets = g.get("offsets") if isinstance(g, h5py.Group) else None
    jpeg = g.get("jpeg") if offsets is not None else None
    if not isinstance(offsets, h5py.Dataset) or not isinstance(jpeg, h5py.Dataset):
        return f"no group {key} with 'jpeg' and 'offsets'"
    offsets = offsets[()]
    n = len(offsets) - 1
    if n != v.n_frames:
        return f"{key}: {n} frames in its offsets, the index says {v.n_frames}"
    size = jpeg.shape[0]
    if n < 1 or offsets[0] != 0 or (offsets[1:] < offsets[:-1]).any() or offsets[-1] != size:
        return f"{key}: its offsets do not fit its {size} bytes of JPEG data"
    return None
