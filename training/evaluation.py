"""Video-level accuracy of a results file against an annotation file, as the papers report it.

Results use the reference's format: ``{"results": {video_id: [{"label", "score"}, ...]}}``.
Per-segment results (``[{"segment", "result": [{"label", "score"}, ...]}, ...]``, written by
inference with --no-average) are averaged per video first: a label missing from a segment's
list counts as score 0 there.
"""
import json
from collections import defaultdict
from pathlib import Path

SUBSET_ALIASES = {"train": "training", "val": "validation", "valid": "validation",
                  "test": "testing"}


class EvaluationError(ValueError):
    """A ground-truth or results file cannot be evaluated; the message says which and why."""


def _load_json(path):
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise EvaluationError(f"{path}: no such file") from None
    except ValueError as e:
        raise EvaluationError(f"{path}: not valid JSON: {e}") from None


def entry_labels(entry) -> list:
    """Every label of an annotation entry: the reference's ``annotations.label``, each segment's
    label when ``annotations`` is a list (untrimmed videos), and a multi-label ``labels`` list."""
    ann = entry.get("annotations") or {}
    labels = []
    for a in ann if isinstance(ann, list) else [ann]:
        if a.get("label") is not None:
            labels.append(a["label"])
        labels.extend(a.get("labels") or [])
    labels.extend(entry.get("labels") or [])
    return list(dict.fromkeys(labels))


def resolve_subset(database, subset: str) -> str:
    """`subset` as spelled in the file; 'val', 'train' and 'test' are accepted as aliases."""
    present = {e.get("subset") for e in database.values()}
    if subset in present:
        return subset
    alias = SUBSET_ALIASES.get(subset)
    if alias in present:
        return alias
    raise EvaluationError(f"no video in subset '{subset}'; the file has "
                          f"{', '.join(sorted(str(s) for s in present))}")


def load_ground_truth(path, subset: str):
    """(class names, {video id: [label, ...]}) of the videos of `subset` in an annotation file."""
    doc = _load_json(path)
    if not isinstance(doc, dict) or "labels" not in doc or "database" not in doc:
        raise EvaluationError(f"{path}: not an annotation file (needs 'labels' and 'database')")
    subset = resolve_subset(doc["database"], subset)
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
    return doc["labels"], truth


def load_results(path) -> dict:
    """{video id: [labels sorted by decreasing score]} from a results file."""
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
        raise EvaluationError(f"{path}: not a results file (needs a 'results' object)")
    ranked = {}
    for vid, items in doc["results"].items():
        scores = defaultdict(float)
        try:
            if items and "result" in items[0]:
                for seg in items:
                    for r in seg["result"]:
                        scores[r["label"]] += r["score"] / len(items)
            else:
                for r in items:
                    scores[r["label"]] = max(scores[r["label"]], r["score"])
        except (KeyError, TypeError, IndexError):
            raise EvaluationError(f"{path}: video {vid}: entries need 'label' and 'score'") from None
        ranked[vid] = [lab for lab, _ in sorted(scores.items(), key=lambda kv: -kv[1])]
    return ranked


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
    """Top-k video accuracy for each k, mean class top-1 accuracy and counts.

    A video counts as correct at k when one of its labels is among its k best-scored labels.
    Videos without results count as wrong unless `ignore_missing`."""
    classes, truth = load_ground_truth(ground_truth_path, subset)
    ranked = load_results(results_path)
    missing = [vid for vid in truth if vid not in ranked]
    videos = [vid for vid in truth if vid in ranked] if ignore_missing else list(truth)
    if not videos:
        raise EvaluationError(f"{results_path}: no result for any of the {len(truth)} videos "
                              f"of the subset")
    out = ranking_metrics([ranked.get(v, []) for v in videos], [truth[v] for v in videos], ks)
    out["n_videos"] = len(videos)
    out["n_missing"] = len(missing)
    out["n_classes"] = len(classes)
    return out
