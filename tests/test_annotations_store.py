"""Frame counts from a store: the index, the scanning fallback, and how entries find their video."""
import logging

import h5py
import numpy as np
import pytest

from annotations import AnnotationError
from annotations.builders import kinetics
from annotations.entries import Entry
from annotations.matching import apply_policy, match_entries
from annotations.store import StoreListing
from storeformat import INDEX_NAME, IndexWriter, frame_name, write_video


def _done(vid, n, fps=30.0, fmt="jpg"):
    return {"id": vid, "status": "done", "source": vid + ".mp4", "format": fmt, "path": vid,
            "n_frames": n, "fps": fps, "width": 32, "height": 24, "duration": n / fps}


def write_index(store, records):
    store.mkdir(parents=True, exist_ok=True)
    with IndexWriter(store / INDEX_NAME) as w:
        for r in records:
            w.append(r)
    return store


def test_index_records_done_failed_empty_and_last_wins(tmp_path):
    store = write_index(tmp_path / "s", [
        _done("a/x", 10), {"id": "a/y", "status": "failed", "source": "a/y.mp4",
                           "reason": "cannot decode"},
        _done("a/z", 0), _done("a/x", 12)])
    with open(store / INDEX_NAME, "ab") as f:
        f.write(b'{"id": "a/torn", "sta')  # a crash while appending
    cat = StoreListing.from_index(store)
    assert {v: (cat.videos[v].status, cat.videos[v].n_frames) for v in cat.videos} == {
        "a/x": ("done", 12), "a/y": ("failed", None), "a/z": ("empty", 0)}
    assert cat.videos["a/y"].reason == "cannot decode"
    assert cat.format == "jpg" and cat.root == store
    assert StoreListing.from_index(store / INDEX_NAME).videos.keys() == cat.videos.keys()


def test_index_errors_name_the_file(tmp_path):
    with pytest.raises(AnnotationError, match="store index not found"):
        StoreListing.from_index(tmp_path)
    store = write_index(tmp_path / "s", [_done("a", 3)])
    (store / INDEX_NAME).write_text('{"id": "a", "status": "done", "n_frames": "ten"}\n'
                                    '{"id": "b", "status": "done", "n_frames": 2}\n')
    with pytest.raises(AnnotationError, match=r"index.jsonl: video 'a': bad n_frames"):
        StoreListing.from_index(store)


def _listing(tmp_path, ids, n=5):
    return StoreListing.from_index(write_index(tmp_path / "s", [_done(i, n) for i in ids]))


def test_matching_rules_exact_last_component_case(tmp_path):
    cat = _listing(tmp_path, ["Archery/v_Archery_g01_c01", "v_Flat_g01_c01",
                              "UCF-101/Bowling/v_Bowling_g01_c01", "Drum/V_DRUM_G01_C01"])
    entries = [Entry("v_Archery_g01_c01", "training", "Archery",
                     path="Archery/v_Archery_g01_c01"),
               Entry("v_Flat_g01_c01", "training", "Flat", path="Flat/v_Flat_g01_c01"),
               Entry("v_Bowling_g01_c01", "training", "Bowling",
                     path="Bowling/v_Bowling_g01_c01"),
               Entry("v_Drum_g01_c01", "training", "Drum", path="Drum/v_Drum_g01_c01"),
               Entry("v_Absent_g01_c01", "training", "Absent", path="Absent/v_Absent_g01_c01")]
    report = match_entries(entries, cat)
    found = {e.id: e.store.id if e.store else e.problem for e in entries}
    assert found == {"v_Archery_g01_c01": "Archery/v_Archery_g01_c01",
                     "v_Flat_g01_c01": "v_Flat_g01_c01",
                     "v_Bowling_g01_c01": "UCF-101/Bowling/v_Bowling_g01_c01",
                     "v_Drum_g01_c01": "Drum/V_DRUM_G01_C01",
                     "v_Absent_g01_c01": "missing"}
    assert report.matched == 4 and report.counts["missing"] == 1 and report.unclaimed == []


def test_same_last_component_in_two_folders_is_not_guessed(tmp_path):
    cat = _listing(tmp_path, ["train/a/clip1", "val/a/clip1", "b/clip2"])
    entries = [Entry("clip1", "training", "a", path="a/clip1"),
               Entry("clip2", "training", "b", path="x/clip2")]
    report = match_entries(entries, cat)
    assert entries[0].problem == "missing" and entries[1].store.id == "b/clip2"
    assert report.unclaimed == ["train/a/clip1", "val/a/clip1"]


def test_kinetics_downloader_names(tmp_path):
    """The reference id is <yt>_<start:06d>_<end:06d>; downloaders also write <yt>_<s>_<e>
    unpadded or just <yt>. A bare <yt> shared by two annotated clips matches neither."""
    cat = _listing(tmp_path, [
        "abseiling/0wR5jVB-WPk_000417_000427",  # reference naming
        "air drumming/--nQbRBEz2s_104_114",     # unpadded, label folder with a space
        "3caPS4FHFF8",                          # bare youtube id, flat
        "dupdupdup-1",                          # bare, but two clips of it are annotated
        "unrelated_file"])
    rows = [("abseiling", "0wR5jVB-WPk", 417, 427), ("air drumming", "--nQbRBEz2s", 104, 114),
            ("abseiling", "3caPS4FHFF8", 36, 46), ("x", "dupdupdup-1", 0, 10),
            ("x", "dupdupdup-1", 20, 30), ("x", "notInStore1", 0, 10)]
    entries = [Entry(kinetics.clip_id(yt, s, e), "validation", label,
                     path=f"{label}/{kinetics.clip_id(yt, s, e)}",
                     aliases=(f"yt:{yt}:{s}:{e}", f"yt:{yt}")) for label, yt, s, e in rows]
    report = match_entries(entries, cat, kinetics.store_alias)
    got = [e.store.id if e.store else e.problem for e in entries]
    assert got == ["abseiling/0wR5jVB-WPk_000417_000427", "air drumming/--nQbRBEz2s_104_114",
                   "3caPS4FHFF8", "ambiguous", "ambiguous", "missing"]
    assert report.unclaimed == ["unrelated_file"]  # dupdupdup-1 is reported as ambiguous


def test_failed_and_empty_store_videos_are_reported_not_used(tmp_path):
    store = write_index(tmp_path / "s", [
        _done("a/ok", 4), _done("a/empty", 0),
        {"id": "a/bad", "status": "failed", "source": "a/bad.mp4", "reason": "truncated"}])
    cat = StoreListing.from_index(store)
    entries = [Entry(v, "training", "a", path=f"a/{v}") for v in ("ok", "empty", "bad")]
    report = match_entries(entries, cat)
    assert [e.problem for e in entries] == [None, "empty", "failed"]
    assert report.counts == {"matched": 1, "empty": 1, "failed": 1}


def test_missing_policy_drop_or_keep_says_how_many(tmp_path, caplog):
    cat = _listing(tmp_path, ["a/v1"])
    entries = [Entry("v1", "training", "a", path="a/v1"), Entry("v2", "training", "a",
                                                                path="a/v2")]
    report = match_entries(entries, cat)
    with caplog.at_level(logging.INFO):
        kept = apply_policy(entries, report, "drop", "videos")
    assert [e.id for e in kept] == ["v1"]
    assert "dropped 1 of 2 videos" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        kept = apply_policy(entries, report, "keep", "videos")
    assert [e.id for e in kept] == ["v1", "v2"] and "kept 1 of 2 videos" in caplog.text


def _jpeg_dir(d, n, start=1):
    d.mkdir(parents=True)
    for i in range(start, start + n):
        (d / frame_name(i)).write_bytes(b"\xff\xd8fake\xff\xd9")


def test_scan_counts_jpeg_directories(tmp_path):
    root = tmp_path / "jpg"
    _jpeg_dir(root / "walk" / "v_1", 7)
    _jpeg_dir(root / "walk" / "v_2", 3)
    (root / "walk" / "v_2" / "fps").write_text("29.97\n")
    gap = root / "run" / "v_3"
    _jpeg_dir(gap, 5)
    (gap / frame_name(3)).unlink()
    (root / "run" / "notes.txt").write_text("not a video")
    cat = StoreListing.scan(root)
    assert cat.format == "jpg"
    assert {v: cat.videos[v].n_frames for v in cat.videos} == {
        "walk/v_1": 7, "walk/v_2": 3, "run/v_3": None}
    assert cat.videos["walk/v_2"].fps == pytest.approx(29.97)
    assert cat.videos["run/v_3"].status == "failed"
    assert "image_00001.jpg..image_00004.jpg" in cat.videos["run/v_3"].reason


def test_scan_reads_r3d_shards_and_reference_hdf5(tmp_path):
    shard_root = tmp_path / "h5"
    shard_root.mkdir()
    with h5py.File(shard_root / "shard-00000.h5", "w") as f:
        f.attrs["layout"] = "r3d-hdf5"
        f.attrs["layout_version"] = 1
        for vid, n in (("walk/v_1", 6), ("run/v_2", 2)):
            write_video(f, vid, [b"\xff\xd8%d\xff\xd9" % i for i in range(n)],
                        {"source": vid + ".avi", "n_frames": n, "fps": 25.0, "width": 4,
                         "height": 4, "duration": n / 25})
    cat = StoreListing.scan(shard_root)
    assert cat.format == "hdf5"
    assert {v: (cat.videos[v].n_frames, cat.videos[v].path, cat.videos[v].key)
            for v in cat.videos} == {"walk/v_1": (6, "shard-00000.h5", "videos/walk/v_1"),
                                     "run/v_2": (2, "shard-00000.h5", "videos/run/v_2")}

    ref_root = tmp_path / "ref"
    (ref_root / "walk").mkdir(parents=True)
    with h5py.File(ref_root / "walk" / "v_9.hdf5", "w") as f:
        video = f.create_dataset("video", (4,), dtype=h5py.vlen_dtype(np.uint8))
        for i in range(4):
            video[i] = np.frombuffer(b"\xff\xd8ab\xff\xd9", dtype=np.uint8)
    (ref_root / "walk" / "junk.h5").write_bytes(b"not hdf5")
    cat = StoreListing.scan(ref_root)
    assert cat.format == "hdf5-video"
    assert {v: (cat.videos[v].n_frames, cat.videos[v].path) for v in cat.videos} == {
        "walk/v_9": (4, "walk/v_9.hdf5")}


def test_scan_refuses_mixed_stores(tmp_path):
    root = tmp_path / "mixed"
    _jpeg_dir(root / "a" / "v_1", 2)
    (root / "b").mkdir()
    with h5py.File(root / "b" / "v_2.hdf5", "w") as f:
        f.create_dataset("video", (1,), dtype=h5py.vlen_dtype(np.uint8))
    with pytest.raises(AnnotationError, match="mixes formats"):
        StoreListing.scan(root)
