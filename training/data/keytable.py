"""Sorted byte-string keys stored without padding: one packed blob and an offsets array, so
that one long id costs its own bytes only (a fixed-width array pads every key to the longest).

Single keys are found by a binary search over a short fixed-width prefix of each key (numpy's
searchsorted), finished in Python among the keys sharing that prefix; many keys at once by
64-bit hashes of the keys, each hit checked against the key itself."""
import bisect

import numpy as np

#: Bytes of each key kept in the fixed-width prefix array (bounded: 32 bytes a key at most).
PREFIX = 32
#: Odd multiplier of the polynomial key hash.
_MULT = np.uint64(1099511628211)


def packed(keys: list):
    """(blob, offsets): the bytes of `keys` back to back, key i at blob[offsets[i]:offsets[i+1]]."""
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, keys), dtype=np.int64, count=len(keys)), out=offsets[1:])
    return np.frombuffer(b"".join(keys), dtype=np.uint8), offsets


def pack(keys: list) -> dict:
    """The arrays of a table of `keys` (sorted, non-empty bytes without NUL)."""
    blob, offsets = packed(keys)
    lengths = np.diff(offsets)
    width = max(1, min(PREFIX, int(lengths.max()) if len(keys) else 1))
    prefix = np.array([k[:width] for k in keys], dtype=f"S{width}")
    return {"key_blob": blob, "key_offsets": offsets, "key_prefix": prefix}


def hashes(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A 64-bit polynomial hash of each non-empty key of a packed table (sum of byte *
    MULT**position, wrapping, mixed with the length; empty keys: 0), in chunks of keys to bound
    the temporary arrays."""
    lengths = np.diff(offsets)
    out = np.zeros(len(lengths), dtype=np.uint64)
    full = np.flatnonzero(lengths)
    if len(full) < len(lengths):  # reduceat needs non-empty segments
        if len(full):
            out[full] = hashes(*packed([blob[offsets[i]:offsets[i + 1]].tobytes()
                                        for i in full]))
        return out
    n = len(lengths)
    if n == 0:
        return out
    longest = int(lengths.max())
    powers = np.full(max(longest, 1), _MULT, dtype=np.uint64)
    powers[0] = 1
    with np.errstate(over="ignore"):
        np.cumprod(powers, out=powers)
        step = 1 << 16
        for a in range(0, n, step):
            b = min(n, a + step)
            lo, hi = int(offsets[a]), int(offsets[b])
            starts = offsets[a:b] - lo
            pos = np.arange(hi - lo, dtype=np.int64) - np.repeat(starts, lengths[a:b])
            terms = blob[lo:hi].astype(np.uint64) * powers[pos]
            out[a:b] = np.add.reduceat(terms, starts)
            out[a:b] ^= lengths[a:b].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return out


class KeyTable:
    """The keys of a catalog (arrays from `pack`, usually memory-mapped); without `prefix`, a
    table read by row only (a JPEG store's video paths)."""

    def __init__(self, blob, offsets, prefix=None):
        self.blob, self.offsets, self.prefix = blob, offsets, prefix
        self._by_hash = None

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, i) -> bytes:
        return self.blob[int(self.offsets[i]):int(self.offsets[i + 1])].tobytes()

    def find(self, key: bytes):
        """Row of `key`, or None."""
        if not key or b"\x00" in key or not len(self):
            return None
        width = self.prefix.dtype.itemsize
        head = key[:width]
        lo = int(self.prefix.searchsorted(head))
        if lo == len(self) or self.prefix[lo] != head:
            return None
        if self[lo] == key:
            return lo
        if len(key) <= width:  # the only key with this prefix is `key` itself
            return None
        hi = int(self.prefix.searchsorted(head, "right"))
        i = bisect.bisect_left(range(lo, hi), key, key=self.__getitem__) + lo
        return i if i < hi and self[i] == key else None

    def find_many(self, wanted: list) -> np.ndarray:
        """Rows of many bytes keys, -1 for those the table has not."""
        out = np.full(len(wanted), -1, dtype=np.int64)
        if not len(wanted) or not len(self):
            return out
        blob, offsets = packed(wanted)
        h = hashes(blob, offsets)
        sorted_h, order = self._hash_index()
        by_h = np.argsort(h)  # sorted needles: each search starts near the last
        at = np.empty(len(h), dtype=np.int64)
        at[by_h] = np.minimum(np.searchsorted(sorted_h, h[by_h]), len(sorted_h) - 1)
        row = order[at]
        same = (sorted_h[at] == h) & self._equal(row, blob, offsets)
        out[same] = row[same]
        for j in np.flatnonzero(~same & (sorted_h[at] == h) & (np.diff(offsets) > 0)):
            found = self.find(bytes(wanted[j]))  # a hash shared with another key
            out[j] = -1 if found is None else found
        return out

    def _equal(self, rows, blob, offsets) -> np.ndarray:
        """Whether key `rows[j]` of this table equals key j of the packed keys (blob, offsets)."""
        mine = np.diff(self.offsets)[rows] if len(rows) else rows
        theirs = np.diff(offsets)
        same = mine == theirs
        todo = np.flatnonzero(same & (theirs > 0))
        if not len(todo):
            return same
        if len(todo) < len(rows):  # compare the keys of equal length only
            lengths = theirs[todo]
            sub = np.zeros(len(todo) + 1, dtype=np.int64)
            np.cumsum(lengths, out=sub[1:])
            at = np.arange(int(sub[-1]), dtype=np.int64)
            at += np.repeat(offsets[todo] - sub[:-1], lengths)
            blob, offsets, rows, theirs = blob[at], sub, rows[todo], lengths
        mine_at = np.arange(len(blob), dtype=np.int64)
        mine_at += np.repeat(self.offsets[rows] - offsets[:-1], theirs)
        differ = np.flatnonzero(self.blob[mine_at] != blob)
        same[todo[np.searchsorted(offsets, differ, "right") - 1]] = False
        return same

    def _hash_index(self):
        """(sorted hashes of the keys, the row of each), made on first use (in the parent)."""
        if self._by_hash is None:
            h = hashes(self.blob, self.offsets)
            order = np.argsort(h, kind="stable")
            self._by_hash = (h[order], order)
        return self._by_hash
