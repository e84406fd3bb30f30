"""Frame stores: where a video's JPEG frames live, behind one small interface.

A store maps a *video key* (a '/'-separated relative name such as
``ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01``) to its frames:

* ``n_frames(video)`` -> int
* ``read_bytes(video, frames)`` -> the frames' JPEG bytes, in the order asked
* ``read(video, frames, factor=1)`` -> uint8 array T x H x W x 3 (decoded at 1/factor size)

Frames are numbered as each layout numbers them, which is also how annotation segments count
them: from 1 in JPEG directories (``image_00001.jpg`` is frame 1, segments ``[1, n + 1]``), from
0 in HDF5 stores (element 0, segments ``[0, n]``). `first_frame` says which.

Three layouts are read: JPEG frame directories (`JpegDirStore`), r3d's HDF5 shards
(`Hdf5Store`, see storeformat.hdf5) and the reference's one-HDF5-file-per-video layout
(`ReferenceHdf5Store`). `open_store(path)` picks the right one.

Stores with an index.jsonl (written by r3d-preprocess) find their videos through the store's
catalog (training.data.catalog: arrays in memory-mapped files, derived once from the index and the
shards), so a process reading every video adds no private memory per video, and a clip from an
r3d shard is one ``pread``.

Files are opened lazily by the process that reads them and kept in a small LRU cache; a forked
DataLoader worker never uses a handle opened by its parent (the cache is keyed by process id
and dropped when pickled), so each worker opens its own.
"""
import os
import re
from pathlib import Path

import numpy as np

from storeformat import INDEX_NAME, SETTINGS_NAME, frame_path, read_settings

from .catalog import StoreCatalog
from .decode import DecodeError, decode_clip
from .errors import FrameReadError, VideoNotFound, out_of_range
from .files import PerProcessFiles, read_frame_files

_FRAME_FILE = re.compile(r"image_(\d{5,})\.jpg$")


class FrameStore:
    """Base class of the stores; subclasses implement `__contains__`, `n_frames`, `read_bytes`."""

    #: Number of a video's first frame in this layout.
    first_frame = 1
    #: The store's catalog (training.data.catalog.StoreCatalog) when it has an index, else None.
    catalog = None

    def __init__(self, root):
        self.root = Path(root)

    def __repr__(self):
        return f"{type(self).__name__}('{self.root}')"

    def __str__(self):
        return str(self.root)

    def __contains__(self, video) -> bool:
        raise NotImplementedError

    def n_frames(self, video) -> int:
        raise NotImplementedError

    def read_bytes(self, video, frames) -> list:
        raise NotImplementedError

    def fps(self, video):
        """Frame rate recorded for a video, or None when the store does not know it."""
        row = self.catalog.row(video) if self.catalog is not None else None
        return self.catalog.fps(row) if row is not None else None

    def failure(self, video):
        """Why a video is absent from the store (a failed conversion), or None."""
        return self.catalog.failure(video) if self.catalog is not None else None

    def _row(self, video):
        """The video's row in the store's catalog; VideoNotFound when it has none."""
        row = self.catalog.row(video)
        if row is None:
            raise self._missing(video)
        return row

    def read(self, video, frames, factor: int = 1) -> np.ndarray:
        """Decode `frames` of `video` into uint8 T x H x W x 3 (at 1/`factor` size)."""
        frames = list(frames)
        data = self.read_bytes(video, frames)
        try:
            return decode_clip(data, factor, names=frames)
        except DecodeError as e:
            frame = frames[e.position] if e.position is not None else None
            raise FrameReadError(self, video, frame, e.reason) from None

    def close(self) -> None:
        """Release open files (they are reopened on the next read)."""

    def _check_frames(self, video, frames, n):
        first = self.first_frame
        if len(frames) and not (first <= min(frames) and max(frames) < first + n):
            raise out_of_range(self, video, frames, first, n)

    def _missing(self, video):
        reason = self.failure(video)
        detail = f" (its conversion failed: {reason})" if reason else ""
        return VideoNotFound(f"{self}: no video '{video}'{detail}")


class JpegDirStore(FrameStore):
    """One directory of ``image_%05d.jpg`` files per video, at ``root/<video key>``.

    With an index.jsonl (stores written by r3d-preprocess) the store's catalog lists the videos
    and their frame counts; without one (the reference layout), a video is a directory and its
    frame count is the number of frame files, checked to be numbered 1..n without gaps."""

    def __init__(self, root):
        super().__init__(root)
        indexed = (self.root / INDEX_NAME).exists()
        self.catalog = StoreCatalog.open(root, kind="jpg") if indexed else None
        self._counts = {}

    def __contains__(self, video) -> bool:
        if self.catalog is not None:
            return self.catalog.row(video) is not None
        return (self.root / video).is_dir()

    def video_dir(self, video) -> Path:
        if self.catalog is not None:
            return self.catalog.video_dir(self._row(video))
        path = self.root / video
        if not path.is_dir():
            raise self._missing(video)
        return path

    def n_frames(self, video) -> int:
        if self.catalog is not None:
            return self.catalog.n_frames(self._row(video))
        n = self._counts.get(video)
        if n is None:
            n = self._counts[video] = self._count(video)
        return n

    def _count(self, video) -> int:
        path = self.video_dir(video)
        numbers = [int(m.group(1)) for m in map(_FRAME_FILE.match, os.listdir(path)) if m]
        if not numbers:
            raise FrameReadError(self, video, None, f"no image_*.jpg files in {path}")
        if max(numbers) != len(numbers) or min(numbers) != 1:
            present = set(numbers)
            gap = next(i for i in range(1, max(numbers) + 1) if i not in present)
            raise FrameReadError(self, video, gap, f"missing file {frame_path(path, gap)} "
                                                   f"(frames 1..{max(numbers)} expected)")
        return len(numbers)

    def read_bytes(self, video, frames) -> list:
        if self.catalog is not None:
            return self.catalog.read_bytes(self._row(video), frames)
        return read_frame_files(self, video, self.video_dir(video), frames)


class Hdf5Store(FrameStore):
    """r3d's HDF5 shards (many videos per file), located through the store's catalog.

    A video's frames are contiguous JPEG bytes in one uint8 dataset, so a clip is one read.
    When the dataset is stored contiguously without filters (as r3d-preprocess writes it) that
    read is a plain ``pread`` at the offset the catalog recorded; otherwise it goes through
    h5py. The shards' layout is checked once, when the catalog is derived."""

    first_frame = 0

    def __init__(self, root, max_open_files=None):
        FrameStore.__init__(self, root)
        self.catalog = StoreCatalog.open(root, kind="hdf5", max_open_files=max_open_files)

    def __contains__(self, video) -> bool:
        return self.catalog.row(video) is not None

    def n_frames(self, video) -> int:
        return self.catalog.n_frames(self._row(video))

    def read_bytes(self, video, frames) -> list:
        return self.catalog.read_bytes(self._row(video), frames)

    def close(self) -> None:
        self.catalog.close()


class ReferenceHdf5Store(PerProcessFiles, FrameStore):
    """The reference implementation's HDF5 layout: one ``<video key>.hdf5`` file per video with
    a dataset ``video`` of variable-length uint8 arrays, element i holding frame i's JPEG."""

    SUFFIXES = (".hdf5", ".h5")
    first_frame = 0

    def __init__(self, root, max_open_files: int = 64):
        FrameStore.__init__(self, root)
        self._counts = {}
        PerProcessFiles.__init__(self, max_open_files)

    def path(self, video) -> Path:
        """The video's file (``.hdf5`` as the reference names it, else ``.h5``)."""
        for suffix in self.SUFFIXES:
            p = self.root / (video + suffix)
            if p.is_file():
                return p
        return self.root / (video + self.SUFFIXES[0])

    def __contains__(self, video) -> bool:
        return self.path(video).is_file()

    def n_frames(self, video) -> int:
        n = self._counts.get(video)
        if n is None:
            import h5py
            path = self.path(video)
            if not path.is_file():
                raise self._missing(video)
            # A short-lived handle: this may run in the parent before workers fork.
            try:
                with h5py.File(path, "r") as f:
                    n = len(f["video"])
            except (OSError, KeyError) as e:
                raise FrameReadError(self, video, None, f"cannot read {path}: {e}") from None
            self._counts[video] = n
        return n

    def _dataset(self, video):
        import h5py
        files = self.open_files()
        path = self.path(video)

        def make():
            if not path.is_file():
                raise self._missing(video)
            try:
                return h5py.File(path, "r")
            except OSError as e:
                raise FrameReadError(self, video, None, f"cannot open {path}: {e}") from None
        try:
            return files.get_or_make(path, make)["video"]
        except KeyError:
            raise FrameReadError(self, video, None, f"{path} has no dataset 'video'") from None

    def read_bytes(self, video, frames) -> list:
        frames = list(frames)
        dset = self._dataset(video)
        n = len(dset)
        self._counts[video] = n
        self._check_frames(video, frames, n)
        if not frames:
            return []
        lo, hi = min(frames), max(frames)
        try:
            span = dset[lo:hi + 1]
        except OSError as e:
            raise FrameReadError(self, video, None, f"cannot read {self.path(video)}: {e}") \
                from None
        out = []
        for f in frames:
            data = span[f - lo].tobytes()
            if not data:
                raise FrameReadError(self, video, f, f"empty element in {self.path(video)}")
            out.append(data)
        return out


def open_store(root, **options) -> FrameStore:
    """Open the store at `root`, recognising its layout: an r3d store (store.json/index.jsonl
    saying jpg or hdf5), a folder of reference per-video ``.hdf5`` files, or JPEG directories."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such store directory")
    settings = read_settings(root / SETTINGS_NAME) or {}
    fmt = settings.get("format")
    if fmt is None and (root / INDEX_NAME).exists():
        fmt = StoreCatalog.open(root).kind  # the index's format (mixed formats: an error)
    if fmt == "hdf5":
        return Hdf5Store(root, **options)
    if fmt == "jpg":
        return JpegDirStore(root)
    if fmt is not None:
        raise ValueError(f"{root}: unknown store format {fmt!r}")
    if _has_reference_hdf5(root):
        return ReferenceHdf5Store(root, **options)
    return JpegDirStore(root)


def _has_reference_hdf5(root: Path) -> bool:
    """True when `root` or its first-level folders hold ``*.hdf5`` files (and no frame dirs)."""
    for entry in os.scandir(root):
        if entry.is_file() and entry.name.endswith(ReferenceHdf5Store.SUFFIXES):
            return True
        if entry.is_dir():
            for sub in os.scandir(entry.path):
                if sub.is_file():
                    return sub.name.endswith(ReferenceHdf5Store.SUFFIXES)
    return False
