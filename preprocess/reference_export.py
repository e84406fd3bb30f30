"""r3d-export-reference: copy an r3d store into the reference implementation's HDF5 layout, one
``<video>.hdf5`` file per video holding a dataset ``video`` of variable-length uint8 arrays,
element i the JPEG bytes of frame i (frame 0 first), as its generate_video_hdf5 writes it.

Without an annotation file, a video goes to ``OUT/<store id>.hdf5``. With one (``--annotation``),
to where the reference's loader looks for it with ``--file_type hdf5``: ``OUT/<label>/<id>.hdf5``
(``OUT/test/<id>.hdf5`` for unlabelled videos), and ``--annotation-out`` writes a copy of the
file for that store: its root at OUT with frame_base 0 (the reference's HDF5 numbering), the
segments renumbered accordingly, ``video_path`` only for videos the reference would not find by
its default rule (absolute) and entries without frames in the store left out.
JPEG bytes are copied, never re-encoded. Each file records what it was made from (the video's
index path, key and frame count, its shard's or directory's size and mtime); a rerun rewrites
the files whose video changed since ("refreshed") and leaves the others. Index paths and shard
links that lead out of the store are refused per video, never read.
"""
import copy
import logging
import os
import sys
from pathlib import Path, PurePosixPath

import h5py
import numpy as np
import simplejson
from tqdm import tqdm

from storeformat import INDEX_NAME, frame_name, read_index
from storeformat.annotation import AnnotationError, entry_frame_base, load_annotation
from storeformat.atomic import write_atomically
from storeformat.cliparser import Parser
from storeformat.h5local import outside_problem
from storeformat.paths import UnsafePath, inside

log = logging.getLogger("r3d-export-reference")

SUFFIX = ".hdf5"
#: Attribute of an exported file recording what it was made from (StoreReader.source).
SOURCE_ATTR = "r3d_source"


class ExportError(ValueError):
    """The store or the annotation cannot be exported; the message names the file and why."""


def reference_name(video_id, labels):
    """Where the reference looks for an annotated video, relative to its root (no suffix)."""
    return f"{labels[0]}/{video_id}" if len(labels) == 1 else f"test/{video_id}"


def recorded_source(path: Path):
    """What an exported file says it was made from (see StoreReader.source), or None for a
    file without the record (older exports) or one that cannot be read."""
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get(SOURCE_ATTR)
    except OSError:
        return None
    return simplejson.loads(value) if isinstance(value, (str, bytes)) else None


class StoreReader:
    """The JPEG bytes of an r3d store's videos (JPEG directories or HDF5 shards), by index id.
    Index paths are untrusted: each goes through storeformat.paths.inside, and a shard's groups
    through storeformat.h5local, before anything is read."""

    def __init__(self, root):
        self.root = Path(root)
        index = self.root / INDEX_NAME
        if not index.is_file():
            raise ExportError(f"{self.root}: no {INDEX_NAME}; export needs a store written by "
                              f"r3d-preprocess")
        self.records = {k: r for k, r in read_index(index).items() if r.get("status") == "done"}
        self._shard = (None, None)

    def _path(self, video_id) -> Path:
        """The store file or directory the index names for a video, confined to the store."""
        return inside(self.root, self.records[video_id].get("path"), "video path")

    def source(self, video_id) -> dict:
        """What the video's export is made from: its index path, group key and frame count,
        and the size and modification time of its shard (or frame directory)."""
        rec = self.records[video_id]
        st = os.stat(self._path(video_id))
        return {"path": rec["path"], "key": rec.get("key"), "n_frames": rec.get("n_frames"),
                "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def frames(self, video_id) -> list:
        rec = self.records[video_id]
        path = self._path(video_id)
        if rec.get("format") == "hdf5":
            handle, key = self._open(path), rec.get("key")
            if not isinstance(key, str) or not key:
                raise ExportError(f"{rec['path']}: the index gives no group key")
            problem = outside_problem(handle, key)
            if problem:
                raise ExportError(f"{rec['path']}: {problem}")
            group = handle[key]
            offsets = group["offsets"][()]
            data = group["jpeg"][()].tobytes()
            return [data[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
        return [inside(self.root, f"{rec['path']}/{frame_name(i)}", "frame file").read_bytes()
                for i in range(1, int(rec["n_frames"]) + 1)]

    def _open(self, path):
        name, handle = self._shard
        if name != path:
            if handle is not None:
                handle.close()
            handle = h5py.File(path, "r")
            self._shard = (path, handle)
        return handle

    def close(self):
        if self._shard[1] is not None:
            self._shard[1].close()
        self._shard = (None, None)


def write_reference_video(path: Path, frames, source=None) -> None:
    """One reference .hdf5 file, written atomically (a crash leaves no partial file), with
    `source` (what it is made from) as an attribute the reference's loader ignores."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            video = f.create_dataset("video", (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
            for i, data in enumerate(frames):
                video[i] = np.frombuffer(data, dtype=np.uint8)
            if source is not None:
                f.attrs[SOURCE_ATTR] = simplejson.dumps(source, sort_keys=True)
    write_atomically(path, write, hidden=True)


def plan(store: StoreReader, doc=None, root=None):
    """[(store id, name under OUT without suffix, annotation id or None)] to export."""
    if doc is None:
        return [(vid, vid, None) for vid in sorted(store.records)]
    jobs, missing = [], 0
    for key, entry in doc["database"].items():
        if root is not None and entry.get("root") not in (root, None):
            continue
        labels = _labels(entry)
        candidates = [entry.get("store_id"), entry.get("video_path")] + \
            [f"{name}/{key}" for name in labels] + [key]
        found = next((c for c in candidates if isinstance(c, str) and c in store.records), None)
        if found is None:
            missing += 1
            continue
        jobs.append((found, reference_name(key, labels), key))
    if missing:
        log.warning("%d annotated video(s) are not in the store and are left out", missing)
    return jobs


def _labels(entry):
    ann = entry.get("annotations") or {}
    if isinstance(ann, dict) and "label" in ann:
        return [ann["label"]]
    return []


def export(store_root, out, *, annotation=None, annotation_out=None, root=None,
           overwrite=False, progress=True):
    """Write the reference layout under `out`; returns (written, refreshed, skipped, failed):
    new files, files rewritten because their video changed in the store since, files left as
    they are, and the ids of videos not exported (each logged with its reason)."""
    out = Path(out)
    if annotation_out is not None:
        _check_annotation_out(annotation, annotation_out)
    store = StoreReader(store_root)
    doc = load_annotation(annotation) if annotation is not None else None
    if doc is not None and root is None and len(doc.get("roots") or {}) > 1:
        raise ExportError(f"{annotation}: several roots ({', '.join(doc['roots'])}); choose the "
                          f"one this store holds with --root")
    jobs = plan(store, doc, root)
    written = refreshed = skipped = 0
    failed = []
    try:
        for store_id, name, _ in tqdm(jobs, desc="export", unit="video", disable=not progress):
            try:
                target = inside(out, name + SUFFIX, "output file")
                source = store.source(store_id)
                stale = target.exists() and not overwrite
                if stale and recorded_source(target) == source:
                    skipped += 1
                    continue
                write_reference_video(target, store.frames(store_id), source)
                if stale:
                    refreshed += 1
                else:
                    written += 1
            except (OSError, KeyError, TypeError, UnsafePath, ExportError) as e:
                log.warning("%s: not exported: %s", store_id, e)
                failed.append(store_id)
    finally:
        store.close()
    if annotation_out is not None:
        exported = {key: name for _, name, key in jobs if key is not None}
        jpeg_dirs = all(r.get("format") == "jpg" for r in store.records.values())
        write_json(reference_annotation(doc, exported, out, root, 1 if jpeg_dirs else 0),
                   annotation_out)
    return written, refreshed, skipped, failed


def _check_annotation_out(annotation, annotation_out):
    """--annotation-out needs --annotation, and must not be that file (it would be replaced)."""
    if annotation is None:
        raise ExportError("--annotation-out needs --annotation")
    a, b = Path(annotation), Path(annotation_out)
    if a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b)):
        raise ExportError(f"--annotation-out {annotation_out} is the --annotation file itself; "
                          f"write the exported annotation elsewhere")


def reference_annotation(doc, exported, out: Path, root=None, store_base=1) -> dict:
    """A copy of `doc` for the exported store: only the exported entries, their root at `out`
    (format hdf5-video, frame_base 0), segments renumbered from 0 (from `store_base`, the
    source store's numbering, in files that do not say theirs) and video_path absolute where
    the reference's default location (<label>/<id>.hdf5) is not the file."""
    new = copy.deepcopy(doc)
    out_path = str(Path(out).resolve())
    root_name = root or next(iter(doc.get("roots") or {}), None)
    database = {}
    for key, name in exported.items():
        entry = new["database"][key]
        base = entry_frame_base(doc, entry.get("root"))
        shift = -(store_base if base is None else base)
        _shift_segments(entry.get("annotations"), shift)
        entry["store_id"] = name
        labels = _labels(entry)
        if labels and name == f"{labels[0]}/{key}":
            entry.pop("video_path", None)
        else:
            entry["video_path"] = str(Path(out_path, *PurePosixPath(name + SUFFIX).parts))
        if root_name is not None:
            entry["root"] = root_name
        database[key] = entry
    new["database"] = database
    if root_name is not None and "roots" in new:
        new["roots"][root_name] = {"path": out_path, "format": "hdf5-video", "frame_base": 0}
    if isinstance(new.get("history"), list):
        new["history"].append({"op": "export-reference", "store": out_path})
    return new


def _shift_segments(ann, shift):
    if not isinstance(ann, dict) or not shift:
        return
    for item in [ann] + list(ann.get("segments") or []):
        seg = item.get("segment")
        if isinstance(seg, list) and len(seg) == 2:
            item["segment"] = [seg[0] + shift, seg[1] + shift]


def write_json(doc, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            simplejson.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
    write_atomically(path, write, hidden=True)


def _parser():
    p = Parser(prog="r3d-export-reference", description=__doc__)
    p.add_argument("store", type=Path, help="r3d store (JPEG or HDF5) written by r3d-preprocess")
    p.add_argument("out", type=Path, help="folder for the reference's .hdf5 files")
    p.add_argument("--annotation", type=Path,
                   help="annotation file: name the files as the reference looks for them")
    p.add_argument("--annotation-out", type=Path,
                   help="write the annotation file for the exported store here")
    p.add_argument("--root", help="the annotation's root this store holds (merged files)")
    p.add_argument("--overwrite", action="store_true", help="rewrite files that exist")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        written, refreshed, skipped, failed = export(
            args.store, args.out, annotation=args.annotation, annotation_out=args.annotation_out,
            root=args.root, overwrite=args.overwrite, progress=not args.quiet)
    except (ExportError, AnnotationError, OSError) as e:
        print(f"r3d-export-reference: error: {e}", file=sys.stderr)
        return 2
    print(f"exported {written} video(s) to {args.out}, {refreshed} refreshed (changed in the "
          f"store), {skipped} already there, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
