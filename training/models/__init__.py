"""3D CNNs for video action recognition with the reference implementation's
state_dict layout, a registry/factory, and checkpoint loading for fine-tuning."""
from .checkpoint import (Checkpoint, CheckpointError, build_from_checkpoint, clean_state_dict,
                         describe_architecture, fine_tuning_units, freeze_before, head_name,
                         infer_architecture, infer_n_classes, load_pretrained, load_weights,
                         read_checkpoint, replace_head, save_checkpoint, trainable_parameters)
from .densenet import DenseNet
from .layers import ZeroPadShortcut
from .pre_act_resnet import PreActivationBasicBlock, PreActivationBottleneck
from .registry import (FAMILIES, MODEL_NAMES, ModelFamily, arch_name, available_models,
                       generate_model, get_family, list_models, parse_arch)
from .resnet import BasicBlock, Bottleneck, ResNet
from .resnet2p1d import ResNet2p1d
from .resnext import ResNeXt, ResNeXtBottleneck
from .wide_resnet import WideBottleneck

__all__ = [
    "BasicBlock", "Bottleneck", "Checkpoint", "CheckpointError", "DenseNet", "FAMILIES",
    "MODEL_NAMES", "ModelFamily", "PreActivationBasicBlock", "PreActivationBottleneck",
    "ResNeXt", "ResNeXtBottleneck", "ResNet", "ResNet2p1d", "WideBottleneck", "ZeroPadShortcut",
    "arch_name", "available_models", "build_from_checkpoint", "clean_state_dict",
    "describe_architecture", "fine_tuning_units", "freeze_before", "generate_model",
    "get_family", "head_name", "infer_architecture", "infer_n_classes", "list_models",
    "load_pretrained", "load_weights", "parse_arch", "read_checkpoint", "replace_head",
    "save_checkpoint", "trainable_parameters",
]
