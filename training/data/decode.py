"""JPEG decoding of whole clips with libjpeg-turbo (through simplejpeg), optionally at a reduced
size chosen in the DCT domain.

libjpeg-turbo can produce an image scaled by 1/2, 1/4 or 1/8 while decoding, by running a smaller
inverse DCT; this is cheaper than a full decode followed by a resize. It is used when the clip is
going to be scaled down by at least that factor anyway (see `reduction_factor`). The decoded
pixels then differ slightly from "full decode + antialiased resize"; docs/data.md gives the
measured difference. At the same decode size the output is identical to Pillow's.
"""
import threading

import numpy as np
import simplejpeg

#: Power-of-two DCT scalings, largest first. libjpeg-turbo also offers other eighths (3/8, 5/8,
#: ...), but they are slower than a full decode (measured in docs/benchmarks.md).
DCT_FACTORS = (8, 4, 2)


class DecodeError(ValueError):
    """A frame's bytes are not a decodable JPEG, or frames of one clip differ in size.
    `position` is the frame's position in the list decoded (None for a single frame)."""

    def __init__(self, reason, position=None, name=None):
        self.reason, self.position = reason, position
        super().__init__(f"frame {name}: {reason}" if name is not None else reason)


def jpeg_size(data) -> tuple:
    """(height, width) of a JPEG from its header alone."""
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as e:
        raise DecodeError(f"not a readable JPEG header: {e}") from None
    return height, width


def scaled_size(height: int, width: int, factor: int) -> tuple:
    """Size libjpeg-turbo produces when decoding at 1/`factor` (it rounds up)."""
    return -(-height // factor), -(-width // factor)


def reduction_factor(crop_hw, out_hw, max_factor: int = 8) -> int:
    """Largest DCT factor f (1, 2, 4 or 8, at most `max_factor`) such that a crop of `crop_hw`
    source pixels resized to `out_hw` is still scaled down (or kept) after decoding at 1/f.

    1 means decode at full size: the clip is scaled down by less than 2x."""
    ratio = min(crop_hw[0] / out_hw[0], crop_hw[1] / out_hw[1])
    for f in DCT_FACTORS:
        if f <= max_factor and ratio >= f:
            return f
    return 1


def decode_frame(data, factor: int = 1, out=None) -> np.ndarray:
    """Decode one JPEG to an RGB uint8 array H x W x 3, at 1/`factor` of its size.

    `out`, if given, is a writable array receiving the pixels (no extra copy)."""
    kwargs = {}
    if factor > 1:
        h, w = jpeg_size(data)
        kwargs["min_height"], kwargs["min_width"] = scaled_size(h, w, factor)
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out, **kwargs)
    except ValueError as e:
        raise DecodeError(f"corrupt or truncated JPEG: {e}") from None


class ClipBuffers:
    """A reusable decode buffer, one per thread, as large as the largest clip asked for.

    A fresh multi-megabyte array costs a page fault per 4 kB page on first touch, which for a
    16-frame 320x240 clip is as much as half the decode time; a loader that is done with a clip
    before decoding the next can decode into the same memory instead. One block that only
    grows (rather than one per clip size) also keeps the heap from fragmenting. The array
    returned is overwritten by the next `get` in the same thread."""

    def __init__(self):
        self._local = threading.local()

    def get(self, shape) -> np.ndarray:
        n = int(np.prod(shape))
        flat = getattr(self._local, "flat", None)
        if flat is None or flat.size < n:
            flat = self._local.flat = np.empty(n, dtype=np.uint8)
        return flat[:n].reshape(shape)

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


def decode_clip(frames, factor: int = 1, names=None, buffers: ClipBuffers = None) -> np.ndarray:
    """Decode the JPEG byte strings `frames` into one uint8 array T x H x W x 3.

    All frames must have the size of the first. `names` (one per frame) label the frame in the
    error raised for an undecodable frame; by default it is the frame's position. With
    `buffers`, the clip is decoded into reused memory (see ClipBuffers)."""
    if len(frames) == 0:
        raise DecodeError("no frames to decode")
    try:
        h, w = jpeg_size(frames[0])
    except DecodeError as e:
        raise DecodeError(e.reason, 0, _name(names, 0)) from None
    if factor > 1:
        h, w = scaled_size(h, w, factor)
        kwargs = {"min_height": h, "min_width": w}
    else:
        kwargs = {}
    shape = (len(frames), h, w, 3)
    clip = buffers.get(shape) if buffers is not None else np.empty(shape, dtype=np.uint8)
    for i, data in enumerate(frames):
        reason = "decoded to an unexpected size"
        try:
            got = simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=clip[i], **kwargs)
        except ValueError as e:
            got = None
            reason = f"corrupt or truncated JPEG: {e}"
        if got is None or got.shape != (h, w, 3):
            size = _header_size(data, factor)
            if size is not None and size != (h, w):
                reason = (f"frame is {size[1]}x{size[0]} where the clip's first frame is "
                          f"{w}x{h}")
            raise DecodeError(reason, i, _name(names, i))
    return clip


def _header_size(data, factor):
    try:
        return scaled_size(*jpeg_size(data), factor)
    except DecodeError:
        return None


def _name(names, i):
    return names[i] if names is not None else f"at position {i}"
