"""The video entries a builder reads from a dataset's official files, before they become JSON."""

from storeformat.annotation import AnnotationError
from storeformat.subsets import SUBSET_ALIASES, SUBSETS


def normalize_subset(name, where=""):
    """'train'/'val'/'validate'/'test'... -> training/validation/testing."""
    key = str(name).strip().lower()
    if key not in SUBSET_ALIASES:
        raise AnnotationError(f"{where}: unknown subset {name!r} (expected one of "
                              f"{', '.join(SUBSETS)} or train/val/validate/test)")
    return SUBSET_ALIASES[key]


class Entry:
    """One video as a dataset's files describe it.

    `id` is the annotation's video id, `path` the place the reference layout expects its frames
    (relative, without extension), `keys` further store ids or file stems it may be stored under
    (tried after `path` and `id`), `aliases` dataset-specific match keys (see matching.py).
    `label` is the class of a single-label entry, `labels` the tags of a multi-label one,
    `segments` the labelled time spans of an untrimmed video ({"label", "segment_sec"}).
    """
    __slots__ = ("id", "subset", "label", "labels", "path", "keys", "aliases", "segments",
                 "extra", "store", "problem")

    def __init__(self, id, subset, label=None, *, labels=None, path=None, keys=(), aliases=(),
                 segments=None, extra=None):
        self.id = id
        self.subset = subset
        self.label = label
        self.labels = labels
        self.path = path if path is not None else id
        self.keys = tuple(keys)
        self.aliases = tuple(aliases)
        self.segments = segments
        self.extra = extra or {}
        self.store = None
        self.problem = None

    def candidate_keys(self):
        """Store ids to try, most specific first: expected path, id, then the other keys."""
        seen = []
        for k in (self.path, self.id, *self.keys):
            if k and k not in seen:
                seen.append(k)
        return seen

    def class_names(self):
        if self.labels is not None:
            return list(self.labels)
        if self.segments:
            return list(dict.fromkeys(s["label"] for s in self.segments if s.get("label")))
        return [self.label] if self.label is not None else []


def last_part(video_id: str) -> str:
    """Last component of a video id (ids carry no extension): 'a/b/v_x' -> 'v_x'."""
    return video_id.rsplit("/", 1)[-1]


def check_unique_ids(entries, where):
    """Raise when two entries share an id (a builder must never overwrite one with another)."""
    seen = {}
    for e in entries:
        if e.id in seen:
            other = seen[e.id]
            raise AnnotationError(f"{where}: video id {e.id!r} appears twice "
                                  f"({other.subset} {other.path!r} and {e.subset} {e.path!r})")
        seen[e.id] = e
