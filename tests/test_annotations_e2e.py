"""End to end: real videos converted by r3d-preprocess, annotated with frame counts from its
index, checked with `check`, read back through the schema reader."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from annotations.cli import main
from annotations.schema import read_annotation
from conftest import decoded_frame_count, encode_video
from preprocess import convert_dataset
from storeformat import INDEX_NAME, IndexWriter, read_index

REPO = Path(__file__).resolve().parents[1]

#: Real UCF-101 names: g08 is in trainlist01, g01 in testlist01. The HandstandPushups folder
#: holds v_HandStandPushups_* files, as in the official archive.
VIDEOS = {
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi": dict(frames=12, codec="mpeg4"),
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c02.avi": dict(frames=9, codec="mpeg4"),
    "HandstandPushups/v_HandStandPushups_g08_c01.avi": dict(frames=8, codec="mpeg4"),
    "Archery/v_Archery_g01_c01.mp4": dict(frames=10, codec="libx264"),
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    src = base / "UCF-101"
    for rel, opts in VIDEOS.items():
        encode_video(src / rel, width=64, height=48, fps=25, **opts)
    (src / "README.txt").write_text("not a video, not a class\n")
    out = {"src": src}
    for fmt in ("jpg", "hdf5"):
        summary = convert_dataset(src, base / fmt, fmt=fmt, height=32, progress=False)
        assert summary.ok and summary.converted == len(VIDEOS)
        out[fmt] = base / fmt
    return out


def _vid(rel):
    return Path(rel).stem


def test_folder_build_frame_counts_are_the_frames_on_disk(stores, tmp_path):
    out = tmp_path / "ucf_like.json"
    assert main(["folder", str(stores["src"]), "--out", str(out), "--index",
                 str(stores["jpg"]), "-q"]) == 0
    doc = read_annotation(out, require_frames=True)
    assert doc["labels"] == ["ApplyEyeMakeup", "Archery", "HandstandPushups"]
    assert doc["roots"]["UCF-101"] == {"path": str(stores["jpg"].resolve()), "format": "jpg",
                                       "frame_base": 1}
    assert set(doc["database"]) == {_vid(r) for r in VIDEOS}
    for rel in VIDEOS:
        entry = doc["database"][_vid(rel)]
        frames = sorted((stores["jpg"] / entry["store_id"]).glob("image_*.jpg"))
        n = decoded_frame_count(stores["src"] / rel)
        assert entry["n_frames"] == len(frames) == n
        assert entry["annotations"]["segment"] == [1, n + 1]
        assert frames[-1].name == f"image_{n:05d}.jpg"
        assert entry["fps"] == 25.0
    assert main(["check", str(out)]) == 0


def test_hdf5_store_counts_match_the_shards(stores, tmp_path):
    out = tmp_path / "h5.json"
    assert main(["folder", str(stores["src"]), "--out", str(out), "--index",
                 str(stores["hdf5"]), "-q"]) == 0
    doc = read_annotation(out, require_frames=True)
    assert doc["roots"]["UCF-101"]["format"] == "hdf5"
    index = read_index(stores["hdf5"] / INDEX_NAME)
    for rel in VIDEOS:
        entry = doc["database"][_vid(rel)]
        assert entry["store_id"] == str(Path(rel).with_suffix(""))
        rec = index[entry["store_id"]]
        with h5py.File(stores["hdf5"] / rec["path"], "r") as f:
            n = len(f[rec["key"]]["offsets"]) - 1
        assert entry["n_frames"] == n == decoded_frame_count(stores["src"] / rel)
        assert entry["annotations"]["segment"] == [1, n + 1]
    assert main(["check", str(out)]) == 0


def test_scanning_fallback_agrees_with_the_index(stores, tmp_path):
    for fmt in ("jpg", "hdf5"):
        by_index, by_scan = tmp_path / f"i_{fmt}.json", tmp_path / f"s_{fmt}.json"
        assert main(["folder", str(stores["src"]), "--out", str(by_index), "--index",
                     str(stores[fmt]), "-q"]) == 0
        assert main(["folder", str(stores["src"]), "--out", str(by_scan), "--frames-root",
                     str(stores[fmt]), "-q"]) == 0
        a, b = read_annotation(by_index), read_annotation(by_scan)
        counts = {v: (e["n_frames"], e["annotations"]["segment"]) for v, e in
                  a["database"].items()}
        assert counts == {v: (e["n_frames"], e["annotations"]["segment"]) for v, e in
                          b["database"].items()}


def test_ucf101_official_lists_with_a_real_store(stores, shared_fixtures, tmp_path, caplog):
    lists = shared_fixtures / "annotations" / "ucf101" / "ucfTrainTestlist"
    args = ["ucf101", str(lists), "--out", str(tmp_path), "--index", str(stores["jpg"]),
            "--splits", "1"]
    assert main(args) == 1  # 4 of 13,320 videos: taken for the wrong store
    assert main(args + ["--partial-store"]) == 0
    assert "dropped 13316 of 13320" in caplog.text
    doc = read_annotation(tmp_path / "ucf101_01.json", require_frames=True)
    assert len(doc["labels"]) == 101
    assert {v: e["subset"] for v, e in doc["database"].items()} == {
        "v_ApplyEyeMakeup_g08_c01": "training", "v_ApplyEyeMakeup_g08_c02": "training",
        "v_HandStandPushups_g08_c01": "training", "v_Archery_g01_c01": "validation"}
    hs = doc["database"]["v_HandStandPushups_g08_c01"]
    assert hs["store_id"] == "HandstandPushups/v_HandStandPushups_g08_c01"
    assert hs["annotations"]["label"] == "HandstandPushups"
    assert main(["check", str(tmp_path / "ucf101_01.json")]) == 0


def test_check_finds_missing_empty_and_unlisted_videos(stores, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(stores["jpg"], store)
    out = tmp_path / "a.json"
    assert main(["folder", str(stores["src"]), "--out", str(out), "--index", str(store),
                 "-q"]) == 0
    # Frames deleted behind the index's back, a truncated video, an extra store video.
    shutil.rmtree(store / "Archery" / "v_Archery_g01_c01")
    last = sorted((store / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c02").glob("*.jpg"))[-1]
    last.unlink()
    shutil.copytree(store / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01",
                    store / "Extra" / "v_Extra_g01_c01")
    rec = json.loads((store / INDEX_NAME).read_text().splitlines()[0])
    rec.update(id="Extra/v_Extra_g01_c01", path="Extra/v_Extra_g01_c01")
    with IndexWriter(store / INDEX_NAME) as w:
        w.append(rec)
    capsys.readouterr()
    report = tmp_path / "report.json"
    assert main(["check", str(out), "--report", str(report)]) == 1
    text = capsys.readouterr().out
    assert "2 not on disk" in text and "1 store videos are not in the annotation" in text
    (r,) = json.loads(report.read_text())
    assert sorted(r["problems"]["not_on_disk"]) == ["v_ApplyEyeMakeup_g08_c02",
                                                    "v_Archery_g01_c01"]
    assert r["not_in_annotation"] == ["Extra/v_Extra_g01_c01"]
    # A video the index marks failed, kept without frames by --missing keep.
    with IndexWriter(store / INDEX_NAME) as w:
        w.append({"id": "HandstandPushups/v_HandStandPushups_g08_c01", "status": "failed",
                  "source": "HandstandPushups/v_HandStandPushups_g08_c01.avi",
                  "reason": "cannot decode"})
    kept = tmp_path / "kept.json"
    assert main(["folder", str(stores["src"]), "--out", str(kept), "--index", str(store),
                 "--missing", "keep", "-q"]) == 0
    assert "segment" not in read_annotation(kept)["database"][
        "v_HandStandPushups_g08_c01"]["annotations"]
    capsys.readouterr()
    assert main(["check", str(kept), "--index", str(store)]) == 1
    assert "1 failed: v_HandStandPushups_g08_c01" in capsys.readouterr().out


def test_check_finds_frame_count_mismatch(stores, tmp_path, capsys):
    out = tmp_path / "a.json"
    assert main(["folder", str(stores["src"]), "--out", str(out), "--index",
                 str(stores["jpg"]), "-q"]) == 0
    doc = json.loads(out.read_text())
    doc["database"]["v_Archery_g01_c01"]["n_frames"] = 99
    doc["database"]["v_Archery_g01_c01"]["annotations"]["segment"] = [1, 100]
    out.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["check", str(out)]) == 1
    assert "1 frame count mismatch: v_Archery_g01_c01 (file 99, store 10)" in \
        capsys.readouterr().out


def test_python_dash_m_annotations(stores, tmp_path):
    out = tmp_path / "m.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-m", "annotations", "folder", str(stores["src"]),
                          "--out", str(out), "--index", str(stores["hdf5"])],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stderr and "skipped 1 files beside the class folders" in run.stderr
    run = subprocess.run([sys.executable, "-m", "annotations", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0
    for word in ("ucf101", "hmdb51", "kinetics", "activitynet", "mit", "folder", "csv",
                 "merge", "subset", "stats", "check"):
        assert word in run.stdout
