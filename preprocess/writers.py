"""Converting videos into a store: one JPEG frame directory per video, or HDF5 shards.

Everything is first written under the run's temporary folder and moved into place only when
complete, so an interrupted run never leaves a partial video where a reader would find it.
Files and folders are created with the user's umask. A failure caused by the environment
(disk full, I/O error, source gone) comes back as a record with status STOPPED, which the
run never stores in the index."""
import logging
import os
import shutil
import uuid
from pathlib import Path

import h5py

from storeformat import frame_name
from storeformat.hdf5 import mark_layout, write_video

from .extract import ExtractionError, FrameReader, clean_messages
from .failures import EnvironmentFailure, environment_cause, ffmpeg_environment_cause
from .paths import is_inside
from .probe import declared_video_duration

log = logging.getLogger(__name__)

#: A video whose decoded length falls below this share of what its container declares is
#: reported as truncated (and at least two frames must be missing).
MIN_DECODED_SHARE = 0.9
#: Frame intervals further than this share of the nominal interval (plus one tick of the
#: stream's time base) from it make a video variable-frame-rate.
VFR_TOLERANCE = 0.1
#: Status of a record whose video could not be converted because of the environment.
STOPPED = "stopped"


def extract_frames(source: Path, settings, consume, frame_times=None):
    """Run ffmpeg on `source`, hand every JPEG to `consume`, check the result is complete and
    return the video's metadata; the list `frame_times`, when given, receives what
    `output_frame_times` gives. Raises EnvironmentFailure when the source cannot be read
    for a reason outside the video, ExtractionError when the video is bad."""
    try:
        size = source.stat().st_size
    except OSError as e:
        if environment_cause(e):
            raise EnvironmentFailure(f"cannot read the source: {e.strerror}") from None
        raise ExtractionError(f"cannot read file: {e.strerror}") from None
    if size == 0:
        raise ExtractionError("empty file (0 bytes)")
    try:
        with FrameReader(source, settings) as reader:
            for jpeg in reader:
                consume(jpeg)
    except ExtractionError as e:
        cause = ffmpeg_environment_cause([str(e)])
        if cause:
            raise EnvironmentFailure(f"ffmpeg could not read the source: {cause}") from None
        raise
    n, fps = reader.n_frames, reader.fps
    span = _decoded_span(reader.pts)
    decoded_n = len(reader.pts) if span else n
    decoded, interval = span if span else (n / fps, 1 / fps)
    # The container's overall length can include a longer audio track, so it is trusted only
    # when ffmpeg itself reported errors.
    declared = declared_video_duration(source, whole_container=bool(reader.errors))
    if declared and decoded < MIN_DECODED_SHARE * declared and declared - decoded >= 2 * interval:
        messages = clean_messages(reader.errors)
        detail = f" (ffmpeg: {messages[-1]})" if messages else ""
        raise ExtractionError(f"truncated or corrupt: decoded {decoded_n} frames ({decoded:.2f} "
                              f"s) of the {declared:.2f} s the container declares{detail}")
    meta = {"n_frames": n, "fps": fps, "width": reader.width, "height": reader.height,
            "duration": round(n / fps, 6)}
    if settings.fps is None and span and _is_variable(reader.pts, fps, reader.tick):
        # Every decoded frame is kept once, so the mean rate is what spaces them in time.
        meta.update(fps=round(n / decoded, 6), duration=round(decoded, 6), vfr=True,
                    nominal_fps=fps)
    if reader.errors:
        meta["warnings"] = clean_messages(reader.errors)[-3:]
        log.warning("%s: decoded with errors: %s", source, meta["warnings"][-1])
    if frame_times is not None:
        frame_times.extend(output_frame_times(reader.pts, n, fps, settings))
    return meta


def output_frame_times(pts, n, fps, settings):
    """When each of the `n` output frames starts, in seconds from the first, plus when the last
    one ends (n + 1 values): the decoded frames' own timestamps (every frame is kept once
    without --fps), so a variable-frame-rate video's frames keep their true times; i / fps
    after resampling to a constant rate, or when timestamps are missing or out of order."""
    if settings.fps is None and n > 1 and len(pts) == n and None not in pts \
            and all(a < b for a, b in zip(pts, pts[1:])):
        times = [t - pts[0] for t in pts]
        return times + [2 * times[-1] - times[-2]]  # the last frame lasts as the one before
    return [i / fps for i in range(n + 1)]


def _decoded_span(pts):
    """(seconds the decoded frames cover, their mean interval) from their timestamps: the
    last frame's pts minus the first's, plus one mean interval. None when there are fewer than
    two frames or a frame without a timestamp."""
    if len(pts) < 2 or any(t is None for t in pts):
        return None
    first, last = min(pts), max(pts)
    if last <= first:
        return None
    interval = (last - first) / (len(pts) - 1)
    return len(pts) * interval, interval


def _is_variable(pts, fps, tick):
    """Whether consecutive decoded frames are spaced unevenly (beyond timestamp rounding)."""
    nominal = 1 / fps
    tolerance = VFR_TOLERANCE * nominal + (tick or 0.0)
    ordered = sorted(pts)
    return any(abs(b - a - nominal) > tolerance for a, b in zip(ordered, ordered[1:]))


def failure(video_id, rel_source, reason):
    return {"id": video_id, "status": "failed", "source": rel_source, "reason": reason}


def _done(video_id, rel_source, fmt, path, meta, **extra):
    return {"id": video_id, "status": "done", "source": rel_source, "format": fmt, "path": path,
            **extra, **meta}


def stopped(video_id, rel_source, reason):
    return {"id": video_id, "status": STOPPED, "source": rel_source, "reason": reason}


def _source(src_root, rel_source) -> Path:
    """The source file, checked again (a link may have changed since discovery) to resolve
    inside SRC."""
    source = Path(src_root) / rel_source
    if not is_inside(os.path.realpath(source), os.path.realpath(src_root)):
        raise ExtractionError(f"resolves to {os.path.realpath(source)}, outside {src_root}")
    return source


def _temporary_name(tmp_root, prefix, suffix="") -> Path:
    return Path(tmp_root) / f"{prefix}{os.getpid()}-{uuid.uuid4().hex}{suffix}"


def convert_to_jpeg_dir(video_id, rel_source, src_root, dst_root, tmp_root, settings):
    """Convert one video into DST/<id>/image_00001.jpg...; returns its index record."""
    tmp_dir = _temporary_name(tmp_root, "jpg-")
    try:
        tmp_dir.mkdir()
        count = [0]

        def write(jpeg):
            count[0] += 1
            with open(tmp_dir / frame_name(count[0]), "wb") as f:
                f.write(jpeg)

        meta = extract_frames(_source(src_root, rel_source), settings, write)
        final = Path(dst_root) / video_id
        if not is_inside(os.path.realpath(final), os.path.realpath(dst_root)):
            return failure(video_id, rel_source, f"its folder {final} resolves to "
                                                 f"{os.path.realpath(final)}, outside {dst_root}")
        if final.is_symlink():
            return failure(video_id, rel_source, f"{final} is a symlink; not replaced")
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            with os.scandir(final) as entries:
                if any(e.is_dir(follow_symlinks=False) for e in entries):
                    return failure(video_id, rel_source, f"{final} holds folders (another "
                                                         f"video's frames?); not replaced")
            shutil.rmtree(final)
        os.rename(tmp_dir, final)
        return _done(video_id, rel_source, "jpg", video_id, meta)
    except EnvironmentFailure as e:
        return stopped(video_id, rel_source, str(e))
    except ExtractionError as e:
        return failure(video_id, rel_source, str(e))
    except Exception as e:  # one bad video must not stop the run: record it and go on
        cause = environment_cause(e)
        if cause:
            return stopped(video_id, rel_source, f"writing to {dst_root}: {cause}")
        log.exception("%s: unexpected error", rel_source)
        return failure(video_id, rel_source, f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def convert_to_shard(items, shard_name, src_root, dst_root, tmp_root, settings):
    """Convert the videos `items` ((id, relative source) pairs) into one HDF5 shard written as
    a temporary file and renamed to DST/`shard_name` when complete; returns their records.
    An environmental failure discards the whole shard and returns one STOPPED record."""
    tmp_file = _temporary_name(tmp_root, shard_name + ".", ".tmp")
    records, stored = [], []
    try:
        with h5py.File(tmp_file, "w-") as h5:
            mark_layout(h5)
            for video_id, rel_source in items:
                frames = []
                try:
                    meta = extract_frames(_source(src_root, rel_source), settings, frames.append)
                    key = write_video(h5, video_id, frames, {**meta, "source": rel_source})
                    stored.append(_done(video_id, rel_source, "hdf5", shard_name, meta, key=key))
                except EnvironmentFailure as e:
                    return [stopped(video_id, rel_source, str(e))]
                except ExtractionError as e:
                    records.append(failure(video_id, rel_source, str(e)))
                except Exception as e:  # record it and go on with the shard's other videos
                    cause = environment_cause(e)
                    if cause:
                        return [stopped(video_id, rel_source, f"writing {shard_name}: {cause}")]
                    log.exception("%s: unexpected error", rel_source)
                    records.append(failure(video_id, rel_source, f"{type(e).__name__}: {e}"))
        if stored:
            os.replace(tmp_file, Path(dst_root) / shard_name)
        for rec in stored:  # lets a later run see that some of them were superseded
            rec["shard_videos"] = len(stored)
        return stored + records
    except Exception as e:
        cause = environment_cause(e)
        if cause is None:
            raise
        video_id, rel_source = items[0]
        return [stopped(video_id, rel_source, f"writing {shard_name}: {cause}")]
    finally:
        if tmp_file.exists():
            tmp_file.unlink()
