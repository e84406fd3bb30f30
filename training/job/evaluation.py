"""Video-level accuracy (and mAP for multi-label files) of a results file against an
annotation file, as the papers report them.

Results use the reference's format: ``{"results": {video_id: [{"label", "score"}, ...]}}``.
Per-segment results (``[{"segment", "result": [{"label", "score"}, ...]}, ...]``, written by
inference with --inference-no-average) are averaged per video first; a label missing from a
segment's list (lists hold the top k) takes the lowest score listed there, its score's upper
bound. Scores may be any finite numbers (probabilities, logits, log-probabilities); a score
that is not one (NaN from a diverged model) is an error. The annotation file is read by
storeformat.annotation, as annotations/ and the datasets read it.
"""
import math
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from storeformat.annotation import AnnotationError, entry_labels, load_annotation
from storeformat.jsonstream import json_errors, load_json
from storeformat.subsets import UnknownSubset, resolve_subset, subsets_of

#: How many unknown labels or extra video ids a warning names.
EXAMPLES = 3


class EvaluationError(ValueError):
    """A ground-truth or results file cannot be evaluated; the message says which and why."""


class GroundTruth(NamedTuple):
    """The videos of one subset of an annotation file and their labels."""
    classes: list      # the file's labels, in order
    truth: dict        # video id -> [label, ...] for the videos of the subset
    multi_label: bool  # the file says so, or a video of the subset has several labels
    all_ids: frozenset  # every video id of the file, whatever its subset


def _load_json(path):
    path = Path(path)
    with json_errors(path, EvaluationError), open(path, encoding="utf-8") as f:
        return load_json(f)


def _is_finite_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def load_ground_truth(path, subset: str) -> GroundTruth:
    """The labels of the videos of `subset` in an annotation file: a whole-video ``label``,
    multi-label ``labels``, segment labels or the reference's ActivityNet lists, all read by
    storeformat.annotation.entry_labels."""
    try:
        doc = load_annotation(path, full=False)
    except AnnotationError as e:
        raise EvaluationError(str(e)) from None
    try:
        subset = resolve_subset(subsets_of(doc["database"]), subset)
    except UnknownSubset as e:
        raise EvaluationError(str(e)) from None
    known = set(doc["labels"])
    truth = {}
    for vid, entry in doc["database"].items():
        if entry.get("subset") != subset:
            continue
        labels = entry_labels(entry)
        if not labels:
            raise EvaluationError(f"{path}: video {vid} of subset {subset} has no label")
        unknown = [lab for lab in labels if lab not in known]
        if unknown:
            raise EvaluationError(f"{path}: video {vid}: label {unknown[0]!r} is not in 'labels'")
        truth[vid] = labels
    multi = doc.get("multi_label") is True or any(len(t) > 1 for t in truth.values())
    return GroundTruth(list(doc["labels"]), truth, multi, frozenset(doc["database"]))


def load_scores(path) -> dict:
    """{video id: {label: score}} from a results file, per-segment results averaged (see the
    module docstring). Raises EvaluationError for a malformed entry or a non-finite score."""
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
        raise EvaluationError(f"{path}: not a results file (needs a 'results' object)")
    out = {}
    for vid, items in doc["results"].items():
        try:
            if items and "result" in items[0]:
                segments = [_label_scores(seg["result"]) for seg in items]
                if not all(segments):
                    raise ValueError("a segment without scores")
                labels = dict.fromkeys(lab for seg in segments for lab in seg)
                out[vid] = {lab: sum(seg.get(lab, min(seg.values())) for seg in segments)
                            / len(segments) for lab in labels}
            else:
                out[vid] = _label_scores(items)
        except (KeyError, TypeError, AttributeError):
            raise EvaluationError(f"{path}: video {vid}: entries need 'label' and "
                                  "'score'") from None
        except ValueError as e:
            raise EvaluationError(f"{path}: video {vid}: {e}") from None
    return out


def _label_scores(items) -> dict:
    """{label: score} of one list of {label, score}; a repeated label keeps its best score."""
    scores = {}
    for r in items:
        label, score = r["label"], r["score"]
        if not isinstance(label, str):
            raise TypeError(label)
        if not _is_finite_number(score):
            raise ValueError(f"score of {label!r} is {score!r}, not a finite number "
                             "(a diverged model?)")
        scores[label] = max(scores.get(label, -math.inf), score)
    return scores


def _ranked(scores):
    return [lab for lab, _ in sorted(scores.items(), key=lambda kv: -kv[1])]


def average_precision(scored, n_positives) -> float:
    """Average precision of one class: `scored` holds (score, is positive) for the videos that
    have a score for it, `n_positives` counts all its positive videos (those without a score
    are never retrieved). Tied scores form one step, as in the usual definition."""
    ap, tp, fp = 0.0, 0, 0
    scored = sorted(scored, key=lambda x: -x[0])
    i = 0
    while i < len(scored):
        j, step = i, 0
        while j < len(scored) and scored[j][0] == scored[i][0]:
            step += scored[j][1]
            j += 1
        tp += step
        fp += (j - i) - step
        ap += step / n_positives * tp / (tp + fp)
        i = j
    return ap


def mean_average_precision(scores, truths) -> tuple:
    """(mean over classes with at least one positive video of their average precision, number
    of such classes). `scores[i]`: {label: score} of video i (empty: no result), `truths[i]`
    its labels."""
    positives = {}
    for t in truths:
        for label in t:
            positives[label] = positives.get(label, 0) + 1
    aps = []
    for label, n in positives.items():
        scored = [(s[label], label in t) for s, t in zip(scores, truths) if label in s]
        aps.append(average_precision(scored, n))
    return sum(aps) / len(aps), len(aps)


def ranking_metrics(rankings, truths, ks=(1, 5)) -> dict:
    """Top-k accuracy for each k and mean class top-1 accuracy. `rankings[i]` lists video i's
    predicted labels best first (empty: no result), `truths[i]` its true labels; a video is
    correct at k when one of its labels is among its first k."""
    out = {}
    for k in ks:
        hits = sum(1 for r, t in zip(rankings, truths) if set(r[:k]) & set(t))
        out[f"top{k}"] = hits / len(truths)
    per_class = defaultdict(lambda: [0, 0])
    for r, t in zip(rankings, truths):
        for label in t:
            per_class[label][0] += int(label in r[:1])
            per_class[label][1] += 1
    out["mean_class_top1"] = sum(c / n for c, n in per_class.values()) / len(per_class)
    return out


def video_metrics(scores, truths, ks=(1, 5)) -> dict:
    """ranking_metrics of per-video class scores (a V x C tensor) and label indices."""
    rankings = scores.argsort(dim=1, descending=True)[:, :max(ks)].tolist()
    return ranking_metrics(rankings, truths, ks)


def evaluate(ground_truth_path, results_path, ks=(1, 5), subset="validation",
             ignore_missing=False) -> dict:
    """Top-k video accuracy for each k, mean class top-1 accuracy, mAP for multi-label files,
    counts, and `warnings`: lines about result labels that are not in the file's labels and
    result ids that are not in the file (evaluated all the same: such labels are never right,
    such videos are left out).

    A video counts as correct at k when one of its labels is among its k best-scored labels.
    Videos without results count as wrong unless `ignore_missing`."""
    gt = load_ground_truth(ground_truth_path, subset)
    scores = load_scores(results_path)
    missing = [vid for vid in gt.truth if vid not in scores]
    videos = [vid for vid in gt.truth if vid in scores] if ignore_missing else list(gt.truth)
    if not videos:
        raise EvaluationError(f"{results_path}: no result for any of the {len(gt.truth)} "
                              "videos of the subset")
    chosen = [scores.get(v, {}) for v in videos]
    truths = [gt.truth[v] for v in videos]
    out = ranking_metrics([_ranked(s) for s in chosen], truths, ks)
    if gt.multi_label:
        out["mAP"], out["n_map_classes"] = mean_average_precision(chosen, truths)
    out["n_videos"] = len(videos)
    out["n_missing"] = len(missing)
    out["n_classes"] = len(gt.classes)
    known = set(gt.classes)
    unknown = list(dict.fromkeys(lab for s in scores.values() for lab in s if lab not in known))
    extra = [vid for vid in scores if vid not in gt.all_ids]
    out["n_unknown_labels"] = len(unknown)
    out["n_extra_videos"] = len(extra)
    out["warnings"] = []
    if unknown:
        out["warnings"].append(
            f"{results_path}: {len(unknown)} result label(s) not in {ground_truth_path}'s "
            f"labels (never counted right), e.g. {', '.join(map(repr, unknown[:EXAMPLES]))}")
    if extra:
        out["warnings"].append(
            f"{results_path}: {len(extra)} video id(s) not in {ground_truth_path} (left out), "
            f"e.g. {', '.join(map(repr, extra[:EXAMPLES]))}")
    return out
