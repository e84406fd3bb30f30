"""Names and paths of a store: JPEG frame directories in the reference layout, index files."""
from pathlib import Path, PurePosixPath

#: Frame file name inside a video's directory; frame numbers start at 1 (reference layout).
FRAME_TEMPLATE = "image_{:05d}.jpg"
#: One JSON record per line, one line per conversion outcome; the last record of an id wins.
INDEX_NAME = "index.jsonl"
#: The settings a store was made with (format, size rule, fps, quality), checked on resume.
SETTINGS_NAME = "store.json"
#: Tab-separated list of the videos that failed, rewritten at the end of every run.
FAILURES_NAME = "failures.tsv"
#: Lock file held (flock) by the one run that writes the store.
LOCK_NAME = ".r3d-lock"


def frame_name(number: int) -> str:
    """File name of 1-based frame `number`: 1 -> 'image_00001.jpg'."""
    if number < 1:
        raise ValueError(f"frame numbers start at 1, got {number}")
    return FRAME_TEMPLATE.format(number)


def frame_path(video_dir, number: int) -> Path:
    """Path of 1-based frame `number` inside a JPEG frame directory."""
    return Path(video_dir) / frame_name(number)


def video_id_from_path(relative_source) -> str:
    """Video id of a source video: its path relative to the source root, without extension,
    with '/' separators ('Archery/v_Archery_g01_c01.avi' -> 'Archery/v_Archery_g01_c01')."""
    p = PurePosixPath(*Path(relative_source).parts)
    return str(p.with_suffix("")) if p.suffix else str(p)


#: File extensions taken for videos (lower case, no dot): what r3d-preprocess converts, and
#: what r3d-train recognises as raw videos passed where frames were expected.
VIDEO_EXTENSIONS = frozenset(
    "mp4 m4v mov qt avi webm mkv mk3d flv f4v mpg mpeg mpe m1v m2v vob ts mts m2ts 3gp 3g2 "
    "ogv ogg wmv asf divx xvid rm rmvb dv mxf nut y4m h264 264 hevc h265 gif".split())
