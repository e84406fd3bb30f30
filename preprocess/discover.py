"""Finding the videos to convert under a source folder."""
import logging
import os
from pathlib import Path

from storeformat import VIDEO_EXTENSIONS, video_id_from_path

from .paths import is_inside, normalise_source

log = logging.getLogger(__name__)

#: Extensions of video containers taken by default (lower case, without the dot).


def normalise_extensions(extra=()):
    """The default extensions plus `extra` ('.MTS', 'mts' and 'MTS' are the same)."""
    return VIDEO_EXTENSIONS | {e.lower().lstrip(".") for e in extra if e.strip(".")}


def find_videos(src, extensions=VIDEO_EXTENSIONS, problems=None):
    """Relative paths (POSIX strings, sorted) of every file under `src` whose extension is in
    `extensions`, at any depth; hidden files and folders are left out.

    Symlinks whose target lies inside `src` are followed, each real folder walked once (so a
    link loop ends); links that lead outside `src`, broken links, a second path to a folder
    already walked and folders that cannot be listed are appended to `problems` as
    (relative path, reason) when it is given, and logged."""
    root = os.path.realpath(src)
    problems = [] if problems is None else problems
    found, seen, links = [], {}, []
    stack = [("", root)]

    def report(rel, reason):
        log.warning("%s: %s", rel, reason)
        problems.append((rel, reason))

    while stack or links:
        rel_dir, real_dir = stack.pop() if stack else links.pop(0)
        try:
            st = os.stat(real_dir)
            entries = sorted(os.scandir(real_dir), key=lambda e: e.name)
        except OSError as e:
            report(rel_dir or ".", f"cannot list folder: {e.strerror}")
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            report(rel_dir, f"symlink to folder '{seen[key] or '.'}', already walked: "
                            f"not followed again")
            continue
        seen[key] = rel_dir
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if not os.path.exists(target):
                    report(rel, f"broken symlink to {target}")
                elif not is_inside(target, root):
                    report(rel, f"symlink to {target}, outside {root}: not followed")
                elif os.path.isdir(target):
                    links.append((rel, target))
                elif _has_extension(entry.name, extensions):
                    found.append(rel)
            elif entry.is_dir():
                stack.append((rel, entry.path))
            elif _has_extension(entry.name, extensions):
                found.append(rel)
    return sorted(found)


def _has_extension(name, extensions):
    return "." in name and name.rsplit(".", 1)[-1].lower() in extensions


def read_list(list_file, src):
    """(relative source paths, problems) for a list file: one path per line, relative to `src`
    or absolute under it; blank lines and lines starting with '#' are ignored. Entries that
    leave `src` (absolute elsewhere, '..', a symlink out) are problems (entry, reason)."""
    src = Path(src).resolve()
    paths, problems = [], []
    with open(list_file, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            rel, reason = normalise_source(line, src)
            if rel is None:
                problems.append((line, f"{list_file}:{lineno}: {reason}"))
            else:
                paths.append(rel)
    return paths, problems


def assign_ids(relative_paths):
    """Pair each source with its video id. Two sources that map to the same id (a.mp4 and a.avi
    in one folder) cannot both be stored: the first in sorted order keeps the id, the others are
    returned as conflicts (source, reason)."""
    by_id, conflicts = {}, []
    for rel in sorted(relative_paths):
        vid = video_id_from_path(rel)
        if vid in by_id:
            conflicts.append((rel, f"same video id '{vid}' as {by_id[vid]}"))
        else:
            by_id[vid] = rel
    return by_id, conflicts
