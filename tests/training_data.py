"""Real stores for the training data-layer tests, built once per test session.

Videos are encoded with ffmpeg where frame i (0-based) is a flat grey of level
``GREY_STEP * i``, so a decoded frame tells which frame it is; they are converted by
r3d-preprocess into a JPEG-directory store and an HDF5 store, and the JPEG frames are also
written in the reference's one-HDF5-file-per-video layout.
"""
import shutil
from pathlib import Path

import ffmpeg
import h5py
import numpy as np

from preprocess import convert_dataset
from preprocess.ffmpeg_bin import ffmpeg_exe
from storeformat import frame_name

GREY_STEP = 8
WIDTH, HEIGHT = 64, 48
#: store id -> number of frames
VIDEOS = {"jump/v_jump_0": 24, "jump/v_jump_1": 10, "walk/v_walk_0": 30, "walk/v_walk_1": 20}

_built = {}


def encode_grey_video(path, n_frames, width=WIDTH, height=HEIGHT, fps=25):
    """A real H.264 video whose frame i is uniformly grey at level GREY_STEP * i."""
    levels = (np.arange(n_frames) * GREY_STEP).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (n_frames, height, width, 3))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=fps)
     .output("file:" + str(path), vcodec="libx264", pix_fmt="yuv444p", qp=0)
     .global_args("-nostdin", "-loglevel", "error")
     .overwrite_output()
     .run(input=np.ascontiguousarray(frames).tobytes(), cmd=ffmpeg_exe()))
    return path


def frame_levels(clip) -> list:
    """Frame numbers (0-based) recognised from the grey level of each frame of a clip, given
    as uint8 T x H x W x C or as float C x T x H x W in [0, 1]."""
    clip = np.asarray(clip)
    if clip.dtype == np.uint8:
        means = clip.reshape(clip.shape[0], -1).mean(1)
    else:
        means = clip.transpose(1, 0, 2, 3).reshape(clip.shape[1], -1).mean(1) * 255
    return [int(round(m / GREY_STEP)) for m in means]


def write_reference_hdf5(jpg_root, dst_root, video_ids):
    """The reference layout: dst/<id>.hdf5 with dataset 'video' of vlen uint8 JPEG bytes."""
    for vid in video_ids:
        directory = Path(jpg_root) / vid
        n = len(list(directory.glob("image_*.jpg")))
        frames = [np.frombuffer((directory / frame_name(i)).read_bytes(), dtype=np.uint8)
                  for i in range(1, n + 1)]
        path = Path(dst_root) / (vid + ".hdf5")
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as f:
            dset = f.create_dataset("video", (n,), dtype=h5py.vlen_dtype(np.uint8))
            for i, data in enumerate(frames):
                dset[i] = data


def build_stores(tmp_path_factory) -> dict:
    """{'src', 'jpg', 'hdf5', 'ref'}: paths of the sources and the three stores (built once)."""
    if "stores" not in _built:
        base = tmp_path_factory.mktemp("training-stores")
        src = base / "src"
        for vid, n in VIDEOS.items():
            encode_grey_video(src / (vid + ".mp4"), n)
        out = {"src": src}
        for fmt in ("jpg", "hdf5"):
            summary = convert_dataset(src, base / fmt, fmt=fmt, height=HEIGHT, progress=False,
                                      videos_per_shard=2)
            assert summary.ok, summary.failed
            out[fmt] = base / fmt
        write_reference_hdf5(out["jpg"], base / "ref", VIDEOS)
        out["ref"] = base / "ref"
        _built["stores"] = out
    return _built["stores"]


def build_pattern_stores(tmp_path_factory) -> dict:
    """{'jpg', 'hdf5'}: one 320x240 video of ffmpeg's moving test pattern (real detail, unlike
    the grey videos), 20 frames, converted by r3d-preprocess; id 'pattern/v_pattern_0'."""
    if "pattern" not in _built:
        from conftest import encode_video
        base = tmp_path_factory.mktemp("training-pattern")
        encode_video(base / "src" / "pattern" / "v_pattern_0.mp4", frames=20)
        out = {}
        for fmt in ("jpg", "hdf5"):
            summary = convert_dataset(base / "src", base / fmt, fmt=fmt, height=240,
                                      progress=False)
            assert summary.ok, summary.failed
            out[fmt] = base / fmt
        _built["pattern"] = out
    return _built["pattern"]


def copy_tree(src, dst):
    """A private copy of a store that a test may damage, as r3d-preprocess wrote it (without
    the catalog an earlier test derived in the original)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".r3d-catalog"))
    return Path(dst)


def reference_doc(video_ids=VIDEOS, subsets=None) -> dict:
    """A reference-style annotation file for the test videos (label = folder name)."""
    labels = sorted({v.split("/")[0] for v in video_ids})
    database = {}
    for i, vid in enumerate(video_ids):
        label, name = vid.split("/")
        subset = subsets[i] if subsets else "training"
        database[name] = {"subset": subset, "annotations": {"label": label}}
    return {"labels": labels, "database": database}
