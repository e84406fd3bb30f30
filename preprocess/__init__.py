"""Converting videos into JPEG frame directories or HDF5 stores (r3d-preprocess)."""
from .convert import FORMATS, SettingsMismatch, Summary, convert_dataset
from .discover import VIDEO_EXTENSIONS, find_videos
from .extract import ExtractionError, FrameReader, FrameSettings

__all__ = ["FORMATS", "SettingsMismatch", "Summary", "convert_dataset", "VIDEO_EXTENSIONS",
           "find_videos", "ExtractionError", "FrameReader", "FrameSettings"]
