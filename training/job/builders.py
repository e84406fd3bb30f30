"""Builders of r3d-train's model, optimiser and schedule, each from the options alone.

`place_model` is the one function that puts a model on its device and wraps it, in the only
order that keeps fine-tuning right: device -> channels-last -> SyncBatchNorm -> freezing -> DDP
(freezing after the SyncBatchNorm conversion, which builds new BatchNorm modules: frozen
statistics hooks installed before it would be lost).
"""
import logging
from dataclasses import dataclass

import torch
from torch import nn

from ..models import (arch_name, freeze_before, generate_model, load_pretrained, read_checkpoint,
                      trainable_parameters)

log = logging.getLogger(__name__)


class TrainingSetupError(ValueError):
    """The options, annotation and checkpoints do not fit together; the message says how."""


def model_options(args) -> dict:
    """generate_model's options for the model the command line describes."""
    opts = {"n_input_channels": 2 if args.input_type == "flow" else 3,
            "conv1_t_size": args.conv1_t_size, "conv1_t_stride": args.conv1_t_stride,
            "no_max_pool": args.no_max_pool}
    if args.model in ("resnet", "resnet2p1d", "preresnet", "wideresnet", "resnext"):
        opts["shortcut_type"] = args.resnet_shortcut
        opts["widen_factor"] = args.resnet_widen_factor
    if args.model == "wideresnet":
        opts["k"] = args.wide_resnet_k
    if args.model == "resnext":
        opts["cardinality"] = args.resnext_cardinality
    return opts


def build_model(args, n_classes: int) -> nn.Module:
    """The model the options describe, with the pretrained weights and new head when
    fine-tuning. Nothing is frozen yet: `place_model` does that."""
    try:
        model = generate_model(args.model, args.model_depth, n_classes=n_classes,
                               **model_options(args))
    except (ValueError, TypeError) as e:
        raise TrainingSetupError(f"--model {args.model} --model-depth {args.model_depth}: {e}") \
            from None
    if args.pretrain_path is not None:
        ckpt = read_checkpoint(args.pretrain_path, weights_only=args.weights_only == "yes")
        if args.n_pretrain_classes is not None and args.n_pretrain_classes != ckpt.n_classes:
            raise TrainingSetupError(
                f"--n-pretrain-classes {args.n_pretrain_classes}, but {args.pretrain_path} has "
                f"a {ckpt.n_classes}-class head")
        load_pretrained(model, ckpt, n_finetune_classes=n_classes)
    return model


@dataclass
class PlacedModel:
    """A model on its device: `bare` (what is saved and evaluated) and `model` (what trains:
    the DDP wrapper under torchrun, else `bare` itself)."""
    bare: nn.Module
    model: nn.Module
    arch: str
    frozen: tuple = ()


def sync_and_freeze(model: nn.Module, sync_batchnorm: bool, ft_begin_module) -> tuple:
    """SyncBatchNorm conversion, then freezing of the modules before `ft_begin_module`:
    the conversion replaces BatchNorm modules, so it must come first. Returns (model,
    frozen module names)."""
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    try:
        frozen = tuple(freeze_before(model, ft_begin_module)) if ft_begin_module else ()
    except ValueError as e:
        raise TrainingSetupError(f"--ft-begin-module: {e}") from None
    return model, frozen


def place_model(model: nn.Module, args, ctx) -> PlacedModel:
    """Device, memory format, SyncBatchNorm, freezing and DDP, in this order."""
    cuda = ctx.device.type == "cuda"
    bare = model.to(ctx.device)
    if args.channels_last and cuda:
        bare = bare.to(memory_format=torch.channels_last_3d)
    sync = ctx.distributed and args.batchnorm_sync and cuda
    if ctx.distributed and args.batchnorm_sync and not cuda and ctx.is_main:
        log.warning("--batchnorm-sync needs CUDA (SyncBatchNorm is GPU only): batch "
                    "statistics stay per process on the CPU")
    bare, frozen = sync_and_freeze(bare, sync, args.ft_begin_module
                                   if args.pretrain_path is not None else None)
    wrapped = bare
    if ctx.distributed:
        wrapped = nn.parallel.DistributedDataParallel(
            bare, device_ids=[ctx.device.index] if cuda else None)
    return PlacedModel(bare, wrapped, arch_name(args.model, args.model_depth), frozen)


def build_optimizer(args, model: nn.Module) -> torch.optim.Optimizer:
    """SGD over the parameters that train (frozen ones excluded), the reference's optimiser."""
    if args.nesterov and (args.momentum <= 0 or args.dampening != 0):
        raise TrainingSetupError("--nesterov needs --momentum > 0 and --dampening 0")
    return torch.optim.SGD(trainable_parameters(model), lr=args.learning_rate,
                           momentum=args.momentum, dampening=args.dampening,
                           weight_decay=args.weight_decay, nesterov=args.nesterov)


def build_scheduler(args, optimizer):
    """ReduceLROnPlateau on the validation loss, or MultiStepLR at the milestones."""
    if args.lr_scheduler == "plateau":
        if args.no_val and not args.no_train:
            raise TrainingSetupError("--lr-scheduler plateau follows the validation loss: "
                                     "drop --no-val or use --lr-scheduler multistep")
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, "min", factor=0.1, patience=args.plateau_patience)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, args.multistep_milestones, gamma=0.1)


def build_scaler(amp):
    """The gradient scaler fp16 autocast needs (none for bf16 or fp32)."""
    return torch.amp.GradScaler("cuda") if amp == "fp16" else None
