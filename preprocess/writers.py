"""Converting videos into a store: one JPEG frame directory per video, or HDF5 shards.

Everything is first written under the run's temporary folder and moved into place only when
complete, so an interrupted run never leaves a partial video where a reader would find it."""
import logging
import os
import shutil
import tempfile
from pathlib import Path

import h5py

from storeformat import frame_name
from storeformat.hdf5 import mark_layout, write_video

from .extract import ExtractionError, FrameReader, clean_messages
from .probe import declared_video_duration

log = logging.getLogger(__name__)

#: A video whose decoded length falls below this share of what its container declares is
#: reported as truncated (and at least two frames must be missing).
MIN_DECODED_SHARE = 0.9


def _extract(source: Path, settings, consume):
    """Run ffmpeg on `source`, hand every JPEG to `consume`, check the result is complete and
    return the video's metadata."""
    try:
        size = source.stat().st_size
    except OSError as e:
        raise ExtractionError(f"cannot read file: {e.strerror}") from None
    if size == 0:
        raise ExtractionError("empty file (0 bytes)")
    with FrameReader(source, settings) as reader:
        for jpeg in reader:
            consume(jpeg)
    n, fps = reader.n_frames, reader.fps
    duration = n / fps
    # The container's overall length can include a longer audio track, so it is trusted only
    # when ffmpeg itself reported errors.
    declared = declared_video_duration(source, whole_container=bool(reader.errors))
    if declared and duration < MIN_DECODED_SHARE * declared and (declared - duration) * fps >= 2:
        messages = clean_messages(reader.errors)
        detail = f" (ffmpeg: {messages[-1]})" if messages else ""
        raise ExtractionError(f"truncated or corrupt: decoded {n} frames ({duration:.2f} s) of "
                              f"the {declared:.2f} s the container declares{detail}")
    meta = {"n_frames": n, "fps": fps, "width": reader.width, "height": reader.height,
            "duration": round(duration, 6)}
    if reader.errors:
        meta["warnings"] = clean_messages(reader.errors)[-3:]
        log.warning("%s: decoded with errors: %s", source, meta["warnings"][-1])
    return meta


def failure(video_id, rel_source, reason):
    return {"id": video_id, "status": "failed", "source": rel_source, "reason": reason}


def _done(video_id, rel_source, fmt, path, meta, **extra):
    return {"id": video_id, "status": "done", "source": rel_source, "format": fmt, "path": path,
            **extra, **meta}


def convert_to_jpeg_dir(video_id, rel_source, src_root, dst_root, tmp_root, settings):
    """Convert one video into DST/<id>/image_00001.jpg...; returns its index record."""
    source = Path(src_root) / rel_source
    tmp_dir = Path(tempfile.mkdtemp(prefix="jpg-", dir=tmp_root))
    try:
        count = [0]

        def write(jpeg):
            count[0] += 1
            with open(tmp_dir / frame_name(count[0]), "wb") as f:
                f.write(jpeg)

        meta = _extract(source, settings, write)
        final = Path(dst_root) / video_id
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp_dir, final)
        return _done(video_id, rel_source, "jpg", video_id, meta)
    except ExtractionError as e:
        return failure(video_id, rel_source, str(e))
    except Exception as e:  # one bad video must not stop the run: record it and go on
        log.exception("%s: unexpected error", source)
        return failure(video_id, rel_source, f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def convert_to_shard(items, shard_name, src_root, dst_root, tmp_root, settings):
    """Convert the videos `items` ((id, relative source) pairs) into one HDF5 shard written as
    a temporary file and renamed to DST/`shard_name` when complete; returns their records."""
    fd, tmp_name = tempfile.mkstemp(prefix=shard_name + ".", suffix=".tmp", dir=tmp_root)
    os.close(fd)
    tmp_file = Path(tmp_name)
    records, stored = [], []
    try:
        with h5py.File(tmp_file, "w") as h5:
            mark_layout(h5)
            for video_id, rel_source in items:
                source = Path(src_root) / rel_source
                frames = []
                try:
                    meta = _extract(source, settings, frames.append)
                    key = write_video(h5, video_id, frames, {**meta, "source": rel_source})
                    stored.append(_done(video_id, rel_source, "hdf5", shard_name, meta, key=key))
                except ExtractionError as e:
                    records.append(failure(video_id, rel_source, str(e)))
                except Exception as e:  # record it and go on with the shard's other videos
                    log.exception("%s: unexpected error", source)
                    records.append(failure(video_id, rel_source, f"{type(e).__name__}: {e}"))
        if stored:
            os.replace(tmp_file, Path(dst_root) / shard_name)
        return stored + records
    finally:
        if tmp_file.exists():
            tmp_file.unlink()
