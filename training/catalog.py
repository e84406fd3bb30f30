"""Video catalogs: every video of a store as numpy arrays, and one ``pread`` per clip.

`StoreCatalog` holds the videos an r3d store's index.jsonl lists as converted, sorted by key:
frame counts, fps and, for HDF5 shards, each video's shard, the file offset of its ``jpeg``
dataset and its frame offsets (slices of one flat array). The arrays are memory-mapped files
written next to the index (``<store>/.r3d-catalog/``, or under ``$R3D_CACHE`` /
``~/.cache/r3d`` when the store folder is read-only), derived on first use (every shard read
once with h5py) or ahead of time with ``python -m training.catalog STORE...``, and derived again
when the index changes. A process reading every video thus adds no private memory per video,
and a clip from an r3d shard is one read of a contiguous byte range, without HDF5 calls.
Nothing read is trusted: index records are checked one by one, the paths a catalog names are
confined with storeformat.paths.inside when it is opened, a catalog folder is never a link, and
clean-up deletes only the file names a catalog writes (docs/data.md).

`VideoCatalog` combines the stores of a run (root names -> stores, as annotation files name
them): the parent finds videos by candidate keys; workers read them by integer row.
"""
import argparse
import fcntl
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import resource
import stat
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from storeformat import INDEX_NAME, SETTINGS_NAME, read_settings
from storeformat.index import parse_index_line
from storeformat.hdf5 import HDF5_LAYOUT, attr_value, video_key
from storeformat.paths import UnsafePath, inside, name_problem

from . import keytable

from .stores import (FrameReadError, FrameStore, VideoNotFound, _PerProcessFiles, open_store,
                     read_frame_files)

log = logging.getLogger(__name__)

#: 2: keys packed without padding (training.keytable).
CATALOG_VERSION = 2
#: Folder of a store's catalog, next to its index (hidden: not a video of a JPEG store).
CATALOG_DIR = ".r3d-catalog"
META_NAME = "catalog.json"
#: Bytes compared between a direct read and h5py's read when a catalog is derived.
_PROBE = 64
KINDS = {"hdf5": 0, "jpg": 1}  # the store format -> the number of its first frame
#: Frame counts a record may give (the catalog stores them as int32).
MAX_FRAMES = 2 ** 31 - 1
_ARRAY_NAMES = ("key_blob", "key_offsets", "key_prefix", "n_frames", "fps", "shard", "data",
                "start", "offsets", "path_blob", "path_offsets",
                "keys", "paths")  # keys, paths: catalog version 1
_SIDE_NAMES = ("failed", "problems", "groups")
#: A catalog's tag, the prefix of its file names (checked before it names a file).
_TAG = re.compile(r"[0-9a-f]{12}")
#: The only file names a catalog folder holds besides catalog.json and lock: clean-up deletes
#: these and nothing else.
_OWN_FILE = re.compile(r"(?P<tag>[0-9a-f]{12})\.(?:(?:%s)\.npy|(?:%s)\.json)"
                       r"|%s\.(?P<tmp>[0-9a-f]{12})\.tmp"
                       % ("|".join(_ARRAY_NAMES), "|".join(_SIDE_NAMES), re.escape(META_NAME)))


class CatalogError(ValueError):
    """A catalog cannot be derived or opened safely (the message names the file and why)."""


def cache_root() -> Path:
    """Where catalogs of read-only stores go: $R3D_CACHE, else ~/.cache/r3d."""
    return Path(os.environ.get("R3D_CACHE") or Path.home() / ".cache" / "r3d")


def catalog_dirs(root) -> list:
    """Where a store's catalog may be, in order: in the store, then in the cache folder (under
    a hash of the store's absolute path)."""
    root = Path(root).resolve()
    digest = hashlib.sha1(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return [root / CATALOG_DIR, cache_root() / "catalogs" / digest]


def default_max_open_files() -> int:
    """Shards a process keeps open by default: an eighth of its descriptor limit (DataLoader
    workers need descriptors to pass batches), between 32 and 4,096. A read from a shard
    that is not open costs an open and a close more (40-80% more CPU time than the read
    alone; docs/benchmarks.md)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(32, min(4096, soft // 8))


def _signature(index_path: Path) -> dict:
    st = index_path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _folder_problem(directory: Path):
    """Why `directory` cannot hold a catalog (a link, or not a folder), or None: r3d never
    writes or deletes through a link it did not make."""
    try:
        mode = os.lstat(directory).st_mode
    except (FileNotFoundError, NotADirectoryError):  # to be made (or failing to be) by mkdir
        return None
    except OSError as e:
        return f"cannot be examined ({e.strerror or e})"
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    return None if stat.S_ISDIR(mode) else "is not a folder"


def _checked_shards(root: Path, directory: Path, meta: dict) -> list:
    """The catalog's shards as (path, size), each path confined to the store with
    storeformat.paths.inside (a shard that is not: (UnsafePath, -1), refused when read)."""
    shards = meta.get("shards", [])
    if not isinstance(shards, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[1], int) for e in shards):
        raise CatalogError(f"{directory / META_NAME}: its shard list is not [[name, size], ...] "
                           f"(delete the folder to derive it again)")
    out = []
    for rel, size in shards:
        try:
            out.append((os.fspath(inside(root, rel, "shard")), size))
        except UnsafePath as e:
            out.append((e, -1))
    return out


def _load_array(path: Path) -> np.ndarray:
    """A catalog array mapped from its file, as a plain ndarray (indexing an np.memmap costs
    several times more)."""
    try:
        return np.load(path, mmap_mode="r").view(np.ndarray)
    except ValueError:  # an empty array cannot be mapped
        return np.load(path)


@contextmanager
def _shared_lock(directory: Path):
    """Hold the catalog folder's lock file shared while loading (a process deriving the
    catalog holds it exclusively); no lock where there is no lock file or no file locking."""
    try:
        fd = os.open(directory / "lock", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:  # no locks on some network file systems
            pass
        yield
    finally:
        os.close(fd)


def _read_meta(directory: Path):
    try:
        meta = json.loads((directory / META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


class _Shard:
    """One shard opened by a reading process: a raw descriptor, and an h5py handle only for
    videos that cannot be read directly (chunked or filtered data)."""

    def __init__(self, path, size):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.h5 = None
        actual = os.fstat(self.fd).st_size
        if actual != size:
            os.close(self.fd)
            self.fd = None
            raise OSError(f"{actual} bytes where the catalog recorded {size}: the shard changed "
                          f"since (python -m training.catalog --rebuild STORE)")

    @property
    def is_open(self) -> bool:
        return self.fd is not None

    def dataset(self, key):
        """The jpeg dataset of group `key`; OSError when a link leads out of the shard."""
        if self.h5 is None:
            import h5py
            self.h5 = h5py.File(self.path, "r")
        name = f"{key}/jpeg".encode("utf-8", "surrogateescape")
        problem = _link_problem(self.h5, name)
        if problem:
            raise OSError(problem)
        return self.h5[name.decode("utf-8", "surrogateescape")]

    def close(self):
        try:
            if self.h5 is not None:
                self.h5.close()
        finally:
            if self.fd is not None:
                os.close(self.fd)
            self.fd = self.h5 = None


class StoreCatalog(_PerProcessFiles):
    """The videos of one r3d store (HDF5 shards or JPEG directories with an index), as arrays.

    Rows are the videos sorted by key. `row(key)` finds one (in the parent, while building
    samples); everything else takes a row. Open with `StoreCatalog.open(root)`."""

    _KEYS = ("key_blob", "key_offsets", "key_prefix")
    _ARRAYS = {"hdf5": _KEYS + ("n_frames", "fps", "shard", "data", "start", "offsets"),
               "jpg": _KEYS + ("n_frames", "fps")}

    def __init__(self, root, directory, meta, max_open_files=None):
        self.root = Path(root)
        self.directory = Path(directory)
        self.kind = meta["kind"]
        self.first_frame = KINDS[self.kind]
        self._meta = meta
        self._shards = _checked_shards(self.root, self.directory, meta)
        self._map_arrays()
        _PerProcessFiles.__init__(self, max_open_files or default_max_open_files())

    def _map_arrays(self):
        tag = self._meta["tag"]
        for name in self._ARRAYS[self.kind]:
            setattr(self, "_" + name, _load_array(self.directory / f"{tag}.{name}.npy"))
        self._table = keytable.KeyTable(self._key_blob, self._key_offsets, self._key_prefix)
        if self._meta.get("paths"):
            self._paths = keytable.KeyTable(
                *(_load_array(self.directory / f"{tag}.{n}.npy")
                  for n in ("path_blob", "path_offsets")))
        else:
            self._paths = None
        self._side = {}  # lazily read JSON side tables (failures, problems, h5py groups)

    def __getstate__(self):
        state = _PerProcessFiles.__getstate__(self)
        for name in self._ARRAYS[self.kind] + ("paths", "side", "table"):
            state.pop("_" + name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._map_arrays()
        self._reset()

    def __repr__(self):
        return f"StoreCatalog('{self.root}', {len(self)} {self.kind} videos)"

    def __str__(self):
        return str(self.root)

    def __len__(self):
        return len(self._table)

    # --- opening and deriving ---------------------------------------------------------------

    @classmethod
    def open(cls, root, kind=None, rebuild=False, progress=None, max_open_files=None,
             jobs=1):
        """The catalog of the store at `root`, derived first when missing or older than the
        store's index. `kind` ('hdf5' / 'jpg'): the store format expected (ValueError if the
        index says otherwise). `max_open_files`: shards each process keeps open (default:
        `default_max_open_files`). `jobs`: processes reading the shards when deriving."""
        root = Path(root)
        jobs = max(1, min(int(jobs), os.cpu_count() or 1))
        index = root / INDEX_NAME
        if not index.is_file():
            raise FileNotFoundError(f"{root}: no {INDEX_NAME}; r3d stores are written by "
                                    f"r3d-preprocess together with their index")
        dirs, refused = [], []
        for d in catalog_dirs(root):
            problem = _folder_problem(d)
            if problem:
                log.warning("%s: catalog folder %s %s: not used (catalogs are written only in "
                            "a folder of their own, never through a link)", root, d, problem)
                refused.append(f"{d} {problem}")
            else:
                dirs.append(d)
        if not rebuild:
            for d in dirs:
                found = cls._open_fresh(root, d, index, kind, max_open_files)
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
                meta = _read_meta(d)
                if rebuild or not cls._fresh(meta, index):
                    old = (meta or {}).get("tag")
                    try:
                        meta = _derive(root, index, d, progress, jobs, alone,
                                       old if isinstance(old, str) else None)
                    except OSError as e:
                        raise CatalogError(f"{root}: cannot write its catalog in {d}: "
                                           f"{e.strerror or e}") from None
            finally:
                os.close(lock)
            return cls._checked(root, d, meta, kind, max_open_files)
        raise CatalogError(f"{root}: no folder to write its catalog in ({'; '.join(refused)}): "
                           f"set R3D_CACHE to a writable folder, or derive the catalog where "
                           f"the store is writable (python -m training.catalog STORE)")

    @staticmethod
    def _fresh(meta, index) -> bool:
        return (meta is not None and meta.get("version") == CATALOG_VERSION
                and meta.get("index") == _signature(index))

    @classmethod
    def _open_fresh(cls, root, directory, index, kind, max_open_files):
        if not directory.is_dir() or directory.is_symlink():
            return None
        with _shared_lock(directory):
            meta = _read_meta(directory)
            if not cls._fresh(meta, index):
                return None
            try:
                return cls._checked(root, directory, meta, kind, max_open_files)
            except FileNotFoundError:  # replaced meanwhile by another process: derive again
                return None

    @classmethod
    def _checked(cls, root, directory, meta, kind, max_open_files):
        tag = meta.get("tag")
        if meta.get("kind") not in KINDS or not (isinstance(tag, str) and _TAG.fullmatch(tag)):
            raise CatalogError(f"{directory / META_NAME}: not a catalog r3d wrote (kind "
                               f"{meta.get('kind')!r}, tag {tag!r}); delete the folder to "
                               f"derive it again")
        if kind is not None and meta["kind"] != kind and meta["videos"]:
            name = {"hdf5": "an HDF5", "jpg": "a JPEG directory"}[kind]
            raise ValueError(f"{root}: index lists ['{meta['kind']}'] videos, not {name} "
                             f"store")
        return cls(root, directory, meta, max_open_files)

    # --- lookups ----------------------------------------------------------------------------

    def row(self, key):
        """Row of the video `key`, or None when the store has no such (converted) video."""
        if not isinstance(key, str):
            return None
        return self._table.find(key.encode("utf-8", "surrogateescape"))

    def rows(self, wanted) -> np.ndarray:
        """Rows of many UTF-8 keys (bytes), -1 for those the store has not: looked up by
        64-bit hashes of the keys (training.keytable), each hit checked against the key."""
        return self._table.find_many(wanted)

    def key(self, row) -> str:
        return self._table[row].decode("utf-8", "surrogateescape")

    def n_frames(self, row) -> int:
        return int(self._n_frames[row])

    def fps(self, row):
        """Frame rate recorded by the index, or None."""
        value = float(self._fps[row])
        return None if math.isnan(value) else value

    def failure(self, key):
        """Why `key` is not in the store (its conversion failed), or None."""
        return self._side_table("failed").get(key)

    def problem(self, row):
        """Why a listed video cannot be read (found when the catalog was derived), or None."""
        return self._side_table("problems").get(str(row)) if self._meta.get("problems") else None

    def direct(self, row) -> bool:
        """True when the video is read with one pread (r3d shards written contiguously)."""
        return self.kind == "hdf5" and int(self._data[row]) >= 0

    def shard_path(self, row) -> Path:
        return Path(self._shards[int(self._shard[row])][0])

    def video_dir(self, row) -> Path:
        """Frame directory of a row of a JPEG store."""
        rel = self._paths[row].decode("utf-8", "surrogateescape") if self._paths is not None \
            else self.key(row)
        try:
            return inside(self.root, rel, "video directory")
        except UnsafePath as e:
            raise FrameReadError(self, self.key(row), None, f"refused: {e}") from None

    def _side_table(self, name):
        table = self._side.get(name)
        if table is None:
            path = self.directory / f"{self._meta['tag']}.{name}.json"
            table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            self._side[name] = table
        return table

    # --- reading ----------------------------------------------------------------------------

    def open_files(self):
        """This process's open shards (an LRU of at most max_open_files)."""
        return self._cache()

    def read_bytes(self, row, frames) -> list:
        """JPEG bytes of `frames` (the store's numbering) of the video at `row`, in the order
        asked; for r3d shards one pread of the bytes from the first to the last frame asked."""
        idx = np.fromiter(frames, dtype=np.int64) if not isinstance(frames, np.ndarray) \
            else frames.astype(np.int64, copy=False)
        n = int(self._n_frames[row])
        if idx.size:
            lo, hi = int(idx.min()), int(idx.max())
            if lo < self.first_frame or hi >= self.first_frame + n:
                bad = int(idx[(idx < self.first_frame) | (idx >= self.first_frame + n)][0])
                raise FrameReadError(self, self.key(row), bad, f"out of range: the video has {n} "
                                     f"frames, numbered {self.first_frame}.."
                                     f"{self.first_frame + n - 1}")
        reason = self.problem(row)
        if reason:
            raise FrameReadError(self, self.key(row), None, reason)
        if self.kind == "jpg":
            return read_frame_files(self, self.key(row), self.video_dir(row), idx.tolist())
        if not idx.size:
            return []
        start = int(self._start[row])
        offsets = self._offsets[start:start + n + 1]
        base, end = int(offsets[lo]), int(offsets[hi + 1])
        shard_no = int(self._shard[row])
        path, size = self._shards[shard_no]
        if isinstance(path, UnsafePath):
            raise FrameReadError(self, self.key(row), None, f"refused: {path}")
        data_offset = int(self._data[row])
        try:
            shard = self._cache().get_or_make(shard_no, lambda: _Shard(path, size))
            if data_offset >= 0:
                span = os.pread(shard.fd, end - base, data_offset + base)
                if len(span) != end - base:
                    raise OSError(f"short read ({len(span)} of {end - base} bytes)")
            else:
                group = self._side_table("groups")[str(row)]
                span = shard.dataset(group)[base:end].tobytes()
        except (OSError, KeyError) as e:
            raise FrameReadError(self, self.key(row), None, f"cannot read {path}: {e}") from None
        starts = (offsets[idx] - base).tolist()
        stops = (offsets[idx + 1] - base).tolist()
        return [span[a:b] for a, b in zip(starts, stops)]


# --- deriving a catalog ------------------------------------------------------------------------

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
    signature = _signature(index)
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
    meta = {"version": CATALOG_VERSION, "kind": kind, "index": signature, "tag": tag,
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
    writes (_OWN_FILE), of any earlier tag when `alone`, else of tag `replaced` only; never
    any other file, and never through a link (unlink removes a link itself)."""
    for entry in os.scandir(directory):
        own = _OWN_FILE.fullmatch(entry.name)
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


def _link_problem(h5, name: bytes, leaves=()):
    """Why the HDF5 path `name` of the open file `h5`, or one of its `leaves` (names under it),
    is refused (a part of it is a soft or external link, which would lead to another object or
    file), or None."""
    from h5py import h5l
    parts = name.split(b"/")
    for part in [b"/".join(parts[:i]) for i in range(1, len(parts) + 1)] + \
            [name + b"/" + leaf for leaf in leaves]:
        kind = h5.id.links.get_info(part).type
        if kind != h5l.TYPE_HARD:
            what = {h5l.TYPE_SOFT: "a soft link", h5l.TYPE_EXTERNAL: "an external link"}
            return (f"refused: {part.decode('utf-8', 'surrogateescape')!r} is "
                    f"{what.get(kind, 'a link')} (r3d shards hold their data themselves)")
    return None


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
        name = key.encode("utf-8", "surrogateescape")
        try:
            link = _link_problem(self.h5, name, (b"jpeg", b"offsets"))
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


# --- the stores of a run ---------------------------------------------------------------------

class _FoundVideos:
    """Videos of a store without a catalog (the reference's layouts, other FrameStores),
    numbered in the order they are found. `freeze` moves the keys into one bytes array, so
    that workers reading by row touch no per-video Python object."""

    def __init__(self, store):
        self.store = store
        self.first_frame = store.first_frame
        self._rows = {}
        self._keys = np.zeros(0, dtype="S1")
        self._new = []

    def row(self, key):
        row = self._rows.get(key)
        if row is None and key in self.store:
            row = self._rows[key] = len(self._rows)
            self._new.append(key)
        return row

    def key(self, row) -> str:
        if row < len(self._keys):
            return self._keys[row].decode("utf-8", "surrogateescape")
        return self._new[row - len(self._keys)]

    def freeze(self):
        if self._new:
            new = np.array([k.encode("utf-8", "surrogateescape") for k in self._new])
            self._keys = np.concatenate([self._keys, new])
            self._new = []

    def n_frames(self, row) -> int:
        return self.store.n_frames(self.key(row))

    def fps(self, row):
        return self.store.fps(self.key(row))

    def failure(self, key):
        return self.store.failure(key)

    def read_bytes(self, row, frames) -> list:
        return self.store.read_bytes(self.key(row), frames)

    def close(self):
        self.store.close()


class VideoCatalog:
    """The videos of a run's stores, numbered by global rows (ints).

    `stores` is one store (a FrameStore or a path) or a dict mapping an annotation file's root
    names to stores; roots that `doc` (the annotation file) names with a path are opened from
    it when first needed. Stores given by the caller win over the paths the file records: one
    store given without a name serves every entry, whatever root it names (a file with several
    roots then needs them named); a name that is not one of the roots of a file that has roots
    is an error. Entries without a root (the reference's files) are looked for in every store
    given, in order. The stores given are opened at once (a catalog that cannot be derived is
    one error); the others when first needed. `find` locates a video (in the parent, while building samples); the
    per-row methods read it (in the workers). Row r belongs to store ``r % len(names)``."""

    def __init__(self, stores, doc=None):
        if isinstance(stores, (FrameStore, str, Path)):
            stores = {None: stores}
        if not isinstance(stores, dict) or not stores:
            raise TypeError("stores must be a FrameStore, a path, or a non-empty dict of them")
        roots = (doc or {}).get("roots") or {}
        unknown = sorted(str(n) for n in stores if n is not None and n not in roots)
        if unknown and roots:
            raise ValueError(f"store given for root {unknown[0]!r}, which the annotation file "
                             f"does not name (its roots: {', '.join(sorted(roots))})")
        if None in stores and len(stores) == 1 and len(roots) > 1:
            raise ValueError(f"the annotation file's videos are in {len(roots)} roots "
                             f"({', '.join(sorted(roots))}): give one store per root as "
                             f"NAME=PATH")
        self.names = list(stores) + [name for name in roots if name not in stores]
        self._given = len(stores)
        self._sources = list(stores.values()) + [(roots[name] or {}).get("path")
                                                 for name in self.names[len(stores):]]
        self._stores = [None] * len(self.names)
        self._tables = [None] * len(self.names)
        for i in range(self._given):  # now: a store that cannot open fails once, not per video
            self._open(i)

    def __len__(self):
        """Number of stores."""
        return len(self.names)

    def _open(self, i):
        if self._tables[i] is None:
            source = self._sources[i]
            if not source:
                name = self.names[i]
                raise VideoNotFound(f"root {name!r} has no path in the annotation file: pass "
                                    f"its store as stores={{{name!r}: ...}}")
            store = source if isinstance(source, FrameStore) else open_store(source)
            table = getattr(store, "catalog", None)
            self._stores[i] = store
            self._tables[i] = table if isinstance(table, StoreCatalog) else _FoundVideos(store)
        return self._tables[i]

    def _search(self, root) -> list:
        """Stores to search for an entry of root `root`. A store the caller gave wins over the
        path the file records: one given without a name serves every root."""
        if root is None:
            return list(range(self._given))
        if root in self.names[:self._given]:
            return [self.names.index(root)]
        if self.names[:self._given] == [None]:
            return [0]
        if root not in self.names:
            raise VideoNotFound(f"root {root!r} has no path in the annotation file: pass its "
                                f"store as stores={{{root!r}: ...}}")
        return [self.names.index(root)]

    def find(self, root, keys, video_id=None) -> int:
        """Global row of the first of `keys` found: in the store of root name `root`, or in
        every store given when `root` is None. Raises VideoNotFound naming the keys tried and
        any recorded conversion failure."""
        order = self._search(root)
        tables = [self._open(i) for i in order]
        for i, table in zip(order, tables):
            for key in keys:
                row = table.row(key)
                if row is not None:
                    return row * len(self.names) + i
        stores = [self._stores[i] for i in order]
        reasons = [f"{s}: {r}" for s, t in zip(stores, tables) for r in map(t.failure, keys) if r]
        detail = f" (conversion failed: {reasons[0]})" if reasons else ""
        name = video_id if video_id is not None else keys[0]
        raise VideoNotFound(f"video {name!r} not found as {' or '.join(map(repr, keys))} in "
                            f"{', '.join(map(str, stores))}{detail}")

    def find_many(self, root, keys) -> np.ndarray:
        """Global rows of `keys` (one candidate each) in the first store searched for root
        `root` that holds them, -1 where none does: one vectorised search per store catalog,
        for building the samples of a million videos. Callers resolve the -1 with `find`."""
        rows = np.full(len(keys), -1, dtype=np.int64)
        if not keys:
            return rows
        encoded = [k.encode("utf-8", "surrogateescape") for k in keys]
        for i in self._search(root):
            todo = np.flatnonzero(rows < 0)
            if not len(todo):
                break
            table = self._open(i)
            if isinstance(table, StoreCatalog) and len(table):
                local = table.rows([encoded[j] for j in todo])
                hit = local >= 0
                rows[todo[hit]] = local[hit] * len(self.names) + i
            elif not isinstance(table, StoreCatalog):
                for j in todo:
                    local = table.row(keys[j])
                    if local is not None:
                        rows[j] = local * len(self.names) + i
        return rows

    def n_frames_many(self, rows: np.ndarray) -> np.ndarray:
        """Frame counts of many rows (found rows only)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows), dtype=np.int64)
        stores = rows % len(self.names)
        for i in np.unique(stores):
            at = np.flatnonzero(stores == i)
            table, local = self._open(int(i)), rows[at] // len(self.names)
            if isinstance(table, StoreCatalog):
                out[at] = table._n_frames[local]
            else:
                out[at] = [table.n_frames(int(r)) for r in local]
        return out

    def first_frames(self, rows: np.ndarray) -> np.ndarray:
        """First frame numbers of many rows (0 for HDF5 stores, 1 for JPEG directories)."""
        stores = np.asarray(rows, dtype=np.int64) % len(self.names)
        firsts = np.array([self._open(int(i)).first_frame if i in stores else 0
                           for i in range(len(self.names))], dtype=np.int64)
        return firsts[stores]

    def _split(self, row):
        i = row % len(self.names)
        return self._open(i), row // len(self.names)

    def store_index(self, row) -> int:
        return int(row) % len(self.names)

    def store(self, row) -> FrameStore:
        self._split(row)
        return self._stores[self.store_index(row)]

    def first_frame(self, row) -> int:
        return self._split(row)[0].first_frame

    def key(self, row) -> str:
        table, local = self._split(row)
        return table.key(local)

    def n_frames(self, row) -> int:
        table, local = self._split(row)
        return table.n_frames(local)

    def fps(self, row):
        table, local = self._split(row)
        return table.fps(local)

    def read_bytes(self, row, frames) -> list:
        """JPEG bytes of `frames` (in the store's own numbering, see first_frame) of a row."""
        table, local = self._split(row)
        return table.read_bytes(local, frames)

    def freeze(self):
        """Move what `find` gathered into arrays; call once the samples are built, before
        DataLoader workers start."""
        for table in self._tables:
            if isinstance(table, _FoundVideos):
                table.freeze()

    def close(self):
        """Close this process's open files (they reopen when read again)."""
        for table in self._tables:
            if table is not None:
                table.close()


# --- python -m training.catalog ----------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.catalog",
        description="Derive the catalog of r3d stores ahead of training (done on first use "
                    "otherwise): reads every shard once. Written in STORE/.r3d-catalog, or "
                    "under $R3D_CACHE (default ~/.cache/r3d) when STORE is read-only.")
    parser.add_argument("stores", nargs="+", metavar="STORE", help="an r3d store folder")
    parser.add_argument("--rebuild", action="store_true",
                        help="derive again even when the catalog matches the index")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), metavar="N",
                        help="processes reading shards (default: the CPUs available, %(default)s; "
                             "never more than the machine's CPUs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        for store in args.stores:
            catalog = StoreCatalog.open(store, rebuild=args.rebuild, progress=True,
                                        jobs=max(1, args.jobs))
            print(f"{store}: {len(catalog)} {catalog.kind} videos, catalog in "
                  f"{catalog.directory}")
    except (OSError, ValueError) as e:
        print(f"python -m training.catalog: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
