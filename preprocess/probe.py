"""What a container says about its video stream, read in-process with PyAV (no ffprobe needed),
under the same local-file, media-container-only rules as the conversion."""
import logging
from typing import Optional

from .media import MEDIA_DEMUXERS

log = logging.getLogger(__name__)


def declared_video_duration(path, whole_container=False) -> Optional[float]:
    """Seconds of video the container declares for its first video stream, or None when it
    does not say (or cannot be opened: ffmpeg then reports the real reason). With
    `whole_container`, fall back to the container's duration, which may include a longer
    audio track."""
    try:
        import av
    except ImportError:
        return None
    try:
        options = {"protocol_whitelist": "file", "format_whitelist": ",".join(MEDIA_DEMUXERS)}
        with av.open("file:" + str(path), metadata_errors="ignore",
                     container_options=options) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if stream.frames and stream.average_rate:
                return stream.frames / float(stream.average_rate)
            if whole_container and container.duration:
                return container.duration / 1_000_000
    except Exception as e:  # PyAV raises many error types for unreadable files
        log.debug("%s: PyAV could not read the container: %s", path, e)
    return None
