"""Decoding only the part of each frame a crop needs, with libjpeg-turbo's libjpeg API.

A training clip keeps a crop of 1/4 to all of every frame; the rest of the decode is wasted.
libjpeg-turbo can skip the rows above a crop, stop after its last row and produce only the
columns it covers, giving pixels identical to a full decode's (one extra column is decoded
on each side for the chroma upsampling). simplejpeg exposes no such call, so jpeg_region.c
(beside this module) is compiled on first use with the system's C compiler and libjpeg-turbo
headers into the cache folder (training.data.files.cache_root: ``$R3D_CACHE``, default
``~/.cache/r3d``) and called through ctypes. Before first use it is checked against
simplejpeg on a test image; when it cannot be built or disagrees, frames are decoded whole
with simplejpeg, as without it (`region_decoder()` returns None and `unavailable_reason()`
says why).
"""
import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import simplejpeg

from storeformat.atomic import write_atomically

from .decode import DecodeError, scaled_size
from .files import cache_root

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("jpeg_region.c")
BUILD_TIMEOUT_S = 120

_lock = threading.Lock()
_state = {"done": False, "lib": None, "why": None}


def region_decoder():
    """The region decoder (a loaded, checked ctypes library), or None if unavailable here.
    Built at most once per cache directory and loaded once per process."""
    with _lock:
        if not _state["done"]:
            try:
                _state["lib"] = _load()
            except Exception as e:  # any failure means: decode whole frames instead
                _state["why"] = f"{type(e).__name__}: {e}"
                log.info("region decoding unavailable (%s): frames are decoded whole",
                         _state["why"])
            _state["done"] = True
        return _state["lib"]


def unavailable_reason():
    """Why `region_decoder()` returned None (None if it did not, or was not asked yet)."""
    return _state["why"]


def _load():
    if not SOURCE.is_file():
        raise FileNotFoundError(f"{SOURCE} is not installed")
    digest = hashlib.sha1(SOURCE.read_bytes()).hexdigest()[:12]
    target = cache_root() / f"jpeg_region-{digest}-{sys.platform}-{os.uname().machine}.so"
    if not target.is_file():
        _build(target)
    lib = ctypes.CDLL(str(target))
    lib.region_decode.restype = ctypes.c_int
    lib.region_decode.argtypes = [
        ctypes.c_char_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong,
        ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    lib.region_error.restype = ctypes.c_char_p
    _self_check(lib)
    return lib


def _build(target: Path):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise RuntimeError("no C compiler found (cc)")
    target.parent.mkdir(parents=True, exist_ok=True)

    def compile_to(tmp):
        done = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE),
                               "-ljpeg"], capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            raise RuntimeError(f"{cc} failed: {lines[0]}")
    # one rename: concurrent builders each install a whole file
    write_atomically(target, compile_to, hidden=True)
    log.info("built %s", target)


def _self_check(lib):
    """Raise unless region decodes equal simplejpeg's full decodes of a test image."""
    y, x = np.mgrid[0:120, 0:168]
    rng = np.random.default_rng(0)
    img = np.stack([x * 255 // 167, y * 255 // 119, (x * y) % 256], -1)
    img = np.clip(img + rng.integers(-30, 30, img.shape), 0, 255).astype(np.uint8)
    data = simplejpeg.encode_jpeg(img, quality=85, colorsubsampling="420")
    for factor, box in ((1, (0, 0, 120, 168)), (1, (17, 33, 61, 90)), (1, (59, 77, 61, 91)),
                        (1, (16, 32, 40, 50)), (1, (3, 0, 5, 1)), (2, (5, 9, 40, 50)),
                        (2, (0, 0, 60, 84))):
        h, w = scaled_size(120, 168, factor)
        kwargs = {"min_height": h, "min_width": w} if factor > 1 else {}
        full = simplejpeg.decode_jpeg(data, **kwargs)
        part = decode_region_clip(lib, [data], factor, box)[0]
        top, left, bh, bw = box
        if not np.array_equal(part, full[top:top + bh, left:left + bw]):
            raise RuntimeError(f"region decode differs from simplejpeg (factor {factor}, "
                               f"box {box}): libjpeg-turbo versions disagree")


def decode_region_clip(lib, frames, factor, box, names=None, buffers=None) -> np.ndarray:
    """Decode `box` = (top, left, height, width), in the coordinates of the frames decoded at
    1/`factor`, of every JPEG in `frames` into uint8 T x height x width x 3. All frames must
    have the first one's size. Errors are DecodeErrors naming the frame, as decode_clip's."""
    top, left, h, w = (int(v) for v in box)
    shape = (len(frames), h, w, 3)
    clip = buffers.get(shape) if buffers is not None else np.empty(shape, dtype=np.uint8)
    base = clip.ctypes.data
    frame_bytes = h * w * 3
    row = None
    width, height = ctypes.c_int(), ctypes.c_int()
    expected = None
    for i, data in enumerate(frames):
        if row is None:
            try:
                full_h, full_w, _, _ = simplejpeg.decode_jpeg_header(data)
            except ValueError as e:
                raise DecodeError(f"not a readable JPEG header: {e}", i,
                                  _name(names, i)) from None
            row = np.empty((scaled_size(full_h, full_w, factor)[1] + 64) * 3, dtype=np.uint8)
        width.value = height.value = 0
        failed = lib.region_decode(data, len(data), left, top, w, h, factor,
                                   base + i * frame_bytes, row.ctypes.data, row.size,
                                   ctypes.byref(width), ctypes.byref(height))
        size = (height.value, width.value)
        if expected is None and not failed:
            expected = size
        if expected is not None and size != (0, 0) and size != expected:
            raise DecodeError(f"frame is {size[1]}x{size[0]} where the clip's first frame is "
                              f"{expected[1]}x{expected[0]} (at 1/{factor} size)", i,
                              _name(names, i))
        if failed:
            reason = lib.region_error().decode(errors="replace")
            raise DecodeError(f"corrupt or truncated JPEG: {reason}", i, _name(names, i))
    return clip


def _name(names, i):
    return names[i] if names is not None else f"at position {i}"
