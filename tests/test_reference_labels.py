"""Label order: every builder's default is the reference implementation's order for its dataset
(checked on the official split files), `--label-order sorted` stays available, and
r3d-annotate says which order it used."""
import csv
import logging

import pytest

from annotations.builders import BuildOptions, hmdb51, kinetics, ucf101
from annotations.cli import main
from annotations.schema import read_annotation


@pytest.fixture
def ucf_lists(shared_fixtures):
    return shared_fixtures / "annotations" / "ucf101" / "ucfTrainTestlist"


def test_ucf101_split1_default_order_is_classind(ucf_lists, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "ucf101_01.json"
    assert main(["ucf101", str(ucf_lists), "--splits", "1", "--out", str(out)]) == 0
    assert "label order: reference (classInd.txt order)" in caplog.text
    doc = read_annotation(out)
    class_ind = [line.split()[1] for line in (ucf_lists / "classInd.txt").read_text()
                 .splitlines() if line.strip()]
    assert doc["labels"] == class_ind
    # Under the sorted order four classes swap places; the test videos of those classes are
    # the ones a reference checkpoint would name wrongly.
    caplog.clear()
    assert main(["ucf101", str(ucf_lists), "--splits", "1", "--out", str(out),
                 "--label-order", "sorted"]) == 0
    assert "label order: sorted names" in caplog.text
    sorted_doc = read_annotation(out)
    moved = {name for i, name in enumerate(class_ind) if sorted_doc["labels"][i] != name}
    assert moved == {"HammerThrow", "Hammering", "JumpRope", "JumpingJack"}
    affected = [v for v, e in doc["database"].items()
                if e["subset"] == "validation" and e["annotations"]["label"] in moved]
    assert len(affected) == 153


def test_hmdb51_reference_order_is_sorted(shared_fixtures):
    folder = shared_fixtures / "annotations" / "hmdb51" / "testTrainMulti_7030_splits"
    (ref,) = hmdb51.build(folder, BuildOptions(), splits=[1])
    (srt,) = hmdb51.build(folder, BuildOptions(label_order="sorted"), splits=[1])
    assert ref.doc["labels"] == srt.doc["labels"] == sorted(ref.doc["labels"])
    assert len(ref.doc["labels"]) == 51


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        w.writerows(rows)


def test_kinetics_order_is_first_appearance_in_the_training_csv(tmp_path, caplog):
    folder = tmp_path / "k"
    folder.mkdir()
    _write_csv(folder / "kinetics-400_train.csv", [
        ("zumba", "AAAAAAAAAAA", 0, 10, "train"), ("abseiling", "BBBBBBBBBBB", 5, 15, "train"),
        ("zumba", "CCCCCCCCCCC", 0, 10, "train"), ("juggling", "DDDDDDDDDDD", 1, 11, "train")])
    _write_csv(folder / "kinetics-400_val.csv", [
        ("juggling", "EEEEEEEEEEE", 0, 10, "val"), ("yoga", "FFFFFFFFFFF", 0, 10, "val"),
        ("abseiling", "GGGGGGGGGGG", 0, 10, "val")])
    (out,) = kinetics.build(folder, BuildOptions())
    assert out.doc["labels"] == ["zumba", "abseiling", "juggling", "yoga"]
    # Building the validation subset alone still takes the training file's order.
    target = tmp_path / "k400_val.json"
    caplog.set_level(logging.INFO)
    assert main(["kinetics", str(folder), "--subsets", "validation", "--out", str(target)]) == 0
    assert "first appearance in the training CSV" in caplog.text
    doc = read_annotation(target)
    assert doc["labels"] == ["zumba", "abseiling", "juggling", "yoga"]
    assert set(e["subset"] for e in doc["database"].values()) == {"validation"}
    (out,) = kinetics.build(folder, BuildOptions(label_order="sorted"))
    assert out.doc["labels"] == ["abseiling", "juggling", "yoga", "zumba"]


def test_ucf101_build_options_default_is_reference(ucf_lists):
    (out,) = ucf101.build(ucf_lists, BuildOptions(), splits=[2])
    assert out.doc["labels"][34:36] == ["Hammering", "HammerThrow"]  # sorted: the other way
