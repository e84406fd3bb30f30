"""A reversed segment is refused, never read as "no segment" (which trains on the whole
video): case 3 of issue 19, on an annotation r3d-annotate built for a real store."""
import json

import pytest

from annotations.cli import main as annotate
from training import TrainingClips
from training_data import build_stores


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    stores = build_stores(tmp_path_factory)
    out = tmp_path_factory.mktemp("segments") / "ann.json"
    assert annotate(["folder", str(stores["src"]), "--out", str(out), "--index",
                     str(stores["jpg"]), "-q"]) == 0
    return stores, json.loads(out.read_text())


def _with_segment(doc, vid, segment):
    doc = json.loads(json.dumps(doc))
    doc["database"][vid]["annotations"]["segment"] = segment
    return doc


def test_a_reversed_segment_is_an_error_naming_the_video(built):
    stores, doc = built
    vid = next(v for v, e in doc["database"].items() if e["store_id"] == "walk/v_walk_0")
    with pytest.raises(ValueError, match=rf"{vid}: segment \[29, 1\]"):
        TrainingClips(_with_segment(doc, vid, [29, 1]), stores["jpg"])


def test_a_segment_is_used_as_given_and_no_segment_means_the_whole_video(built):
    stores, doc = built
    vid = next(v for v, e in doc["database"].items() if e["store_id"] == "walk/v_walk_0")
    ds = TrainingClips(_with_segment(doc, vid, [3, 9]), stores["jpg"])
    spans = {ds.samples.video_id(i): ds.samples.frames(i) for i in range(len(ds))}
    assert spans[vid] == range(3, 9)
    del doc["database"][vid]["annotations"]["segment"]
    ds = TrainingClips(doc, stores["jpg"])
    assert {ds.samples.video_id(i): ds.samples.frames(i) for i in range(len(ds))}[vid] == \
        range(1, 31)
