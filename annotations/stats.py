"""Summary numbers of an annotation file: classes, videos per subset, videos per class, frames
(the frames of each entry's segment: a whole clip, or one ActivityNet segment)."""
from collections import Counter

import numpy as np

from storeformat.annotation import SUBSETS, entry_labels


def _spread(values):
    if not values:
        return None
    arr = np.asarray(values)
    return {"min": int(arr.min()), "median": float(np.median(arr)), "max": int(arr.max())}


def compute(doc) -> dict:
    """Statistics of a validated document as a plain dict."""
    labels = doc["labels"]
    per_subset = Counter()
    per_class = {s: Counter() for s in SUBSETS}
    unlabelled = Counter()
    frames, no_frames = [], 0
    sources = Counter()
    for entry in doc["database"].values():
        subset = entry["subset"]
        per_subset[subset] += 1
        tags = entry_labels(entry)
        if not tags:
            unlabelled[subset] += 1
        for t in tags:
            per_class[subset][t] += 1
        seg = entry["annotations"].get("segment")
        n = seg[1] - seg[0] if seg else entry.get("n_frames")
        if n is None:
            no_frames += 1
        else:
            frames.append(n)
        sources[entry.get("source") or "-"] += 1
    out = {
        "classes": len(labels),
        "videos": sum(per_subset.values()),
        "multi_label": bool(doc.get("multi_label", False)),
        "videos_per_subset": {s: per_subset[s] for s in SUBSETS if per_subset[s]},
        "unlabelled_per_subset": {s: unlabelled[s] for s in SUBSETS if unlabelled[s]},
        "videos_per_class": {},
        "classes_without_videos": {},
        "frames": {"total": int(sum(frames)), "entries_with_counts": len(frames),
                   "entries_without_counts": no_frames, "per_entry": _spread(frames)},
        "videos_per_source": dict(sorted(sources.items())),
    }
    for s in SUBSETS:
        if per_subset[s] - unlabelled[s] > 0:
            counts = [per_class[s][name] for name in labels]
            out["videos_per_class"][s] = _spread(counts)
            out["classes_without_videos"][s] = sum(1 for c in counts if c == 0)
    return out


def format_text(stats, name="") -> str:
    """The statistics as a few readable lines."""
    lines = [f"{name}: {stats['classes']} classes, {stats['videos']} videos"
             + (" (multi-label)" if stats["multi_label"] else "")]
    for s, n in stats["videos_per_subset"].items():
        line = f"  {s}: {n} videos"
        if s in stats["unlabelled_per_subset"]:
            line += f" ({stats['unlabelled_per_subset'][s]} unlabelled)"
        spread = stats["videos_per_class"].get(s)
        if spread:
            line += (f"; per class min {spread['min']} / median {spread['median']:g} / "
                     f"max {spread['max']}")
            empty = stats["classes_without_videos"][s]
            if empty:
                line += f"; {empty} classes without videos"
        lines.append(line)
    fr = stats["frames"]
    if fr["per_entry"]:
        sp = fr["per_entry"]
        lines.append(f"  frames: {fr['total']} in {fr['entries_with_counts']} entries; per entry "
                     f"min {sp['min']} / median {sp['median']:g} / max {sp['max']}")
    if fr["entries_without_counts"]:
        lines.append(f"  {fr['entries_without_counts']} entries without frame counts")
    if len(stats["videos_per_source"]) > 1:
        lines.append("  sources: " + ", ".join(f"{k} {v}" for k, v in
                                               stats["videos_per_source"].items()))
    return "\n".join(lines)
