"""Checking an annotation file against its frame stores.

Reports, per store (``roots`` entry): annotated videos that are missing, empty or failed in the
store, ambiguous ones, videos the index lists but whose frames are not on disk, videos whose
frame count in the file differs from the store's, and store videos the file does not mention.
Each store is read from its index.jsonl when it has one, else scanned. The on-disk test is
cheap: the first and last frame files of a JPEG directory, the group of an r3d shard (each
shard opened once), the file of a reference .hdf5 video.
"""
import re
from collections import OrderedDict
from pathlib import Path

from storeformat import INDEX_NAME, frame_path

from .entries import Entry
from .matching import match_entries
from .schema import AnnotationError, frame_base
from .store import StoreCatalog
from .builders.kinetics import store_alias

_KINETICS_ID = re.compile(r"^(?P<yt>[A-Za-z0-9_-]{11})_(?P<s>\d{6})_(?P<e>\d{6})$")
PROBLEMS = ("missing", "empty", "failed", "ambiguous", "not_on_disk", "frame_count_mismatch")


class CheckResult:
    """Outcome for one store."""

    def __init__(self, root, origin, n_videos, problems, unclaimed):
        self.root = root
        self.origin = origin
        self.n_videos = n_videos
        self.problems = problems
        self.unclaimed = unclaimed

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
        if self.unclaimed:
            out.append(f"  {len(self.unclaimed)} store videos are not in the annotation: "
                       + ", ".join(self.unclaimed[:limit])
                       + (" ..." if len(self.unclaimed) > limit else ""))
        if self.ok:
            out.append("  every annotated video has its frames in the store")
        return out

    def to_dict(self):
        return {"root": self.root, "store": self.origin, "videos": self.n_videos,
                "problems": self.problems, "not_in_annotation": self.unclaimed}


def check_stores(doc, *, index=None, frames_root=None, root=None):
    """Check every store a document uses (or only `root`); `index` / `frames_root` name the
    store to use instead of the path the file records (then for `root`, or the only root)."""
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
        results.append(_check_root(name, items, catalog, roots.get(name) or {}))
    return results


def _open_recorded(path):
    p = Path(path)
    if (p / INDEX_NAME).is_file():
        return StoreCatalog.from_index(p)
    return StoreCatalog.scan(p)


def _check_root(name, items, catalog, root_info):
    locations = OrderedDict()
    for vid, entry in items:
        loc = (entry.get("video_path"), entry.get("video_id"))
        group = locations.get(loc)
        if group is None:
            store_id = entry.get("video_path")
            base_id = entry.get("video_id") or entry.get("original_id") or vid
            m = _KINETICS_ID.match(base_id)
            aliases = ()
            if m:
                aliases = (f"yt:{m['yt']}:{int(m['s'])}:{int(m['e'])}", f"yt:{m['yt']}")
            e = Entry(base_id, entry["subset"], path=store_id, keys=(vid,), aliases=aliases)
            locations[loc] = group = (e, [])
        group[1].append((vid, entry))
    entries = [e for e, _ in locations.values()]
    report = match_entries(entries, catalog, store_alias)
    problems = {p: [] for p in PROBLEMS}
    base_file = frame_base(root_info)
    on_disk = _DiskCheck(catalog.root)
    for e, members in locations.values():
        if e.problem:
            problems[e.problem].append(e.id)
            continue
        if not on_disk(e.store):
            problems["not_on_disk"].append(e.id)
            continue
        n_store = e.store.n_frames
        for vid, entry in members:
            n = entry.get("n_frames")
            seg = entry["annotations"].get("segment")
            too_long = seg is not None and seg[1] - base_file > n_store
            if (n is not None and n != n_store) or too_long:
                problems["frame_count_mismatch"].append(
                    f"{vid} (file {n if n is not None else seg}, store {n_store})")
    return CheckResult(name, catalog.origin, len(entries), problems, report.unclaimed)


class _DiskCheck:
    """Whether a store video's frames are where the index says (see the module docstring)."""

    def __init__(self, root):
        self.root = root
        self.shards = {}

    def __call__(self, video):
        if self.root is None:
            return True
        if video.format == "hdf5":
            keys = self.shards.get(video.path)
            if keys is None:
                keys = self.shards[video.path] = _shard_keys(self.root / video.path)
            return video.key in keys
        if video.format == "hdf5-video":
            return (self.root / video.path).is_file()
        d = self.root / video.path
        return frame_path(d, 1).is_file() and frame_path(d, video.n_frames).is_file()


def _shard_keys(path):
    import h5py  # only stores in HDF5 need it

    keys = set()
    try:
        with h5py.File(path, "r") as f:
            f.visit(keys.add)
    except OSError:
        pass
    return keys
