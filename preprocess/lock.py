"""One writer per store: an OS file lock on DST/.r3d-lock, held for the whole run.

The kernel releases the lock when the process dies, however it dies, so a lock file left by a
killed run never blocks the next one; the file only records who held it last."""
import contextlib
import fcntl
import os
import socket
from pathlib import Path

from storeformat import LOCK_NAME


class StoreBusy(RuntimeError):
    """Another run is writing the same store."""


@contextlib.contextmanager
def store_lock(dst):
    """Hold the store lock of the folder `dst` for the duration of the block; raises
    StoreBusy naming the other process when another run holds it."""
    path = Path(dst) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            raise StoreBusy(f"{dst}: another r3d-preprocess run is writing this store "
                            f"({holder}); wait for it to finish or stop it") from None
        except OSError as e:
            raise OSError(e.errno, f"{path}: cannot lock the store ({e.strerror}): its file "
                                   f"system does not support flock") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
