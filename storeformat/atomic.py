"""Writing a file in one step: the bytes go to a temporary file, which then replaces the target
in one rename, so that a crash or an error leaves the old file (or none), never half of one."""
import os
from pathlib import Path


def write_atomically(path, write, tmp_dir=None, hidden=False) -> Path:
    """Call `write(tmp)` for a temporary path beside `path` (or in `tmp_dir`, which must be on
    the same file system), then rename it to `path`. If `write` raises, the temporary is
    removed and `path` is left as it was. Temporaries are named ``<name>.tmp<pid>``, with a
    leading dot when `hidden` (beside files users list, which a killed run leaves them in)."""
    path = Path(path)
    tmp = Path(tmp_dir or path.parent) / f"{'.' if hidden else ''}{path.name}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomically(path, text: str) -> Path:
    """`text` written to `path` as UTF-8 in one step (see write_atomically)."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
