"""Training, fine-tuning, validation and inference of 3D CNNs on r3d stores (r3d-train,
python -m training; r3d-eval: training.eval_cli).

Two parts (docs/architecture.md): training.data turns stores and annotation files into clips
and knows nothing of a run; training.job runs one (options, builders, the loop, checkpoints).
training.models holds the networks. The names below are the data path's public ones.
"""
import importlib

# Where each public name lives. They are imported on first use, so that a command's --help,
# or `python -m training.data.catalog`, does not first import torch and every module.
_HOMES = {
    "data.catalog": ("StoreCatalog",),
    "data.videos": ("VideoCatalog",),
    "data.datasets": ("ClipLoadError", "InferenceWindows", "TrainingClips", "ValidationClips",
                      "collate_multi_clips", "collate_windows", "keep_freed_memory"),
    "data.decode": ("DecodeError", "decode_clip", "jpeg_size"),
    "data.errors": ("FrameReadError", "VideoNotFound"),
    "data.order": ("EpochSampler", "item_rng"),
    "data.presets": ("NORM_PRESETS",),
    "data.sampling": ("SlidingWindow", "TemporalCenterCrop", "TemporalEvenCrop",
                      "TemporalRandomCrop", "loop_pad"),
    "data.stores": ("Hdf5Store", "JpegDirStore", "ReferenceHdf5Store", "open_store"),
    "data.transforms": ("CenterCrop", "ColorJitter", "Compose", "CornerCrop", "HorizontalFlip",
                        "MultiScaleCornerCrop", "Normalize", "RandomResizedCrop", "Resize",
                        "eval_transform", "normalize", "train_transform"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = list(_MODULE_OF)


def __getattr__(name):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
