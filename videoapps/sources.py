"""The videos r3d-predict and r3d-features run on: raw video files decoded in memory by
preprocess (the frames r3d-preprocess would store, no temporary files), or the videos of frame
stores listed by an annotation file. Each is a lazy `VideoSource` whose `load` gives a `Video`:
a frame store, a key in it, its frame numbers, its frame rate and, for raw files, each frame's
own time."""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from preprocess.extract import ExtractionError, FrameSettings
from preprocess.memory import decode_to_memory
from storeformat import INDEX_NAME, video_id_from_path
from storeformat.annotation import load_annotation
from storeformat.paths import name_problem
from storeformat.subsets import UnknownSubset, resolve_subset, subsets_of
from training.data.datasets import StoreSet
from training.data.errors import FrameReadError, VideoNotFound
from training.data.stores import FrameStore

from .featurefile import is_feature_output

log = logging.getLogger(__name__)

#: What loading or reading a bad video raises; the commands report it and go on.
VIDEO_ERRORS = (ExtractionError, FrameReadError, VideoNotFound, ValueError, OSError)


class MemoryStore(FrameStore):
    """One decoded video's JPEG frames held in memory, frames numbered from 0."""
    first_frame = 0

    def __init__(self, name, frames, fps):
        super().__init__(name)
        self._frames, self._fps = frames, fps

    def __contains__(self, video) -> bool:
        return video == str(self.root)

    def n_frames(self, video) -> int:
        return len(self._frames)

    def fps(self, video):
        return self._fps

    def read_bytes(self, video, frames) -> list:
        frames = list(frames)
        self._check_frames(video, frames, len(self._frames))
        return [self._frames[f] for f in frames]


@dataclass
class Video:
    """A loaded video: `frames` are its frame numbers in `store` (all of them, in order);
    `times` each frame's start in seconds from the first plus the last one's end (None:
    frame i spans i / fps to (i + 1) / fps)."""
    video_id: str
    source: str
    store: FrameStore
    key: str
    frames: range
    fps: Optional[float]
    times: Optional[List[float]] = None

    @property
    def n_frames(self) -> int:
        return len(self.frames)


class VideoFile:
    """A raw video file, decoded on `load` with r3d-preprocess's frame rule `settings`."""

    def __init__(self, path, video_id, settings: FrameSettings):
        self.path, self.video_id, self.settings = str(path), video_id, settings

    def load(self) -> Video:
        frames, meta = decode_to_memory(self.path, self.settings)
        store = MemoryStore(self.path, frames, meta["fps"])
        return Video(self.video_id, self.path, store, self.path, range(len(frames)), meta["fps"],
                     meta["frame_times"])


class StoredVideo:
    """A video of a frame store, found as training finds an annotation entry's video."""

    def __init__(self, video_id, entry, stores: StoreSet):
        self.video_id, self.entry, self.stores = video_id, entry, stores

    def load(self) -> Video:
        store, key = self.stores.locate(self.video_id, self.entry, _label_names(self.entry))
        n = store.n_frames(key)
        if n < 1:
            raise ValueError(f"{store}: '{key}' has no frames")
        fps = self.entry.get("fps") or store.fps(key)
        first = store.first_frame
        return Video(self.video_id, f"{store}: {key}", store, key, range(first, first + n), fps)


def _label_names(entry) -> list:
    """Label names of an entry (where the reference's JPEG layout files the video)."""
    ann = entry.get("annotations") or {}
    if isinstance(ann, list):
        return list(dict.fromkeys(a["label"] for a in ann if a.get("label") is not None))
    if "labels" in ann:
        return list(ann["labels"])
    names = [ann["label"]] if ann.get("label") is not None else []
    return names + [s["label"] for s in ann.get("segments") or [] if s.get("label") is not None]


def file_sources(paths, settings: FrameSettings, root=None, keep_paths=False) -> list:
    """VideoFile sources of the raw videos `paths`. Their ids: the path as given with
    `keep_paths`, else r3d-preprocess's id rule applied to the path relative to `root` (the
    file name when no root is given): 'a/b.mp4' -> 'a/b'. Raises ValueError for a path outside
    `root`, a missing file or two paths with one id. What r3d-features wrote (a glob over
    the folder holding its output) is skipped with a logged note."""
    out, seen, ours = [], {}, []
    for p in paths:
        path = Path(p)
        if is_feature_output(path):
            ours.append(str(p))
            continue
        if path.is_dir():
            if (path / INDEX_NAME).is_file():
                raise ValueError(f"{p}: a folder, an r3d store: pass it as --video-path (with "
                                 f"--annotation-path to name its videos)")
            raise ValueError(f"{p}: a folder, not a video file: pass its videos "
                             f"({p}/*.mp4 ..., with --root {p} to keep class folders in the ids)")
        if not path.is_file():
            raise ValueError(f"{p}: no such video file")
        if keep_paths:
            vid = str(p)
        elif root is not None:
            try:
                vid = video_id_from_path(path.resolve().relative_to(Path(root).resolve()))
            except ValueError:
                raise ValueError(f"{p} is not under --root {root}") from None
        else:
            vid = video_id_from_path(path.name)
        if vid in seen:
            raise ValueError(f"{seen[vid]} and {p} have the same video id {vid!r}")
        seen[vid] = p
        out.append(VideoFile(path, vid, settings))
    if ours:
        log.warning("skipping what r3d-features wrote (not videos): %s", ", ".join(ours))
    return out


def store_sources(stores, annotation_path, subset=None) -> list:
    """StoredVideo sources of the videos an annotation file lists (those of `subset`, or all)
    in `stores` (a path or {root name: path}, as r3d-train's --video-path)."""
    doc = load_annotation(annotation_path, full=False)
    database = doc["database"]
    if subset is not None:
        try:
            subset = resolve_subset(subsets_of(database), subset)
        except UnknownSubset as e:
            raise ValueError(f"{annotation_path}: {e}") from None
    store_set = StoreSet(stores, doc)
    return [StoredVideo(vid, entry, store_set) for vid, entry in database.items()
            if subset is None or entry.get("subset") == subset]


def check_video_id(video_id: str) -> str:
    """`video_id` if it can name a file or an HDF5 group inside an output root (the one rule:
    storeformat.paths.name_problem); ValueError naming the id and the reason otherwise."""
    problem = name_problem(video_id)
    if problem:
        raise ValueError(f"video id {video_id!r} {problem}: it cannot name an output inside "
                         f"the output root")
    return video_id
