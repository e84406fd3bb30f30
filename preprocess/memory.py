"""Decoding one video into JPEG frames held in memory, for the commands that run a model on
raw videos (r3d-predict, r3d-features): the frames are exactly those r3d-preprocess would
store for the same settings, and nothing is written to disk."""
from pathlib import Path

from .extract import FrameSettings
from .writers import extract_frames


def decode_to_memory(source, settings: FrameSettings = FrameSettings()):
    """(list of JPEG bytes, metadata) of one video: n_frames, fps, width, height, duration as
    r3d-preprocess records them, and `frame_times` (writers.output_frame_times: each frame's
    start in seconds from the first, plus the last one's end). Raises ExtractionError (naming
    the reason) for a video that cannot be decoded or comes out truncated."""
    frames, times = [], []
    meta = extract_frames(Path(source), settings, frames.append, frame_times=times)
    return frames, dict(meta, frame_times=times)
