"""Keeping reads of an HDF5 shard inside that file: a group key from an index is untrusted, and
an external link, a soft link to one, external raw storage or a virtual dataset would make
h5py read another file, anywhere on disk."""
import h5py
from h5py import h5l

#: Soft links followed before a chain of them is refused (HDF5's own limit is higher).
MAX_SOFT_LINKS = 16


def outside_problem(h5file, key, datasets=("jpeg", "offsets")) -> "str | None":
    """Why reading the datasets `datasets` of group `key` in the open file `h5file` would read
    another file (an external link on the way, a soft link leading to one, external storage
    or a virtual dataset of another file), or None. A missing object is no problem here."""
    for name in datasets:
        path = f"{key.strip('/')}/{name}"
        problem = _link_problem(h5file, path, 0)
        if problem:
            return problem
        obj = h5file.get(path)
        if isinstance(obj, h5py.Dataset):
            problem = _storage_problem(obj, path)
            if problem:
                return problem
    return None


def hard_link_problem(h5, name: bytes, leaves=()) -> "str | None":
    """Why the HDF5 path `name` of the open file `h5`, or one of its `leaves` (names under it),
    is refused (a part of it is a soft or external link, which would lead to another object or
    file), or None. Stricter than `outside_problem` and made of low-level calls: the catalog
    runs it on every video of a shard, whose groups r3d writes without links."""
    parts = name.split(b"/")
    for part in [b"/".join(parts[:i]) for i in range(1, len(parts) + 1)] + \
            [name + b"/" + leaf for leaf in leaves]:
        kind = h5.id.links.get_info(part).type
        if kind != h5l.TYPE_HARD:
            what = {h5l.TYPE_SOFT: "a soft link", h5l.TYPE_EXTERNAL: "an external link"}
            return (f"refused: {part.decode('utf-8', 'surrogateescape')!r} is "
                    f"{what.get(kind, 'a link')} (r3d shards hold their data themselves)")
    return None


def _link_problem(f, path, hops):
    """Walk `path` one link at a time from the file's root, following soft links."""
    parts = [p for p in path.split("/") if p]
    here = ""
    for i, part in enumerate(parts):
        at = f"{here}/{part}"
        link = f.get(at, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            return f"{at.lstrip('/')} is an external link to {link.filename}:{link.path}"
        if isinstance(link, h5py.SoftLink):
            if hops >= MAX_SOFT_LINKS:
                return f"{at.lstrip('/')}: more than {MAX_SOFT_LINKS} soft links in a row"
            target = link.path if link.path.startswith("/") else f"{here}/{link.path}"
            rest = "/".join(parts[i + 1:])
            problem = _link_problem(f, f"{target}/{rest}" if rest else target, hops + 1)
            if problem is None or hops:
                return problem
            return f"{at.lstrip('/')} is a soft link: {problem}"
        if link is None:
            return None
        here = at
    return None


def _storage_problem(dataset, path):
    """A dataset whose bytes live in other files: external raw storage or virtual sources."""
    if dataset.external:
        return f"{path} keeps its data in external file {dataset.external[0][0]!r}"
    if dataset.is_virtual:
        files = sorted({s.file_name for s in dataset.virtual_sources()} - {"."})
        if files:
            return f"{path} is a virtual dataset of file {files[0]!r}"
    return None
