"""r3d's HDF5 shard layout: many videos per file, each video's JPEG frames stored back to back.

File attributes: ``layout = "r3d-hdf5"``, ``layout_version = 1``.
Each video is the group ``videos/<video id>`` (the id's '/' make nested groups) holding

* ``jpeg``: 1-D uint8 dataset, contiguous (not chunked, not compressed): every frame's JPEG
  bytes, frame 0 first;
* ``offsets``: 1-D int64 dataset of n_frames + 1 entries; frame i (0-based) is
  ``jpeg[offsets[i]:offsets[i + 1]]``;
* attributes ``id``, ``source``, ``n_frames``, ``fps``, ``width``, ``height``, ``duration``.

A run of consecutive frames is therefore one contiguous read.
"""
import numpy as np

HDF5_LAYOUT = "r3d-hdf5"
HDF5_LAYOUT_VERSION = 1
META_FIELDS = ("id", "source", "n_frames", "fps", "width", "height", "duration")


def video_key(video_id: str) -> str:
    """HDF5 path of a video's group inside a shard."""
    return "videos/" + video_id


def mark_layout(h5file) -> None:
    """Stamp a new shard file with the layout name and version."""
    h5file.attrs["layout"] = HDF5_LAYOUT
    h5file.attrs["layout_version"] = HDF5_LAYOUT_VERSION


def write_video(h5file, video_id: str, frames, meta: dict) -> str:
    """Store the JPEG byte strings `frames` of one video with its metadata; returns its key."""
    if not frames:
        raise ValueError(f"{video_id}: no frames to store")
    sizes = np.fromiter((len(b) for b in frames), dtype=np.int64, count=len(frames))
    offsets = np.zeros(len(frames) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = np.frombuffer(b"".join(frames), dtype=np.uint8)
    key = video_key(video_id)
    group = h5file.create_group(key)
    group.create_dataset("jpeg", data=data)
    group.create_dataset("offsets", data=offsets)
    group.attrs["id"] = video_id
    for name in META_FIELDS[1:]:
        group.attrs[name] = meta[name]
    return key


def read_video_meta(group) -> dict:
    """Metadata of a stored video group as a plain dict."""
    return {name: attr_value(group.attrs[name]) for name in META_FIELDS}


def read_frame_bytes(group, frame_indices, offsets=None):
    """JPEG bytes of the 0-based frames `frame_indices` of a video group, in the order given.

    Reads the span from the smallest to the largest index in one read. Pass `offsets` (the
    group's ``offsets`` array) to skip reading it again."""
    idx = np.asarray(frame_indices, dtype=np.int64)
    if offsets is None:
        offsets = group["offsets"][()]
    n = len(offsets) - 1
    if idx.size == 0:
        return []
    if idx.min() < 0 or idx.max() >= n:
        bad = int(idx[(idx < 0) | (idx >= n)][0])
        raise IndexError(f"{group.name}: frame {bad} out of range (video has {n} frames)")
    lo, hi = int(idx.min()), int(idx.max())
    base = int(offsets[lo])
    span = group["jpeg"][base:int(offsets[hi + 1])].tobytes()
    return [span[offsets[i] - base:offsets[i + 1] - base] for i in idx]


def attr_value(value):
    """An HDF5 attribute as a plain Python value (bytes decoded, numpy scalars unwrapped)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value
