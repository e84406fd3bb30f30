"""Keeping every input inside SRC and every output inside DST.

Sources and list entries are untrusted names: each is normalised, checked to stay inside SRC
once `..` and symlinks are resolved, and its video id checked to be a safe, unreserved path
under DST that does not nest with another video's id."""
import fnmatch
import os
import re
from pathlib import Path, PurePosixPath

from storeformat import FAILURES_NAME, INDEX_NAME, LOCK_NAME, SETTINGS_NAME
from storeformat.paths import is_inside, name_problem

#: First components of a store's own files; a video id may not start with one of them.
RESERVED_PATTERNS = (INDEX_NAME, SETTINGS_NAME, FAILURES_NAME, INDEX_NAME + ".*",
                     SETTINGS_NAME + ".*", FAILURES_NAME + ".*", LOCK_NAME, "shard-*.h5", ".*")
_RESERVED = re.compile("|".join(fnmatch.translate(p) for p in RESERVED_PATTERNS))


def normalise_source(entry: str, src: Path):
    """(relative POSIX path, None) for a source named by `entry` (relative to the resolved
    folder `src`, or absolute under it), or (None, reason) when it leaves SRC."""
    if os.path.isabs(entry):
        real = os.path.realpath(entry)
        if not is_inside(real, src):
            return None, f"absolute path outside {src}"
        entry = os.path.relpath(real, src)
    norm = os.path.normpath(entry)
    if norm == os.curdir or norm == os.pardir or norm.startswith(os.pardir + os.sep):
        return None, f"leaves {src} (a '..' path)"
    real = os.path.realpath(src / norm)
    if not is_inside(real, src):
        return None, f"resolves to {real}, outside {src} (a symlink leads out)"
    return PurePosixPath(*Path(norm).parts).as_posix(), None


def id_problem(video_id: str):
    """Why `video_id` cannot name a video in a store, or None when it can: the confinement
    rule's name check (what readers of the index will apply to its path), then the store's
    reserved names."""
    problem = name_problem(video_id)
    if problem:
        return problem
    parts = video_id.split("/")
    if _RESERVED.match(parts[0]):
        return (f"'{parts[0]}' is reserved for the store's own files (index, settings, "
                f"failures, lock, shards, hidden names)")
    return None


def nesting_conflicts(candidates, existing=()):
    """Split video ids into those that can be stored and (id, reason) for the others.

    A video's frames live in DST/<id> (or the group videos/<id>), so an id that is a folder
    prefix of another (`cls/a` and `cls/a/b`) would put one video inside the other. Ids in
    `existing` (already stored) keep theirs; among `candidates`, the first in sorted order
    wins."""
    taken, prefixes = set(), {}
    for vid in sorted(existing):
        taken.add(vid)
        _add_prefixes(prefixes, vid)
    accepted, refused = [], []
    for vid in sorted(candidates):
        if vid in taken:
            accepted.append(vid)
            continue
        clash = next((p for p in _prefixes(vid) if p in taken), None) or prefixes.get(vid)
        if clash is not None:
            refused.append((vid, f"video id '{vid}' nests with video id '{clash}': one "
                                 f"video's frames would lie inside the other's folder"))
            continue
        taken.add(vid)
        _add_prefixes(prefixes, vid)
        accepted.append(vid)
    return accepted, refused


def _prefixes(vid):
    parts = vid.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _add_prefixes(prefixes, vid):
    for p in _prefixes(vid):
        prefixes.setdefault(p, vid)
