"""Merged label spaces (Kinetics-700 + MiT = 1,039 classes), subsets and statistics."""
from collections import Counter

import pytest

from annotations import AnnotationError, read_annotation, write_annotation
from annotations.builders import BuildOptions, kinetics, mit
from annotations.cli import main
from annotations.merge import merge_annotations
from annotations.schema import new_document
from annotations.stats import compute, format_text
from annotations.subset import make_subset

#: Names both label spaces hold (real overlaps of Kinetics-700 and MiT v1).
SHARED = ["clapping", "juggling", "skiing"]


def _dataset(source, labels, per_class, *, n_val=1, store=None, prefix="v", shared_ids=()):
    """A built-looking document: `per_class` training and `n_val` validation videos per class,
    with frame counts; the ids in `shared_ids` are reused to force collisions."""
    database = {}
    for ci, name in enumerate(labels):
        for k in range(per_class + n_val):
            vid = f"{prefix}{ci:04d}_{k:02d}"
            n = 30 + (ci + k) % 7
            database[vid] = {"subset": "training" if k < per_class else "validation",
                             "annotations": {"label": name, "segment": [1, n + 1]},
                             "video_path": f"{name}/{vid}", "root": source, "source": source,
                             "n_frames": n, "fps": 30.0}
    for vid in shared_ids:
        database[vid] = {"subset": "training", "annotations": {"label": labels[0]},
                         "video_path": f"{labels[0]}/{vid}", "root": source, "source": source}
    return new_document(labels, database, sources={source: {"dataset": source, "files": []}},
                        roots={source: {"path": store or f"/stores/{source}", "format": "jpg",
                                        "frame_base": 1}},
                        label_sources=[[{"source": source, "name": n}] for n in labels],
                        history=[{"op": "build", "dataset": source}])


@pytest.fixture(scope="module")
def k700_like():
    labels = sorted([f"kinetics action {i:03d}" for i in range(700 - len(SHARED))] + SHARED)
    return _dataset("kinetics700", labels, 3, prefix="k", shared_ids=["same_id"])


@pytest.fixture(scope="module")
def mit_like():
    labels = [f"moment {i:03d}" for i in range(339 - len(SHARED))] + SHARED
    return _dataset("mit", labels, 2, n_val=2, prefix="m", shared_ids=["same_id"])


def test_merge_k700_and_mit_gives_1039_classes_with_provenance(k700_like, mit_like):
    km = merge_annotations([("k700.json", k700_like), ("mit.json", mit_like)])
    assert len(km["labels"]) == 700 + 339 == 1039
    # Label space = Kinetics' classes then MiT's, in their own order.
    assert km["labels"][700:] == [("mit:" + n if n in SHARED else n) for n in mit_like["labels"]]
    for name in SHARED:
        assert f"kinetics700:{name}" in km["labels"] and f"mit:{name}" in km["labels"]
        assert name not in km["labels"]
        i = km["labels"].index(f"mit:{name}")
        assert km["label_sources"][i] == [{"source": "mit", "name": name}]
    # No video lost; same ids kept apart; subsets and stores unchanged.
    assert len(km["database"]) == len(k700_like["database"]) + len(mit_like["database"])
    assert "same_id" not in km["database"]
    assert km["database"]["mit:same_id"]["original_id"] == "same_id"
    assert km["database"]["kinetics700:same_id"]["source"] == "kinetics700"
    m = km["database"]["m0000_00"]
    assert m["annotations"]["label"] == "moment 000" and m["root"] == "mit"
    assert km["roots"]["mit"]["path"] == "/stores/mit"
    clap = [v for v, e in km["database"].items() if e["source"] == "mit"
            and e["annotations"].get("label") == "mit:clapping"]
    assert len(clap) == 4
    subsets = Counter((e["source"], e["subset"]) for e in km["database"].values())
    assert subsets == {("kinetics700", "training"): 2101, ("kinetics700", "validation"): 700,
                       ("mit", "training"): 679, ("mit", "validation"): 678}
    assert km["history"][0]["op"] == "merge"
    assert [i["videos"] for i in km["history"][0]["inputs"]] == [2801, 1357]


def test_merge_unify_classes(k700_like, mit_like):
    km = merge_annotations([("k.json", k700_like), ("m.json", mit_like)], unify=True)
    assert len(km["labels"]) == 1039 - len(SHARED)
    i = km["labels"].index("clapping")
    assert km["label_sources"][i] == [{"source": "kinetics700", "name": "clapping"},
                                      {"source": "mit", "name": "clapping"}]
    # 4 Kinetics videos plus its 'same_id' (first class), and 4 MiT videos.
    assert Counter(e["annotations"].get("label") for e in km["database"].values()
                   )["clapping"] == 5 + 4


def test_merge_needs_distinct_source_names(k700_like):
    with pytest.raises(AnnotationError, match="--names"):
        merge_annotations([("a.json", k700_like), ("b.json", k700_like)])
    both = merge_annotations([("a.json", k700_like), ("b.json", k700_like)],
                             names=["k_a", "k_b"])
    assert len(both["labels"]) == 1400 and sorted(both["roots"]) == ["k_a", "k_b"]
    assert both["database"]["k_b:k0000_00"]["root"] == "k_b"


def test_merge_three_and_merge_of_a_merge(k700_like, mit_like):
    stair = _dataset("stair", ["eating", "clapping"], 2, prefix="s")
    kms = merge_annotations([("k", k700_like), ("m", mit_like), ("s", stair)])
    assert len(kms["labels"]) == 1041 and "stair:clapping" in kms["labels"]
    km = merge_annotations([("k", k700_like), ("m", mit_like)])
    again = merge_annotations([("km", km), ("s", stair)])
    assert len(again["labels"]) == 1041 and "stair:clapping" in again["labels"]
    assert again["label_sources"][again["labels"].index("mit:clapping")] == [
        {"source": "mit", "name": "clapping"}]


def test_merge_a_reference_made_file(k700_like):
    """Files from the reference scripts have no sources: the file name stands in."""
    ref = {"labels": ["clapping", "new class"],
           "database": {"r1": {"subset": "training",
                               "annotations": {"label": "clapping", "segment": [1, 50]}},
                        "k0000_00": {"subset": "validation",
                                     "annotations": {"label": "new class", "segment": [1, 9]}}}}
    km = merge_annotations([("k.json", k700_like), ("ucf_ref.json", ref)])
    assert len(km["labels"]) == 702 and "ucf_ref:clapping" in km["labels"]
    assert km["database"]["r1"]["source"] == "ucf_ref"
    assert km["database"]["ucf_ref:k0000_00"]["annotations"]["label"] == "new class"
    assert km["roots"]["ucf_ref"]["path"] is None


def test_merge_real_class_lists(shared_fixtures, tmp_path):
    """The real Kinetics-700 validation file and the real MiT v1 class list."""
    ann = shared_fixtures / "annotations"
    (k,) = kinetics.build(ann / "kinetics700", BuildOptions(), subsets=["validation"])
    mit_dir = tmp_path / "mit"
    mit_dir.mkdir()
    (mit_dir / "trainingSet.csv").write_text("clapping/a.mp4,clapping,3,0\n"
                                             "praying/b.mp4,praying,3,0\n")
    (mit_dir / "validationSet.csv").write_text("clapping/c.mp4,clapping,3,0\n")
    (m,) = mit.build(mit_dir, BuildOptions(),
                     classes_file=ann / "moments_in_time" / "category_momentsv1.txt")
    km = merge_annotations([("k700.json", k.doc), ("mit.json", m.doc)])
    assert len(km["labels"]) == 1039
    assert len(km["database"]) == 34173 + 3
    assert km["database"]["a"]["annotations"]["label"] == "mit:clapping"
    assert "kinetics700:clapping" in km["labels"]
    write_annotation(km, tmp_path / "km.json")


def test_categories_subset_keeps_whole_classes(k700_like, mit_like):
    km = merge_annotations([("k", k700_like), ("m", mit_like)])
    sub = make_subset(km, categories=0.3, seed=0)
    assert len(sub["labels"]) == round(0.3 * 1039) == 312
    kept = set(sub["labels"])
    # Re-indexed in the old relative order; provenance follows.
    assert sub["labels"] == [n for n in km["labels"] if n in kept]
    assert [s[0]["name"] for s in sub["label_sources"]] == [
        n.split(":", 1)[-1] for n in sub["labels"]]
    # Whole classes, in every subset; nothing of the dropped classes.
    before = Counter((e["annotations"]["label"], e["subset"]) for e in km["database"].values())
    after = Counter((e["annotations"]["label"], e["subset"]) for e in sub["database"].values())
    assert after == {k: n for k, n in before.items() if k[0] in kept}
    assert make_subset(km, categories=0.3, seed=0) == sub
    assert set(make_subset(km, categories=0.3, seed=1)["labels"]) != kept
    for fraction in (0.1, 0.5, 0.7, 0.9):
        assert len(make_subset(km, categories=fraction)["labels"]) == round(fraction * 1039)


def test_instances_subset_keeps_every_class(k700_like):
    doc = _dataset("toy", ["a", "b", "c"], 0, n_val=0)
    for ci, (name, n) in enumerate((("a", 10), ("b", 3), ("c", 1))):
        for k in range(n):
            doc["database"][f"{name}{k}"] = {"subset": "training",
                                             "annotations": {"label": name}}
        doc["database"][f"{name}_val"] = {"subset": "validation", "annotations": {"label": name}}
    sub = make_subset(doc, instances=0.5, seed=7)
    train = Counter(e["annotations"]["label"] for e in sub["database"].values()
                    if e["subset"] == "training")
    assert train == {"a": 5, "b": 2, "c": 1}
    assert sum(e["subset"] == "validation" for e in sub["database"].values()) == 3
    assert sub["labels"] == doc["labels"]
    assert make_subset(doc, instances=0.5, seed=7) == sub
    assert sub["history"][-1] == {"op": "subset", "seed": 7, "instances": 0.5,
                                  "instance_subsets": ["training"]}
    big = make_subset(k700_like, instances=0.34)
    # round(0.34 x 3) = round(0.34 x 4) = 1 video per class.
    assert Counter(e["subset"] for e in big["database"].values()) == {
        "training": 700, "validation": 700}


def test_subset_multi_label_keeps_every_tag():
    database = {f"v{i}": {"subset": "training",
                          "annotations": {"labels": ["common"] + (["rare"] if i == 7 else [])}}
                for i in range(10)}
    doc = new_document(["common", "rare"], database, multi_label=True)
    sub = make_subset(doc, instances=0.2, seed=0)
    tags = Counter(t for e in sub["database"].values() for t in e["annotations"]["labels"])
    assert tags["rare"] == 1 and tags["common"] >= 2
    cats = make_subset(doc, categories=0.5, seed=0)
    assert len(cats["labels"]) == 1


def test_subset_rejects_bad_fractions(k700_like):
    with pytest.raises(AnnotationError, match="categories"):
        make_subset(k700_like, categories=1.5)
    with pytest.raises(AnnotationError, match="give --categories"):
        make_subset(k700_like)


def test_stats_numbers():
    doc = _dataset("toy", ["a", "b"], 3)
    doc["database"]["t"] = {"subset": "testing", "annotations": {}}
    s = compute(doc)
    assert s["classes"] == 2 and s["videos"] == 9
    assert s["videos_per_subset"] == {"training": 6, "validation": 2, "testing": 1}
    assert s["unlabelled_per_subset"] == {"testing": 1}
    assert s["videos_per_class"]["training"] == {"min": 3, "median": 3.0, "max": 3}
    frames = [30 + (ci + k) % 7 for ci in range(2) for k in range(4)]
    assert s["frames"]["total"] == sum(frames) and s["frames"]["entries_without_counts"] == 1
    text = format_text(s, "toy.json")
    assert "toy.json: 2 classes, 9 videos" in text and "1 unlabelled" in text


def test_cli_merge_subset_stats(k700_like, mit_like, tmp_path, capsys):
    write_annotation(k700_like, tmp_path / "k.json")
    write_annotation(mit_like, tmp_path / "m.json")
    km, sub = tmp_path / "km.json", tmp_path / "km30.json"
    assert main(["merge", str(tmp_path / "k.json"), str(tmp_path / "m.json"), "-o",
                 str(km), "-q"]) == 0
    assert main(["subset", str(km), "--categories", "0.3", "--seed", "0", "-o", str(sub),
                 "-q"]) == 0
    assert len(read_annotation(sub)["labels"]) == 312
    capsys.readouterr()
    assert main(["stats", str(km)]) == 0
    out = capsys.readouterr().out
    assert "1039 classes, 4158 videos" in out and "sources: kinetics700 2801, mit 1357" in out
    assert main(["stats", "--json", str(sub)]) == 0
    assert '"classes": 312' in capsys.readouterr().out
