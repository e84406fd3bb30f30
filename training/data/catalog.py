"""Store catalogs: every video of a store as numpy arrays, and one ``pread`` per clip.

`StoreCatalog` holds the videos an r3d store's index.jsonl lists as converted, sorted by key:
frame counts, fps and, for HDF5 shards, each video's shard, the file offset of its ``jpeg``
dataset and its frame offsets (slices of one flat array). The arrays are memory-mapped files
(training.data.catalogfiles says where), derived by training.data.derive on first use or ahead
of time, and again when the index changes. A process reading every video thus adds no private
memory per video, and a clip from an r3d shard is one read of a contiguous byte range, without
HDF5 calls. The paths a catalog names are confined with storeformat.paths.inside when it is
opened (docs/data.md).
"""
import json
import logging
import math
import os
import sys
from pathlib import Path

import numpy as np

from storeformat.paths import UnsafePath, inside

from . import keytable
from .catalogfiles import KINDS, META_NAME
from .derive import COMMAND, fresh_catalog
from .errors import CatalogError, FrameReadError, out_of_range
from .files import PerProcessFiles, default_max_open_files, read_frame_files


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
                          f"since ({COMMAND} --rebuild STORE)")

    @property
    def is_open(self) -> bool:
        return self.fd is not None

    def dataset(self, key):
        """The jpeg dataset of group `key`; OSError when a link leads out of the shard."""
        from storeformat.h5local import hard_link_problem  # h5py: only for such videos
        if self.h5 is None:
            import h5py
            self.h5 = h5py.File(self.path, "r")
        name = f"{key}/jpeg".encode("utf-8", "surrogateescape")
        problem = hard_link_problem(self.h5, name)
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


class StoreCatalog(PerProcessFiles):
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
        #: What its catalog.json says (format version, kind, tag, index signature, shards).
        self.meta = meta
        self._shards = _checked_shards(self.root, self.directory, meta)
        self._map_arrays()
        PerProcessFiles.__init__(self, max_open_files or default_max_open_files())

    def _map_arrays(self):
        tag = self.meta["tag"]
        for name in self._ARRAYS[self.kind]:
            setattr(self, "_" + name, _load_array(self.directory / f"{tag}.{name}.npy"))
        self._table = keytable.KeyTable(self._key_blob, self._key_offsets, self._key_prefix)
        if self.meta.get("paths"):
            self._paths = keytable.KeyTable(
                *(_load_array(self.directory / f"{tag}.{n}.npy")
                  for n in ("path_blob", "path_offsets")))
        else:
            self._paths = None
        self._side = {}  # lazily read JSON side tables (failures, problems, h5py groups)

    def __getstate__(self):
        state = PerProcessFiles.__getstate__(self)
        for name in self._ARRAYS[self.kind] + ("paths", "side", "table"):
            state.pop("_" + name, None)
        return state

    def __setstate__(self, state):
        PerProcessFiles.__setstate__(self, state)
        self._map_arrays()

    def __repr__(self):
        return f"StoreCatalog('{self.root}', {len(self)} {self.kind} videos)"

    def __str__(self):
        return str(self.root)

    def __len__(self):
        return len(self._table)

    @classmethod
    def open(cls, root, kind=None, rebuild=False, progress=None, max_open_files=None,
             jobs=1):
        """The catalog of the store at `root`, derived first when missing or older than the
        store's index (training.data.derive). `kind` ('hdf5' / 'jpg'): the store format
        expected (ValueError if the index says otherwise). `max_open_files`: shards each
        process keeps open (default: `default_max_open_files`). `jobs`: processes reading the
        shards when deriving."""
        def load(directory, meta):
            if kind is not None and meta["kind"] != kind and meta["videos"]:
                name = {"hdf5": "an HDF5", "jpg": "a JPEG directory"}[kind]
                raise ValueError(f"{root}: index lists ['{meta['kind']}'] videos, not {name} "
                                 f"store")
            return cls(root, directory, meta, max_open_files)
        return fresh_catalog(root, load, rebuild=rebuild, progress=progress, jobs=jobs)

    # --- lookups ----------------------------------------------------------------------------

    def row(self, key):
        """Row of the video `key`, or None when the store has no such (converted) video."""
        if not isinstance(key, str):
            return None
        return self._table.find(key.encode("utf-8", "surrogateescape"))

    def rows(self, wanted) -> np.ndarray:
        """Rows of many UTF-8 keys (bytes), -1 for those the store has not: looked up by
        64-bit hashes of the keys (training.data.keytable), each hit checked against the key."""
        return self._table.find_many(wanted)

    def key(self, row) -> str:
        return self._table[row].decode("utf-8", "surrogateescape")

    def n_frames(self, row) -> int:
        return int(self._n_frames[row])

    def n_frames_many(self, rows: np.ndarray) -> np.ndarray:
        """Frame counts of many rows."""
        return self._n_frames[rows]

    def fps(self, row):
        """Frame rate recorded by the index, or None."""
        value = float(self._fps[row])
        return None if math.isnan(value) else value

    def failure(self, key):
        """Why `key` is not in the store (its conversion failed), or None."""
        return self._side_table("failed").get(key)

    def problem(self, row):
        """Why a listed video cannot be read (found when the catalog was derived), or None."""
        return self._side_table("problems").get(str(row)) if self.meta.get("problems") else None

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
            path = self.directory / f"{self.meta['tag']}.{name}.json"
            table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            self._side[name] = table
        return table

    # --- reading ----------------------------------------------------------------------------

    def read_bytes(self, row, frames) -> list:
        """JPEG bytes of `frames` (the store's numbering) of the video at `row`, in the order
        asked; for r3d shards one pread of the bytes from the first to the last frame asked."""
        idx = np.fromiter(frames, dtype=np.int64) if not isinstance(frames, np.ndarray) \
            else frames.astype(np.int64, copy=False)
        n = int(self._n_frames[row])
        if idx.size:
            lo, hi = int(idx.min()), int(idx.max())
            if lo < self.first_frame or hi >= self.first_frame + n:
                raise out_of_range(self, self.key(row), idx, self.first_frame, n)
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
            shard = self.open_files().get_or_make(shard_no, lambda: _Shard(path, size))
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


# --- python -m training.data.catalog -----------------------------------------------------------

def main(argv=None) -> int:
    """Derive (or check) each store's catalog and open it as the trainer does, so that a
    catalog whose arrays or shard list are damaged is an error here too."""
    from storeformat.cliparser import Parser

    parser = Parser(
        prog=COMMAND,
        description="Derive the catalog of r3d stores ahead of training (done on first use "
                    "otherwise): reads every shard once. Written in STORE/.r3d-catalog, or "
                    "under $R3D_CACHE (default ~/.cache/r3d) when STORE is read-only.")
    parser.add_argument("stores", nargs="+", metavar="STORE", help="an r3d store folder")
    parser.add_argument("--rebuild", action="store_true",
                        help="derive again even when the catalog matches the index")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), metavar="N",
                        help="processes reading shards (default: the CPUs available, "
                             "%(default)s; never more than the machine's CPUs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        for store in args.stores:
            catalog = StoreCatalog.open(store, rebuild=args.rebuild, progress=True,
                                        jobs=max(1, args.jobs))
            print(f"{store}: {len(catalog)} {catalog.kind} videos, catalog in "
                  f"{catalog.directory}")
    except (OSError, ValueError) as e:
        print(f"{COMMAND}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
