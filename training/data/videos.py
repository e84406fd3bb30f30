"""The videos of a run: `VideoCatalog` combines the stores an annotation file names (root
names -> stores): the parent finds videos by candidate keys; workers read them by integer row.
Stores with an index are looked up in their catalog (training.data.catalog); others (the
reference's layouts) through `FoundVideos`, numbered as they are found."""
from pathlib import Path

import numpy as np

from .catalog import StoreCatalog
from .errors import VideoNotFound
from .stores import FrameStore, open_store


class FoundVideos:
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
    one error); the others when first needed. `find` locates a video (in the parent, while
    building samples); the per-row methods read it (in the workers). Row r belongs to store
    ``r % len(names)``."""

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
            self._tables[i] = table if isinstance(table, StoreCatalog) else FoundVideos(store)
        return self._tables[i]

    def stores_for(self, root) -> list:
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
        order = self.stores_for(root)
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
        for i in self.stores_for(root):
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
                out[at] = table.n_frames_many(local)
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
            if isinstance(table, FoundVideos):
                table.freeze()

    def close(self):
        """Close this process's open files (they reopen when read again)."""
        for table in self._tables:
            if table is not None:
                table.close()
