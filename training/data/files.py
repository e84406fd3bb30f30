"""Files the data path opens: frame files read whole, shards kept open per process in a small
LRU (a forked DataLoader worker never uses its parent's handles), and the cache folder."""
import functools
import logging
import os
import resource
from collections import OrderedDict
from pathlib import Path

from storeformat import FRAME_TEMPLATE

from .errors import FrameReadError

log = logging.getLogger(__name__)

#: Frame files are read in chunks of this size (one read for a typical frame). Kept below
#: malloc's mmap threshold: a bigger request maps and unmaps fresh memory on every call.
_READ_SIZE = 1 << 16


def cache_root() -> Path:
    """Where r3d keeps what it derives outside a store (catalogs of read-only stores, the
    compiled region decoder): $R3D_CACHE, else ~/.cache/r3d. $R3D_CACHE_DIR, the region
    decoder's old setting, is still read this release, with a warning (once per process)."""
    if os.environ.get("R3D_CACHE"):
        return Path(os.environ["R3D_CACHE"])
    if os.environ.get("R3D_CACHE_DIR"):
        _warn_old_cache_setting()
        return Path(os.environ["R3D_CACHE_DIR"])
    return Path.home() / ".cache" / "r3d"


@functools.lru_cache(maxsize=None)
def _warn_old_cache_setting():
    log.warning("R3D_CACHE_DIR is deprecated and will be ignored in the next release: "
                "set R3D_CACHE instead")


def default_max_open_files() -> int:
    """Shards a process keeps open by default: an eighth of its descriptor limit (DataLoader
    workers need descriptors to pass batches), between 32 and 4,096. A read from a shard
    that is not open costs an open and a close more (40-80% more CPU time than the read
    alone; docs/benchmarks.md)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(32, min(4096, soft // 8))


def read_frame_files(store, video, directory, frames) -> list:
    """The bytes of the 1-based `frames` of a JPEG frame directory, in the order asked; errors
    name `store`, `video` and the frame."""
    template = os.path.join(str(directory), FRAME_TEMPLATE)
    out = []
    for f in frames:
        if f < 1:
            raise FrameReadError(store, video, f, "frame numbers start at 1")
        out.append(_read_file(store, video, f, template.format(f)))
    return out


def _read_file(store, video, frame, path) -> bytes:
    # os-level calls: a third of the system calls (and time) of open().read()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise FrameReadError(store, video, frame, f"missing file {path}") from None
    except OSError as e:
        raise FrameReadError(store, video, frame, f"cannot open {path}: {e.strerror}") from None
    try:
        chunks = [os.read(fd, _READ_SIZE)]
        while len(chunks[-1]) == _READ_SIZE:  # a frame bigger than one read
            chunks.append(os.read(fd, _READ_SIZE))
    except OSError as e:
        raise FrameReadError(store, video, frame, f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not data:
        raise FrameReadError(store, video, frame, f"empty file {path}")
    return data


class LRU(OrderedDict):
    """A small LRU mapping whose evicted values are passed to `on_evict`."""

    def __init__(self, capacity, on_evict=None):
        super().__init__()
        self.capacity = max(1, int(capacity))
        self.on_evict = on_evict

    def get_or_make(self, key, make):
        try:
            self.move_to_end(key)
            return self[key]
        except KeyError:
            value = self[key] = make()
            while len(self) > self.capacity:
                _, old = self.popitem(last=False)
                if self.on_evict is not None:
                    self.on_evict(old)
            return value

    def clear_all(self):
        while self:
            _, old = self.popitem(last=False)
            if self.on_evict is not None:
                self.on_evict(old)


class PerProcessFiles:
    """Open files cached per process: a child created by fork starts with an empty cache (it
    never touches its parent's handles), and pickling (spawned workers) drops the cache."""

    def __init__(self, max_open_files):
        self.max_open_files = max_open_files
        self._reset()

    def _reset(self):
        self._pid = os.getpid()
        self._files = LRU(self.max_open_files, on_evict=self._close_file)

    def open_files(self) -> LRU:
        """This process's open files."""
        if self._pid != os.getpid():
            # Forked: the inherited handles belong to the parent. Forget them without closing
            # (closing would run HDF5 library code on the parent's state).
            self._reset()
        return self._files

    @staticmethod
    def _close_file(handle):
        try:
            handle.close()
        except Exception:  # closing a read-only handle cannot lose data; never mask the caller
            log.debug("error closing %r", handle, exc_info=True)

    def close(self):
        """Close this process's open files (they reopen when read again)."""
        if self._pid == os.getpid():
            self._files.clear_all()

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_files"], state["_pid"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()
