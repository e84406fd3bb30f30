"""merge and subset write the same bytes as the files pinned in tests/data/annotations/
merge_subset (written by the deep-copying implementation they replaced), and leave their
inputs as they were."""
import copy
from pathlib import Path

import pytest

from annotations.merge import merge_annotations
from annotations.schema import new_document, write_annotation
from annotations.subset import make_subset

EXPECTED = Path(__file__).resolve().parent / "data" / "annotations" / "merge_subset"


def _doc(source, labels, per_class, *, root=None, path=None, shared_ids=(), untrimmed=False):
    """A built-looking document; `root` names its store (default: the source's name)."""
    root = root or source
    database = {}
    for ci, name in enumerate(labels):
        for k in range(per_class):
            vid = f"{source[0]}{ci}_{k}"
            n = 20 + 3 * ci + k
            ann = {"label": name, "segment": [1, n + 1]}
            if untrimmed:
                ann = {"segments": [{"label": name, "segment": [1, 5], "segment_sec": [0, 0.5]},
                                    {"label": labels[-1], "segment": [6, n + 1],
                                     "segment_sec": [0.6, 2.25]}]}
            database[vid] = {"subset": ("training", "validation", "testing")[k % 3],
                             "annotations": ann, "video_path": f"{name}/{vid}", "root": root,
                             "source": source, "n_frames": n, "fps": 29.97}
    for vid in shared_ids:
        database[vid] = {"subset": "training", "annotations": {"label": labels[0]},
                         "video_path": f"{labels[0]}/{vid}", "root": root, "source": source}
    return new_document(labels, database, sources={source: {"dataset": source, "files": []}},
                        roots={root: {"path": path or f"/stores/{source}", "format": "hdf5",
                                      "frame_base": 1}},
                        label_sources=[[{"source": source, "name": n}] for n in labels],
                        history=[{"op": "build", "dataset": source}])


def _multi():
    database = {f"h{i}": {"subset": ("training", "validation")[i % 2],
                          "annotations": {"labels": ["ab", "cd", "ef"][:1 + i % 3]},
                          "video_path": f"x/h{i}", "root": "hvu", "source": "hvu"}
                for i in range(9)}
    database["h_untagged"] = {"subset": "testing", "annotations": {}, "root": "hvu",
                              "source": "hvu"}
    return new_document(["ab", "cd", "ef"], database, multi_label=True,
                        sources={"hvu": {"dataset": "hvu", "files": ["tags.csv"]}},
                        roots={"hvu": {"path": "/stores/hvu", "format": "jpg",
                                       "frame_base": 1}},
                        label_sources=[[{"source": "hvu", "name": n}] for n in "ab cd ef".split()])


def _reference():
    return {"labels": ["clapping", "ab"],
            "database": {"r1": {"subset": "training",
                                "annotations": {"label": "clapping", "segment": [1, 50]}},
                         "k0_0": {"subset": "validation",
                                  "annotations": {"label": "ab", "segment": [1, 9]}},
                         "r3": {"subset": "testing", "annotations": {}}}}


def _cases():
    k = _doc("kinetics700", ["ab", "clapping", "cd", "juggling"], 3, shared_ids=["same_id"])
    m = _doc("mit", ["clapping", "ef", "juggling"], 3, shared_ids=["same_id"])
    # Another store under the same root name: the root is renamed, the entries follow.
    other = _doc("stair", ["clapping", "gh"], 2, root="kinetics700", path="/elsewhere")
    anet = _doc("anet", ["ab", "ij", "kl"], 2, untrimmed=True)
    km = merge_annotations([("k700.json", k), ("mit.json", m)])
    yield "km", km
    yield "km_unified", merge_annotations([("k700.json", k), ("mit.json", m)], unify=True)
    yield "kk_names", merge_annotations([("a.json", k), ("b.json", k)], names=["ka", "kb"])
    yield "k_ref", merge_annotations([("k.json", k), ("ucf_ref.json", _reference())])
    yield "k_multi", merge_annotations([("k.json", k), ("hvu.json", _multi())])
    yield "k_anet_stair", merge_annotations([("k.json", k), ("a.json", anet),
                                             ("s.json", other)])
    yield "km_stair", merge_annotations([("km.json", km), ("s.json", other)])
    yield "km_c50", make_subset(km, categories=0.5, seed=3, source_file="km.json")
    yield "km_i50", make_subset(km, instances=0.5, seed=1)
    yield "km_c70_i40", make_subset(km, categories=0.7, instances=0.4,
                                    subsets=("training", "validation"))
    yield "multi_c60", make_subset(_multi(), categories=0.6, seed=2)
    yield "multi_i30", make_subset(_multi(), instances=0.3, subsets=("training", "validation"))
    yield "anet_c60", make_subset(anet, categories=0.6, seed=5)
    yield "ref_i50", make_subset(_reference(), instances=0.5)


@pytest.mark.parametrize("name,doc", list(_cases()), ids=lambda x: x if isinstance(x, str)
                         else "")
def test_output_bytes_are_pinned(name, doc, tmp_path):
    out = write_annotation(doc, tmp_path / f"{name}.json")
    assert out.read_bytes() == (EXPECTED / f"{name}.json").read_bytes()


def test_inputs_are_left_unchanged():
    k = _doc("kinetics700", ["ab", "clapping"], 3, shared_ids=["same_id"])
    m = _doc("mit", ["clapping", "cd"], 3, shared_ids=["same_id"])
    ref, multi = _reference(), _multi()
    before = copy.deepcopy([k, m, ref, multi])
    km = merge_annotations([("k.json", k), ("m.json", m), ("r.json", ref), ("h.json", multi)])
    make_subset(km, categories=0.5, instances=0.5, subsets=("training", "validation"))
    make_subset(multi, categories=0.7)
    make_subset(ref, instances=0.5)
    assert [k, m, ref, multi] == before
