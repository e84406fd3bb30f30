"""Training, fine-tuning, validation and inference of 3D CNNs on r3d stores (r3d-train,
python -m training; r3d-eval: training.eval_cli; the loop in training.trainer).

The data layer (docs/data.md): frame stores and their video catalogs, JPEG decoding, temporal
samplers, whole-clip spatial transforms, the clip datasets built from annotation files, and
the per-item randomness that makes them reproducible.
"""
import importlib

# Where each public name lives. They are imported on first use, so that a command's --help,
# or `python -m training.catalog`, does not first import torch and every module.
_HOMES = {
    "catalog": ("StoreCatalog", "VideoCatalog"),
    "datasets": ("ClipLoadError", "InferenceWindows", "TrainingClips", "ValidationClips",
                 "collate_multi_clips", "collate_windows", "keep_freed_memory"),
    "decode": ("DecodeError", "decode_clip", "jpeg_size"),
    "randomness": ("EpochSampler", "item_rng"),
    "sampling": ("SlidingWindow", "TemporalCenterCrop", "TemporalEvenCrop", "TemporalRandomCrop",
                 "loop_pad"),
    "stores": ("FrameReadError", "Hdf5Store", "JpegDirStore", "ReferenceHdf5Store",
               "VideoNotFound", "open_store"),
    "transforms": ("NORM_PRESETS", "CenterCrop", "ColorJitter", "Compose", "CornerCrop",
                   "HorizontalFlip", "MultiScaleCornerCrop", "Normalize", "RandomResizedCrop",
                   "Resize", "eval_transform", "normalize", "train_transform"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = list(_MODULE_OF)

# Models: training.models (generate_model, checkpoint loading), imported on its own.


def __getattr__(name):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
