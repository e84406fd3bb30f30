"""Finding the videos to convert under a source folder."""
import logging
import os
from pathlib import Path

from storeformat import video_id_from_path

log = logging.getLogger(__name__)

#: Extensions of video containers taken by default (lower case, without the dot).
VIDEO_EXTENSIONS = frozenset(
    "mp4 m4v mov qt avi webm mkv mk3d flv f4v mpg mpeg mpe m1v m2v vob ts mts m2ts 3gp 3g2 "
    "ogv ogg wmv asf divx xvid rm rmvb dv mxf nut y4m h264 264 hevc h265 gif".split())


def normalise_extensions(extra=()):
    """The default extensions plus `extra` ('.MTS', 'mts' and 'MTS' are the same)."""
    return VIDEO_EXTENSIONS | {e.lower().lstrip(".") for e in extra if e.strip(".")}


def find_videos(src, extensions=VIDEO_EXTENSIONS):
    """Relative paths (POSIX strings, sorted) of every file under `src` whose extension is in
    `extensions`, at any depth; hidden files and folders are left out."""
    src = Path(src)
    found = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
            if ext in extensions:
                found.append((Path(root) / name).relative_to(src).as_posix())
    return sorted(found)


def read_list(list_file, src):
    """Relative source paths named in a list file: one per line, relative to `src` or absolute
    under it; blank lines and lines starting with '#' are ignored."""
    src = Path(src).resolve()
    paths = []
    with open(list_file, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            p = Path(line)
            if p.is_absolute():
                try:
                    p = p.resolve().relative_to(src)
                except ValueError:
                    raise ValueError(f"{list_file}:{lineno}: {line} is not under {src}") from None
            paths.append(p.as_posix())
    return paths


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
