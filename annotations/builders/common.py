"""Shared last steps of every builder: match entries with the store, order labels, assemble
the document."""
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Optional

from storeformat.annotation import FRAME_BASE, AnnotationError

from ..entries import check_unique_ids
from ..labels import order_labels
from ..matching import apply_policy, crosses_folders, match_entries
from ..schema import new_document

log = logging.getLogger(__name__)


@dataclass
class BuildOptions:
    """Options every builder takes. `listing`: the store (None: no frame counts);
    `missing`: "drop" or "keep" entries without frames in the store; `label_order`:
    "reference" (the reference implementation's order for the dataset) or "sorted";
    `labels_from`: a class-list file fixing the order; `name`: the
    source name written into the file (default: the dataset's); `partial_store`: accept a
    store that holds under half of the entries (else that is taken for the wrong store)."""
    listing: Optional[object] = None
    missing: str = "drop"
    label_order: str = "reference"
    labels_from: Optional[Path] = None
    name: Optional[str] = None
    history: dict = field(default_factory=dict)
    partial_store: bool = False


@dataclass
class Output:
    """One file a builder produces: its default file name and the document."""
    filename: str
    doc: dict
    report: object = None


def resolve_entries(entries, opts, alias=None, what="videos", same_folder=False):
    """Match with the store (when there is one) and apply the missing-video policy.

    A store that holds under half of the entries is taken for the wrong store (an error unless
    `opts.partial_store`); with `same_folder` (entries named by their own folder layout), so
    is a match by bare file name to a video of another class folder."""
    check_unique_ids(entries, what)
    if opts.listing is None:
        return list(entries), None
    report = match_entries(entries, opts.listing, alias)
    if not opts.partial_store:
        _check_store_fits(entries, report, opts.listing, what, same_folder)
    return apply_policy(entries, report, opts.missing, what), report


def _check_store_fits(entries, report, listing, what, same_folder):
    store = listing.origin or listing.root
    if same_folder:
        crossed = [e for e in entries if e.store is not None and
                   crosses_folders(e.path, e.store.id)]
        if crossed:
            ex = ", ".join(f"{e.path} -> {e.store.id}" for e in crossed[:3])
            raise AnnotationError(
                f"{store}: {len(crossed)} of {report.total} {what} match a video of another "
                f"class folder by file name alone (e.g. {ex}): is this the store made from "
                f"these videos? (--partial-store accepts it)")
    if report.total and report.matched * 2 < report.total:
        missing = ", ".join(report.examples.get("missing", [])[:3])
        raise AnnotationError(
            f"{store}: only {report.matched} of {report.total} {what} found in the store"
            f"{f' (missing e.g. {missing})' if missing else ''}: is this the store made from "
            f"these videos? (--partial-store accepts a store that holds only some of them)")


def root_info(opts):
    if opts.listing is None:
        return {"path": None, "format": None, "frame_base": FRAME_BASE}
    return opts.listing.root_info()


def store_fields(entry, source, root_path=None, key=None):
    """store_id / video_path / root / source / n_frames / fps of an entry's JSON.

    store_id is the video's id in its store (its frame directory for JPEG stores; r3d's trainer
    finds HDF5 videos by it through the store index), else where the reference layout expects
    it. video_path is for the reference implementation, which opens it as given and otherwise
    looks at ``<root>/<label>/<key>`` (`key`: the entry's id in the file, default the video's):
    it is written only where that default is wrong, as the absolute path of the video's frame
    directory or .hdf5 file under `root_path` (nothing for r3d HDF5 shards, which the reference
    cannot read: r3d-export-reference converts them)."""
    out = {}
    video = entry.store
    out["store_id"] = video.id if video is not None else entry.path
    target = reference_video_path(entry, root_path, key)
    if target is not None:
        out["video_path"] = target
    out["root"] = source
    out["source"] = source
    if video is not None:
        out["n_frames"] = video.n_frames
        if video.fps:
            out["fps"] = float(video.fps)
    return out


def reference_video_path(entry, root_path, key=None):
    """The absolute path the reference should open for `entry`, or None when its default
    ``<label>/<key>`` is right or no path it can read exists (no store root, HDF5 shards)."""
    video = entry.store
    if video is None or root_path is None or video.format not in ("jpg", "hdf5-video"):
        return None
    rel = video.path or video.id
    default = f"{entry.label}/{key or entry.id}" if entry.label is not None else None
    if video.format == "jpg" and rel == default:
        return None
    if video.format == "hdf5-video" and PurePosixPath(rel).with_suffix("") == \
            PurePosixPath(default or "") and rel.endswith(".hdf5"):
        return None
    return str(Path(root_path) / rel)


def whole_video_segment(entry, base):
    """[first, last + 1] over all of an entry's frames, or None without frame counts."""
    if entry.store is None:
        return None
    return [base, base + entry.store.n_frames]


def label_fields(entry, multi_label):
    ann = {}
    if multi_label:
        if entry.labels:
            ann["labels"] = list(entry.labels)
            if len(entry.labels) == 1:
                ann["label"] = entry.labels[0]
    elif entry.label is not None:
        ann["label"] = entry.label
    return ann


def simple_database(entries, source, base, multi_label=False, root_path=None):
    """Database of trimmed clips: one entry per video, the segment covering all its frames."""
    database = {}
    for e in entries:
        ann = label_fields(e, multi_label)
        seg = whole_video_segment(e, base)
        if seg is not None:
            ann["segment"] = seg
        item = {"subset": e.subset, "annotations": ann}
        item.update(store_fields(e, source, root_path))
        item.update(e.extra)
        database[e.id] = item
    return database


def make_document(labels, database, opts, *, source, dataset, files, multi_label=False,
                  report=None, extra_history=None):
    """Assemble a built document with its provenance."""
    history = {"op": "build", "dataset": dataset,
               "files": [str(f) for f in files]}
    if opts.listing is not None:
        history["store"] = opts.listing.origin
        history["missing"] = opts.missing
        if report is not None:
            history["store_report"] = dict(report.counts)
            history["store_unclaimed"] = len(report.unclaimed)
    history.update(extra_history or {})
    history.update(opts.history)
    return new_document(
        labels, database,
        sources={source: {"dataset": dataset, "files": [Path(f).name for f in files]}},
        roots={source: root_info(opts)},
        label_sources=[[{"source": source, "name": name}] for name in labels],
        multi_label=multi_label, history=[history])


def build_single_label(entries, found_labels, opts, *, dataset, files, filename,
                       reference=None, alias=None, multi_label=False, source=None,
                       same_folder=False):
    """The common path for trimmed datasets: resolve, order labels (`reference`: the reference
    implementation's label order for the dataset), assemble one Output.
    The source (and root) name is `opts.name`, else `source`, else the dataset's name."""
    source = opts.name or source or dataset
    labels = order_labels(found_labels, order=opts.label_order, reference=reference,
                          labels_from=opts.labels_from)
    kept, report = resolve_entries(entries, opts, alias, same_folder=same_folder,
                                   what=f"{PurePosixPath(filename).stem} videos")
    root = root_info(opts)
    database = simple_database(kept, source, root["frame_base"], multi_label, root["path"])
    doc = make_document(labels, database, opts, source=source, dataset=dataset, files=files,
                        multi_label=multi_label, report=report)
    log.info("%s: %d classes, %d videos", filename, len(labels), len(database))
    return Output(filename, doc, report)
