"""Pairing annotation entries with the videos of a store.

Store ids are paths relative to the converted source folder, without extension. An entry is
matched, in this order, by:

1. exact store id: the entry's expected path (``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01``),
   then its id, then its other keys;
2. last component: the last component of a store id equals one of those keys' last component
   (a store made from a flat folder or from one folder higher up);
3. the same, ignoring case;
4. dataset aliases (Kinetics: youtube id and start/end seconds parsed from the file name, so
   ``abc_000010_000020``, ``abc_10_20`` and, when unique, ``abc`` all match).

A key that names several store videos is not used; a store video that several entries match
is given to none of them (reported as ambiguous). Nothing is matched by guesswork beyond this.
"""
import logging
from collections import Counter

from .entries import last_part

log = logging.getLogger(__name__)

_AMBIGUOUS = object()


class MatchReport:
    """Outcome of matching: counts by status, and the store videos no entry claimed."""

    def __init__(self, total, counts, unclaimed, examples):
        self.total = total
        self.counts = counts
        self.unclaimed = unclaimed
        self.examples = examples

    @property
    def matched(self):
        return self.counts.get("matched", 0)

    def lines(self):
        """Human-readable summary lines."""
        out = [f"{self.matched} of {self.total} videos found in the store with frames"]
        for status in ("missing", "empty", "failed", "ambiguous"):
            n = self.counts.get(status, 0)
            if n:
                ex = ", ".join(self.examples.get(status, [])[:3])
                out.append(f"{n} {status} in the store (e.g. {ex})")
        if self.unclaimed:
            out.append(f"{len(self.unclaimed)} store videos are not in the annotation "
                       f"(e.g. {', '.join(self.unclaimed[:3])})")
        return out


def _add(table, key, vid):
    old = table.get(key)
    if old is None:
        table[key] = vid
    elif old != vid:
        table[key] = _AMBIGUOUS


def match_entries(entries, listing, alias=None) -> MatchReport:
    """Set ``entry.store`` (a StoreVideo with frames) or ``entry.problem`` (missing, empty,
    failed, ambiguous) for every entry. `alias(store_id)` gives a store video's dataset aliases."""
    videos = listing.videos
    claims = {}
    for e, vid in zip(entries, find_videos(entries, videos, alias)):
        e.store, e.problem = None, None
        if vid is None:
            e.problem = "missing"
        else:
            claims.setdefault(vid, []).append(e)
    counts = Counter()
    examples = {}
    for vid, claimants in claims.items():
        video = videos[vid]
        for e in claimants:
            if len(claimants) > 1:
                e.problem = "ambiguous"
            elif video.status != "done":
                e.problem = video.status
            else:
                e.store = video
    for e in entries:
        status = e.problem or "matched"
        counts[status] += 1
        if e.problem:
            examples.setdefault(status, []).append(e.id)
    unclaimed = sorted(set(videos) - set(claims))
    return MatchReport(len(entries), counts, unclaimed, examples)


def find_videos(entries, videos, alias=None) -> list:
    """The store id each entry matches by the rules above (None: no match), before claims
    are counted: `videos` is a collection of store ids."""
    tables = _Tables(videos, alias)
    return [_find(e, videos, tables) for e in entries]


class _Tables:
    """The lookup tables of rules 2-4, each built on first use (when every entry matches by
    exact id, none is built)."""

    def __init__(self, videos, alias):
        self.videos, self.alias = videos, alias
        self._stem = self._fold = self._alias = None

    @property
    def stem(self):
        if self._stem is None:
            self._stem = {}
            for vid in self.videos:
                _add(self._stem, last_part(vid), vid)
        return self._stem

    @property
    def fold(self):
        if self._fold is None:
            self._fold = {}
            for vid in self.videos:
                _add(self._fold, vid.casefold(), vid)
                _add(self._fold, last_part(vid).casefold(), vid)
        return self._fold

    @property
    def aliases(self):
        if self._alias is None:
            self._alias = {}
            if self.alias is not None:
                for vid in self.videos:
                    for a in self.alias(vid):
                        _add(self._alias, a, vid)
        return self._alias


def _hit(table, key):
    hit = table.get(key)
    return None if hit is _AMBIGUOUS else hit


def _find(entry, videos, tables):
    if entry.path and entry.path in videos:  # the first candidate key, and the usual match
        return entry.path
    keys = entry.candidate_keys()
    for k in keys:
        if k in videos:
            return k
    for k in keys:
        hit = _hit(tables.stem, last_part(k))
        if hit is not None:
            return hit
    for k in keys:
        hit = _hit(tables.fold, k.casefold()) or _hit(tables.fold, last_part(k).casefold())
        if hit is not None:
            return hit
    if entry.aliases:
        for a in entry.aliases:
            hit = _hit(tables.aliases, a)
            if hit is not None:
                return hit
    return None


def crosses_folders(path, store_id) -> bool:
    """Whether a match of the entry `path` with `store_id` holds by file name alone, across two
    different folders: neither is the other with folders above it (case ignored)."""
    a, b = path.casefold(), store_id.casefold()
    if a == b or "/" not in a or "/" not in b:
        return False
    return not (a.endswith("/" + b) or b.endswith("/" + a))


def apply_policy(entries, report, missing="drop", what="entries"):
    """Keep or drop the entries without usable frames, saying how many, and return the kept."""
    if missing not in ("drop", "keep"):
        raise ValueError(f"missing must be 'drop' or 'keep', not {missing!r}")
    for line in report.lines():
        log.info("%s", line)
    bad = [e for e in entries if e.store is None]
    if not bad:
        return list(entries)
    if missing == "drop":
        log.warning("dropped %d of %d %s without frames in the store (keep them with "
                    "--missing keep)", len(bad), len(entries), what)
        return [e for e in entries if e.store is not None]
    log.warning("kept %d of %d %s without frames in the store (no segment; drop them with "
                "--missing drop)", len(bad), len(entries), what)
    return list(entries)
