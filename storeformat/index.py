"""The store index (index.jsonl) and settings file (store.json) written next to a store.

Each index line is one JSON object. Records of successful conversions have
``status == "done"`` and the fields id, source, format, path, n_frames, fps, width, height,
duration (and ``key`` and ``shard_videos`` for HDF5); a variable-frame-rate video's record also
has ``vfr: true`` and ``nominal_fps``, its ``fps`` being the mean rate. Failed ones have
``status == "failed"``, id, source and reason.
The file is append-only; when an id appears several times the last record wins.
"""
import json
import logging
import os
from pathlib import Path

from .atomic import write_text_atomically

log = logging.getLogger(__name__)


def read_index(path) -> dict:
    """Read an index file into {video id: record}. A torn last line (a crash while appending)
    is ignored with a warning; a malformed line elsewhere raises ValueError naming the line."""
    path = Path(path)
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    records = _read_whole(lines)
    if records is not None:
        return records
    records = {}
    last = len(lines)
    for lineno, raw in enumerate(lines, 1):
        rec = parse_index_line(raw, path, lineno, lineno == last)
        if rec is not None:
            records[rec["id"]] = rec
    return records


def parse_index_line(raw: bytes, path, lineno: int, last: bool):
    """The record of one index line, or None for a blank line or a torn `last` line (a crash
    while appending; logged). A malformed line elsewhere raises ValueError naming the line."""
    if not raw.strip():
        return None
    try:
        rec = json.loads(raw)
        if not isinstance(rec, dict) or "id" not in rec or "status" not in rec:
            raise ValueError("record without 'id' and 'status'")
    except ValueError as e:
        if last:
            log.warning("%s: ignoring incomplete last line %d (interrupted write)", path, lineno)
            return None
        raise ValueError(f"{path}:{lineno}: malformed index record: {e}") from None
    return rec


def _read_whole(lines):
    """Every record parsed at once, as one JSON array (twice as fast as line by line: a
    million-video index in seconds), or None when a line is not one whole record; read_index
    then goes line by line to skip a torn last line or name the bad one."""
    body = [raw for raw in lines if raw.strip()]
    try:
        recs = json.loads(b"[" + b",".join(body) + b"]")
    except ValueError:
        return None
    if len(recs) != len(body) or not all(isinstance(r, dict) and "id" in r and "status" in r
                                         for r in recs):
        return None
    return {rec["id"]: rec for rec in recs}


class IndexWriter:
    """Appends records to an index file, each flushed and fsynced so a crash loses at most the
    line being written."""

    def __init__(self, path):
        self.path = Path(path)
        self._drop_torn_tail()
        self._f = open(self.path, "ab")

    def _drop_torn_tail(self):
        """A run killed mid-line leaves a last line without its newline: cut it off, so the
        next record starts on a fresh line (the record it held was never complete)."""
        if not self.path.exists():
            return
        with open(self.path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(max(0, size - (1 << 20)))
            tail = f.read()
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            keep = size - len(tail) + cut + 1 if cut >= 0 else 0
            log.warning("%s: dropping an incomplete last line (interrupted write)", self.path)
            f.truncate(keep)

    def append(self, record: dict) -> None:
        self._f.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_settings(path, settings: dict) -> None:
    """Write store.json atomically."""
    write_text_atomically(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def read_settings(path):
    """Read store.json, or None when it does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
