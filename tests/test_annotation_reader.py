"""One annotation reader: annotations/ (check, stats), training's datasets and r3d-eval read the
same file the same way (frame numbering, labels, segments)."""
import json

import pytest

from annotations import AnnotationError, read_annotation
from storeformat.annotation import (entry_frame_base, entry_labels, entry_segments, load_annotation,
                                    root_frame_base)
from training.data.datasets import InferenceWindows, TrainingClips
from training.job.evaluation import load_ground_truth
from training.data.sampling import TemporalCenterCrop
from training.data.transforms import Compose, Normalize
from training_data import build_stores, frame_levels

RAW = Compose([Normalize()])


def _hdf5_doc(path, segment):
    """The issue's case: a version-1 file whose HDF5 root does not state its frame_base."""
    return {"format": "r3d-annotations", "version": 1, "labels": ["jump", "walk"],
            "sources": {}, "roots": {"h": {"path": str(path), "format": "hdf5"}},
            "database": {"v_walk_0": {"subset": "training", "root": "h",
                                      "store_id": "walk/v_walk_0", "n_frames": 30,
                                      "annotations": {"label": "walk", "segment": segment}}}}


def test_a_root_without_frame_base_counts_from_one_for_every_reader(tmp_path_factory):
    stores = build_stores(tmp_path_factory)
    path = tmp_path_factory.mktemp("ann") / "a.json"
    # [1, 31]: all 30 frames counted from 1 -- valid for annotations/, read as all 30 frames
    path.write_text(json.dumps(_hdf5_doc(stores["hdf5"], [1, 31])))
    doc = read_annotation(path)
    assert root_frame_base(doc["roots"]["h"]) == 1
    assert entry_frame_base(load_annotation(path, full=False), "h") == 1
    ds = TrainingClips(load_annotation(path, full=False), {"h": stores["hdf5"]}, transform=RAW,
                       sampler=TemporalCenterCrop(30))
    assert frame_levels(ds[0][0].numpy()) == list(range(30))
    # [3, 5] is frames 3 and 4 counted from 1: the store's elements 2 and 3
    path.write_text(json.dumps(_hdf5_doc(stores["hdf5"], [3, 5])))
    ds = TrainingClips(load_annotation(path, full=False), {"h": stores["hdf5"]}, transform=RAW,
                       sampler=TemporalCenterCrop(2))
    assert frame_levels(ds[0][0].numpy()) == [2, 3]
    # [0, 30] starts before frame 1: rejected by the validator and by the datasets alike
    path.write_text(json.dumps(_hdf5_doc(stores["hdf5"], [0, 30])))
    with pytest.raises(AnnotationError, match="starts before frame 1"):
        read_annotation(path)
    with pytest.raises(ValueError, match=r"segment \[0, 30\] lies outside"):
        TrainingClips(load_annotation(path, full=False), {"h": stores["hdf5"]})


def test_reference_files_do_not_state_a_frame_base():
    ref = {"labels": ["a"], "database": {"x": {"subset": "training",
                                               "annotations": {"label": "a", "segment": [0, 4]}}}}
    assert entry_frame_base(ref, None) is None
    v1 = dict(ref, format="r3d-annotations", version=1)
    assert entry_frame_base(v1, None) == 1  # one rule for entries without a root too
    assert entry_frame_base(dict(v1, roots={"r": {"frame_base": 0}}), "r") == 0


ENTRIES = {
    "single": ({"label": "a", "segment": [1, 5]}, ["a"]),
    "multi": ({"labels": ["b", "a"]}, ["b", "a"]),
    "segments": ({"segments": [{"label": "a", "segment": [1, 3]},
                               {"label": "b", "segment_sec": [0.5, 1.0]},
                               {"label": "a", "segment": [4, 6]}]}, ["a", "b"]),
    "unlabelled": ({}, []),
}


def test_every_reader_sees_the_same_labels(tmp_path, tmp_path_factory):
    db = {vid: {"subset": "validation", "annotations": ann} for vid, (ann, _) in ENTRIES.items()}
    doc = {"format": "r3d-annotations", "version": 1, "multi_label": False,
           "labels": ["a", "b"], "sources": {}, "roots": {}, "database": db}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    read_annotation(path)  # valid
    for vid, (_, labels) in ENTRIES.items():
        assert entry_labels(db[vid]) == labels
    del db["unlabelled"]
    path.write_text(json.dumps(doc))
    truth = load_ground_truth(path, "validation").truth
    assert truth == {vid: labels for vid, (_, labels) in ENTRIES.items() if labels}
    # the datasets: every entry is one video of a real store, read whole with all its labels
    stores = build_stores(tmp_path_factory)
    for entry in db.values():
        entry["store_id"] = "walk/v_walk_0"
    path.write_text(json.dumps(doc))
    ds = InferenceWindows(load_annotation(path, full=False), stores["jpg"], transform=RAW,
                          target="multilabel")
    assert {s.video_id: [doc["labels"][i] for i in s.labels] for s in ds.samples} == truth


def test_reference_activitynet_lists(tmp_path):
    """The reference's ActivityNet files: annotations are a list of segments in seconds."""
    doc = {"labels": ["a", "b"], "database": {
        "x": {"subset": "validation", "fps": 30.0, "annotations": [
            {"label": "b", "segment": [1.5, 3.0]}, {"label": "a", "segment": [4.0, 9.5]}]}}}
    path = tmp_path / "anet.json"
    path.write_text(json.dumps(doc))
    read_annotation(path)
    assert entry_labels(doc["database"]["x"]) == ["b", "a"]
    assert entry_segments(doc["database"]["x"]) == [("b", None, [1.5, 3.0]),
                                                     ("a", None, [4.0, 9.5])]
    assert load_ground_truth(path, "validation").truth == {"x": ["b", "a"]}
    doc["database"]["x"]["annotations"][0]["segment"] = [3.0]
    path.write_text(json.dumps(doc))
    with pytest.raises(AnnotationError, match="segment 0: segment \\[3.0\\] must be"):
        read_annotation(path)


def test_shape_errors_name_the_file_and_video(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"labels": ["a"], "database": {"x": {"annotations": {}}}}))
    for read in (lambda p: load_annotation(p), lambda p: load_annotation(p, full=False)):
        with pytest.raises(ValueError, match=f"{path}: .*video 'x': entry without 'subset'"):
            read(path)
    with pytest.raises(FileNotFoundError, match="no such annotation file"):
        load_annotation(tmp_path / "missing.json", full=False)


@pytest.mark.parametrize("ann, message", [
    ({"labels": "ab"}, "'labels' must be a list of class names"),
    ({"label": ["a"]}, "label \\['a'\\] must be a class name"),
    ({"segments": ["a"]}, "each segment must be an object"),
    ({"segments": {"label": "a"}}, "'segments' must be a list"),
    ([{"label": "a", "segment": [0, 1]}], "'annotations' must be an object"),  # version 1
])
def test_every_reader_refuses_what_it_cannot_read(tmp_path, ann, message):
    doc = {"format": "r3d-annotations", "version": 1, "labels": ["a"], "sources": {},
           "database": {"x": {"subset": "validation", "annotations": ann}}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    for read in (read_annotation, lambda p: load_annotation(p, full=False),
                 lambda p: load_ground_truth(p, "validation")):
        with pytest.raises(ValueError, match=f"{path}: video 'x': {message}"):
            read(path)
