"""What a frame store holds: video ids with frame counts and fps.

Read from the store index (index.jsonl, written by r3d-preprocess; one file read, no per-video
directory listing) or, as a fallback, found by scanning a store: JPEG frame directories
(``image_00001.jpg`` ...), r3d HDF5 shards and the reference's one-``.hdf5``-per-video stores.
"""
import logging
import math
import os
import re
from array import array
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from storeformat import INDEX_NAME, SETTINGS_NAME, read_index, read_settings
from storeformat.annotation import FRAME_BASE, STORE_FORMATS, AnnotationError
from storeformat.hdf5 import HDF5_LAYOUT, attr_value


log = logging.getLogger(__name__)

_FRAME_RE = re.compile(r"^image_(\d+)\.jpg$")
_HDF5_SUFFIXES = (".h5", ".hdf5")


class StoreVideo:
    """One video of a store. `status` is "done", "empty" (no frames) or "failed"; `path` is
    where its frames live relative to the store root (frame directory, shard or .hdf5 file)
    and `key` its group inside an r3d shard."""
    __slots__ = ("id", "status", "n_frames", "fps", "format", "path", "key", "reason")

    def __init__(self, id, status, n_frames=None, fps=None, format=None, path=None, key=None,
                 reason=None):
        self.id, self.status, self.n_frames, self.fps = id, status, n_frames, fps
        self.format, self.path, self.key, self.reason = format, path, key, reason

    def __repr__(self):
        return f"StoreVideo({self.id!r}, {self.status}, n_frames={self.n_frames})"


class StoreListing:
    """The videos of one store, by store id, with the store's root directory and format."""

    def __init__(self, videos, root=None, format=None, origin=""):
        self.videos = videos
        self.root = Path(root) if root is not None else None
        self.format = format
        self.origin = origin

    def __len__(self):
        return len(self.videos)

    def root_info(self) -> dict:
        """The ``roots`` entry describing this store in an annotation file."""
        # The reference's per-video HDF5 files number frames from 0, as its loader reads them.
        base = 0 if self.format == "hdf5-video" else FRAME_BASE
        return {"path": str(self.root.resolve()) if self.root is not None else None,
                "format": self.format, "frame_base": base}

    @classmethod
    def open(cls, index=None, frames_root=None):
        """The listing for the builder options ``--index`` / ``--frames-root``: the index when
        given (frames_root then only names the root), else a scan of frames_root."""
        if index is not None:
            return cls.from_index(index, root=frames_root)
        if frames_root is not None:
            return cls.scan(frames_root)
        return None

    @classmethod
    def from_index(cls, index, root=None):
        """Read a store index: `index` is the index.jsonl file or the store directory."""
        index, records = read_store_index(index)
        videos = {}
        formats = set()
        for vid, rec in records.items():
            status, n, fps, fmt, path, key, reason = index_record(index, vid, rec)
            formats.add(fmt)
            videos[vid] = StoreVideo(vid, status, n, fps, fmt, path, key, reason)
        fmt = store_format(index, formats)
        return cls(videos, root if root is not None else index.parent, fmt, origin=str(index))

    @classmethod
    def scan(cls, root):
        """Find the videos of a store without an index (slower: one listing per directory)."""
        root = Path(root)
        if not root.is_dir():
            raise AnnotationError(f"{root}: frame store directory not found")
        videos = {}
        formats = set()
        with tqdm(desc=f"scanning {root}", unit=" dirs", disable=None, leave=False) as bar:
            stack = [root]
            while stack:
                d = stack.pop()
                bar.update(1)
                frames, files, subdirs = [], [], []
                with os.scandir(d) as it:
                    for e in it:
                        if e.name.startswith("."):
                            continue
                        if e.is_dir():
                            subdirs.append(e.path)
                        elif _FRAME_RE.match(e.name):
                            frames.append(e.name)
                        elif e.name.lower().endswith(_HDF5_SUFFIXES):
                            files.append(e.path)
                rel = PurePosixPath(*Path(d).relative_to(root).parts)
                if frames:
                    v = _jpeg_video(Path(d), str(rel), frames)
                    videos[v.id] = v
                    formats.add("jpg")
                    continue
                for f in sorted(files):
                    for v in _hdf5_videos(root, Path(f)):
                        if v.id in videos:
                            raise AnnotationError(f"{f}: video {v.id!r} is stored twice in "
                                                  f"{root}")
                        videos[v.id] = v
                        formats.add(v.format)
                stack.extend(sorted(subdirs, reverse=True))
        if len(formats) > 1:
            raise AnnotationError(f"{root}: the store mixes formats {sorted(formats)}")
        fmt = formats.pop() if formats else None
        log.info("%s: found %d videos by scanning (%s)", root, len(videos), fmt or "empty")
        return cls(videos, root, fmt, origin=str(root))


def read_store_index(index):
    """(index file, {video id: record}) of a store index given as the file or the store
    directory; AnnotationError when it is missing or malformed."""
    index = Path(index)
    if index.is_dir():
        index = index / INDEX_NAME
    if not index.is_file():
        raise AnnotationError(f"{index}: store index not found (r3d-preprocess writes "
                              f"{INDEX_NAME} into the store directory)")
    try:
        return index, read_index(index)
    except ValueError as e:
        raise AnnotationError(str(e)) from None


def index_record(index, vid, rec):
    """(status, n_frames, fps, format, path, key, reason) of one index record."""
    if rec.get("status") == "done":
        n = rec.get("n_frames")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise AnnotationError(f"{index}: video {vid!r}: bad n_frames {n!r}")
        return ("done" if n > 0 else "empty", n, rec.get("fps"), rec.get("format"),
                rec.get("path", vid), rec.get("key"), None)
    return "failed", None, None, None, None, None, rec.get("reason", "failed")


def store_format(index, formats):
    """The format of an indexed store: its settings file's, else its records' one format."""
    settings = read_settings(index.parent / SETTINGS_NAME)
    fmt = (settings or {}).get("format")
    formats = set(formats) - {None}
    if fmt is None and formats:
        if len(formats) > 1:
            raise AnnotationError(f"{index}: records mix store formats {sorted(formats)}")
        fmt = formats.pop()
    if fmt not in (None, "jpg", "hdf5"):
        raise AnnotationError(f"{index}: unknown store format {fmt!r}")
    return fmt


class StoreColumns:
    """A store index as columns sorted by video id (bytes per video, no object per video), for
    checking million-video annotation files: status, frame count, format and where the frames
    are (`paths[path_code]`, shard group `keys`). `find` looks many ids up at once;
    `listing()` gives the same videos as a StoreListing, for the matching rules beyond exact
    ids."""
    STATUSES = ("done", "empty", "failed")

    def __init__(self, index, root, fmt, ids, status, n_frames, fps, formats, path_codes,
                 paths, keys, reasons):
        self.index, self.root, self.format = index, Path(root), fmt
        self.ids, self.status, self.n_frames, self.fps = ids, status, n_frames, fps
        self.formats, self.path_codes, self.paths = formats, path_codes, paths
        self.keys, self.reasons = keys, reasons  # shard group per row; failure by row
        self.origin = str(index)

    def __len__(self):
        return len(self.ids)

    @classmethod
    def from_index(cls, index, root=None):
        """Read a store index (the file or the store directory) into columns."""
        index, records = read_store_index(index)
        n = len(records)
        status, n_frames, formats = array("b"), array("q"), array("b")
        fps, path_codes, keys = array("d"), array("l"), []
        codes, reasons, fmts = {}, {}, set()
        format_codes = {f: i for i, f in enumerate(STORE_FORMATS)}
        nan, statuses = math.nan, cls.STATUSES
        for i, (vid, rec) in enumerate(records.items()):
            state, count, rate, fmt, path, key, reason = index_record(index, vid, rec)
            status.append(statuses.index(state))
            if reason is not None:
                reasons[i] = reason
                n_frames.append(-1)
                fps.append(nan)
                formats.append(-1)
                path_codes.append(-1)
                keys.append(None)
                continue
            n_frames.append(count)
            fps.append(rate if type(rate) is float or type(rate) is int else nan)
            fmts.add(fmt)
            formats.append(format_codes.get(fmt, -1))
            code = codes.get(path)
            if code is None:
                code = codes[path] = len(codes)
            path_codes.append(code)
            keys.append(key)
        fmt = store_format(index, fmts)
        ids = np.array([v.encode("utf-8", "surrogateescape") for v in records] or [b""],
                       dtype=np.bytes_)[:n]
        order = np.argsort(ids, kind="stable")
        reasons = {int(r): reasons[i] for r, i in enumerate(order.tolist()) if i in reasons}
        columns = [np.frombuffer(c, dtype=c.typecode)[order] if n else np.zeros(0, c.typecode)
                   for c in (status, n_frames, fps, formats, path_codes)]
        return cls(index, root if root is not None else index.parent, fmt, ids[order],
                   *columns[:4], columns[4].astype(np.int64), list(codes),
                   [keys[i] for i in order.tolist()], reasons)

    def find(self, ids) -> np.ndarray:
        """Rows of `ids` (str), -1 for those not in the store."""
        rows = np.full(len(ids), -1, dtype=np.int64)
        if not len(ids) or not len(self.ids):
            return rows
        wanted = np.array([v.encode("utf-8", "surrogateescape") for v in ids])
        at = np.searchsorted(self.ids, wanted)
        inside = at < len(self.ids)
        hit = np.zeros(len(ids), dtype=bool)
        hit[inside] = self.ids[at[inside]] == wanted[inside]
        rows[hit] = at[hit]
        return rows

    def row_map(self) -> dict:
        """{video id: row}, for looking ids up one by one."""
        return dict(zip((v.decode("utf-8", "surrogateescape") for v in self.ids.tolist()),
                        range(len(self.ids))))

    def video_id(self, row) -> str:
        return self.ids[row].decode("utf-8", "surrogateescape")

    def video(self, row) -> StoreVideo:
        """Row `row` as a StoreVideo."""
        status = self.STATUSES[self.status[row]]
        if status == "failed":
            return StoreVideo(self.video_id(row), status, reason=self.reasons.get(row, "failed"))
        fps = float(self.fps[row])
        fmt = int(self.formats[row])
        return StoreVideo(self.video_id(row), status, int(self.n_frames[row]),
                          None if math.isnan(fps) else fps,
                          STORE_FORMATS[fmt] if fmt >= 0 else None,
                          self.paths[self.path_codes[row]], self.keys[row])

    def listing(self) -> StoreListing:
        """The same videos as a StoreListing (an object per video: for the few entries that
        need the matching rules beyond exact ids)."""
        videos = {}
        for row in range(len(self)):
            v = self.video(row)
            videos[v.id] = v
        return StoreListing(videos, self.root, self.format, origin=self.origin)


def _jpeg_video(d, rel, frames):
    numbers = sorted(int(_FRAME_RE.match(n).group(1)) for n in frames)
    fps = _read_fps_file(d / "fps")
    if numbers[0] != 1 or numbers[-1] != len(numbers):
        return StoreVideo(rel, "failed", format="jpg", path=rel,
                          reason=f"frame files are not image_00001.jpg..image_{len(numbers):05d}"
                                 f".jpg (found {len(numbers)}, numbers {numbers[0]}.."
                                 f"{numbers[-1]})")
    return StoreVideo(rel, "done", len(numbers), fps, "jpg", rel)


def _read_fps_file(path):
    """The reference's old JPEG stores keep a one-number ``fps`` file next to the frames."""
    try:
        value = float(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return value if value > 0 else None


def _hdf5_videos(root, path):
    import h5py  # only the scanning fallback needs it

    rel_file = str(PurePosixPath(*path.relative_to(root).parts))
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("layout") in (HDF5_LAYOUT, HDF5_LAYOUT.encode()):
                return list(_shard_videos(f, rel_file))
            if "video" in f:
                n = len(f["video"])
                vid = str(PurePosixPath(rel_file).with_suffix(""))
                status = "done" if n > 0 else "empty"
                return [StoreVideo(vid, status, n, None, "hdf5-video", rel_file)]
    except OSError as e:
        log.warning("%s: skipped, not a readable HDF5 file (%s)", path, e)
        return []
    log.warning("%s: skipped, neither an r3d shard nor a reference per-video file", path)
    return []


def _shard_videos(f, rel_file):
    import h5py

    if "videos" not in f:
        return
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and "offsets" in obj:
            found.append(obj)

    f["videos"].visititems(visit)
    for g in found:
        vid = attr_value(g.attrs.get("id", g.name[len("/videos/"):]))
        n = g.attrs.get("n_frames")
        n = int(n) if n is not None else len(g["offsets"]) - 1
        fps = g.attrs.get("fps")
        fps = float(fps) if fps is not None else None
        yield StoreVideo(vid, "done" if n > 0 else "empty", n, fps, "hdf5", rel_file,
                         g.name.lstrip("/"))
