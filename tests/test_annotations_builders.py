"""Builders on the official files (../shared/fixtures/annotations) and on small excerpts."""
import shutil
from pathlib import Path

import pytest

from annotations import AnnotationError, read_annotation, validate, write_annotation
from annotations.builders import BuildOptions, activitynet, custom, hmdb51, kinetics, mit, ucf101
from annotations.cli import main
from annotations.stats import compute
from annotations.store import StoreListing
from storeformat import INDEX_NAME, IndexWriter

DATA = Path(__file__).resolve().parent / "data" / "annotations"


@pytest.fixture
def official(shared_fixtures):
    return shared_fixtures / "annotations"


def _subsets(doc):
    counts = {}
    for e in doc["database"].values():
        counts[e["subset"]] = counts.get(e["subset"], 0) + 1
    return counts


def _index(store, records):
    store.mkdir(parents=True, exist_ok=True)
    with IndexWriter(store / INDEX_NAME) as w:
        for vid, n, fps in records:
            w.append({"id": vid, "status": "done", "source": vid + ".mp4", "format": "jpg",
                      "path": vid, "n_frames": n, "fps": fps, "width": 8, "height": 8,
                      "duration": n / fps})
    return StoreListing.from_index(store)


# --- UCF-101 -------------------------------------------------------------------------------

def test_ucf101_official_counts_and_quirks(official, tmp_path):
    folder = official / "ucf101" / "ucfTrainTestlist"
    assert main(["ucf101", str(folder), "--out", str(tmp_path), "-q"]) == 0
    docs = {s: read_annotation(tmp_path / f"ucf101_0{s}.json") for s in (1, 2, 3)}
    assert _subsets(docs[1]) == {"training": 9537, "validation": 3783}
    assert _subsets(docs[2]) == {"training": 9586, "validation": 3734}
    assert _subsets(docs[3]) == {"training": 9624, "validation": 3696}
    for doc in docs.values():
        assert len(doc["labels"]) == 101 and len(doc["database"]) == 13320
    doc = docs[1]
    assert doc["labels"] == (folder / "classInd.txt").read_text().split()[1::2]
    assert doc["history"][0]["label_order"] == "reference (classInd.txt order)"
    # The case quirk: the folder (and class) is HandstandPushups, the files HandStandPushups.
    quirk = doc["database"]["v_HandStandPushups_g08_c01"]
    assert quirk["annotations"] == {"label": "HandstandPushups"}
    assert quirk["store_id"] == "HandstandPushups/v_HandStandPushups_g08_c01"
    assert "HandStandPushups" not in doc["labels"]
    # Without a store: no frame counts, no segment.
    assert all("n_frames" not in e for e in doc["database"].values())
    assert doc["roots"]["ucf101"]["path"] is None


def test_ucf101_official_label_order_is_classind(official):
    folder = official / "ucf101" / "ucfTrainTestlist"
    (out,) = ucf101.build(folder, BuildOptions(label_order="official"), splits=[1])
    lines = (folder / "classInd.txt").read_text().split()
    assert out.doc["labels"] == lines[1::2]


def test_ucf101_bad_index_is_reported_with_the_line(official, tmp_path):
    folder = tmp_path / "lists"
    shutil.copytree(official / "ucf101" / "ucfTrainTestlist", folder)
    text = (folder / "trainlist01.txt").read_bytes().replace(
        b"v_ApplyEyeMakeup_g08_c01.avi 1", b"v_ApplyEyeMakeup_g08_c01.avi 7", 1)
    (folder / "trainlist01.txt").write_bytes(text)
    with pytest.raises(AnnotationError, match=r"trainlist01.txt:1: class index 7"):
        ucf101.build(folder, BuildOptions(), splits=[1])


# --- HMDB-51 -------------------------------------------------------------------------------

def test_hmdb51_official_counts_and_stray_files(official, tmp_path):
    folder = tmp_path / "splits"
    shutil.copytree(official / "hmdb51" / "testTrainMulti_7030_splits", folder)
    (folder / "notes.txt").write_text("stray file, not a class\n")
    (folder / "walk_test_split1.txt.bak").write_text("backup\n")
    (folder / ".DS_Store").write_bytes(b"\0")
    assert main(["hmdb51", str(folder), "--out", str(tmp_path / "out"), "-q"]) == 0
    for split in (1, 2, 3):
        doc = read_annotation(tmp_path / "out" / f"hmdb51_{split}.json")
        assert len(doc["labels"]) == 51
        assert _subsets(doc) == {"training": 3570, "validation": 1530}
    doc = read_annotation(tmp_path / "out" / "hmdb51_1.json")
    assert "notes" not in doc["labels"] and "README.md" not in doc["labels"]
    entry = doc["database"]["April_09_brush_hair_u_nm_np1_ba_goo_0"]
    assert entry["annotations"]["label"] == "brush_hair" and entry["subset"] == "training"
    assert entry["store_id"] == "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0"


def test_hmdb51_missing_split_file_is_named(official, tmp_path):
    folder = tmp_path / "splits"
    shutil.copytree(official / "hmdb51" / "testTrainMulti_7030_splits", folder)
    (folder / "wave_test_split2.txt").unlink()
    with pytest.raises(AnnotationError, match="wave_test_split2.txt"):
        hmdb51.build(folder, BuildOptions(), splits=[2])
    (out,) = hmdb51.build(folder, BuildOptions(), splits=[1])
    assert len(out.doc["labels"]) == 51


# --- Kinetics -------------------------------------------------------------------------------

def test_kinetics700_validation_counts(official, tmp_path):
    out = tmp_path / "k700.json"
    assert main(["kinetics", str(official / "kinetics700"), "--out", str(out),
                 "--subsets", "validation", "-q"]) == 0
    doc = read_annotation(out)
    assert len(doc["labels"]) == 700 and _subsets(doc) == {"validation": 34173}
    first = doc["database"]["---QUuC4vJs_000084_000094"]
    assert first["annotations"] == {"label": "testifying"}
    assert first["store_id"] == "testifying/---QUuC4vJs_000084_000094"
    assert doc["sources"] == {"kinetics700": {"dataset": "kinetics700",
                                              "files": ["validate.csv"]}}
    # No training CSV in the fixtures: first appearance in validate.csv stands in for it.
    rows = (official / "kinetics700" / "validate.csv").read_text().splitlines()[1:]
    assert doc["labels"] == list(dict.fromkeys(r.split(",")[0] for r in rows))
    assert main(["kinetics", str(official / "kinetics700"), "--out", str(out),
                 "--subsets", "validation", "--label-order", "sorted", "-q"]) == 0
    labels = (official / "kinetics700" / "label_map_k700.txt").read_text().split("\n")
    assert read_annotation(out)["labels"] == sorted(x for x in labels if x)


def test_kinetics700_test_file_without_labels(official):
    (out,) = kinetics.build(official / "kinetics700", BuildOptions())
    doc = out.doc
    assert _subsets(doc) == {"validation": 34173, "testing": 67714}
    test = doc["database"]["---v8pgm1eQ_000000_000010"]
    assert test["subset"] == "testing" and test["annotations"] == {}
    assert test["store_id"] == "test/---v8pgm1eQ_000000_000010"


def test_kinetics400_2017_validation_counts(official):
    (out,) = kinetics.build(official / "kinetics400", BuildOptions(), subsets=["validation"])
    assert len(out.doc["labels"]) == 400 and _subsets(out.doc) == {"validation": 19906}
    assert out.filename == "kinetics400.json"


def test_kinetics_2020_names_and_labelled_test_file(official):
    (out,) = kinetics.build(official / "kinetics400" / "2020_release", BuildOptions())
    assert _subsets(out.doc) == {"validation": 17778, "testing": 34826}
    test = out.doc["database"]["--6bJUbfpnQ_000017_000027"]
    assert test["annotations"] == {"label": "drinking beer"}


def test_kinetics_folder_with_both_namings_needs_release(official, tmp_path):
    folder = tmp_path / "k"
    folder.mkdir()
    shutil.copy(official / "kinetics400" / "kinetics-400_val.csv", folder)
    shutil.copy(official / "kinetics400" / "2020_release" / "validate.csv", folder)
    with pytest.raises(AnnotationError, match="--release"):
        kinetics.find_files(folder)
    assert kinetics.find_files(folder, "2017") == {"validation": folder / "kinetics-400_val.csv"}
    assert kinetics.find_files(folder, "2020") == {"validation": folder / "validate.csv"}


def test_kinetics_with_index_matches_downloader_names(tmp_path):
    csv = tmp_path / "validate.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\n"
                   "testifying,---QUuC4vJs,84,94,validate\n"
                   "washing feet,--GkrdYZ9Tc,0,10,validate\n"
                   '"passing American football (in game)",-5bmQ9dQRz0,3,13,validate\n'
                   "abseiling,0wR5jVB-WPk,417,427,validate\n")
    cat = _index(tmp_path / "store", [("testifying/---QUuC4vJs_000084_000094", 300, 30.0),
                                      ("washing_feet/--GkrdYZ9Tc_0_10", 250, 25.0),
                                      ("-5bmQ9dQRz0", 299, 29.97)])
    (out,) = kinetics.build(csv, BuildOptions(listing=cat))
    db = out.doc["database"]
    assert set(db) == {"---QUuC4vJs_000084_000094", "--GkrdYZ9Tc_000000_000010",
                       "-5bmQ9dQRz0_000003_000013"}
    assert db["--GkrdYZ9Tc_000000_000010"]["store_id"] == "washing_feet/--GkrdYZ9Tc_0_10"
    assert db["--GkrdYZ9Tc_000000_000010"]["annotations"] == {"label": "washing feet",
                                                              "segment": [1, 251]}
    assert db["-5bmQ9dQRz0_000003_000013"]["n_frames"] == 299
    assert out.report.counts == {"matched": 3, "missing": 1}
    assert out.doc["history"][0]["store_report"] == {"matched": 3, "missing": 1}
    assert "passing American football (in game)" in out.doc["labels"]


def test_kinetics_bad_rows_named(tmp_path):
    csv = tmp_path / "validate.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\nx,abcdefghijk,1.5,11,validate\n")
    with pytest.raises(AnnotationError, match=r"validate.csv:2: time '1.5'"):
        kinetics.build(csv, BuildOptions())
    csv.write_text("label,youtube_id,time_end\nx,abcdefghijk,11\n")
    with pytest.raises(AnnotationError, match="lacks column"):
        kinetics.build(csv, BuildOptions())


# --- ActivityNet ----------------------------------------------------------------------------

ANET = DATA / "activitynet" / "activity_net.v1-3.min.json"


def test_activitynet_without_store_keeps_seconds():
    trimmed, untrimmed = activitynet.build(ANET, BuildOptions(label_order="sorted"))
    assert trimmed.filename == "activitynet_trimmed.json"
    # Taxonomy leaves, sorted; 'Ironing clothes' has no video but is a class.
    assert trimmed.doc["labels"] == ["Cleaning shoes", "Ironing clothes", "Playing polo",
                                     "Playing water polo", "Rafting", "Skiing", "Wakeboarding"]
    db = trimmed.doc["database"]
    assert len(db) == 3 + 1 + 3 + 1 + 1 + 2
    seg = db["bYUmtLBL7W4_seg001"]
    assert seg["annotations"] == {"label": "Wakeboarding",
                                  "segment_sec": [68.62170982839314, 126.03987519500778]}
    assert seg["video_id"] == "bYUmtLBL7W4" and seg["store_id"] == "v_bYUmtLBL7W4"
    assert db["tstAAAAAAA1"] == {**db["tstAAAAAAA1"], "subset": "testing", "annotations": {}}
    assert len(untrimmed.doc["database"]) == 7 and untrimmed.doc["multi_label"] is True


def test_activitynet_official_label_order_is_taxonomy_order():
    (out,) = activitynet.build(ANET, BuildOptions(label_order="official"), views=["untrimmed"])
    assert out.doc["labels"] == ["Wakeboarding", "Cleaning shoes", "Skiing",
                                 "Playing water polo", "Playing polo", "Rafting",
                                 "Ironing clothes"]


def test_activitynet_frames_from_index_fps(tmp_path):
    cat = _index(tmp_path / "store", [("v_bYUmtLBL7W4", 6735, 30.0),
                                      ("v_8Ny9NjNpQQA", 452, 30.0),
                                      ("v_W_hux-Z6Ll0", 800, 25.0),
                                      ("v_FBUtGL5_tto", 3670, 25.0),
                                      ("v_tstAAAAAAA1", 512, 25.0)])
    trimmed, untrimmed = activitynet.build(ANET, BuildOptions(listing=cat))
    db = trimmed.doc["database"]
    # 11.5537 s * 30 = 346.6 -> first frame 346 (0-based) = 347; 57.068 s * 30 = 1712.04 -> 1713
    assert db["bYUmtLBL7W4_seg000"]["annotations"]["segment"] == [347, 1714]
    assert db["bYUmtLBL7W4_seg002"]["annotations"]["segment"] == [4065, 6041]
    # The official 0.01-0.02 s segment still covers one frame.
    assert db["W_hux-Z6Ll0_seg000"]["annotations"]["segment"] == [1, 2]
    # Clipped to the stored frames: 146.92 s * 25 = 3673.1 > 3670 frames.
    assert db["FBUtGL5_tto_seg000"]["annotations"]["segment"] == [6, 3671]
    assert db["tstAAAAAAA1"]["annotations"] == {"segment": [1, 513]}
    assert "hDPLy21Yyuk_seg000" not in db  # not in the store: dropped
    assert trimmed.report.counts == {"matched": 5, "missing": 2}
    un = untrimmed.doc["database"]
    polo = un["8Ny9NjNpQQA"]["annotations"]
    assert polo["labels"] == ["Playing water polo", "Playing polo"] and "label" not in polo
    assert polo["segment"] == [1, 453]
    # 1.995 s * 30 = 59.85 -> frame 60; 7.216 s * 30 = 216.48 -> up to frame 217 (stop 218)
    assert [s["segment"] for s in polo["segments"]] == [[60, 218], [151, 394], [252, 453]]
    assert un["bYUmtLBL7W4"]["annotations"]["label"] == "Wakeboarding"
    assert un["bYUmtLBL7W4"]["fps"] == 30.0 and un["bYUmtLBL7W4"]["n_frames"] == 6735
    # Stats count a trimmed entry's own frames: the 0.01 s segment is one frame.
    assert compute(trimmed.doc)["frames"]["per_entry"]["min"] == 1


def test_activitynet_bare_database_gt_json(official, tmp_path):
    gt = official / "activitynet" / "gt.json"
    cat = _index(tmp_path / "store", [("v_bYUmtLBL7W4", 6735, 30.0),
                                      ("v_hDPLy21Yyuk", 2287, 30.0)])
    (out,) = activitynet.build(gt, BuildOptions(listing=cat), views=["trimmed"])
    assert out.doc["labels"] == ["Cleaning shoes", "Wakeboarding"]
    db = out.doc["database"]
    assert sorted(db) == ["v_bYUmtLBL7W4_seg000", "v_bYUmtLBL7W4_seg001",
                          "v_bYUmtLBL7W4_seg002", "v_hDPLy21Yyuk_seg000"]
    assert db["v_hDPLy21Yyuk_seg000"]["annotations"]["segment"] == [642, 2286]
    assert db["v_hDPLy21Yyuk_seg000"]["store_id"] == "v_hDPLy21Yyuk"
    names = official / "activitynet" / "action_name.csv"
    (out,) = activitynet.build(gt, BuildOptions(labels_from=names), views=["trimmed"])
    assert len(out.doc["labels"]) == 200


def test_activitynet_results_file_is_refused(official):
    with pytest.raises(AnnotationError, match="results"):
        activitynet.build(official / "activitynet" / "sample_detection_prediction.json",
                          BuildOptions())


# --- Moments in Time ------------------------------------------------------------------------

def test_mit_from_official_format_files(tmp_path):
    cat = _index(tmp_path / "store", [("training/clapping/yt-AbCdEfGhIjK_10", 90, 30.0),
                                      ("training/covering/yt-AbCdEfGhIjK_10", 91, 30.0),
                                      ("praying/yt-CbCdEfGhIjK_45", 92, 30.0)])
    (out,) = mit.build(DATA / "mit", BuildOptions(listing=cat, missing="keep",
                                                  label_order="sorted", partial_store=True))
    doc = out.doc
    assert doc["labels"] == ["burying", "clapping", "covering", "dropping", "praying"]
    assert _subsets(doc) == {"training": 8, "validation": 3}
    # The same file name in two classes: both keep label/stem ids, nothing is overwritten.
    assert doc["database"]["clapping/yt-AbCdEfGhIjK_10"]["n_frames"] == 90
    assert doc["database"]["covering/yt-AbCdEfGhIjK_10"]["n_frames"] == 91
    assert doc["database"]["yt-CbCdEfGhIjK_45"]["annotations"] == {"label": "praying",
                                                                   "segment": [1, 93]}
    assert "segment" not in doc["database"]["yt-DbCdEfGhIjK_0"]["annotations"]
    for order in ("reference", "official"):  # the default, and its older name
        (out,) = mit.build(DATA / "mit", BuildOptions(label_order=order))
        assert out.doc["labels"] == ["clapping", "praying", "dropping", "burying", "covering"]


def test_mit_plain_class_list_and_errors(official, tmp_path):
    folder = tmp_path / "mit"
    shutil.copytree(DATA / "mit", folder)
    (folder / "moments_categories.txt").unlink()
    with pytest.raises(AnnotationError, match="--classes"):
        mit.build(folder, BuildOptions())
    v1 = official / "moments_in_time" / "category_momentsv1.txt"
    (out,) = mit.build(folder, BuildOptions(label_order="official"), classes_file=v1)
    assert len(out.doc["labels"]) == 339 and out.doc["labels"][:2] == ["clapping", "praying"]
    (folder / "validationSet.csv").write_text("clapping/x.mp4,praying,3,0\n")
    with pytest.raises(AnnotationError, match=r"validationSet.csv:1: folder 'clapping'"):
        mit.build(folder, BuildOptions(), classes_file=v1)


# --- new datasets ---------------------------------------------------------------------------

def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_folder_of_class_folders(tmp_path):
    src = tmp_path / "mydata"
    for cls, n in (("jump", 5), ("run", 4), ("swim", 1)):
        for i in range(n):
            _touch(src / cls / f"{cls}_{i}.mp4")
    _touch(src / "README.txt")
    _touch(src / "run" / "labels.xlsx")
    (src / "empty_class").mkdir()
    (a,) = custom.build_from_folder(src, BuildOptions(), val_fraction=0.4, seed=3)
    (b,) = custom.build_from_folder(src, BuildOptions(), val_fraction=0.4, seed=3)
    (c,) = custom.build_from_folder(src, BuildOptions(), val_fraction=0.4, seed=4)
    assert a.doc == b.doc and a.filename == "mydata.json"
    assert a.doc["labels"] == ["jump", "run", "swim"]
    db = a.doc["database"]
    assert len(db) == 10 and db["run_0"]["store_id"] == "run/run_0"
    per = {}
    for e in db.values():
        per.setdefault((e["annotations"]["label"], e["subset"]), 0)
        per[(e["annotations"]["label"], e["subset"])] += 1
    assert per == {("jump", "training"): 3, ("jump", "validation"): 2,
                   ("run", "training"): 2, ("run", "validation"): 2, ("swim", "training"): 1}
    assert {v for v, e in c.doc["database"].items() if e["subset"] == "validation"} != \
        {v for v, e in db.items() if e["subset"] == "validation"}


def test_folder_with_subset_folders_and_repeated_names(tmp_path):
    src = tmp_path / "ds"
    _touch(src / "train" / "a" / "clip.mp4")
    _touch(src / "train" / "b" / "other.avi")
    _touch(src / "val" / "a" / "clip.mp4")
    (out,) = custom.build_from_folder(src, BuildOptions())
    db = out.doc["database"]
    assert {v: (e["subset"], e["annotations"]["label"]) for v, e in db.items()} == {
        "train/a/clip": ("training", "a"), "train/b/other": ("training", "b"),
        "val/a/clip": ("validation", "a")}


def test_csv_single_label_with_and_without_header(tmp_path):
    with_header = tmp_path / "list.csv"
    with_header.write_text("path,label,split\nkitchen/cut_01.mp4,cut,train\n"
                           "kitchen/stir_01.mp4,stir,val\nkitchen/cut_02.mp4,cut,test\n")
    (out,) = custom.build_from_csv(with_header, BuildOptions())
    db = out.doc["database"]
    assert {v: (e["subset"], e["annotations"]["label"], e["store_id"]) for v, e in db.items()} \
        == {"cut_01": ("training", "cut", "kitchen/cut_01"),
            "stir_01": ("validation", "stir", "kitchen/stir_01"),
            "cut_02": ("testing", "cut", "kitchen/cut_02")}
    bare = tmp_path / "bare.csv"
    bare.write_text("a/x.mp4,walk\na/y.mp4,run\n")
    (out,) = custom.build_from_csv(bare, BuildOptions())
    assert out.doc["labels"] == ["run", "walk"] and _subsets(out.doc) == {"training": 2}
    dup = tmp_path / "dup.csv"
    dup.write_text("a/x.mp4,walk\na/x.mp4,run\n")
    with pytest.raises(AnnotationError, match="--multi-label"):
        custom.build_from_csv(dup, BuildOptions())
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,subset\na/x.mp4,walk,holdout\n")
    with pytest.raises(AnnotationError, match=r"bad.csv:2: unknown subset 'holdout'"):
        custom.build_from_csv(bad, BuildOptions())


def test_csv_hvu_style_multi_label(tmp_path):
    hvu = tmp_path / "HVU_Train_V1.0.csv"
    hvu.write_text("Tags,youtube_id,time_start,time_end\n"
                   "person|dancing|stage,abcdefghijk,0,10\n"
                   "dog|grass,bcdefghijkl,5,15\n")
    _index(tmp_path / "store", [("abcdefghijk_0_10", 300, 30.0)])
    out_path = tmp_path / "hvu.json"
    assert main(["csv", str(hvu), "--multi-label", "--out", str(out_path), "--index",
                 str(tmp_path / "store"), "--missing", "keep", "-q"]) == 0
    doc = read_annotation(out_path)
    assert doc["multi_label"] is True
    assert doc["labels"] == ["dancing", "dog", "grass", "person", "stage"]
    first = doc["database"]["abcdefghijk_000000_000010"]
    assert first["annotations"] == {"labels": ["person", "dancing", "stage"],
                                    "segment": [1, 301]}
    assert "segment" not in doc["database"]["bcdefghijkl_000005_000015"]["annotations"]
    long = tmp_path / "tags.csv"
    long.write_text("video,tag\nv1.mp4,a\nv1.mp4,b\nv2.mp4,a\nv1.mp4,a\n")
    (out,) = custom.build_from_csv(long, BuildOptions(), multi_label=True)
    assert out.doc["database"]["v1"]["annotations"] == {"labels": ["a", "b"]}
    assert out.doc["database"]["v2"]["annotations"] == {"labels": ["a"], "label": "a"}
    validate(out.doc)


def test_labels_from_matches_a_checkpoint_layout(tmp_path):
    out_path = tmp_path / "k.json"
    order = tmp_path / "order.txt"
    order.write_text("zeta\na\nb\n")
    csv = tmp_path / "validate.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\n"
                   "b,abcdefghijk,0,10,validate\na,bcdefghijkl,0,10,validate\n")
    assert main(["kinetics", str(csv), "--out", str(out_path), "--labels-from", str(order),
                 "-q"]) == 0
    assert read_annotation(out_path)["labels"] == ["zeta", "a", "b"]


def test_cli_errors_exit_nonzero_with_the_file(tmp_path, capsys):
    assert main(["ucf101", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 1
    assert "nowhere/classInd.txt: file not found" in capsys.readouterr().err
    assert main(["activitynet", str(ANET), "--out", str(tmp_path / "one.json")]) == 1
    assert "writes 2 files" in capsys.readouterr().err


def test_written_file_is_what_the_builder_made(tmp_path):
    (out,) = custom.build_from_csv(_write(tmp_path / "l.csv", "a/x.mp4,walk\n"), BuildOptions())
    path = write_annotation(out.doc, tmp_path / "l.json")
    assert read_annotation(path) == out.doc


def _write(path, text):
    path.write_text(text)
    return path
