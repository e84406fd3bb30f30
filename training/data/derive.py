"""Deriving a store's catalog (training.data.catalog reads it): the index read line by line,
every record checked, every HDF5 shard read once (in several processes) to find where each
video's bytes are, the arrays written beside a fresh tag and switched to by one rename of
catalog.json. Run ahead of training with ``python -m training.data.catalog STORE...``;
otherwise done on first use, and again whenever the index changes."""
import fcntl
import functools
import json
import logging
import multiprocessing
import os
import sys
import uuid
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from storeformat import INDEX_NAME, SETTINGS_NAME, read_settings
from storeformat.hdf5 import HDF5_LAYOUT, attr_value, video_key
from storeformat.index import parse_index_line
from storeformat.paths import UnsafePath, inside, name_problem

from . import keytable
from .catalogfiles import (CATALOG_VERSION, KINDS, MAX_FRAMES, META_NAME, OWN_FILE, catalog_dirs,
                           checked_meta, folder_problem, read_meta, shared_lock, signature)
from .errors import CatalogError

log = logging.getLogger(__name__)

#: Bytes compared between a direct read and h5py's read when a catalog is derived.
_PROBE = 64
COMMAND = "python -m training.data.catalog"


def is_fresh(meta, index) -> bool:
    """True when `meta` (a catalog.json, or None) is of this version and of this index."""
    return (meta is not None and meta.get("version") == CATALOG_VERSION
            and meta.get("index") == signature(index))


def fresh_catalog(root, load, rebuild=False, progress=None, jobs=1):
    """`load(directory, meta)` of the catalog of the store at `root`, derived first when
    missing or older than the store's index (or when `rebuild`): the store's own catalog
    folder first, else one under the cache folder. `jobs`: processes reading the shards."""
    root = Path(root)
    jobs = max(1, min(int(jobs), os.cpu_count() or 1))
    index = root / INDEX_NAME
    if not index.is_file():
        raise FileNotFoundError(f"{root}: no {INDEX_NAME}; r3d stores are written by "
                                f"r3d-preprocess together with their index")
    dirs, refused = [], []
    for d in catalog_dirs(root):
        problem = folder_problem(d)
        if problem:
            log.warning("%s: catalog folder %s %s: not used (catalogs are written only in "
                        "a folder of their own, never through a link)", root, d, problem)
            refused.append(f"{d} {problem}")
        else:
            dirs.append(d)
    if not rebuild:
        for d in dirs:
            found = _load_fresh(d, index, load)
            if found is not None:
                return found
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            lock = os.open(d / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as e:
            log.info("%s: cannot write a catalog in %s (%s)", root, d, e.strerror or e)
            refused.append(f"{d}: {e.strerror or e}")
            continue
        try:
            try:  # other processes of the run wait, then load what this one wrote
                fcntl.flock(lock, fcntl.LOCK_EX)
                alone = True
            except OSError as e:  # no locks on some network file systems
                log.info("%s: no lock on %s (%s)", root, d, e.strerror or e)
                alone = False
            meta = read_meta(d)
            if rebuild or not is_fresh(meta, index):
                old = (meta or {}).get("tag")
                try:
                    meta = _derive(root, index, d, progress, jobs, alone,
                                   old if isinstance(old, str) else None)
                except OSError as e:
                    raise CatalogError(f"{root}: cannot write its catalog in {d}: "
                                       f"{e.strerror or e}") from None
        finally:
            os.close(lock)
        return load(d, checked_meta(d, meta))
    raise CatalogError(f"{root}: no folder to write its catalog in ({'; '.join(refused)}): "
                       f"set R3D_CACHE to a writable folder, or derive the catalog where "
                       f"the store is writable ({COMMAND} STORE)")


def _load_fresh(directory, index, load):
    """`load` of the catalog in `directory` if it is fresh, else None."""
    if not directory.is_dir() or directory.is_symlink():
        return None
    with shared_lock(directory):
        meta = read_meta(directory)
        if not is_fresh(meta, index):
            return None
        try:
            return load(directory, checked_meta(directory, meta))
        except FileNotFoundError:  # replaced meanwhile by another process: derive again
            return None


# --- reading the index -------------------------------------------------------------------------

def _index_records(index: Path):
    """The index's converted videos {id: (format, path, shard group key, n_frames, fps)} and
    failures {id: reason}, keeping only what a catalog needs, read line by line (the full
    records of a million-video index would take gigabytes). A path equal to the id and the
    usual group key are None; shard names are shared strings. Same rules as read_index: the
    last record of an id wins; a torn last line is ignored with a warning. A record that
    cannot be used (see _record_problem) is left out with a warning, its reason recorded as
    the video's failure: it never shifts another video's data."""
    done, failed, bad = {}, {}, 0
    with open(index, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            # only a line without its newline can be the torn tail of a crash
            rec = parse_index_line(raw, index, lineno, not raw.endswith(b"\n"))
            if rec is None:
                continue
            problem = _record_problem(rec)
            if problem:
                bad += 1
                vid = str(rec["id"])
                done.pop(vid, None)
                failed[vid] = f"its index record (line {lineno}) is unusable: {problem}"
                if bad <= 10:
                    log.warning("%s line %d: video %r left out of the catalog: %s", index,
                                lineno, vid, problem)
                continue
            _keep(rec, done, failed)
    if bad > 10:
        log.warning("%s: %d unusable records left out of the catalog in all", index, bad)
    return done, failed


def _record_problem(rec):
    """Why a 'done' index record cannot be catalogued (text only), or None."""
    if rec["status"] != "done":
        return None
    vid = rec["id"]
    if not isinstance(vid, str) or not vid or "\x00" in vid:
        return f"its id {vid!r} is not a non-empty string without NUL bytes"
    n = rec.get("n_frames")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_FRAMES:
        return f"n_frames {n!r} is not a whole number in 1..{MAX_FRAMES}"
    fps = rec.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float))):
        return f"fps {fps!r} is not a number"
    path = rec.get("path", vid)
    problem = name_problem(path)
    if problem:
        return f"its path {path!r} {problem}"
    key = rec.get("key")
    if key is not None and (not isinstance(key, str) or not key or "\x00" in key):
        return f"its key {key!r} is not a non-empty string without NUL bytes"
    return None


def _keep(rec, done, failed):
    """File one index record, checked by _record_problem (the last one of an id wins)."""
    vid = str(rec["id"])
    if rec["status"] == "done":
        failed.pop(vid, None)
        path, key, fmt = rec.get("path", vid), rec.get("key"), rec.get("format")
        done[vid] = (sys.intern(fmt) if isinstance(fmt, str) else fmt,
                     None if path == vid else sys.intern(path),
                     None if key == video_key(vid) else key, rec["n_frames"], rec.get("fps"))
    else:
        done.pop(vid, None)
        failed[vid] = str(rec.get("reason", ""))


def _store_kind(root: Path, done: dict) -> str:
    formats = {r[0] for r in done.values()}
    if not formats:
        settings = read_settings(root / SETTINGS_NAME) or {}
        formats = {settings.get("format") or "jpg"}
    if len(formats) > 1 or not formats <= set(KINDS):
        raise ValueError(f"{root}: index lists {sorted(map(str, formats))} videos: one of "
                         f"{sorted(KINDS)} expected")
    return formats.pop()


def _derive(root: Path, index: Path, directory: Path, progress, jobs, alone=True,
            replaced=None) -> dict:
    """Write the catalog of `root` into `directory` and return its meta. `alone` (holding the
    folder's lock): the files of earlier catalogs are removed; otherwise (another process may
    be writing its own) only those of the catalog it replaces (tag `replaced`)."""
    recorded = signature(index)
    done, failed = _index_records(index)
    kind = _store_kind(root, done)
    ids = sorted(done, key=lambda v: v.encode("utf-8", "surrogateescape"))
    n_frames = np.array([done[v][3] for v in ids], dtype=np.int32)
    fps = np.array([np.nan if done[v][4] is None else float(done[v][4]) for v in ids],
                   dtype=np.float32)
    tag = uuid.uuid4().hex[:12]
    problems, extra = {}, {}
    arrays = {**keytable.pack([v.encode("utf-8", "surrogateescape") for v in ids]),
              "n_frames": n_frames, "fps": fps}
    meta = {"version": CATALOG_VERSION, "kind": kind, "index": recorded, "tag": tag,
            "videos": len(ids)}
    if kind == "jpg":
        paths = [done[v][1] or v for v in ids]
        if any(rel != vid for vid, rel in zip(ids, paths)):
            blob, offsets = keytable.packed([p.encode("utf-8", "surrogateescape")
                                             for p in paths])
            arrays.update(path_blob=blob, path_offsets=offsets)
            meta["paths"] = True
    else:
        meta["shards"] = _derive_shards(root, directory, tag, ids, done, n_frames, arrays,
                                        problems, extra, progress, jobs)
    written = []
    for name, array in arrays.items():
        written.append(directory / f"{tag}.{name}.npy")
        if name != "offsets":  # written in place while the shards were read
            np.save(written[-1], array)
    for name, table in (("failed", failed), ("problems", problems), ("groups", extra)):
        if table:
            written.append(directory / f"{tag}.{name}.json")
            written[-1].write_text(json.dumps(table), encoding="utf-8")
    meta["problems"] = len(problems)
    if problems:
        first = next(iter(problems.items()))
        log.warning("%s: %d listed video(s) cannot be read, e.g. %r: %s", root, len(problems),
                    ids[int(first[0])], first[1])
    tmp = directory / f"{META_NAME}.{tag}.tmp"
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    for path in [*written, tmp]:  # on disk before the meta points to them
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, directory / META_NAME)
    _remove_old(directory, tag, alone, replaced)
    log.info("%s: catalog of %d videos written to %s", root, len(ids), directory)
    return meta


def _remove_old(directory: Path, tag: str, alone: bool, replaced):
    """Delete the files of earlier catalogs (readers keep their maps): only names a catalog
    writes (OWN_FILE), of any earlier tag when `alone`, else of tag `replaced` only; never
    any other file, and never through a link (unlink removes a link itself)."""
    for entry in os.scandir(directory):
        own = OWN_FILE.fullmatch(entry.name)
        old = own and (own["tag"] or own["tmp"])
        if old and old != tag and (alone or old == replaced):
            os.unlink(entry.path)


def _derive_shards(root, directory, tag, ids, done, n_frames, arrays, problems, groups,
                   progress, jobs) -> list:
    """Read every shard once (in `jobs` processes): where each video's bytes are, checked
    against the index."""
    count = len(ids)
    shard_of = np.full(count, -1, dtype=np.int32)
    data = np.full(count, -1, dtype=np.int64)
    start = np.zeros(count, dtype=np.int64)
    if count:
        np.cumsum(n_frames[:-1].astype(np.int64) + 1, out=start[1:])
    total = int(start[-1] + n_frames[-1] + 1) if count else 0
    offsets_path = str(directory / f"{tag}.offsets.npy")
    # filled in place, shard by shard: it can be larger than memory
    np.lib.format.open_memmap(offsets_path, mode="w+", dtype=np.int64, shape=(total,)) \
        if total else np.save(offsets_path, np.zeros(0, dtype=np.int64))
    by_shard = {}
    for row, vid in enumerate(ids):
        by_shard.setdefault(str(done[vid][1] or vid), []).append(row)
    names = sorted(by_shard)
    work = ((root, rel, [(row, done[ids[row]][2] or video_key(ids[row]),
                                     int(n_frames[row]), int(start[row]))
                                    for row in by_shard[rel]], offsets_path) for rel in names)
    pool = multiprocessing.Pool(jobs) if jobs > 1 and len(names) > 1 else None
    try:
        results = pool.imap(_scan_shard, work, chunksize=8) if pool else map(_scan_shard, work)
        shards = []
        for number, (rel, (size, outcomes)) in enumerate(tqdm(
                zip(names, results), total=len(names), desc=f"cataloguing {root}",
                unit=" shard", disable=None if progress is None else not progress,
                leave=False)):
            shards.append([rel, size])
            shard_of[by_shard[rel]] = number
            for row, outcome, value in outcomes:
                if outcome == "direct":
                    data[row] = value
                elif outcome == "h5py":
                    groups[str(row)] = value
                else:
                    problems[str(row)] = value
    finally:
        if pool is not None:
            pool.terminate()
        _writable_offsets.cache_clear()
    arrays.update(shard=shard_of, data=data, start=start)
    return shards


@functools.lru_cache(maxsize=1)
def _writable_offsets(path):
    return np.load(path, mmap_mode="r+")


def _scan_shard(job):
    """One shard's videos: (its size, [(row, 'direct' | 'h5py' | 'problem', file offset |
    group key | reason)]), their frame offsets written into the catalog's offsets file."""
    import h5py
    root, rel, videos, offsets_path = job
    try:
        path = os.fspath(inside(root, rel, "shard"))
    except UnsafePath as e:
        return -1, [(row, "problem", f"refused: {e}") for row, _, _, _ in videos]
    try:
        size = os.path.getsize(path)
    except OSError:
        size = -1
    outcomes = []
    try:
        with h5py.File(path, "r") as h5:
            layout = attr_value(h5.attrs.get("layout"))
            if layout != HDF5_LAYOUT:
                raise ValueError(f"layout attribute is {layout!r}, expected {HDF5_LAYOUT!r}")
            fd = os.open(path, os.O_RDONLY)
            try:
                scan = _ShardScan(h5, fd)
                offsets = _writable_offsets(offsets_path)
                for row, key, n, first in videos:
                    found = scan.locate(key, n)
                    if isinstance(found, str):
                        outcomes.append((row, "problem", f"{path} [{key}] {found}"))
                        continue
                    offsets[first:first + n + 1] = found[0]
                    outcomes.append((row, "h5py", key) if found[1] is None else
                                    (row, "direct", found[1]))
            finally:
                os.close(fd)
    except (OSError, ValueError, TypeError) as e:
        return size, [(row, "problem", f"cannot open {path}: {e}") for row, _, _, _ in videos]
    return size, outcomes


class _ShardScan:
    """Finds the videos of one open shard with h5py's low-level calls (a fraction of the time
    of its objects). Contiguous datasets are read with pread once a probe has shown that the
    file offsets HDF5 reports for this file give the bytes HDF5 reads."""

    def __init__(self, h5, fd):
        self.h5, self.fd = h5, fd
        self.trusted = None  # unknown until the first video's bytes are probed

    @staticmethod
    def _contiguous_offset(dataset):
        """File offset of a contiguous, unfiltered dataset's bytes, or None."""
        from h5py import h5d
        plist = dataset.get_create_plist()
        if plist.get_layout() != h5d.CONTIGUOUS or plist.get_nfilters() or \
                plist.get_external_count():
            return None
        return dataset.get_offset()

    def _probe(self, jpeg, offset):
        from h5py import h5s
        count = min(jpeg.shape[0], _PROBE)
        if not count:
            return
        head = np.empty(count, dtype=np.uint8)
        space = jpeg.get_space()
        space.select_hyperslab((0,), (count,))
        jpeg.read(h5s.create_simple((count,)), space, head)
        self.trusted = os.pread(self.fd, count, offset) == head.tobytes()

    def _offsets(self, dataset):
        """A video's ``offsets`` dataset as int64."""
        from h5py import h5s
        shape = dataset.shape  # each of h5py's low-level properties makes objects: once
        if self.trusted and len(shape) == 1 and dataset.dtype == np.dtype("<i8"):
            offset = self._contiguous_offset(dataset)
            if offset is not None:
                data = os.pread(self.fd, shape[0] * 8, offset)
                if len(data) == shape[0] * 8:
                    return np.frombuffer(data, dtype="<i8")
        out = np.empty(shape, dtype=np.int64)
        dataset.read(h5s.ALL, h5s.ALL, out)
        return out

    def locate(self, key, n):
        """(frame offsets, file offset of the JPEG bytes or None for an h5py read), or a
        string saying what is wrong with the video."""
        from h5py import h5d

        from storeformat.h5local import hard_link_problem  # h5py loads only to derive
        name = key.encode("utf-8", "surrogateescape")
        try:
            link = hard_link_problem(self.h5, name, (b"jpeg", b"offsets"))
            if link:
                return link
            jpeg = h5d.open(self.h5.id, name + b"/jpeg")
            shape = jpeg.shape
            if len(shape) != 1 or jpeg.dtype != np.uint8:
                return f"has a jpeg dataset of {jpeg.dtype} {shape}, not 1-D uint8"
            offset = self._contiguous_offset(jpeg)
            if offset is not None and self.trusted is None:
                self._probe(jpeg, offset)
            frame_offsets = self._offsets(h5d.open(self.h5.id, name + b"/offsets"))
        except (KeyError, OSError, TypeError, ValueError) as e:
            return f"cannot be read: {e}"
        size = shape[0]
        if frame_offsets.ndim != 1:
            return f"has frame offsets of shape {frame_offsets.shape}, not 1-D"
        if len(frame_offsets) != n + 1:
            return (f"holds {len(frame_offsets) - 1} frames ({len(frame_offsets)} frame "
                    f"offsets), the index says {n} frames")
        if frame_offsets[0] != 0 or frame_offsets[-1] != size:
            return (f"has frame offsets from {int(frame_offsets[0])} to "
                    f"{int(frame_offsets[-1])}, but its jpeg dataset holds {size} bytes "
                    f"(0 to {size} expected)")
        falls = np.flatnonzero(np.diff(frame_offsets) < 0)
        if len(falls):
            return f"has frame offsets that decrease after frame {int(falls[0])}"
        return frame_offsets, offset if self.trusted else None
