"""The model registry: what exists (family names as in the reference, their depths and
options) and `generate_model(model, depth, n_classes=400, **options)`."""
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

from torch import nn

from ..choices import MODEL_NAMES
from . import densenet, pre_act_resnet, resnet, resnet2p1d, resnext, wide_resnet

COMMON_OPTIONS = ("n_input_channels", "conv1_t_size", "conv1_t_stride", "no_max_pool")
RESNET_OPTIONS = COMMON_OPTIONS + ("shortcut_type", "widen_factor", "stem_planes")


@dataclass(frozen=True)
class ModelFamily:
    """One architecture family: its reference name, depths, accepted options and its
    constructor."""
    name: str
    depths: Tuple[int, ...]
    options: Tuple[str, ...]
    build: Callable[..., nn.Module]


FAMILIES: Dict[str, ModelFamily] = {f.name: f for f in (
    ModelFamily("resnet", resnet.DEPTHS, RESNET_OPTIONS, resnet.generate_model),
    ModelFamily("resnet2p1d", resnet.DEPTHS, RESNET_OPTIONS, resnet2p1d.generate_model),
    ModelFamily("preresnet", resnet.DEPTHS, RESNET_OPTIONS, pre_act_resnet.generate_model),
    ModelFamily("wideresnet", wide_resnet.DEPTHS, RESNET_OPTIONS + ("k",),
                wide_resnet.generate_model),
    ModelFamily("resnext", resnext.DEPTHS, RESNET_OPTIONS + ("cardinality",),
                resnext.generate_model),
    ModelFamily("densenet", densenet.DEPTHS,
                COMMON_OPTIONS + ("growth_rate", "num_init_features", "bn_size", "drop_rate"),
                densenet.generate_model),
)}
if tuple(FAMILIES) != MODEL_NAMES:  # the torch-free list the commands offer
    raise ImportError(f"training.choices.MODEL_NAMES {MODEL_NAMES} differs from the registry's "
                      f"families {tuple(FAMILIES)}")


def get_family(model: str) -> ModelFamily:
    """The family called `model`, or ValueError naming the valid names."""
    try:
        return FAMILIES[model]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {model!r}; valid models: {', '.join(MODEL_NAMES)}") \
            from None


def available_models() -> Dict[str, Tuple[int, ...]]:
    """Every family name with its depths, e.g. {'resnet': (10, 18, ...), ...}."""
    return {name: family.depths for name, family in FAMILIES.items()}


def list_models() -> List[str]:
    """Every buildable architecture as the reference's arch string, e.g. 'resnet-50'."""
    return [arch_name(name, depth) for name, family in FAMILIES.items() for depth in family.depths]


def arch_name(model: str, depth: int) -> str:
    """The reference's `arch` string of a checkpoint: '{model}-{depth}'."""
    return f"{model}-{depth}"


def parse_arch(arch: str) -> Tuple[str, int]:
    """'resnet-50' -> ('resnet', 50); ValueError for anything the registry cannot build."""
    name, _, depth = str(arch).rpartition("-")
    if not name or not depth.isdigit():
        raise ValueError(f"arch {arch!r} is not of the form '<model>-<depth>', e.g. 'resnet-50'")
    family = get_family(name)
    if int(depth) not in family.depths:
        raise ValueError(f"{name} has no depth {depth}; valid depths: "
                         f"{', '.join(map(str, family.depths))}")
    return name, int(depth)


def generate_model(model: str, depth: int, n_classes: int = 400, **options) -> nn.Module:
    """Build `model` (a name from MODEL_NAMES) of `depth` with `n_classes` outputs.

    Options common to all families: n_input_channels (3 RGB, 2 flow), conv1_t_size (7),
    conv1_t_stride (1), no_max_pool (False); ResNet-like families add shortcut_type
    ('B'), widen_factor (1.0) and stem_planes (the first stage's width), wideresnet k (2),
    resnext cardinality (32), densenet growth_rate (32), num_init_features (64), bn_size
    (4), drop_rate (0).
    """
    family = get_family(model)
    if depth not in family.depths:
        raise ValueError(f"{model} has no depth {depth!r}; valid depths: "
                         f"{', '.join(map(str, family.depths))}")
    unknown = sorted(set(options) - set(family.options))
    if unknown:
        raise ValueError(f"{model} does not take option(s) {', '.join(unknown)}; its options: "
                         f"n_classes, {', '.join(family.options)}")
    return family.build(depth, n_classes=n_classes, **options)
