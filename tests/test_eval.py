"""r3d-eval against a hand-computed example."""
import json

import pytest

from training.eval_cli import main as eval_main
from training.job.evaluation import (EvaluationError, average_precision, evaluate,
                                     load_ground_truth, load_scores)

GT = {
    "labels": ["a", "b", "c"],
    "database": {
        "v1": {"subset": "validation", "annotations": {"label": "a", "segment": [1, 10]}},
        "v2": {"subset": "validation", "annotations": {"label": "a", "segment": [1, 10]}},
        "v3": {"subset": "validation", "annotations": {"label": "b", "segment": [1, 10]}},
        "v4": {"subset": "validation", "annotations": {"label": "c", "segment": [1, 10]}},
        "t1": {"subset": "training", "annotations": {"label": "c", "segment": [1, 10]}},
    },
}


def r(*pairs):
    return [{"label": lab, "score": s} for lab, s in pairs]


RESULTS = {"results": {
    "v1": r(("a", 0.7), ("b", 0.2), ("c", 0.1)),   # top-1 right
    "v2": r(("b", 0.2), ("c", 0.1), ("a", 0.7)),   # top-1 right (unsorted input)
    "v3": r(("a", 0.5), ("b", 0.4), ("c", 0.1)),   # top-2 right
    # v4 missing
}}


@pytest.fixture
def files(tmp_path):
    gt, res = tmp_path / "gt.json", tmp_path / "res.json"
    gt.write_text(json.dumps(GT))
    res.write_text(json.dumps(RESULTS))
    return gt, res


def test_hand_computed_accuracies(files):
    gt, res = files
    m = evaluate(gt, res, ks=(1, 2))
    # 4 videos, missing v4 counts wrong: top-1 = 2/4, top-2 = 3/4.
    assert m["top1"] == pytest.approx(0.5) and m["top2"] == pytest.approx(0.75)
    # per class top-1: a 2/2, b 0/1, c 0/1 -> 1/3
    assert m["mean_class_top1"] == pytest.approx(1 / 3)
    assert (m["n_videos"], m["n_missing"]) == (4, 1)
    m = evaluate(gt, res, ks=(1,), ignore_missing=True)
    assert m["top1"] == pytest.approx(2 / 3) and m["mean_class_top1"] == pytest.approx(0.5)


def test_cli_json_and_aliases(files, capsys):
    gt, res = files
    assert eval_main([str(gt), str(res), "-k", "1", "5", "--subset", "val", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["top1"] == pytest.approx(0.5) and out["top5"] == pytest.approx(0.75)
    assert set(out) >= {"top1", "top5", "mean_class_top1", "n_videos"}


@pytest.mark.parametrize("asked", ["trainval", "Val", " val", "validate"])
def test_a_subset_is_asked_by_its_name_or_a_short_alias_only(files, asked):
    """'trainval' means training and validation together, so it must not quietly pick the
    training videos (the spelling split files use for their training list); other spellings
    than the file's own names and train / val / valid / test are refused too."""
    gt, res = files
    with pytest.raises(EvaluationError, match=f"no video in subset '{asked}'"):
        evaluate(gt, res, subset=asked)
    assert list(load_ground_truth(gt, "train").truth) == ["t1"]


def test_per_segment_results_are_averaged(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GT))
    res = tmp_path / "seg.json"
    res.write_text(json.dumps({"results": {"v3": [
        {"segment": [1, 17], "result": r(("a", 0.6), ("b", 0.4))},
        {"segment": [17, 33], "result": r(("b", 0.9), ("c", 0.1))},
    ]}}))
    # b: (0.4 + 0.9) / 2 = 0.65 beats a: 0.6 / 2 = 0.3
    assert evaluate(gt, res, ks=(1,), ignore_missing=True)["top1"] == 1.0


def test_errors_are_clear(files, tmp_path, capsys):
    gt, res = files
    with pytest.raises(EvaluationError, match="no video in subset 'test'; the file has training, validation"):
        evaluate(gt, res, subset="test")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert eval_main([str(gt), str(bad)]) == 2
    assert "bad.json: not valid JSON" in capsys.readouterr().err


def test_score_tensor_metrics_match_the_file_evaluation():
    import torch

    from training.job.evaluation import video_metrics
    # v1, v2, v3 of RESULTS as scores over (a, b, c); truths as class indices.
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.5, 0.4, 0.1]])
    m = video_metrics(scores, [[0], [0], [1]], ks=(1, 2))
    assert m["top1"] == pytest.approx(2 / 3) and m["top2"] == pytest.approx(1.0)
    assert m["mean_class_top1"] == pytest.approx(0.5)


def _write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(json.dumps(doc))  # NaN and Infinity are written as Python's json does
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "0.5", None])
def test_non_finite_scores_are_rejected(files, tmp_path, capsys, bad):
    gt, _ = files
    res = _write(tmp_path, "nan.json", {"results": {
        "v1": r(("a", 0.7), ("b", bad)), "v2": r(("a", 0.9))}})
    with pytest.raises(EvaluationError, match="nan.json: video v1: .*'b'"):
        evaluate(gt, res)
    assert eval_main([str(gt), str(res)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nan.json: video v1" in err
    seg = _write(tmp_path, "seg.json", {"results": {"v1": [
        {"segment": [1, 17], "result": r(("a", 0.6))},
        {"segment": [17, 33], "result": r(("a", bad))}]}})
    with pytest.raises(EvaluationError, match="seg.json: video v1: "):
        evaluate(gt, seg)


def test_negative_scores_rank_as_scores(tmp_path):
    """Log-probabilities: the largest (closest to 0) is the best, whatever the list order."""
    gt = _write(tmp_path, "gt.json", GT)
    res = _write(tmp_path, "logp.json", {"results": {
        "v1": r(("b", -2.0), ("a", -0.1), ("c", -3.0)),
        "v2": r(("c", -1.5), ("b", -4.0), ("a", -0.7)),
        "v3": r(("a", -1.2), ("c", -2.5), ("b", -0.3)),
        "v4": r(("a", -0.2), ("c", -0.9), ("b", -5.0))}})
    m = evaluate(gt, res, ks=(1, 2))
    assert m["top1"] == pytest.approx(3 / 4) and m["top2"] == pytest.approx(1.0)
    # per segment, a label missing from a segment's top-k takes that segment's lowest score:
    # a (-0.5 - 3.0) / 2, b (-1.0 - 0.2) / 2, c (-1.0 - 3.0) / 2 -> b first
    seg = _write(tmp_path, "seg.json", {"results": {"v3": [
        {"segment": [1, 17], "result": r(("a", -0.5), ("b", -1.0))},
        {"segment": [17, 33], "result": r(("b", -0.2), ("c", -3.0))}]}})
    assert load_scores(seg) == {"v3": pytest.approx({"a": -1.75, "b": -0.6, "c": -2.0})}


def test_unknown_labels_and_extra_ids_are_reported(files, tmp_path, capsys):
    gt, _ = files
    res = _write(tmp_path, "res.json", {"results": dict(RESULTS["results"], **{
        "v4": r(("zebra", 0.9), ("c", 0.1)), "x1": r(("a", 1.0)), "x2": r(("yak", 1.0)),
        "t1": r(("c", 1.0))})})  # t1: in the file (training), so not an extra id
    m = evaluate(gt, res, ks=(1, 2))
    # zebra is never right: v4 is right at 2 only
    assert m["top1"] == pytest.approx(0.5) and m["top2"] == pytest.approx(1.0)
    assert (m["n_unknown_labels"], m["n_extra_videos"]) == (2, 2)
    assert eval_main([str(gt), str(res), "--json"]) == 0
    out = capsys.readouterr()
    warnings = out.err.strip().splitlines()
    assert warnings == [
        f"r3d-eval: warning: {res}: 2 result label(s) not in {gt}'s labels (never counted "
        "right), e.g. 'zebra', 'yak'",
        f"r3d-eval: warning: {res}: 2 video id(s) not in {gt} (left out), e.g. 'x1', 'x2'"]
    assert json.loads(out.out)["n_extra_videos"] == 2


MULTI = {"format": "r3d-annotations", "version": 1, "multi_label": True,
         "labels": ["a", "b", "c", "d"], "sources": {}, "roots": {}, "database": {
             "v1": {"subset": "validation", "annotations": {"labels": ["a", "b"]}},
             "v2": {"subset": "validation", "annotations": {"labels": ["a"], "label": "a"}},
             "v3": {"subset": "validation", "annotations": {"labels": ["c"], "label": "c"}},
             # ActivityNet's untrimmed view: the labels of its segments
             "v4": {"subset": "validation", "annotations": {"segments": [
                 {"label": "b", "segment": [1, 9]}, {"label": "c", "segment": [9, 20]}]}}}}


def test_multi_label_files_get_map(tmp_path, capsys):
    gt = _write(tmp_path, "multi.json", MULTI)
    res = _write(tmp_path, "res.json", {"results": {
        "v1": r(("a", 0.9), ("b", 0.2), ("c", 0.1)),
        "v2": r(("a", 0.6), ("b", 0.5), ("c", 0.3)),
        "v3": r(("a", 0.7), ("b", 0.1), ("c", 0.8)),
        "v4": r(("a", 0.2), ("b", 0.4))}})  # c not in v4's list: never retrieved
    m = evaluate(gt, res, ks=(1,))
    # AP a: v1+ v3- v2+ -> (1 + 2/3) / 2; b: v2- v4+ v1+ v3- -> (1/2 + 2/3) / 2;
    # c: v3+ v2- v1- (v4+ unretrieved) -> (1 + 0) / 2; d has no positive video: left out
    assert m["mAP"] == pytest.approx((5 / 6 + 7 / 12 + 1 / 2) / 3)
    assert m["n_map_classes"] == 3
    assert m["top1"] == 1.0  # each video's best label is one of its labels
    assert eval_main([str(gt), str(res)]) == 0
    assert "mAP: 0.6389 (over the 3 classes with a positive video)" in capsys.readouterr().out
    assert "mAP" not in evaluate(_write(tmp_path, "gt.json", GT), res, ks=(1,))


def test_average_precision_counts_ties_as_one_step():
    assert average_precision([(0.5, True), (0.5, False)], 1) == pytest.approx(0.5)
    assert average_precision([(0.9, False), (0.5, True), (0.5, True)], 3) == \
        pytest.approx(2 / 3 * 2 / 3)
    assert average_precision([], 2) == 0.0
