"""Converting videos into JPEG frame directories or HDF5 stores (r3d-preprocess)."""
from .convert import FORMATS, RunStopped, SettingsMismatch, Summary, convert_dataset
from .discover import VIDEO_EXTENSIONS, find_videos
from .extract import ExtractionError, FrameReader, FrameSettings
from .failures import EnvironmentFailure
from .lock import StoreBusy

__all__ = ["FORMATS", "RunStopped", "SettingsMismatch", "StoreBusy", "EnvironmentFailure",
           "Summary", "convert_dataset", "VIDEO_EXTENSIONS", "find_videos", "ExtractionError",
           "FrameReader", "FrameSettings"]
