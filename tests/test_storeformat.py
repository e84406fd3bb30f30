"""The shared store layout: frame names, the index file, HDF5 shards."""
import h5py
import pytest

from storeformat import (IndexWriter, frame_name, read_frame_bytes, read_index,
                         video_id_from_path, write_video)
from storeformat.hdf5 import mark_layout, read_video_meta


def test_frame_names_are_one_based_reference_layout():
    assert frame_name(1) == "image_00001.jpg"
    assert frame_name(12345) == "image_12345.jpg"
    with pytest.raises(ValueError):
        frame_name(0)


def test_video_ids_are_relative_paths_without_extension():
    assert video_id_from_path("Archery/v_Archery_g01_c01.avi") == "Archery/v_Archery_g01_c01"
    assert video_id_from_path("a.b.mp4") == "a.b"
    assert video_id_from_path("-x y.webm") == "-x y"


def test_index_last_record_wins_and_torn_tail_dropped(tmp_path):
    path = tmp_path / "index.jsonl"
    with IndexWriter(path) as w:
        w.append({"id": "a", "status": "failed", "reason": "x"})
        w.append({"id": "a", "status": "done", "n_frames": 3})
    with open(path, "ab") as f:
        f.write(b'{"id": "b", "stat')
    assert read_index(path) == {"a": {"id": "a", "status": "done", "n_frames": 3}}
    with IndexWriter(path) as w:
        w.append({"id": "c", "status": "done", "n_frames": 1})
    assert sorted(read_index(path)) == ["a", "c"]
    assert path.read_bytes().count(b"\n") == 3


def test_index_malformed_middle_line_names_the_line(tmp_path):
    path = tmp_path / "index.jsonl"
    path.write_text('{"id": "a", "status": "done"}\nnot json\n{"id": "b", "status": "done"}\n')
    with pytest.raises(ValueError, match=r"index.jsonl:2: malformed"):
        read_index(path)


def test_index_record_split_over_two_lines_is_refused(tmp_path):
    """Read at once, the two halves would make one valid record: the lines must not."""
    path = tmp_path / "index.jsonl"
    path.write_text('{"id": "a", "status": "done", "k": [1\n2]}\n{"id": "b", "status": "done"}\n')
    with pytest.raises(ValueError, match=r"index.jsonl:1: malformed"):
        read_index(path)


def test_hdf5_frames_read_back_in_any_order(tmp_path):
    frames = [bytes([i]) * (i + 1) for i in range(6)]
    meta = dict(source="s.mp4", n_frames=6, fps=25.0, width=4, height=2, duration=0.24)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        mark_layout(f)
        key = write_video(f, "cls/v 1", frames, meta)
    with h5py.File(tmp_path / "s.h5", "r") as f:
        group = f[key]
        assert read_frame_bytes(group, [2, 3, 4]) == frames[2:5]
        assert read_frame_bytes(group, [5, 0, 0]) == [frames[5], frames[0], frames[0]]
        assert read_video_meta(group) == {"id": "cls/v 1", **meta}
        with pytest.raises(IndexError, match="frame 6 out of range"):
            read_frame_bytes(group, [1, 6])
    with h5py.File(tmp_path / "e.h5", "w") as f, pytest.raises(ValueError, match="no frames"):
        write_video(f, "v", [], meta)
