"""r3d-export-reference writes the reference's one-.hdf5-per-video layout from r3d stores: the
same JPEG bytes, named where the reference's loader looks for them, with an annotation file it
reads unchanged (frames numbered from 0, as its HDF5 loader indexes them)."""
from pathlib import Path

import h5py
import numpy as np
import pytest

from annotations.cli import main as annotate
from conftest import encode_video
from preprocess import convert_dataset
from preprocess.reference_export import main
from storeformat.annotation import load_annotation
from training.data.stores import ReferenceHdf5Store, open_store

VIDEOS = {"run/run_a.mp4": 9, "run/run_b.mp4": 7, "walk/walk_a.mp4": 8}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    for rel, frames in VIDEOS.items():
        encode_video(base / "src" / rel, width=64, height=48, frames=frames)
    out = {"src": base / "src"}
    for fmt in ("jpg", "hdf5"):
        assert convert_dataset(base / "src", base / fmt, fmt=fmt, height=32, progress=False).ok
        out[fmt] = base / fmt
    return out


@pytest.mark.parametrize("fmt", ["jpg", "hdf5"])
def test_every_video_is_copied_byte_for_byte(stores, fmt, tmp_path):
    out = tmp_path / "ref"
    assert main([str(stores[fmt]), str(out), "-q"]) == 0
    source = open_store(stores[fmt])
    exported = open_store(out)
    assert isinstance(exported, ReferenceHdf5Store)
    for rel, n in VIDEOS.items():
        vid = str(Path(rel).with_suffix(""))
        path = out / f"{vid}.hdf5"
        with h5py.File(path, "r") as f:  # the layout the reference's loader reads
            video = f["video"]
            assert h5py.check_vlen_dtype(video.dtype) == np.dtype("uint8")
            assert video.shape == (n,)
            assert bytes(video[0][:2]) == b"\xff\xd8"  # a JPEG
        assert exported.n_frames(vid) == n
        first = 1 if fmt == "jpg" else 0  # image_00001.jpg; a shard's element 0
        assert exported.read_bytes(vid, range(n)) == source.read_bytes(vid, range(first,
                                                                                  first + n))
    # A second run leaves the files alone.
    assert main([str(stores[fmt]), str(out), "-q"]) == 0


def test_annotated_export_loads_in_the_reference(stores, tmp_path):
    ann = tmp_path / "toy.json"
    assert annotate(["folder", str(stores["src"]), "--out", str(ann), "--index",
                     str(stores["hdf5"]), "--val-fraction", "0.34", "-q"]) == 0
    out, ann_out = tmp_path / "ref", tmp_path / "toy_ref.json"
    assert main([str(stores["hdf5"]), str(out), "--annotation", str(ann), "--annotation-out",
                 str(ann_out), "-q"]) == 0
    doc = load_annotation(ann_out)
    assert len(doc["database"]) == 3
    (root,) = doc["roots"].values()
    assert root == {"path": str(out.resolve()), "format": "hdf5-video", "frame_base": 0}
    # The reference's rule with --file_type hdf5: video_path as given, else
    # <root>/<label>/<id>.hdf5; the segment's frames are elements of 'video'.
    for key, entry in doc["database"].items():
        assert "video_path" not in entry
        path = out / entry["annotations"]["label"] / f"{key}.hdf5"
        first, end = entry["annotations"]["segment"]
        with h5py.File(path, "r") as f:
            assert (first, end) == (0, len(f["video"]))
    # r3d reads the exported store with the exported file, the same frames as the original.
    ours, theirs = open_store(stores["hdf5"]), open_store(out)
    src = load_annotation(ann)
    for key, entry in doc["database"].items():
        first, end = entry["annotations"]["segment"]
        s_first, s_end = src["database"][key]["annotations"]["segment"]
        assert end - first == s_end - s_first
        assert theirs.read_bytes(entry["store_id"], range(first, end)) == \
            ours.read_bytes(src["database"][key]["store_id"], range(end - first))


def test_a_folder_without_index_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "notastore").mkdir()
    assert main([str(tmp_path / "notastore"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "index.jsonl" in err
