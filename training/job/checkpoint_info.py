"""Checkpoints that describe themselves: what r3d-train records next to the weights (class
names, the model's generate_model options, the clip settings), and building the model and the
inference transform back from it, so r3d-predict and r3d-features need only the file.

The record is three plain entries of the checkpoint dict (readable with weights_only=True):
``class_names`` (list of str), ``model_spec`` ({'model', 'depth', 'n_classes',
generate_model options}; not ``model``, which would clash with save_checkpoint's argument)
and ``clip`` ({'sample_size', 'sample_duration', 'sample_t_stride', 'inference_crop',
'input_type', 'norm': {'preset', 'mean', 'std', 'value_scale'}}). Reference
checkpoints have none of them: their architecture is read off the weights (or given as
options, as in r3d-train) and the clip settings default to r3d-train's.
"""
import logging

from ..data.transforms import CenterCrop, Compose, CornerCrop, Normalize, Resize, normalize
from ..models import generate_model, infer_architecture, load_weights
from ..models.checkpoint import CheckpointError
from .builders import model_options

log = logging.getLogger(__name__)

#: r3d-train's defaults, used for checkpoints that do not record their clip settings.
DEFAULT_CLIP = {"sample_size": 112, "sample_duration": 16, "sample_t_stride": 1,
                "inference_crop": "center", "input_type": "rgb",
                "norm": {"preset": "kinetics", "mean": list(normalize("kinetics").mean),
                         "std": list(normalize("kinetics").std), "value_scale": 1}}
#: Crops an inference transform can take: the centre, the whole frame, or five crops (the
#: centre and the four corners, averaged by the caller).
CROPS = ("center", "nocrop", "five")


def norm_settings(args) -> dict:
    """The normalisation r3d-train's options give, as the values Normalize applies."""
    n = normalize(args.mean_dataset, args.value_scale, not args.no_mean_norm,
                  not args.no_std_norm)
    return {"preset": args.mean_dataset, "mean": list(n.mean), "std": list(n.std),
            "value_scale": n.value_scale}


def describe_run(args, class_names) -> dict:
    """The extra checkpoint entries describing a run of r3d-train: pass them to
    save_checkpoint as ``**describe_run(args, class_names)``."""
    n_classes = args.n_classes or len(class_names)
    return {
        "class_names": [str(c) for c in class_names],
        "model_spec": {"model": args.model, "depth": int(args.model_depth),
                  "n_classes": int(n_classes), **model_options(args)},
        "clip": {"sample_size": int(args.sample_size),
                 "sample_duration": int(args.sample_duration),
                 "sample_t_stride": int(args.sample_t_stride),
                 "inference_crop": args.inference_crop,
                 "input_type": getattr(args, "input_type", "rgb"),
                 "norm": norm_settings(args)},
    }


def model_spec(ckpt, overrides=None) -> dict:
    """The generate_model arguments of a checkpoint: its recorded ``model_spec`` entry, else what
    `overrides` give (model and depth at least), else the architecture read off its weights.
    `overrides` replace single options either way."""
    overrides = dict(overrides or {})
    recorded = ckpt.extra.get("model_spec")
    if isinstance(recorded, dict) and "model" in recorded and "depth" in recorded:
        spec = dict(recorded)
    elif "model" in overrides and "depth" in overrides:
        spec = {"n_classes": ckpt.n_classes}
    else:
        try:
            spec = infer_architecture(ckpt.state_dict)
        except ValueError as e:
            raise CheckpointError(f"checkpoint {ckpt.path!r} does not record its model and its "
                                  f"architecture cannot be read off the weights ({e}): give "
                                  f"--model and --model-depth") from None
        log.info("%s records no model options; read off the weights: %s (conv1_t_stride and "
                 "no_max_pool cannot be read: 1 and False unless given)", ckpt.path, spec)
    spec.update(overrides)
    return spec


def model_from_checkpoint(ckpt, overrides=None):
    """The model a checkpoint (a training.models Checkpoint) holds, weights loaded, in eval
    mode. `overrides`: generate_model arguments ('model', 'depth', 'n_classes', options) for
    checkpoints that do not record them, or to replace what they record."""
    spec = model_spec(ckpt, overrides)
    try:
        model = generate_model(**spec)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {ckpt.path!r}: cannot build {spec}: {e}") from None
    load_weights(model, ckpt)
    return model.eval()


def clip_settings(ckpt, overrides=None) -> dict:
    """A checkpoint's clip settings (r3d-train's defaults for what it does not record), with
    `overrides` (same keys; 'norm' replaced whole) applied."""
    recorded = ckpt.extra.get("clip") if ckpt is not None else None
    clip = {**DEFAULT_CLIP, **(recorded if isinstance(recorded, dict) else {})}
    clip.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return clip


def class_names_of(ckpt):
    """The class names a checkpoint records, or None."""
    names = ckpt.extra.get("class_names")
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def inference_transforms(clip, crop=None) -> list:
    """The evaluation transforms of `clip` settings: one (the short side resized to
    sample_size, then the centre crop, or none) or, with `crop` 'five', one per crop position
    (centre and four corners). `crop` defaults to the settings' inference_crop."""
    crop = crop or clip["inference_crop"]
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; use one of {', '.join(CROPS)}")
    size = int(clip["sample_size"])
    norm = clip["norm"]
    out = Normalize(norm["mean"], norm["std"], norm["value_scale"])
    if crop == "nocrop":
        return [Compose([Resize(size), out])]
    if crop == "center":
        return [Compose([Resize(size), CenterCrop(size), out])]
    return [Compose([Resize(size), CornerCrop(size, position=p), out])
            for p in ("c", "tl", "tr", "bl", "br")]
