"""Frame stores and JPEG decoding on real files written by r3d-preprocess."""
import io
import json
import logging
import multiprocessing
import os
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import simplejpeg
from PIL import Image

from storeformat import INDEX_NAME, frame_name
from storeformat.hdf5 import mark_layout
from training.data import region as region_module
from training.data.decode import (ClipBuffers, DecodeError, decode_clip, decode_frame, jpeg_size,
                                  reduction_factor, scaled_size)
from training.data.region import decode_region_clip, region_decoder, unavailable_reason
from training.data.errors import FrameReadError, VideoNotFound
from training.data.stores import Hdf5Store, JpegDirStore, ReferenceHdf5Store, open_store
from training_data import VIDEOS, build_stores, copy_tree, encode_grey_video, frame_levels

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return build_stores(tmp_path_factory)


def _all(store, vid):
    return list(range(store.first_frame, store.first_frame + store.n_frames(vid)))


# --- decoding -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def photo_jpeg():
    """A 320x240 JPEG with detail (a real encoded video frame, not a flat colour)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:240, 0:320]
    img = np.stack([x * 255 // 319, y * 255 // 239, (x + y) % 256], -1).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    return simplejpeg.encode_jpeg(img, quality=90)


def test_decode_matches_pillow_at_full_and_reduced_size(photo_jpeg):
    full = decode_frame(photo_jpeg)
    pil = np.asarray(Image.open(io.BytesIO(photo_jpeg)).convert("RGB"))
    assert full.shape == (240, 320, 3)
    assert np.array_equal(full, pil)
    for factor in (2, 4, 8):
        reduced = decode_frame(photo_jpeg, factor)
        im = Image.open(io.BytesIO(photo_jpeg))
        im.draft("RGB", (320 // factor, 240 // factor))
        assert reduced.shape == (240 // factor, 320 // factor, 3)
        assert np.array_equal(reduced, np.asarray(im.convert("RGB")))


def test_reduced_decode_is_close_to_full_decode_then_resize(photo_jpeg):
    import torch
    import torch.nn.functional as F
    full = torch.from_numpy(decode_frame(photo_jpeg)).permute(2, 0, 1)[None].float()
    resized = F.interpolate(full, size=(120, 160), mode="bilinear", antialias=True)
    half = torch.from_numpy(decode_frame(photo_jpeg, 2)).permute(2, 0, 1)[None].float()
    diff = (resized - half).abs()
    # The documented tolerance (docs/data.md): a few grey levels on average.
    assert diff.mean() < 4 and diff.max() < 64


def test_reduction_factor_and_scaled_size():
    assert reduction_factor((240, 240), (112, 112)) == 2
    assert reduction_factor((201, 201), (112, 112)) == 1
    assert reduction_factor((240, 320), (112, 149)) == 2
    assert reduction_factor((480, 480), (112, 112)) == 4
    assert reduction_factor((1000, 1000), (112, 112)) == 8
    assert reduction_factor((1000, 1000), (112, 112), max_factor=2) == 2
    assert reduction_factor((240, 100), (112, 112)) == 1
    assert scaled_size(240, 320, 2) == (120, 160)
    assert scaled_size(241, 321, 2) == (121, 161)
    assert scaled_size(240, 320, 8) == (30, 40)


def test_decode_clip_errors_name_the_frame(photo_jpeg):
    small = simplejpeg.encode_jpeg(np.zeros((48, 64, 3), np.uint8))
    clip = decode_clip([photo_jpeg, photo_jpeg], names=[5, 6])
    assert clip.shape == (2, 240, 320, 3)
    with pytest.raises(DecodeError, match="frame 8: frame is 64x48 where the clip's first "
                                          "frame is 320x240") as e:
        decode_clip([photo_jpeg, small], names=[7, 8])
    assert e.value.position == 1
    with pytest.raises(DecodeError, match="frame 3: corrupt or truncated"):
        decode_clip([photo_jpeg, photo_jpeg[:len(photo_jpeg) // 2]], names=[2, 3])
    with pytest.raises(DecodeError, match="frame 1: not a readable JPEG"):
        decode_clip([b"not a jpeg"], names=[1])
    with pytest.raises(DecodeError):
        jpeg_size(b"")


@pytest.fixture(scope="module")
def region_lib():
    lib = region_decoder()
    if lib is None:
        pytest.skip(f"region decoder unavailable: {unavailable_reason()}")
    return lib


def test_region_decode_equals_a_cropped_full_decode(photo_jpeg, region_lib):
    rng = np.random.default_rng(1)
    frames = [photo_jpeg, simplejpeg.encode_jpeg(
        rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), quality=75)]
    buffers = ClipBuffers()
    for factor in (1, 2, 4):
        full = decode_clip(frames, factor)
        h, w = full.shape[1:3]
        boxes = [(0, 0, h, w), (0, 0, h // 2, w // 3), (h // 3, w // 5, h // 2, w // 2),
                 (h - h // 4, w - w // 4, h // 4, w // 4)]
        for _ in range(20):
            bh, bw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
            boxes.append((int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1)),
                          bh, bw))
        for top, left, bh, bw in boxes:
            part = decode_region_clip(region_lib, frames, factor, (top, left, bh, bw),
                                      buffers=buffers)
            assert np.array_equal(part, full[:, top:top + bh, left:left + bw]), (factor, top,
                                                                                 left, bh, bw)


def _region_equals_full_at_every_position(lib, data, height, width):
    """Decode a small box at every (top, left) of the image at each scale factor and compare it
    with the same box of simplejpeg's whole-frame decode; returns the mismatches."""
    bad = []
    for factor in (1, 2, 4, 8):
        h, w = scaled_size(height, width, factor)
        kwargs = {"min_height": h, "min_width": w} if factor > 1 else {}
        full = simplejpeg.decode_jpeg(data, **kwargs)
        for top in range(h):
            for left in range(w):
                # sizes vary with the position, so right and bottom edges vary too
                bh, bw = min(1 + (left * 7) % 5, h - top), min(1 + (top * 5) % 7, w - left)
                part = decode_region_clip(lib, [data], factor, (top, left, bh, bw))[0]
                if not np.array_equal(part, full[top:top + bh, left:left + bw]):
                    bad.append((factor, top, left))
    return bad


@pytest.mark.parametrize("subsampling", ["444", "422", "420", "440"])
def test_region_decode_is_exact_at_every_imcu_boundary(subsampling, region_lib):
    """Every crop position, iMCU boundaries included (where fancy chroma upsampling needs the
    column left of the crop), at every scale factor and chroma subsampling."""
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:45, 0:75]
    img = np.stack([x * 255 // 74, y * 255 // 44, (x * 7 + y * 13) % 256], -1)
    img = np.clip(img + rng.integers(-60, 60, img.shape), 0, 255).astype(np.uint8)
    data = simplejpeg.encode_jpeg(img, quality=90, colorsubsampling=subsampling)
    assert _region_equals_full_at_every_position(region_lib, data, 45, 75) == []


def test_region_decode_is_exact_on_preprocess_frames(tmp_path, region_lib):
    """The same on a 16:9 frame written by r3d-preprocess (4:2:0, ffmpeg's test pattern)."""
    from conftest import encode_video
    from preprocess import convert_dataset
    encode_video(tmp_path / "src" / "a" / "v.mp4", width=320, height=180, frames=1)
    assert convert_dataset(tmp_path / "src", tmp_path / "jpg", fmt="jpg", height=54,
                           progress=False).ok
    data = (tmp_path / "jpg" / "a" / "v" / frame_name(1)).read_bytes()
    height, width, _, subsampling = simplejpeg.decode_jpeg_header(data)
    assert (height, width, subsampling) == (54, 96, "420")
    assert _region_equals_full_at_every_position(region_lib, data, height, width) == []


def test_region_decode_errors_name_the_frame(photo_jpeg, region_lib):
    small = simplejpeg.encode_jpeg(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(DecodeError, match="frame 8: frame is 64x48 where the clip's first "
                                          "frame is 320x240") as e:
        decode_region_clip(region_lib, [photo_jpeg, small], 1, (0, 0, 40, 40), names=[7, 8])
    assert e.value.position == 1
    with pytest.raises(DecodeError, match="frame 3: corrupt or truncated"):
        decode_region_clip(region_lib, [photo_jpeg, photo_jpeg[:len(photo_jpeg) // 2]], 1,
                           (100, 0, 140, 320), names=[2, 3])
    with pytest.raises(DecodeError, match="frame 1: not a readable JPEG"):
        decode_region_clip(region_lib, [b"not a jpeg"], 1, (0, 0, 4, 4), names=[1])


def test_region_decoder_unavailable_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(region_module, "_state", {"done": False, "lib": None, "why": None})
    monkeypatch.setenv("R3D_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert region_decoder() is None
    assert "no-such-compiler" in unavailable_reason()
    assert not any(tmp_path.glob("*.so"))


def test_one_cache_folder_the_old_setting_warned_once(tmp_path):
    """$R3D_CACHE (documented) holds catalogs and the region decoder alike; the decoder's old
    $R3D_CACHE_DIR still works this release, with one warning per process; nothing else
    (such as $XDG_CACHE_HOME) moves it."""
    code = ("from training.data.files import cache_root\n"
            "print(cache_root()); print(cache_root())")
    base = {k: v for k, v in os.environ.items() if k not in ("R3D_CACHE", "R3D_CACHE_DIR")}
    base.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"))

    def run(**env):
        proc = subprocess.run([sys.executable, "-c", code], env={**base, **env}, cwd=ROOT,
                              capture_output=True, text=True, check=True)
        return proc.stdout.split(), proc.stderr
    home = str(tmp_path / "home" / ".cache" / "r3d")
    assert run() == ([home, home], "")
    out, err = run(R3D_CACHE_DIR=str(tmp_path / "old"))
    assert out == [str(tmp_path / "old")] * 2
    assert err.count("R3D_CACHE_DIR is deprecated") == 1 and "set R3D_CACHE instead" in err
    assert run(R3D_CACHE=str(tmp_path / "new"), R3D_CACHE_DIR=str(tmp_path / "old")) == (
        [str(tmp_path / "new")] * 2, "")


# --- the three layouts --------------------------------------------------------------------

def test_open_store_recognises_each_layout(stores):
    assert type(open_store(stores["jpg"])) is JpegDirStore
    assert type(open_store(stores["hdf5"])) is Hdf5Store
    assert type(open_store(stores["ref"])) is ReferenceHdf5Store
    with pytest.raises(FileNotFoundError):
        open_store(stores["jpg"] / "nowhere")


@pytest.mark.parametrize("kind, first", [("jpg", 1), ("hdf5", 0), ("ref", 0)])
def test_every_layout_reads_every_frame_in_order(stores, kind, first):
    store = open_store(stores[kind])
    assert store.first_frame == first
    for vid, n in VIDEOS.items():
        assert vid in store
        assert store.n_frames(vid) == n
        clip = store.read(vid, _all(store, vid))
        assert clip.shape == (n, 48, 64, 3) and clip.dtype == np.uint8
        assert frame_levels(clip) == list(range(n))
    # any order, repeats allowed (loop padding)
    clip = store.read("walk/v_walk_0", [first + 5, first + 2, first + 2, first + 29])
    assert frame_levels(clip) == [5, 2, 2, 29]
    assert "walk/v_walk_9" not in store


def test_layouts_hold_the_same_bytes_as_the_frame_files(stores):
    jpg, h5, ref = (open_store(stores[k]) for k in ("jpg", "hdf5", "ref"))
    for vid, n in VIDEOS.items():
        files = [(stores["jpg"] / vid / frame_name(i)).read_bytes() for i in range(1, n + 1)]
        assert jpg.read_bytes(vid, range(1, n + 1)) == files
        assert h5.read_bytes(vid, range(n)) == files
        assert ref.read_bytes(vid, range(n)) == files
        # decoding agrees with Pillow on the same files
        pil = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in files])
        assert np.array_equal(h5.read(vid, range(n)), pil)


def test_hdf5_direct_read_falls_back_to_h5py_for_chunked_data(tmp_path, stores):
    """A shard whose jpeg dataset is chunked and compressed cannot be read with pread."""
    files = [(stores["jpg"] / "jump/v_jump_1" / frame_name(i)).read_bytes()
             for i in range(1, 11)]
    with h5py.File(tmp_path / "shard-00000.h5", "w") as f:
        mark_layout(f)
        g = f.create_group("videos/x")
        data = np.frombuffer(b"".join(files), np.uint8)
        g.create_dataset("jpeg", data=data, chunks=(4096,), compression="gzip")
        g.create_dataset("offsets", data=np.cumsum([0] + [len(b) for b in files]))
    rec = {"id": "x", "status": "done", "format": "hdf5", "path": "shard-00000.h5",
           "key": "videos/x", "n_frames": 10, "fps": 25.0}
    (tmp_path / INDEX_NAME).write_text(json.dumps(rec) + "\n")
    store = Hdf5Store(tmp_path)
    assert not store.catalog.direct(store.catalog.row("x"))  # read through h5py
    assert store.read_bytes("x", [9, 0, 4]) == [files[9], files[0], files[4]]


def test_jpeg_dirs_without_index_count_their_files(tmp_path, stores):
    root = copy_tree(stores["jpg"], tmp_path / "ref-jpg")
    (root / INDEX_NAME).unlink()
    (root / "store.json").unlink()
    store = open_store(root)
    assert type(store) is JpegDirStore and store.catalog is None
    assert store.n_frames("walk/v_walk_0") == 30
    assert frame_levels(store.read("walk/v_walk_0", [1, 30])) == [0, 29]
    (root / "walk/v_walk_0" / frame_name(7)).unlink()
    fresh = JpegDirStore(root)
    with pytest.raises(FrameReadError, match=r"'walk/v_walk_0', frame 7: missing file .*"
                                             r"image_00007\.jpg"):
        fresh.n_frames("walk/v_walk_0")


# --- bad data -------------------------------------------------------------------------------

@pytest.fixture
def damaged(tmp_path, stores):
    """Private copies of the JPEG and reference-HDF5 stores, damaged in known places."""
    jpg = copy_tree(stores["jpg"], tmp_path / "jpg")
    (jpg / "walk/v_walk_0" / frame_name(4)).unlink()
    data = (jpg / "walk/v_walk_0" / frame_name(5)).read_bytes()
    (jpg / "walk/v_walk_0" / frame_name(5)).write_bytes(data[:len(data) // 3])
    (jpg / "walk/v_walk_0" / frame_name(6)).write_bytes(b"")
    ref = copy_tree(stores["ref"], tmp_path / "ref")
    with h5py.File(ref / "walk/v_walk_0.hdf5", "r+") as f:
        f["video"][3] = np.frombuffer(b"\xff\xd8garbage", np.uint8)
    return {"jpg": JpegDirStore(jpg), "ref": ReferenceHdf5Store(ref)}


def test_missing_corrupt_and_empty_frames_raise_naming_video_and_frame(damaged):
    store = damaged["jpg"]
    with pytest.raises(FrameReadError, match=r"video 'walk/v_walk_0', frame 4: missing file"):
        store.read("walk/v_walk_0", [1, 2, 3, 4])
    with pytest.raises(FrameReadError, match=r"video 'walk/v_walk_0', frame 5: "
                                             r"(corrupt|not a readable JPEG)"):
        store.read("walk/v_walk_0", [5])
    with pytest.raises(FrameReadError, match=r"video 'walk/v_walk_0', frame 6: empty file"):
        store.read("walk/v_walk_0", [6])
    with pytest.raises(FrameReadError, match=r"frame 31: out of range: the video has 30 "
                                             r"frames, numbered 1..30"):
        store.read("walk/v_walk_0", [30, 31])
    with pytest.raises(FrameReadError, match="frame 0: out of range"):
        store.read("walk/v_walk_0", [0])
    with pytest.raises(FrameReadError) as e:
        damaged["ref"].read("walk/v_walk_0", [2, 3])
    assert (e.value.video, e.value.frame) == ("walk/v_walk_0", 3)
    assert damaged["ref"].read("walk/v_walk_0", [2]).shape == (1, 48, 64, 3)


def test_missing_video_and_failed_conversion(tmp_path, stores):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    with open(root / INDEX_NAME, "a") as f:
        f.write(json.dumps({"id": "jump/v_bad", "status": "failed", "source": "jump/v_bad.mp4",
                            "reason": "truncated or corrupt"}) + "\n")
    store = Hdf5Store(root)
    with pytest.raises(VideoNotFound, match="no video 'jump/v_bad' .*truncated or corrupt"):
        store.n_frames("jump/v_bad")
    with pytest.raises(VideoNotFound, match="no video 'nope'"):
        store.read("nope", [0])
    ref = ReferenceHdf5Store(stores["ref"])
    with pytest.raises(VideoNotFound):
        ref.read("nope", [0])


def test_hdf5_index_disagreeing_with_the_shard_is_an_error(tmp_path, stores):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    records = [json.loads(line) for line in (root / INDEX_NAME).read_text().splitlines()]
    for r in records:
        if r["id"] == "walk/v_walk_1":
            r["n_frames"] = 25
    (root / INDEX_NAME).write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(FrameReadError, match="holds 20 frames .* the index says 25"):
        Hdf5Store(root).read("walk/v_walk_1", [0])


# --- HDF5 handles: per process, bounded -------------------------------------------------------

def _open_files(store):
    """The store's open-file cache in this process: its catalog's, or its own."""
    return (store.catalog if store.catalog is not None else store).open_files()


def _child_read(store, queue):
    try:
        clip = store.read("walk/v_walk_0", [0, 29])
        queue.put((os.getpid(), len(_open_files(store)), frame_levels(clip)))
    except Exception as e:  # report to the parent rather than dying silently
        queue.put(repr(e))


@pytest.mark.parametrize("kind", ["hdf5", "ref"])
def test_forked_worker_opens_its_own_handles(stores, kind):
    store = open_store(stores[kind])
    assert frame_levels(store.read("walk/v_walk_0", [1])) == [1]  # parent opens a handle
    parent_handles = list(_open_files(store).values())
    assert parent_handles
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_read, args=(store, queue))
    proc.start()
    result = queue.get(timeout=60)
    proc.join(60)
    assert result[0] != os.getpid() and result[2] == [0, 29], result
    assert result[1] == 1  # the child's cache held only its own new handle
    # the parent's handles are untouched and still work
    assert list(_open_files(store).values()) == parent_handles
    assert frame_levels(store.read("walk/v_walk_0", [2])) == [2]


@pytest.mark.parametrize("kind", ["hdf5", "ref"])
def test_pickled_store_drops_handles(stores, kind):
    store = open_store(stores[kind])
    store.read("jump/v_jump_0", [3])
    clone = pickle.loads(pickle.dumps(store))
    assert len(_open_files(clone)) == 0
    assert frame_levels(clone.read("jump/v_jump_0", [3])) == [3]


def _distinct(objects):
    return list({id(o): o for o in objects}.values())


def test_open_files_are_bounded(stores):
    h5 = Hdf5Store(stores["hdf5"], max_open_files=1)
    shards = {h5.catalog.shard_path(h5.catalog.row(v)) for v in VIDEOS}
    assert len(shards) >= 2
    opened = []
    for vid in VIDEOS:
        h5.read(vid, [0])
        opened.extend(_open_files(h5).values())
        assert len(_open_files(h5)) == 1
    assert sum(s.is_open for s in _distinct(opened)) == 1  # evicted shards were closed
    for vid in VIDEOS:  # and reopen when needed again
        assert frame_levels(h5.read(vid, [1])) == [1]
    ref = ReferenceHdf5Store(stores["ref"], max_open_files=2)
    handles = []
    for vid in VIDEOS:
        ref.read(vid, [0])
        handles.extend(_open_files(ref).values())
        assert len(_open_files(ref)) <= 2
    assert sum(f.id.valid for f in _distinct(handles)) == 2
    ref.close()
    assert sum(f.id.valid for f in _distinct(handles)) == 0


def test_store_reads_a_fresh_real_video(tmp_path, caplog):
    """A store converted in the test itself at 320x240 (the benchmark's frame size)."""
    from preprocess import convert_dataset
    encode_grey_video(tmp_path / "src" / "a" / "clip.mp4", 12, width=320, height=240)
    convert_dataset(tmp_path / "src", tmp_path / "out", fmt="hdf5", progress=False)
    store = open_store(tmp_path / "out")
    clip = store.read("a/clip", range(12))
    assert clip.shape == (12, 240, 320, 3)
    assert frame_levels(clip) == list(range(12))
    assert store.read("a/clip", [11], factor=2).shape == (1, 120, 160, 3)
    with caplog.at_level(logging.WARNING):
        assert store.fps("a/clip") == 25.0
