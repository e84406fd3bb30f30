"""Which files ffmpeg may open: self-contained media containers only.

Demuxers such as hls, dash, concat, image2 or imf read further files or URLs named inside the
file, which could lie anywhere; ffmpeg is only ever allowed the demuxers listed here. When it
refuses a file, `sniff_format` and `probed_format` name what the file is, for the failure's
reason."""
import re
import subprocess
from pathlib import Path

from .ffmpeg_bin import ffmpeg_exe

#: ffmpeg demuxers that read nothing but the one file (container formats and raw streams).
MEDIA_DEMUXERS = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "live_flv",
    "mpeg", "mpegts", "mpegvideo", "m4v", "ogg", "asf", "rm", "dv", "mxf", "nut",
    "yuv4mpegpipe", "h261", "h263", "h264", "hevc", "vvc", "obu", "ivf", "vc1", "dirac",
    "cavsvideo", "mjpeg", "gif", "apng", "nuv", "wtv", "flic", "smk", "bink", "roq",
)

#: (leading bytes, what the file is) of common formats that name other files or URLs.
_REFERENCING = (
    (b"#EXTM3U", "an HLS playlist (hls)"),
    (b"ffconcat version", "a concat list (concat)"),
    (b"#EXTCPLAY", "a playlist"),
    (b"[playlist]", "a PLS playlist"),
    (b"v=0\r\no=", "an SDP session description (sdp)"),
    (b"v=0\no=", "an SDP session description (sdp)"),
)
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dpx", ".exr"}


def sniff_format(path, head: int = 4096):
    """What a file ffmpeg refused appears to be (a playlist, a concat list, a manifest, an
    image), or None when it is nothing recognisable."""
    try:
        with open(path, "rb") as f:
            data = f.read(head)
    except OSError:
        return None
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    for magic, what in _REFERENCING:
        if text.startswith(magic):
            return what
    lowered = text[:1024].lower()
    if b"<mpd" in lowered:
        return "a DASH manifest (dash)"
    if b"<smil" in lowered or b"<asx" in lowered or b"<playlist" in lowered:
        return "an XML playlist"
    if lowered.startswith(b"file ") or b"\nfile " in lowered:
        return "a concat list (concat)"
    if Path(path).suffix.lower() in _IMAGE_SUFFIXES:
        return "an image (image sequences are not read)"
    return None


_PROBED = re.compile(rb"Format (\S+) probed with size=")


def probed_format(path, head: int = 1 << 16):
    """The demuxer ffmpeg picks for the first `head` bytes of `path`, fed through a pipe with
    every other protocol refused (so nothing the file names can be opened), or None."""
    try:
        with open(path, "rb") as f:
            data = f.read(head)
    except OSError:
        return None
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "debug",
                          "-protocol_whitelist", "pipe", "-i", "pipe:0"],
                         input=data, capture_output=True)
    match = _PROBED.search(out.stderr)
    return match.group(1).decode("ascii", "replace") if match else None
