"""Decoding one video into JPEG frames: ffmpeg decodes, resamples and scales, libjpeg-turbo
(simplejpeg) encodes.

ffmpeg writes full-range 4:2:0 planes as a YUV4MPEG2 stream on a pipe; each frame's planes go
straight to libjpeg-turbo, so no colour conversion happens between decoder and encoder and no
temporary image files are written. The stream header carries the output size and frame rate,
so nothing has to be probed before decoding.
"""
import collections
import logging
import re
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import ffmpeg
import numpy as np
import simplejpeg

from .ffmpeg_bin import ffmpeg_exe, passthrough_option, showinfo_options
from .media import MEDIA_DEMUXERS, probed_format, sniff_format

log = logging.getLogger(__name__)

#: Largest output height or short side accepted (8K video is 4320 lines high).
MAX_SIZE = 4320

_CONTEXT_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)+")
_ERROR_LINE = re.compile(rb"^(?:\[[^\]]* @ [^\]]*\]\s*)*\[(?:error|fatal|panic)\]")
_SHOWINFO_PTS = re.compile(rb"\[info\] n:\s*\d+ pts:\s*(\S+)\s+pts_time:\s*(\S+)")
_SHOWINFO_TB = re.compile(rb"\[info\] config in time_base: (\d+)/(\d+)")


def clean_messages(lines):
    """ffmpeg's error lines without their '[demuxer @ 0x...]' context prefixes, repeats dropped."""
    out = []
    for line in lines:
        msg = _CONTEXT_PREFIX.sub("", line).strip()
        if msg and msg not in out:
            out.append(msg)
    return out


class ExtractionError(Exception):
    """A video that could not be converted; the message says why."""


@dataclass(frozen=True)
class FrameSettings:
    """How frames are produced. Exactly one of `height` (the papers' rule: output height, aspect
    kept) and `short_side` (the reference code's rule) is set."""
    height: Optional[int] = 240
    short_side: Optional[int] = None
    fps: Optional[float] = None
    quality: int = 90
    threads: int = 1

    def __post_init__(self):
        if (self.height is None) == (self.short_side is None):
            raise ValueError("set exactly one of height and short_side")
        size = self.height if self.height is not None else self.short_side
        if not 2 <= size <= MAX_SIZE:
            what = "height" if self.height is not None else "short side"
            raise ValueError(f"output {what} must be 2 to {MAX_SIZE} pixels, got {size}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {self.quality}")


def _scale_args(settings: FrameSettings):
    # -2 keeps the aspect ratio with an even result, as 4:2:0 needs an even width.
    if settings.height is not None:
        return ("-2", str(settings.height))
    n = settings.short_side
    return (f"if(lt(iw,ih),{n},-2)", f"if(lt(iw,ih),-2,{n})")


def ffmpeg_stream(source_path, settings: FrameSettings):
    """The ffmpeg-python graph decoding the first video stream of `source_path` into a
    full-range 4:2:0 YUV4MPEG2 stream on stdout, logging each decoded frame's timestamp.

    Only local files are read ('file' protocol) and only self-contained media containers are
    opened (MEDIA_DEMUXERS): playlists, concat lists, image sequences and other formats that
    pull in further files or URLs are refused before anything else is read."""
    # 'file:' stops ffmpeg from reading 'a:b.mp4' as a protocol or '-x.mp4' oddly.
    stream = ffmpeg.input("file:" + str(source_path), threads=settings.threads,
                          protocol_whitelist="file", format_whitelist=",".join(MEDIA_DEMUXERS))
    # showinfo logs every decoded frame's timestamp before any resampling: the duration
    # check and variable frame rate detection use them.
    video = stream["v:0"].filter("showinfo", **showinfo_options())
    if settings.fps is not None:
        video = video.filter("fps", fps=settings.fps)
    w, h = _scale_args(settings)
    video = video.filter("scale", w, h).filter("format", "yuvj420p")
    # Without passthrough, the YUV4MPEG2 muxer would duplicate frames to reach a constant rate
    # (a 10-frame H.264 AVI came out as 12 frames).
    out = ffmpeg.output(video, "pipe:", format="yuv4mpegpipe", strict="-1",
                        threads=settings.threads, an=None, sn=None, dn=None,
                        **passthrough_option())
    # level+info: showinfo's lines are info, and each line carries its level to tell them
    # from errors.
    return out.global_args("-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info")


class FrameReader:
    """Context manager that runs ffmpeg on one video and iterates its frames as JPEG bytes.

    `width`, `height` and `fps` describe the output once entered; `errors` holds the last lines
    ffmpeg printed at error level; after iteration, `pts` holds every decoded frame's
    timestamp in seconds (None where the stream has none; computed from the integer pts and
    the time base, exact where showinfo's printed pts_time keeps 6 digits) and `tick` the
    stream's time base.
    Iteration raises ExtractionError if ffmpeg fails."""

    def __init__(self, source_path, settings: FrameSettings):
        self.source_path = str(source_path)
        self.settings = settings
        self.errors = collections.deque(maxlen=20)
        self.width = self.height = None
        self.fps = None
        self.n_frames = 0
        self.pts = []
        self.tick = None
        self._time_base = None
        self._proc = None
        self._stderr_thread = None

    def __enter__(self):
        args = ffmpeg_stream(self.source_path, self.settings).compile(cmd=ffmpeg_exe())
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, bufsize=1 << 20)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        header = self._proc.stdout.readline()
        if not header.startswith(b"YUV4MPEG2 "):
            self._finish()
            what = sniff_format(self.source_path)
            if what is not None:
                raise ExtractionError(f"refused: the file is {what}; only self-contained media "
                                      f"files are read, never files naming other files or "
                                      f"URLs")
            name = probed_format(self.source_path)
            if name is not None and not set(name.split(",")) & set(MEDIA_DEMUXERS):
                raise ExtractionError(f"refused: ffmpeg reads it as format '{name}', not one of "
                                      f"the self-contained video formats r3d-preprocess reads")
            raise ExtractionError(self._reason("cannot decode"))
        self._parse_header(header)
        return self

    def __exit__(self, *exc):
        self._finish(kill=True)

    def _drain_stderr(self):
        for line in self._proc.stderr:
            match = _SHOWINFO_PTS.search(line)
            if match:
                self.pts.append(self._seconds(*match.groups()))
            elif _ERROR_LINE.match(line):
                text = line.decode("utf-8", "replace").strip()
                if text:
                    self.errors.append(text)
            else:
                match = _SHOWINFO_TB.search(line)
                if match and int(match.group(2)):
                    self._time_base = int(match.group(1)), int(match.group(2))
                    self.tick = self._time_base[0] / self._time_base[1]

    def _seconds(self, pts: bytes, pts_time: bytes):
        if pts == b"NOPTS":
            return None
        if self._time_base is not None:
            return int(pts) * self._time_base[0] / self._time_base[1]
        return float(pts_time)

    def _finish(self, kill=False):
        if self._proc is None:
            return
        if kill and self._proc.poll() is None:
            self._proc.kill()
        self._proc.stdout.close()
        self._proc.wait()
        self._stderr_thread.join()
        self._proc.stderr.close()

    def _reason(self, what):
        detail = "; ".join(clean_messages(self.errors)[-2:])
        return f"{what}: {detail}" if detail else what

    def _parse_header(self, header: bytes):
        fields = {tok[:1]: tok[1:] for tok in header.split()[1:]}
        self.width, self.height = int(fields[b"W"]), int(fields[b"H"])
        num, den = fields[b"F"].split(b":")
        self.fps = float(Fraction(int(num), int(den)))
        chroma = fields.get(b"C", b"420jpeg")
        if not chroma.startswith(b"420"):
            raise ExtractionError(f"unexpected YUV4MPEG2 chroma layout {chroma!r}")

    def __iter__(self):
        w, h = self.width, self.height
        cw, ch = (w + 1) // 2, (h + 1) // 2
        y_size, c_size = w * h, cw * ch
        frame_size = y_size + 2 * c_size
        quality = self.settings.quality
        stdout = self._proc.stdout
        while True:
            marker = stdout.readline()
            if not marker:
                break
            if not marker.startswith(b"FRAME"):
                raise ExtractionError(f"malformed YUV4MPEG2 stream from ffmpeg after frame "
                                      f"{self.n_frames}")
            buf = stdout.read(frame_size)
            if len(buf) != frame_size:
                break
            planes = np.frombuffer(buf, dtype=np.uint8)
            y = planes[:y_size].reshape(h, w)
            u = planes[y_size:y_size + c_size].reshape(ch, cw)
            v = planes[y_size + c_size:].reshape(ch, cw)
            self.n_frames += 1
            yield simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=quality)
        self._finish()
        if self._proc.returncode != 0:
            raise ExtractionError(self._reason(f"ffmpeg exited with status {self._proc.returncode}"))
        if self.n_frames == 0:
            raise ExtractionError(self._reason("no frames decoded"))
