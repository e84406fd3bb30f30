"""r3d-annotate check on stores r3d-preprocess made from real videos: by default from the index
and the files alone, with --deep from every video's frame metadata; each video not on disk
with the file and the reason."""
import json
import shutil

import h5py
import pytest

from annotations.cli import main
from conftest import encode_video
from preprocess import convert_dataset
from storeformat import INDEX_NAME, read_index

VIDEOS = {"Archery/v_Archery_g01_c01.avi": 9, "Archery/v_Archery_g02_c01.avi": 8,
          "Bowling/v_Bowling_g01_c01.avi": 10, "Bowling/v_Bowling_g03_c02.avi": 7}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The source videos, a JPEG and an HDF5 store, and an annotation file for each."""
    base = tmp_path_factory.mktemp("check")
    src = base / "UCF-101"
    for rel, frames in VIDEOS.items():
        encode_video(src / rel, width=48, height=32, fps=25, frames=frames, codec="mpeg4")
    out = {"src": src}
    for fmt in ("jpg", "hdf5"):
        summary = convert_dataset(src, base / fmt, fmt=fmt, height=32, progress=False)
        assert summary.ok and summary.converted == len(VIDEOS)
        out[fmt] = base / fmt
        out[f"{fmt}.json"] = base / f"{fmt}.json"
        assert main(["folder", str(src), "--out", str(out[f"{fmt}.json"]), "--index",
                     str(base / fmt), "-q"]) == 0
    return out


def _store(made, fmt, tmp_path):
    """A copy of a store to damage; its index records by video id."""
    store = tmp_path / fmt
    shutil.copytree(made[fmt], store)
    return store, read_index(store / INDEX_NAME)


def _check(made, fmt, store, tmp_path, *deep):
    """(exit status, report) of check against `store`."""
    report = tmp_path / "report.json"
    status = main(["check", str(made[f"{fmt}.json"]), "--index", str(store), "--report",
                   str(report), "-q", *deep])
    (result,) = json.loads(report.read_text())
    return status, result


def test_intact_stores_pass_both_ways(made, tmp_path):
    for fmt in ("jpg", "hdf5"):
        for deep in ((), ("--deep",)):
            status, result = _check(made, fmt, made[fmt], tmp_path, *deep)
            assert status == 0 and result["reasons"] == {}
            assert not any(result["problems"].values())


def test_a_missing_shard_is_found_without_opening_the_others(made, tmp_path, capsys):
    store, index = _store(made, "hdf5", tmp_path)
    shard = index["Bowling/v_Bowling_g01_c01"]["path"]
    gone = sorted(v.rsplit("/", 1)[-1] for v, r in index.items() if r["path"] == shard)
    (store / shard).unlink()
    for deep in ((), ("--deep",)):
        capsys.readouterr()
        status, result = _check(made, "hdf5", store, tmp_path, *deep)
        assert status == 1
        assert sorted(result["problems"]["not_on_disk"]) == gone
        assert result["reasons"] == {v: f"{shard}: no such shard file" for v in gone}
        assert f"{shard}: no such shard file" in capsys.readouterr().out


def test_a_missing_group_is_found_only_by_deep(made, tmp_path, capsys):
    store, index = _store(made, "hdf5", tmp_path)
    rec = index["Archery/v_Archery_g02_c01"]
    with h5py.File(store / rec["path"], "a") as f:
        del f[rec["key"]]
    assert _check(made, "hdf5", store, tmp_path)[0] == 0
    capsys.readouterr()
    status, result = _check(made, "hdf5", store, tmp_path, "--deep")
    assert status == 1 and result["problems"]["not_on_disk"] == ["v_Archery_g02_c01"]
    reason = f"{rec['path']}: no group {rec['key']} with 'jpeg' and 'offsets'"
    assert result["reasons"] == {"v_Archery_g02_c01": reason}
    assert f"    {reason} (v_Archery_g02_c01)" in capsys.readouterr().out


def test_offsets_that_disagree_are_found_only_by_deep(made, tmp_path):
    store, index = _store(made, "hdf5", tmp_path)
    short, bad = index["Archery/v_Archery_g01_c01"], index["Bowling/v_Bowling_g03_c02"]
    with h5py.File(store / short["path"], "a") as f:
        offsets = f[short["key"]]["offsets"][()]
        del f[short["key"]]["offsets"]
        f[short["key"]].create_dataset("offsets", data=offsets[:-1])
    with h5py.File(store / bad["path"], "a") as f:
        f[bad["key"]]["offsets"][-1] += 1
    assert _check(made, "hdf5", store, tmp_path)[0] == 0
    status, result = _check(made, "hdf5", store, tmp_path, "--deep")
    assert status == 1
    assert result["reasons"] == {
        "v_Archery_g01_c01": f"{short['path']}: {short['key']}: 8 frames in its offsets, the "
                             f"index says 9",
        "v_Bowling_g03_c02": f"{bad['path']}: {bad['key']}: its offsets do not fit its "
                             f"{_size(store, bad)} bytes of JPEG data"}


def _size(store, rec):
    with h5py.File(store / rec["path"], "r") as f:
        return f[rec["key"]]["jpeg"].shape[0]


def test_a_shard_that_is_not_one(made, tmp_path):
    store, index = _store(made, "hdf5", tmp_path)
    garbage = index["Archery/v_Archery_g01_c01"]["path"]
    (store / garbage).write_bytes(b"not an HDF5 file at all")
    foreign = index["Bowling/v_Bowling_g01_c01"]["path"]
    assert foreign != garbage
    with h5py.File(store / foreign, "a") as f:
        f.attrs["layout"] = "something-else"
    status, result = _check(made, "hdf5", store, tmp_path)
    assert status == 1
    reasons = result["reasons"]
    assert reasons["v_Archery_g01_c01"].startswith(f"{garbage}: not a readable HDF5 file (")
    assert reasons["v_Bowling_g01_c01"] == (f"{foreign}: not an r3d shard (layout attribute "
                                            f"'something-else')")


def test_an_index_path_outside_the_store_is_not_followed(made, tmp_path):
    store, _ = _store(made, "hdf5", tmp_path)
    lines = (store / INDEX_NAME).read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    for rec in recs:
        if rec["id"] == "Bowling/v_Bowling_g03_c02":
            rec["path"] = "../hdf5/" + rec["path"]
    (store / INDEX_NAME).write_text("".join(json.dumps(r) + "\n" for r in recs))
    status, result = _check(made, "hdf5", store, tmp_path)
    assert status == 1 and list(result["reasons"]) == ["v_Bowling_g03_c02"]
    assert "not a path inside the store" in result["reasons"]["v_Bowling_g03_c02"]


def test_jpeg_frames_first_and_last_by_default_every_one_deep(made, tmp_path):
    store, _ = _store(made, "jpg", tmp_path)
    (store / "Archery" / "v_Archery_g01_c01" / "image_00004.jpg").unlink()
    (store / "Bowling" / "v_Bowling_g01_c01" / "image_00010.jpg").unlink()
    status, result = _check(made, "jpg", store, tmp_path)
    assert status == 1 and result["reasons"] == {
        "v_Bowling_g01_c01": "Bowling/v_Bowling_g01_c01: no image_00010.jpg"}
    status, result = _check(made, "jpg", store, tmp_path, "--deep")
    assert status == 1 and result["reasons"] == {
        "v_Archery_g01_c01": "Archery/v_Archery_g01_c01: 1 of 9 frame files missing (first "
                             "image_00004.jpg)",
        "v_Bowling_g01_c01": "Bowling/v_Bowling_g01_c01: 1 of 10 frame files missing (first "
                             "image_00010.jpg)"}


@pytest.mark.parametrize("fmt", ["jpg", "hdf5"])
@pytest.mark.parametrize("deep", [False, True])
def test_columns_check_reports_what_the_entry_by_entry_rules_report(made, tmp_path, fmt, deep,
                                                                    monkeypatch):
    """An indexed store is checked as columns (exact store ids looked up together, the rest
    through the matching rules); every kind of problem, the order of each list, the reasons
    and the unclaimed videos are those of the entry-by-entry check."""
    from annotations import check
    from annotations.store import StoreListing
    from annotations.schema import read_annotation

    store, index = _store(made, fmt, tmp_path)
    doc = read_annotation(made[f"{fmt}.json"])
    db = doc["database"]
    vids = list(db)
    first = db[vids[0]]
    with open(store / INDEX_NAME, "a") as f:  # a failed conversion (the last record wins)
        f.write(json.dumps({"id": db[vids[1]]["store_id"], "status": "failed",
                            "reason": "boom"}) + "\n")
    db[vids[2]]["n_frames"] += 1                                      # count mismatch
    db[vids[3]]["annotations"]["segment"] = [1, 99]                   # runs past the video
    db["gone"] = dict(first, store_id="Nowhere/v_gone")               # missing
    db["stem"] = dict(first, store_id="Other/" + first["store_id"].split("/")[-1])  # ambiguous
    db["twin"] = dict(db[vids[3]])                                    # same location: one video
    db["twin2"] = dict(db[vids[2]], n_frames=db[vids[2]]["n_frames"] + 1)  # listed after it
    if fmt == "jpg":
        rec = index[db[vids[3]]["store_id"]]
        (store / rec["path"] / f"image_{rec['n_frames']:05d}.jpg").unlink()  # not on disk
    else:
        rec = index[db[vids[3]]["store_id"]]
        (store / rec["path"]).unlink()

    def run(columns):
        if not columns:
            monkeypatch.setattr(check, "_store_for",
                                lambda *a: StoreListing.from_index(store))
        (result,) = check.check_stores(doc, index=store, deep=deep)
        monkeypatch.undo()
        return result

    fast, slow = run(True), run(False)
    assert fast.to_dict() == slow.to_dict()
    problems = fast.problems
    assert problems["missing"] == ["gone"] and problems["failed"] == [vids[1]]
    assert sorted(problems["ambiguous"]) == sorted([vids[0], "stem"])
    assert problems["not_on_disk"]
    assert [m.split()[0] for m in problems["frame_count_mismatch"]] == [vids[2], "twin2"]
    assert fast.n_videos == len(db) - 2  # the twins share their videos


def test_a_reference_file_is_checked_video_by_video(made, tmp_path):
    """Entries without store_id, video_path or video_id (the reference's files) are each
    their own video, found by their ids (they were once taken for one video)."""
    ref = {"labels": ["Archery", "Bowling"], "database": {
        rel.rsplit("/", 1)[-1][:-4]: {"subset": "training",
                                       "annotations": {"label": rel.split("/")[0]}}
        for rel in VIDEOS}}
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(ref))
    report = tmp_path / "report.json"
    for fmt in ("jpg", "hdf5"):
        assert main(["check", str(path), "--index", str(made[fmt]), "--report", str(report),
                     "-q"]) == 0
        (result,) = json.loads(report.read_text())
        assert result["videos"] == len(VIDEOS) and result["not_in_annotation"] == []
