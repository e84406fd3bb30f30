"""One writer per output: an OS file lock held for the whole run.

The kernel releases the lock when the process dies, however it dies, so a lock file left by a
killed run never blocks the next one; the file only records who held it last."""
import contextlib
import fcntl
import os
import socket
from pathlib import Path


class OutputBusy(RuntimeError):
    """Another run is writing the same output."""


@contextlib.contextmanager
def output_lock(lock_path, output, command, busy=OutputBusy, what="output"):
    """Hold the lock file `lock_path` for the block; raises `busy` (an OutputBusy) naming
    `output` (a `what`: output, store, ...) and the process that holds it when another
    `command` run writes the same output."""
    lock_path = Path(lock_path)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            raise busy(f"{output}: another {command} run is writing this {what} "
                             f"({holder}); wait for it to finish or stop it") from None
        except OSError as e:
            raise OSError(e.errno, f"{lock_path}: cannot lock the output ({e.strerror}): its "
                                   f"file system does not support flock") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
