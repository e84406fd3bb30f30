"""The files of a store catalog (`<store>/.r3d-catalog/`, or under the cache folder): their
names, the format version, where a store's catalog may be, and the locking and checks both the
reader (training.data.catalog) and the deriver (training.data.derive) use. Nothing read is
trusted: a catalog folder is never a link, and clean-up deletes only the names a catalog
writes (docs/data.md)."""
import fcntl
import hashlib
import json
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path

from .errors import CatalogError
from .files import cache_root

#: 2: keys packed without padding (training.keytable).
CATALOG_VERSION = 2
#: Folder of a store's catalog, next to its index (hidden: not a video of a JPEG store).
CATALOG_DIR = ".r3d-catalog"
META_NAME = "catalog.json"
KINDS = {"hdf5": 0, "jpg": 1}  # the store format -> the number of its first frame
#: Frame counts a record may give (the catalog stores them as int32).
MAX_FRAMES = 2 ** 31 - 1
ARRAY_NAMES = ("key_blob", "key_offsets", "key_prefix", "n_frames", "fps", "shard", "data",
                "start", "offsets", "path_blob", "path_offsets",
                "keys", "paths")  # keys, paths: catalog version 1
SIDE_NAMES = ("failed", "problems", "groups")
#: A catalog's tag, the prefix of its file names (checked before it names a file).
TAG = re.compile(r"[0-9a-f]{12}")
#: The only file names a catalog folder holds besides catalog.json and lock: clean-up deletes
#: these and nothing else.
OWN_FILE = re.compile(r"(?P<tag>[0-9a-f]{12})\.(?:(?:%s)\.npy|(?:%s)\.json)"
                       r"|%s\.(?P<tmp>[0-9a-f]{12})\.tmp"
                       % ("|".join(ARRAY_NAMES), "|".join(SIDE_NAMES), re.escape(META_NAME)))


def catalog_dirs(root) -> list:
    """Where a store's catalog may be, in order: in the store, then in the cache folder (under
    a hash of the store's absolute path)."""
    root = Path(root).resolve()
    digest = hashlib.sha1(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return [root / CATALOG_DIR, cache_root() / "catalogs" / digest]


def signature(index_path: Path) -> dict:
    st = index_path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def folder_problem(directory: Path):
    """Why `directory` cannot hold a catalog (a link, or not a folder), or None: r3d never
    writes or deletes through a link it did not make."""
    try:
        mode = os.lstat(directory).st_mode
    except (FileNotFoundError, NotADirectoryError):  # to be made (or failing to be) by mkdir
        return None
    except OSError as e:
        return f"cannot be examined ({e.strerror or e})"
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    return None if stat.S_ISDIR(mode) else "is not a folder"


@contextmanager
def shared_lock(directory: Path):
    """Hold the catalog folder's lock file shared while loading (a process deriving the
    catalog holds it exclusively); no lock where there is no lock file or no file locking."""
    try:
        fd = os.open(directory / "lock", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:  # no locks on some network file systems
            pass
        yield
    finally:
        os.close(fd)


def read_meta(directory: Path):
    try:
        meta = json.loads((directory / META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def checked_meta(directory: Path, meta: dict) -> dict:
    """`meta` (a catalog.json) once its kind and tag are ones r3d writes (the tag names files):
    else CatalogError."""
    tag = meta.get("tag")
    if meta.get("kind") not in KINDS or not (isinstance(tag, str) and TAG.fullmatch(tag)):
        raise CatalogError(f"{directory / META_NAME}: not a catalog r3d wrote (kind "
                           f"{meta.get('kind')!r}, tag {tag!r}); delete the folder to "
                           f"derive it again")
    return meta
