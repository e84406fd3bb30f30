"""r3d-annotate's files load in the reference implementation's loader. Its documented lookup
rule, written here: a video is at the entry's ``video_path`` taken as given (relative to the
working directory), else at ``<video root>/<label>/<id>`` (an entry without a label and without
a video_path cannot be loaded at all); a JPEG video's frames are ``image_%05d.jpg`` numbered
by the segment, [1, n + 1). r3d's own trainer still finds every video by its ``store_id``."""
import csv
from pathlib import Path

import pytest

from annotations.cli import main
from annotations.schema import read_annotation
from conftest import encode_video
from preprocess import convert_dataset
from training.data.datasets import candidate_keys
from training.data.stores import open_store


def reference_lookup(doc, root, subset):
    """{id: frame directory} of the entries of `subset` the reference's loader finds, and the
    ids it cannot load, by its documented rule."""
    found, lost = {}, []
    for key, value in doc["database"].items():
        if value["subset"] != subset:
            continue
        if "video_path" in value:
            path = Path(value["video_path"])
        elif "label" in value["annotations"]:
            path = Path(root) / value["annotations"]["label"] / key
        else:
            lost.append(key)  # the reference raises KeyError here
            continue
        first, end = value["annotations"].get("segment", (1, 1))
        frames = [path / f"image_{i:05d}.jpg" for i in range(first, end)]
        if path.exists() and end > 1 and all(f.is_file() for f in frames):
            found[key] = path
        else:
            lost.append(key)
    return found, lost


@pytest.fixture(scope="module")
def ucf_store(tmp_path_factory):
    base = tmp_path_factory.mktemp("ucf")
    for rel, frames in (("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 9),
                        ("HandstandPushups/v_HandStandPushups_g08_c01.avi", 8),
                        ("Archery/v_Archery_g01_c01.avi", 10)):
        encode_video(base / "src" / rel, width=64, height=48, frames=frames, codec="mpeg4")
    assert convert_dataset(base / "src", base / "jpg", fmt="jpg", height=32,
                           progress=False).ok
    return base / "jpg"


def test_ucf101_file_needs_no_video_path_and_loads_in_the_reference(
        ucf_store, shared_fixtures, tmp_path, monkeypatch):
    lists = shared_fixtures / "annotations" / "ucf101" / "ucfTrainTestlist"
    out = tmp_path / "ucf101_01.json"
    assert main(["ucf101", str(lists), "--splits", "1", "--index", str(ucf_store),
                 "--out", str(out), "-q", "--partial-store"]) == 0
    doc = read_annotation(out)
    assert len(doc["database"]) == 3
    assert all("video_path" not in e for e in doc["database"].values())
    monkeypatch.chdir(tmp_path)  # the reference resolves video_path against the CWD
    train, lost = reference_lookup(doc, ucf_store, "training")
    assert sorted(train) == ["v_ApplyEyeMakeup_g08_c01", "v_HandStandPushups_g08_c01"]
    assert not lost
    val, lost = reference_lookup(doc, ucf_store, "validation")
    assert list(val) == ["v_Archery_g01_c01"] and not lost
    _r3d_finds_every_video(doc, ucf_store)


def _r3d_finds_every_video(doc, root):
    store = open_store(root)
    for vid, entry in doc["database"].items():
        keys = candidate_keys(vid, entry, [entry["annotations"].get("label", "")])
        assert keys[0] == entry["store_id"] and entry["store_id"] in store, vid


def _write_kinetics(folder, name, rows, header=("label", "youtube_id", "time_start",
                                                "time_end", "split")):
    with open(folder / name, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_kinetics_file_writes_absolute_paths_where_the_default_is_wrong(tmp_path, monkeypatch):
    src, lists = tmp_path / "src", tmp_path / "lists"
    # A downloader's unpadded name, the reference's own name, and an unlabelled test clip.
    encode_video(src / "abseiling" / "AAAAAAAAAAA_0_10.mp4", width=64, height=48, frames=9)
    encode_video(src / "abseiling" / "CCCCCCCCCCC_000003_000013.mp4", width=64, height=48,
                 frames=7)
    encode_video(src / "test" / "BBBBBBBBBBB_000000_000010.mp4", width=64, height=48,
                 frames=8)
    store = tmp_path / "jpg"
    assert convert_dataset(src, store, fmt="jpg", height=32, progress=False).ok
    lists.mkdir()
    _write_kinetics(lists, "kinetics-400_val.csv", [("abseiling", "AAAAAAAAAAA", 0, 10, "val"),
                                                    ("abseiling", "CCCCCCCCCCC", 3, 13, "val")])
    _write_kinetics(lists, "kinetics-400_test.csv", [("BBBBBBBBBBB", 0, 10, "test")],
                    header=("youtube_id", "time_start", "time_end", "split"))
    out = tmp_path / "k.json"
    assert main(["kinetics", str(lists), "--index", str(store), "--out", str(out), "-q"]) == 0
    doc = read_annotation(out)
    db = doc["database"]
    renamed = db["AAAAAAAAAAA_000000_000010"]
    assert renamed["store_id"] == "abseiling/AAAAAAAAAAA_0_10"
    assert renamed["video_path"] == str(store.resolve() / "abseiling" / "AAAAAAAAAAA_0_10")
    assert "video_path" not in db["CCCCCCCCCCC_000003_000013"]
    unlabelled = db["BBBBBBBBBBB_000000_000010"]
    assert unlabelled["video_path"] == str(store.resolve() / "test" /
                                           "BBBBBBBBBBB_000000_000010")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    val, lost = reference_lookup(doc, store, "validation")
    assert len(val) == 2 and not lost
    test, lost = reference_lookup(doc, store, "testing")
    assert len(test) == 1 and not lost
    _r3d_finds_every_video(doc, store)
    # A reference-made file has neither store_id nor video_path: r3d still finds the unlabelled
    # test video where the reference's scripts put it, <root>/test/<id>.
    opened = open_store(store)
    keys = candidate_keys("BBBBBBBBBBB_000000_000010", {"annotations": {}}, [])
    assert [k for k in keys if k in opened] == ["test/BBBBBBBBBBB_000000_000010"]


def test_merged_reference_made_file_still_finds_its_videos(ucf_store):
    """Merging qualifies shared class names and ids; the reference-made file's videos, found
    by the layout rule <label>/<id>, keep their place through store_id."""
    from annotations.merge import merge_annotations
    from annotations.schema import new_document
    reference = {"labels": ["ApplyEyeMakeup", "Archery", "HandstandPushups"], "database": {
        "v_ApplyEyeMakeup_g08_c01": {"subset": "training",
                                     "annotations": {"label": "ApplyEyeMakeup",
                                                     "segment": [1, 10]}},
        "v_Archery_g01_c01": {"subset": "validation",
                              "annotations": {"label": "Archery", "segment": [1, 11]}}}}
    other = new_document(["ApplyEyeMakeup"], {"v_Archery_g01_c01": {
        "subset": "training", "annotations": {"label": "ApplyEyeMakeup"}, "root": "o",
        "source": "o", "store_id": "x/v_Archery_g01_c01"}},
        sources={"o": {"dataset": "o", "files": []}},
        roots={"o": {"path": None, "format": None, "frame_base": 1}})
    doc = merge_annotations([("ucf_ref.json", reference), ("o.json", other)])
    store = open_store(ucf_store)
    mine = {k: e for k, e in doc["database"].items() if e["source"] == "ucf_ref"}
    assert sorted(mine) == ["ucf_ref:v_Archery_g01_c01", "v_ApplyEyeMakeup_g08_c01"]
    assert mine["v_ApplyEyeMakeup_g08_c01"]["annotations"]["label"] == "ucf_ref:ApplyEyeMakeup"
    for vid, entry in mine.items():
        label = entry["annotations"]["label"]
        keys = candidate_keys(vid, entry, [label])
        assert any(k in store for k in keys), (vid, keys)
