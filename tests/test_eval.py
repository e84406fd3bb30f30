"""r3d-eval against a hand-computed example."""
import json

import pytest

from training.eval_cli import main as eval_main
from training.evaluation import EvaluationError, evaluate

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

    from training.evaluation import video_metrics
    # v1, v2, v3 of RESULTS as scores over (a, b, c); truths as class indices.
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.5, 0.4, 0.1]])
    m = video_metrics(scores, [[0], [0], [1]], ks=(1, 2))
    assert m["top1"] == pytest.approx(2 / 3) and m["top2"] == pytest.approx(1.0)
    assert m["mean_class_top1"] == pytest.approx(0.5)
