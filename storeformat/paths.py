"""The one confinement rule for paths that come from files (index, catalog, annotation, feature
manifest): a relative '/'-separated name with no empty, '.' or '..' part, no backslash and no
NUL, that still lies inside its root once symlinks are resolved."""
import functools
import os
from pathlib import Path


class UnsafePath(ValueError):
    """A path read from a file would leave its root (or cannot name a file at all)."""


def name_problem(rel) -> "str | None":
    """Why `rel` cannot name something under a root, or None when it can (text only: no disk)."""
    if not isinstance(rel, str) or not rel:
        return "not a non-empty string"
    if "\x00" in rel:
        return "holds a NUL byte"
    if "\\" in rel:
        return "holds a backslash (names are '/'-separated)"
    if rel.startswith("/"):
        return "is absolute (names are relative to their root)"
    parts = rel.split("/")
    if "" in parts or "." in parts or ".." in parts:
        return "has an empty, '.' or '..' component"
    return None


def is_inside(path, root) -> bool:
    """Whether `path` is `root` or lies under it (both compared as given: resolve first)."""
    path, root = os.fspath(path), os.fspath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def inside(root, rel, what="path") -> Path:
    """ROOT/<rel> when `rel` passes name_problem and, symlinks resolved, stays inside ROOT;
    UnsafePath naming `what`, the name and the reason otherwise. ROOT itself may be a link."""
    problem = name_problem(rel)
    if problem:
        raise UnsafePath(f"{root}: {what} {rel!r} {problem}")
    root = Path(root)
    path = root.joinpath(*rel.split("/"))
    real_root = _real_root(os.fspath(root))
    real = os.path.realpath(path)
    if not is_inside(real, real_root):
        raise UnsafePath(f"{root}: {what} {rel!r} resolves to {real}, outside {real_root} "
                         f"(a symbolic link leads out)")
    return path


@functools.lru_cache(maxsize=64)
def _real_root(root: str) -> str:
    # One store root serves millions of checks. Should the root's link change after the first,
    # paths under the new target fall outside the remembered one and are refused, never let out.
    return os.path.realpath(root)
