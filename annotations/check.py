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
Each video not on disk gets a reason naming the file.
"""
import os
import re
from collections import Counter, OrderedDict
from pathlib import Path

from storeformat import HDF5_LAYOUT, INDEX_NAME, frame_name, frame_path, video_key
from storeformat.hdf5 import attr_value

from .entries import Entry
from .matching import match_entries
from .schema import AnnotationError, frame_base
from .store import StoreCatalog
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


def check_stores(doc, *, index=None, frames_root=None, root=None, deep=False):
    """Check every store a document uses (or only `root`); `index` / `frames_root` name the
    store to use instead of the path the file records (then for `root`, or the only root).
    `deep` reads every video's frame metadata too (see the module docstring)."""
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
        if override:
            catalog = StoreCatalog.open(index=index, frames_root=frames_root)
        else:
            path = (roots.get(name) or {}).get("path")
            if path is None:
                raise AnnotationError(f"root {name!r} records no store path; pass --index or "
                                      f"--frames-root")
            catalog = _open_recorded(path)
        results.append(_check_root(name, items, catalog, roots.get(name) or {}, deep))
    return results


def _open_recorded(path):
    p = Path(path)
    if (p / INDEX_NAME).is_file():
        return StoreCatalog.from_index(p)
    return StoreCatalog.scan(p)


def _relative(path):
    """A video_path that is a store id (older files), else None (the reference's absolute one)."""
    return path if isinstance(path, str) and not path.startswith("/") else None


def _aliases(video_id):
    """Kinetics match keys of an annotation id (youtube id and times), as builders give them."""
    m = _KINETICS_ID.match(video_id)
    if m is None:
        return ()
    return (f"yt:{m['yt']}:{int(m['s'])}:{int(m['e'])}", f"yt:{m['yt']}")


def _check_root(name, items, catalog, root_info, deep=False):
    locations = OrderedDict()
    for vid, entry in items:
        # store_id; files written before it have r3d's store id in video_path.
        store_id = entry.get("store_id") or _relative(entry.get("video_path"))
        loc = (store_id, entry.get("video_id"))
        group = locations.get(loc)
        if group is None:
            base_id = entry.get("video_id") or entry.get("original_id") or vid
            # Aliases only matter when the store id is not in the store as it is.
            aliases = () if store_id in catalog.videos else _aliases(base_id)
            e = Entry(base_id, entry["subset"], path=store_id, keys=(vid,), aliases=aliases)
            locations[loc] = group = (e, [])
        group[1].append((vid, entry))
    entries = [e for e, _ in locations.values()]
    report = match_entries(entries, catalog, store_alias)
    problems = {p: [] for p in PROBLEMS}
    base_file = frame_base(root_info)
    off_disk = _disk_problems(catalog.root, [e.store for e in entries if e.store], deep)
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
            seg = entry["annotations"].get("segment")
            too_long = seg is not None and seg[1] - base_file > n_store
            if (n is not None and n != n_store) or too_long:
                problems["frame_count_mismatch"].append(
                    f"{vid} (file {n if n is not None else seg}, store {n_store})")
    return CheckResult(name, catalog.origin, len(entries), problems, report.unclaimed, reasons)


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
        if not _inside(v.path):
            reason = f"{v.path!r}: not a path inside the store"
        elif v.format == "hdf5-video":
            reason = _video_file_problem(root, v, deep)
        else:
            reason = _jpeg_problem(root, v, deep)
        if reason:
            found[v.id] = reason
    for rel, members in by_shard.items():
        found.update(_shard_problems(root, rel, members, deep))
    return found


def _inside(rel):
    """Whether a path from the index stays inside the store (it is untrusted input)."""
    return (isinstance(rel, str) and rel != "" and not rel.startswith("/") and "\\" not in rel
            and ".." not in rel.split("/"))


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
            n = len(f["video"]) if "video" in f else None
    except OSError as e:
        return f"{v.path}: not a readable HDF5 file ({e})"
    if n is None:
        return f"{v.path}: no 'video' dataset"
    if n != v.n_frames:
        return f"{v.path}: {n} frames, the index says {v.n_frames}"
    return None


def _shard_problems(root, rel, videos, deep):
    """{store id: reason} for the videos of one shard: all of them when the file is missing or
    is not an r3d shard; deep: those whose group or offsets are wrong."""
    import h5py  # only stores in HDF5 need it

    if not _inside(rel):
        reason = f"{rel!r}: not a path inside the store"
    elif not (root / rel).is_file():
        reason = f"{rel}: no such shard file"
    else:
        try:
            # The low-level open costs half of h5py.File's (thousands of shards).
            fid = h5py.h5f.open(os.fsencode(root / rel), h5py.h5f.ACC_RDONLY)
        except OSError as e:
            reason = f"{rel}: not a readable HDF5 file ({e})"
        else:
            try:
                f = h5py.File(fid)
                layout = attr_value(f.attrs.get("layout"))
                if layout != HDF5_LAYOUT:
                    reason = f"{rel}: not an r3d shard (layout attribute {layout!r})"
                elif not deep:
                    return {}
                else:
                    out = {}
                    for v in videos:
                        problem = _group_problem(f, v)
                        if problem:
                            out[v.id] = f"{rel}: {problem}"
                    return out
            finally:
                fid.close()
    return {v.id: reason for v in videos}


def _group_problem(f, v):
    """What is wrong with a video's group in an open shard, or None."""
    import h5py

    key = v.key or video_key(v.id)
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
