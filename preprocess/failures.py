"""Telling the environment's failures from a bad video's.

A full disk, an I/O error, a permission problem or a source that vanished says nothing about
the video: such a failure stops the run (no point converting the rest onto a full disk) and
is never recorded against the video, so a plain rerun converts it once the cause is fixed."""
import errno
import os
import re

from .extract import ExtractionError

#: errno values that describe the machine, not the video (raised by Python or h5py).
ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name) for name in
    ("ENOSPC", "EDQUOT", "EIO", "EACCES", "EPERM", "EROFS", "ENOENT", "ESTALE", "ENODEV",
     "ENXIO", "ENOTCONN", "ETIMEDOUT", "EMFILE", "ENFILE", "EFBIG", "ENOMEM")
    if hasattr(errno, name))
#: Of those, the ones whose message in ffmpeg's output means the source could not be read.
_FFMPEG_ERRNOS = (errno.ENOENT, errno.EACCES, errno.EIO, errno.ESTALE, errno.ENOTCONN,
                  errno.ENODEV)
_H5_ERRNO = re.compile(r"errno = (\d+)")


class EnvironmentFailure(ExtractionError):
    """A video could not be converted for a reason outside it (disk, permissions, source gone)."""


def environment_cause(exc):
    """The environmental cause of an exception (its strerror, with the file when known), or
    None when it is not one. h5py's errors carry the errno only in their message."""
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None:
        match = _H5_ERRNO.search(str(exc))
        code = int(match.group(1)) if match else None
    if code not in ENVIRONMENT_ERRNOS:
        return None
    where = getattr(exc, "filename", None)
    return f"{os.strerror(code)}" + (f": {where}" if where else "")


def ffmpeg_environment_cause(messages):
    """The first of ffmpeg's messages that reports a source it could not read (missing,
    permission, I/O error), or None."""
    for msg in messages:
        for code in _FFMPEG_ERRNOS:
            if os.strerror(code) in msg:
                return msg
    return None
