"""The unified annotation file: writing, validated reading, class lists, reference loader."""
import json

import pytest

from annotations import AnnotationError, read_annotation, validate, write_annotation
from annotations.labels import order_labels, read_class_list
from annotations.schema import new_document


def _doc(**over):
    """A small valid version-1 document with one store root and two videos."""
    database = {
        "v_a": {"subset": "training", "annotations": {"label": "run", "segment": [1, 11]},
                "video_path": "run/v_a", "root": "toy", "source": "toy", "n_frames": 10,
                "fps": 25.0},
        "v_b": {"subset": "validation", "annotations": {"label": "walk", "segment": [1, 4]},
                "video_path": "walk/v_b", "root": "toy", "source": "toy", "n_frames": 3},
    }
    doc = new_document(["run", "walk"], database,
                       sources={"toy": {"dataset": "toy", "files": []}},
                       roots={"toy": {"path": "/data/toy", "format": "jpg", "frame_base": 1}},
                       label_sources=[[{"source": "toy", "name": "run"}],
                                      [{"source": "toy", "name": "walk"}]])
    doc.update(over)
    return doc


def reference_samples(doc, subset):
    """What the reference implementation's VideoDataset.make_dataset reads from a file: class
    index by position in 'labels', 'label' and 'segment' of each entry of a subset, frame numbers
    range(segment[0], segment[1]), entries with segment[1] == 1 skipped."""
    class_to_idx = {name: i for i, name in enumerate(doc["labels"])}
    samples = []
    for vid, value in doc["database"].items():
        if value["subset"] != subset:
            continue
        ann = value["annotations"]
        label = class_to_idx[ann["label"]] if "label" in ann else -1
        segment = ann["segment"]
        if segment[1] == 1:
            continue
        samples.append((vid, label, list(range(segment[0], segment[1]))))
    return samples


def test_round_trip_is_plain_json_the_reference_reads(tmp_path):
    path = write_annotation(_doc(), tmp_path / "sub" / "toy.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["labels"] == ["run", "walk"]
    assert reference_samples(raw, "training") == [("v_a", 0, list(range(1, 11)))]
    assert reference_samples(raw, "validation") == [("v_b", 1, [1, 2, 3])]
    assert read_annotation(path) == raw
    assert not list(tmp_path.glob("sub/.*tmp*")), "temporary file left behind"


@pytest.mark.parametrize("mutate, message, video", [
    (lambda d: d["database"]["v_a"].update(subset="train"), "subset 'train'", "v_a"),
    (lambda d: d["database"]["v_a"]["annotations"].update(label="jump"), "label 'jump'", "v_a"),
    (lambda d: d["database"]["v_a"]["annotations"].update(segment=[1, 12]), "runs past", "v_a"),
    (lambda d: d["database"]["v_a"]["annotations"].update(segment=[0, 5]), "starts before",
     "v_a"),
    (lambda d: d["database"]["v_a"]["annotations"].update(segment=[5, 5]), "empty", "v_a"),
    (lambda d: d["database"]["v_a"].update(root="elsewhere"), "root 'elsewhere'", "v_a"),
    (lambda d: d["database"]["v_a"].update(store_id="/abs/v_a"), "relative", "v_a"),
    (lambda d: d["database"]["v_a"].update(video_path="../v_a"), "without", "v_a"),
    (lambda d: d["database"]["v_b"].update(n_frames=-1), "n_frames", "v_b"),
    (lambda d: d["database"]["v_b"].update(fps=0), "fps", "v_b"),
    (lambda d: d.update(multi_label=True), "needs 'labels'", "v_a"),
    # what the one-go check of usual entries must leave to the full rules
    (lambda d: d["database"]["v_b"].update(fps=True), "fps", "v_b"),
    (lambda d: d["database"]["v_b"].update(fps=float("nan")), "fps", "v_b"),
    (lambda d: d["database"]["v_b"].update(fps=float("inf")), "fps", "v_b"),
    (lambda d: d["database"]["v_b"].update(fps="25"), "fps", "v_b"),
    (lambda d: d["database"]["v_b"].update(n_frames=True), "n_frames", "v_b"),
    (lambda d: d["database"]["v_b"].update(n_frames=3.0), "n_frames", "v_b"),
    (lambda d: d["database"]["v_b"]["annotations"].update(segment=[1.0, 3]), "segment", "v_b"),
    (lambda d: d["database"]["v_b"]["annotations"].update(segment=[1, 2, 3]), "segment", "v_b"),
    (lambda d: d["database"]["v_b"]["annotations"].update(label=["walk"]), "label", "v_b"),
    (lambda d: d["database"]["v_b"].pop("annotations"), "annotations", "v_b"),
    (lambda d: d["database"]["v_b"].update(root=["toy"]), "root", "v_b"),
    (lambda d: d["database"]["v_b"].update(source="other"), "source 'other'", "v_b"),
    (lambda d: d["database"]["v_b"].update(store_id="walk\\v_b"), "store_id", "v_b"),
    (lambda d: d["database"]["v_b"].update(store_id=""), "store_id", "v_b"),
    (lambda d: d["database"]["v_b"].update(store_id="walk/./v_b"), "store_id", "v_b"),
    (lambda d: d["database"]["v_b"].update(store_id="walk//v_b"), "store_id", "v_b"),
    (lambda d: d["database"]["v_b"].update(store_id="walk/../v_b"), "store_id", "v_b"),
    (lambda d: d["database"]["v_b"].update(video_path="walk/../v_b"), "video_path", "v_b"),
    (lambda d: d["database"]["v_b"].update(subset=None), "subset None", "v_b"),
    (lambda d: d.update(labels=["run", "run"]), "label 'run' is given twice", None),
    (lambda d: d.update(version=99), "newer", None),
    (lambda d: d.update(label_sources=[]), "label_sources", None),
    (lambda d: d.pop("database"), "missing top-level 'database'", None),
])
def test_validation_names_file_video_and_problem(tmp_path, mutate, message, video):
    doc = _doc()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(AnnotationError) as err:
        read_annotation(path)
    text = str(err.value)
    assert str(path) in text and message in text
    if video is not None:
        assert f"video {video!r}" in text


def test_writer_refuses_an_invalid_document(tmp_path):
    doc = _doc()
    doc["database"]["v_a"]["annotations"]["label"] = "jump"
    with pytest.raises(AnnotationError):
        write_annotation(doc, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_not_json_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        read_annotation(bad)
    with pytest.raises(AnnotationError, match="no such annotation file"):
        read_annotation(tmp_path / "absent.json")


def test_require_frames_flags_entries_without_segment():
    doc = _doc()
    del doc["database"]["v_b"]["annotations"]["segment"]
    validate(doc)
    with pytest.raises(AnnotationError, match="video 'v_b': no 'segment'"):
        validate(doc, require_frames=True)


def test_reference_made_files_read_including_zero_based_hdf5_segments():
    """Files from the reference scripts have no format/version; its HDF5 variant writes
    segment (0, n)."""
    ref = {"labels": ["a", "b"],
           "database": {"x": {"subset": "training", "annotations": {"label": "a",
                                                                    "segment": [0, 30]}},
                        "y": {"subset": "testing", "annotations": {"segment": [1, 5]}}}}
    validate(ref)
    ref["database"]["x"]["annotations"]["label"] = "c"
    with pytest.raises(AnnotationError, match="label 'c'"):
        validate(ref)


def test_error_list_is_capped(tmp_path):
    doc = _doc()
    for i in range(50):
        doc["database"][f"v_{i}"] = {"subset": "nope", "annotations": {}}
    with pytest.raises(AnnotationError) as err:
        validate(doc, "many.json")
    assert "50 problem(s)" in str(err.value) and "and 30 more" in str(err.value)


@pytest.mark.parametrize("content, suffix, expected", [
    ("1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n3 Archery\r\n", ".txt",
     ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]),
    ("clapping,1\npraying,0\n", ".txt", ["praying", "clapping"]),
    ("abseiling\nair drumming\n", ".txt", ["abseiling", "air drumming"]),
    ("action\nApplying sunscreen\nArm wrestling\n", ".csv",
     ["Applying sunscreen", "Arm wrestling"]),
    ('{"labels": ["x", "y"], "database": {}}', ".json", ["x", "y"]),
])
def test_class_lists(tmp_path, content, suffix, expected):
    path = tmp_path / f"classes{suffix}"
    path.write_bytes(content.encode("utf-8"))
    assert read_class_list(path) == expected


def test_class_list_errors(tmp_path):
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na\n")
    with pytest.raises(AnnotationError, match="listed twice"):
        read_class_list(dup)
    gap = tmp_path / "gap.txt"
    gap.write_text("1 a\n3 b\n")
    with pytest.raises(AnnotationError, match="indices"):
        read_class_list(gap)


def test_label_order(tmp_path):
    found = ["walk", "run", "jump"]
    # Without a reference order (datasets the reference has no script for): sorted.
    assert order_labels(found) == ["jump", "run", "walk"]
    assert order_labels(found, order="sorted", reference=["walk", "run"]) == ["jump", "run", "walk"]
    # The reference's order first, then classes it lacks in order of appearance.
    assert order_labels(found, reference=["run", "walk"]) == ["run", "walk", "jump"]
    assert order_labels(found, order="official", reference=["walk", "run", "jump"]) == found
    layout = tmp_path / "checkpoint_classes.txt"
    layout.write_text("walk\nswim\nrun\njump\n")
    assert order_labels(found, labels_from=layout) == ["walk", "swim", "run", "jump"]
    layout.write_text("walk\nrun\n")
    with pytest.raises(AnnotationError, match="lacks 1 class"):
        order_labels(found, labels_from=layout)
