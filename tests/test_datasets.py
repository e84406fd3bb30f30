"""Clip datasets on real stores: the frames of every clip are the ones the samplers chose, in
every layout; bad data raises naming the video and frame, or is skipped with a warning."""
import copy
import logging
import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from storeformat import frame_name
from training.data import datasets
from training.data.datasets import (InferenceWindows, TrainingClips, ValidationClips,
                                    collate_multi_clips, collate_windows)
from training.data.region import region_decoder
from training.data.sampling import SlidingWindow, TemporalCenterCrop, TemporalEvenCrop
from training.data.errors import FrameReadError
from training.data.stores import Hdf5Store, open_store
from training.data.transforms import Compose, Normalize, train_transform
from training_data import (VIDEOS, build_pattern_stores, build_stores, copy_tree, frame_levels,
                           reference_doc)

RAW = Compose([Normalize()])  # no resampling: grey levels identify the frames


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return build_stores(tmp_path_factory)


def levels(clip):
    return frame_levels(clip.numpy())


@pytest.mark.parametrize("kind", ["jpg", "hdf5", "ref"])
def test_training_clips_hold_consecutive_frames_of_the_video(stores, kind):
    ds = TrainingClips(reference_doc(), stores[kind], transform=RAW,
                       sampler=TemporalCenterCrop(8))
    assert len(ds) == 4 and ds.class_names == ["jump", "walk"]
    by_id = {s.video_id: i for i, s in enumerate(ds.samples)}
    clip, target = ds[by_id["v_walk_0"]]  # 30 frames: centre clip starts at frame 11
    assert clip.shape == (3, 8, 48, 64) and clip.dtype == torch.float32
    assert levels(clip) == list(range(11, 19)) and target == 1
    clip, target = ds[by_id["v_jump_1"]]  # 10 frames
    assert levels(clip) == list(range(1, 9)) and target == 0
    long = TrainingClips(reference_doc(), stores[kind], transform=RAW,
                         sampler=TemporalCenterCrop(16))
    clip, _ = long[by_id["v_jump_1"]]  # shorter than the clip: loop padding
    assert levels(clip) == list(range(10)) + list(range(6))


def test_training_defaults_give_the_papers_input(stores):
    ds = TrainingClips(reference_doc(), stores["hdf5"])
    clip, target = ds[(1, 2)]
    assert clip.shape == (3, 16, 112, 112) and clip.dtype == torch.float32
    assert isinstance(target, int)
    levels_seen = [round(float(clip[:, t].mean() * 0.2737 + 0.3775) * 255 / 8) for t in
                   range(16)]
    assert np.all(np.diff(levels_seen) >= 0)  # frames in time order
    again, _ = ds[(1, 2)]
    assert torch.equal(clip, again)  # the draws follow from (seed, epoch, item) alone
    assert not all(torch.equal(clip, ds[(epoch, 2)][0]) for epoch in range(2, 6))


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    return build_pattern_stores(tmp_path_factory)


#: Epochs whose crops the region tests compare: each draws its own crop of the one video.
REGION_EPOCHS = range(1, 41)


def _region_mismatches(pattern, monkeypatch):
    """Compare region-decoded training clips with whole-frame decoded ones over many crops:
    (epochs whose clips differ, crops decoded by region, distinct clips seen)."""
    calls = []
    real = datasets.decode_region_clip

    def counting(lib, frames, factor, box, *args, **kwargs):
        calls.append(box)
        return real(lib, frames, factor, box, *args, **kwargs)
    monkeypatch.setattr(datasets, "decode_region_clip", counting)
    doc = reference_doc(["pattern/v_pattern_0"])
    differ, seen = [], set()
    for kind in ("jpg", "hdf5"):
        region = TrainingClips(doc, pattern[kind], sampler=TemporalCenterCrop(8))
        whole = TrainingClips(doc, pattern[kind], sampler=TemporalCenterCrop(8),
                              region_decode=False)
        assert region.region_lib is not None and whole.region_lib is None
        clone = pickle.loads(pickle.dumps(region))  # as a spawned DataLoader worker gets it
        assert clone.region_lib is not None
        for epoch in REGION_EPOCHS:
            a, _ = (clone if epoch % 2 else region)[(epoch, 0)]
            b, _ = whole[(epoch, 0)]
            seen.add(b.numpy().tobytes())
            if not torch.equal(a, b):
                differ.append((kind, epoch))
    return differ, len(calls), len(seen)


def test_region_decoding_changes_no_pixel(pattern, monkeypatch):
    """Decoding only each frame's crop gives exactly the clips whole-frame decoding gives, over
    crops of every size and position the training transform draws."""
    if region_decoder() is None:
        pytest.skip("region decoder unavailable")
    differ, regions, distinct = _region_mismatches(pattern, monkeypatch)
    assert differ == []
    assert distinct > len(REGION_EPOCHS) // 2  # the epochs drew many different crops
    assert regions >= len(REGION_EPOCHS)  # most of them (both stores) decoded by region


def test_region_check_catches_a_subtly_wrong_decoder(pattern, monkeypatch):
    """The comparison above fails for a region decoder that is off by one column only when a
    crop starts at an odd column (as a chroma upsampling slip would be)."""
    if region_decoder() is None:
        pytest.skip("region decoder unavailable")
    real = datasets.decode_region_clip

    def wrong(lib, frames, factor, box, *args, **kwargs):
        top, left, h, w = box
        if left % 2 and left > 0:
            left -= 1
        return real(lib, frames, factor, (top, left, h, w), *args, **kwargs)
    monkeypatch.setattr(datasets, "decode_region_clip", wrong)
    differ, regions, _ = _region_mismatches(pattern, monkeypatch)
    assert regions and differ


def test_reduced_decoding_stays_within_its_tolerance(pattern):
    """Training clips decoded at half size when the crop is scaled down >= 2x differ from
    full-size decoding by the documented tolerance, never more; evaluation decodes in full."""
    doc = reference_doc(["pattern/v_pattern_0"])
    fast = TrainingClips(doc, pattern["hdf5"], sampler=TemporalCenterCrop(8),
                         transform=train_transform(112, scales=(1.0,)))
    exact = TrainingClips(doc, pattern["hdf5"], sampler=TemporalCenterCrop(8),
                          transform=train_transform(112, scales=(1.0,)), reduced_decode=False)
    for epoch in range(1, 6):  # five crops and flips, each decoded both ways
        a, _ = fast[(epoch, 0)]
        b, _ = exact[(epoch, 0)]
        grey = (a - b).abs() * 0.27 * 255
        assert 0 < grey.mean() < 3, epoch
    assert not ValidationClips(reference_doc(["pattern/v_pattern_0"], ["validation"]),
                               pattern["hdf5"]).reduced_decode


def test_random_training_clips_cover_the_whole_video(stores):
    ds = TrainingClips(reference_doc(), stores["jpg"], transform=RAW)
    i = [s.video_id for s in ds.samples].index("v_jump_0")  # 24 frames, clips of 16
    starts = {levels(ds[(epoch, i)][0])[0] for epoch in range(200)}
    assert starts == set(range(9))  # frames 0..8 (levels), the last start included
    ds.set_epoch(7)
    assert levels(ds[i][0]) == levels(ds[(7, i)][0])  # a plain index takes set_epoch's draws


@pytest.mark.parametrize("kind", ["jpg", "hdf5"])
def test_validation_k_clips_per_video(stores, kind):
    subsets = ["validation"] * 4
    ds = ValidationClips(reference_doc(subsets=subsets), stores[kind], transform=RAW,
                         sampler=TemporalEvenCrop(8, 3))
    by_id = {s.video_id: i for i, s in enumerate(ds.samples)}
    clips, target, index = ds[by_id["v_walk_0"]]  # 30 frames: starts 0, 11, 22
    assert clips.shape == (3, 3, 8, 48, 64) and target == 1 and index == by_id["v_walk_0"]
    assert [levels(c)[0] for c in clips] == [0, 11, 22]
    batch = collate_multi_clips([ds[by_id["v_jump_1"]], ds[by_id["v_walk_0"]]])
    clips, targets, videos = batch
    assert clips.shape == (6, 3, 8, 48, 64)
    assert targets.tolist() == [0, 0, 0, 1, 1, 1]
    assert videos.tolist() == [by_id["v_jump_1"]] * 3 + [by_id["v_walk_0"]] * 3
    # k = 1 and a video too short for distinct clips
    one = ValidationClips(reference_doc(subsets=subsets), stores[kind], transform=RAW,
                          sampler=TemporalEvenCrop(16, 1))
    assert levels(one[by_id["v_walk_0"]][0][0]) == list(range(7, 23))
    assert one[by_id["v_jump_1"]][0].shape[0] == 1


def test_inference_windows_with_segments(stores):
    ds = InferenceWindows(reference_doc(), stores["hdf5"], subset="training", transform=RAW,
                          sampler=SlidingWindow(16))
    # 24 -> 2 windows, 10 -> 1, 30 -> 2, 20 -> 2
    assert len(ds) == 7
    items = [ds[i] for i in range(len(ds))]
    names = [ds.samples[v].video_id for _, v, _ in items]
    assert names.count("v_jump_0") == 2 and names.count("v_jump_1") == 1
    segs = {(ds.samples[v].video_id, tuple(seg.tolist())) for _, v, seg in items}
    # HDF5 frames are numbered from 0 (as the annotation segments [0, n] of such stores)
    assert ("v_walk_0", (16, 30)) in segs and ("v_walk_0", (0, 16)) in segs
    clip = next(c for c, v, seg in items if ds.samples[v].video_id == "v_walk_0" and seg[0] == 16)
    assert levels(clip) == list(range(16, 30)) + [16, 17]
    loader = DataLoader(ds, batch_size=4)
    clips, videos, segs = next(iter(loader))
    assert clips.shape == (4, 3, 16, 48, 64) and segs.shape == (4, 2)


def _v1_doc(stores, root_format):
    """An r3d unified file: store root, video_path, untrimmed segments (frames and seconds)."""
    base = 1 if root_format == "jpg" else 0
    return {
        "format": "r3d-annotations", "version": 1, "multi_label": False,
        "labels": ["jump", "walk"],
        "roots": {"main": {"path": str(stores["jpg" if root_format == "jpg" else "hdf5"]),
                           "format": root_format, "frame_base": base}},
        "database": {
            "long": {"subset": "training", "root": "main", "video_path": "walk/v_walk_0",
                     "fps": 25.0, "n_frames": 30,
                     "annotations": {"segments": [
                         {"label": "walk", "segment": [base + 2, base + 12]},
                         {"label": "jump", "segment_sec": [0.5, 2.0]}]}},
            "short": {"subset": "training", "root": "main", "video_path": "jump/v_jump_1",
                      "annotations": {"label": "jump", "segment": [base + 3, base + 7]}},
        }}


@pytest.mark.parametrize("root_format", ["jpg", "hdf5"])
def test_activitynet_style_segments(tmp_path, stores, root_format):
    doc = _v1_doc(stores, root_format)
    ds = TrainingClips(doc, stores["jpg" if root_format == "jpg" else "hdf5"], transform=RAW,
                       sampler=TemporalCenterCrop(4))
    assert [(s.video_id, s.label) for s in ds.samples] == [("long", 1), ("long", 0),
                                                            ("short", 0)]
    first = open_store(stores["jpg" if root_format == "jpg" else "hdf5"]).first_frame
    assert [(s.frames.start - first, s.frames.stop - first) for s in ds.samples] == [
        (2, 12), (12, 30), (3, 7)]  # 0.5 s x 25 = frame 12; 2.0 s = 50, clamped to 30 frames
    assert levels(ds[0][0]) == [5, 6, 7, 8]
    assert levels(ds[2][0]) == [3, 4, 5, 6]
    # the untrimmed view: whole videos, every label of the video
    whole = InferenceWindows(doc, stores["hdf5"], subset="training", transform=RAW,
                             sampler=SlidingWindow(16), target="multilabel")
    assert [(s.video_id, len(s.frames)) for s in whole.samples] == [("long", 30), ("short", 4)]
    assert whole.target(0).tolist() == [1.0, 1.0]
    # the reference's ActivityNet layout: frames in <root>/v_<id>, the file a list of
    # segments in seconds with the fps in the entry
    copy_tree(stores["jpg"] / "walk/v_walk_0", tmp_path / "anet" / "v_abc")
    ref = {"labels": ["jump", "walk"], "database": {"abc": {
        "subset": "validation", "fps": 25.0,
        "annotations": [{"label": "walk", "segment": [0.2, 0.6]}]}}}
    ds = ValidationClips(ref, {"h5": open_store(stores["hdf5"]), "anet": tmp_path / "anet"},
                         transform=RAW, sampler=TemporalEvenCrop(4, 2))
    assert ds.samples[0].key == "v_abc"
    # 0.2 s -> frame 5, 0.6 s -> 15 (excluded): 10 frames, clips at their start and end
    assert [levels(c) for c in ds[0][0]] == [[5, 6, 7, 8], [11, 12, 13, 14]]


def test_segments_in_another_numbering_are_shifted(stores):
    """A file written for a JPEG store (frames from 1) read from an HDF5 store (from 0)."""
    doc = _v1_doc(stores, "jpg")
    ds = TrainingClips(doc, {"main": stores["hdf5"]}, transform=RAW,
                       sampler=TemporalCenterCrop(4))
    assert levels(ds[0][0]) == [5, 6, 7, 8]
    segs = InferenceWindows(doc, {"main": stores["hdf5"]}, subset="training", transform=RAW,
                            sampler=SlidingWindow(16))
    assert segs[0][2].tolist() == [1, 17]  # reported in the file's numbering


def test_reference_files_counted_from_one_read_from_hdf5(stores):
    """The reference's [1, n + 1] whole-video segments, read from 0-based stores."""
    doc = reference_doc()
    for name, n in (("v_walk_0", 30), ("v_jump_1", 10)):
        doc["database"][name]["annotations"]["segment"] = [1, n + 1]
    for kind in ("hdf5", "ref", "jpg"):
        ds = TrainingClips(doc, stores[kind], transform=RAW, sampler=TemporalCenterCrop(30))
        i = ds.video_ids.index("v_walk_0")
        assert len(ds.samples[i].frames) == 30
        assert levels(ds[i][0]) == list(range(30))
    doc["database"]["v_walk_0"]["annotations"]["segment"] = [1, 32]  # fits neither way
    with pytest.raises(ValueError, match="segment \\[1, 32\\] lies outside the 30 frames"):
        TrainingClips(doc, stores["hdf5"])


def test_multilabel_targets(stores):
    doc = reference_doc()
    doc["multi_label"] = True
    doc["database"]["v_walk_0"]["annotations"] = {"labels": ["jump", "walk"]}
    doc["database"]["v_jump_0"]["annotations"] = {"labels": ["jump"]}
    ds = TrainingClips(doc, stores["jpg"], transform=RAW, sampler=TemporalCenterCrop(4))
    by_id = {s.video_id: i for i, s in enumerate(ds.samples)}
    assert ds[by_id["v_walk_0"]][1].tolist() == [1.0, 1.0]
    assert ds[by_id["v_jump_0"]][1].tolist() == [1.0, 0.0]
    assert ds[by_id["v_walk_1"]][1].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="several labels .* target='multilabel'"):
        TrainingClips(doc, stores["jpg"], target="label")


def test_merged_annotations_across_stores(stores):
    """One file whose videos live in a JPEG store and an HDF5 store, each with its numbering."""
    doc = {"format": "r3d-annotations", "version": 1, "labels": ["a:jump", "b:walk"],
           "roots": {"a": {"path": str(stores["jpg"]), "format": "jpg", "frame_base": 1},
                     "b": {"path": None, "format": "hdf5", "frame_base": 0}},
           "database": {
               "a/v_jump_0": {"subset": "training", "root": "a", "video_path": "jump/v_jump_0",
                              "annotations": {"label": "a:jump", "segment": [1, 25]}},
               "b/v_walk_1": {"subset": "training", "root": "b", "key": "videos/walk/v_walk_1",
                              "video_path": "shard-00003.h5",
                              "annotations": {"label": "b:walk", "segment": [0, 20]}}}}
    with pytest.raises(ValueError, match="in 2 roots .a, b.: give one store per root"):
        TrainingClips(doc, stores["jpg"])
    with pytest.raises(ValueError, match="root 'b' has no path"):
        TrainingClips(doc, {"a": stores["jpg"]})
    with pytest.raises(ValueError, match="root 'zzz', which the annotation file does not name"):
        TrainingClips(doc, {"zzz": stores["jpg"]})
    h5 = Hdf5Store(stores["hdf5"])
    ds = TrainingClips(doc, {"b": h5}, transform=RAW, sampler=TemporalCenterCrop(20))
    assert [type(s.store).__name__ for s in ds.samples] == ["JpegDirStore", "Hdf5Store"]
    assert levels(ds[0][0]) == list(range(2, 22)) and ds[0][1] == 0
    assert levels(ds[1][0]) == list(range(20)) and ds[1][1] == 1


def test_fewer_than_five_videos_and_workers(stores):
    doc = reference_doc(["walk/v_walk_1"])
    for kind in ("hdf5", "ref", "jpg"):
        ds = TrainingClips(doc, stores[kind], transform=RAW, sampler=TemporalCenterCrop(4))
        assert len(ds) == 1 and levels(ds[0][0]) == [8, 9, 10, 11]
    store = Hdf5Store(stores["hdf5"])
    ds = TrainingClips(reference_doc(), store, transform=train_transform(32))
    assert len(store.catalog.open_files()) == 0  # building the dataset opened no HDF5 file
    loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork")
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(2, 3, 16, 32, 32)] * 2
    assert sorted(sum((b[1].tolist() for b in batches), [])) == [0, 0, 1, 1]


def test_missing_videos_raise_or_are_skipped(stores, caplog):
    doc = reference_doc()
    doc["database"]["v_gone"] = {"subset": "training", "annotations": {"label": "walk"}}
    doc["database"]["v_walk_1"]["annotations"]["segment"] = [1, 40]
    doc["database"]["v_jump_1"]["annotations"] = {"segments": [{"label": "jump"}]}
    with pytest.raises(ValueError) as e:
        TrainingClips(doc, stores["jpg"])
    message = str(e.value)
    assert "3 video(s)" in message and "v_gone" in message and "'walk/v_gone'" in message
    assert "v_walk_1: segment [1, 40] lies outside the 20 frames" in message
    assert "v_jump_1: a segment with neither 'segment' (frames) nor 'segment_sec'" in message
    with caplog.at_level(logging.WARNING):
        ds = TrainingClips(doc, stores["jpg"], on_bad="skip")
    assert len(ds) == 2 and "leaving them out" in caplog.text
    with pytest.raises(ValueError, match="no usable videos"):
        TrainingClips(doc, stores["jpg"], subset="testing")
    bad_label = copy.deepcopy(reference_doc())
    bad_label["database"]["v_walk_0"]["annotations"]["label"] = "swim"
    with pytest.raises(ValueError, match="label 'swim' is not in the file's labels"):
        TrainingClips(bad_label, stores["jpg"])


def test_unreadable_frames_raise_or_are_skipped(tmp_path, stores, caplog):
    jpg = copy_tree(stores["jpg"], tmp_path / "jpg")
    (jpg / "walk/v_walk_1" / frame_name(12)).write_bytes(b"\xff\xd8broken")
    ref = copy_tree(stores["ref"], tmp_path / "ref")
    with h5py.File(ref / "walk/v_walk_1.hdf5", "r+") as f:
        f["video"][11] = np.frombuffer(b"", np.uint8)
    doc = reference_doc()
    for root, frame in ((jpg, 12), (ref, 11)):
        ds = TrainingClips(doc, root, transform=RAW, sampler=TemporalCenterCrop(20))
        i = [s.video_id for s in ds.samples].index("v_walk_1")
        with pytest.raises(FrameReadError) as e:
            ds[i]
        assert e.value.video == "walk/v_walk_1" and e.value.frame == frame
        assert f"video 'walk/v_walk_1', frame {frame}:" in str(e.value)
        skipping = TrainingClips(doc, root, transform=RAW, sampler=TemporalCenterCrop(20),
                                 on_bad="skip")
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            clip, target = skipping[i]
        assert "skipping item" in caplog.text and "walk/v_walk_1" in caplog.text
        # the next video's real clip instead, never an empty or partial one
        assert torch.equal(clip, skipping[(i + 1) % len(skipping)][0])
        assert target == skipping.samples[(i + 1) % len(skipping)].label


def test_skipped_evaluation_videos_are_left_out_not_replaced(tmp_path, stores, caplog):
    """Under on_bad='skip', validation and inference leave an unreadable video out, so that no
    other video is counted twice."""
    jpg = copy_tree(stores["jpg"], tmp_path / "jpg")
    for frame in (jpg / "walk/v_walk_1").glob("image_*.jpg"):
        frame.write_bytes(b"\xff\xd8broken")
    doc = reference_doc(subsets=["validation"] * 4)
    val = ValidationClips(doc, jpg, transform=RAW, sampler=TemporalEvenCrop(8, 2),
                          on_bad="skip")
    bad = val.video_ids.index("v_walk_1")
    with caplog.at_level(logging.WARNING):
        assert val[bad] is None
    clips, targets, videos = collate_multi_clips([val[i] for i in range(len(val))])
    assert sorted(set(videos.tolist())) == sorted(set(range(4)) - {bad})
    assert collate_multi_clips([val[bad]]) is None
    windows = InferenceWindows(doc, jpg, transform=RAW, sampler=SlidingWindow(8),
                               on_bad="skip")
    items = [windows[i] for i in range(len(windows))]
    assert [i for i, item in enumerate(items) if item is None] == \
        [i for i in range(len(windows)) if windows.video_of_window[i] == bad]
    _, seen, _ = collate_windows(items)
    assert bad not in seen.tolist() and len(seen) == sum(item is not None for item in items)


def test_annotation_file_built_by_r3d_annotate(tmp_path, stores):
    """The annotations package's own output (frame counts from the index) reads back."""
    from annotations.cli import main as annotate
    for kind in ("jpg", "hdf5"):
        out = tmp_path / f"{kind}.json"
        assert annotate(["folder", str(stores["src"]), "--out", str(out), "--index",
                         str(stores[kind]), "-q"]) == 0
        ds = TrainingClips(out, stores[kind], transform=RAW, sampler=TemporalCenterCrop(4))
        assert len(ds) == 4
        for i, sample in enumerate(ds.samples):
            n = VIDEOS[f"{ds.class_names[sample.label]}/{sample.video_id}"]
            start = (n - 4) // 2
            assert levels(ds[i][0]) == list(range(start, start + 4))


@pytest.mark.parametrize("kind", ["jpg", "hdf5"])
def test_vectorised_sample_building_equals_the_entry_by_entry_rules(tmp_path, stores, kind,
                                                                     monkeypatch):
    """The samples' fast path (r3d-annotate's entries, looked up in batches) gives the same
    samples, order and problems as the entry-by-entry rules, bad entries included, whatever
    the batch size."""
    import json

    from annotations.cli import main as annotate
    from training.data import datasets, samples
    out = tmp_path / "ann.json"
    assert annotate(["folder", str(stores["src"]), "--out", str(out), "--index",
                     str(stores[kind]), "-q"]) == 0
    doc = json.loads(out.read_text())
    entries = list(doc["database"].values())
    entries[0]["annotations"]["segment"] = [5, 9]            # a part of the video
    entries[1]["annotations"]["segment"] = [1, 400]          # past its end: a problem
    gone = dict(entries[2], store_id="walk/v_gone")          # not in the store
    doc["database"]["v_gone"] = gone
    doc["database"]["v_unlabelled"] = dict(entries[3], annotations={})
    for entry in doc["database"].values():
        entry["subset"] = "training"

    def table(fast, batch=samples.BATCH):
        if not fast:
            monkeypatch.setattr(samples.SimpleEntries, "take", lambda *a: False)
        monkeypatch.setattr(samples, "BATCH", batch)
        read = samples.read_samples(doc, datasets.StoreSet(stores[kind], doc))
        monkeypatch.undo()
        return read.select("training")

    (a, pa), (b, pb), (c, pc) = table(True), table(False), table(True, batch=2)
    assert pa == pb == pc and {v for v, _ in pa} == {"v_gone", list(doc["database"])[1]}
    builder = samples.SampleBuilder(doc, datasets.StoreSet(stores[kind], doc))
    vid = list(doc["database"])[3]
    assert builder.simple.take(3, 0, vid, doc["database"][vid])  # the fast path is tested
    assert len(a) == len(b) == len(c) == 4
    for name in ("rows", "starts", "stops", "labels", "shifts", "label_ptr", "label_values",
                 "id_ptr", "id_bytes"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert np.array_equal(getattr(a, name), getattr(c, name)), name
    assert a.labels.tolist()[-1] == -1 and a.labels_of(len(a) - 1) == ()
