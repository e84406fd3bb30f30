"""Training, fine-tuning, validation and inference of 3D CNNs on r3d stores (r3d-train,
python -m training; r3d-eval: training.eval_cli; the loop in training.trainer).

The data layer (docs/data.md): frame stores and their video catalogs, JPEG decoding, temporal
samplers, whole-clip spatial transforms, the clip datasets built from annotation files, and
the per-item randomness that makes them reproducible.
"""
from .catalog import StoreCatalog, VideoCatalog
from .datasets import (ClipLoadError, InferenceWindows, TrainingClips, ValidationClips,
                       collate_multi_clips, collate_windows, keep_freed_memory)
from .decode import DecodeError, decode_clip, jpeg_size
from .randomness import EpochSampler, item_rng
from .sampling import (SlidingWindow, TemporalCenterCrop, TemporalEvenCrop, TemporalRandomCrop,
                       loop_pad)
from .stores import (FrameReadError, Hdf5Store, JpegDirStore, ReferenceHdf5Store, VideoNotFound,
                     open_store)
from .transforms import (NORM_PRESETS, CenterCrop, ColorJitter, Compose, CornerCrop,
                         HorizontalFlip, MultiScaleCornerCrop, Normalize, RandomResizedCrop, Resize,
                         eval_transform, normalize, train_transform)

# Models: training.models (generate_model, checkpoint loading), imported on its own.

__all__ = [
    "StoreCatalog", "VideoCatalog", "ClipLoadError", "InferenceWindows", "TrainingClips",
    "ValidationClips", "collate_multi_clips", "collate_windows", "keep_freed_memory",
    "EpochSampler", "item_rng", "DecodeError", "decode_clip", "jpeg_size", "SlidingWindow",
    "TemporalCenterCrop", "TemporalEvenCrop", "TemporalRandomCrop", "loop_pad",
    "FrameReadError", "Hdf5Store", "JpegDirStore", "ReferenceHdf5Store", "VideoNotFound",
    "open_store", "NORM_PRESETS", "CenterCrop", "ColorJitter", "Compose", "CornerCrop",
    "HorizontalFlip", "MultiScaleCornerCrop", "Normalize", "RandomResizedCrop", "Resize",
    "eval_transform", "normalize", "train_transform",
]
