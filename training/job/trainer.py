"""r3d-train's run, assembled from its parts in the one order that works:

1. process group and device (training.job.distributed);
2. data: the annotation read once, every dataset built from it (training.job.loaders);
3. model: built and given its pretrained weights (training.job.builders.build_model), then placed:
   device -> SyncBatchNorm -> freezing -> DDP (training.job.builders.place_model);
4. optimiser, schedule and scaler over the placed model's trainable parameters;
5. the train state (training.job.state.TrainState), resumed from a checkpoint when there is one;
6. the loop (training.job.fit.Fit) and inference.
"""
import logging
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .builders import (TrainingSetupError, build_model, build_optimizer, build_scaler,
                       build_scheduler, place_model)
from .checkpoint_info import describe_run
from .fit import Fit, FitSettings
from .loaders import (build_data, build_transforms, input_pipe, train_loader, val_loader,
                      window_loader)
from .options import save_opts
from .run_arch import adopt_architecture
from .state import TrainState, remove_stale_temporaries

log = logging.getLogger(__name__)

__all__ = ["TrainingSetupError", "run"]


def _prepare_result_path(args, ctx) -> tuple:
    """The result directory, made if missing; returns (path, whether this run made it)."""
    path = Path(args.result_path)
    made = not path.exists()
    if ctx.is_main:
        if path.exists() and not path.is_dir():
            raise TrainingSetupError(f"--result-path {path}: exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
    distributed.barrier(ctx)
    return path, made


def _resume_path(args, result_path):
    """(checkpoint to resume from or None, 'resume' when given, 'auto' when found)."""
    if args.resume_path is not None:
        return args.resume_path, "resume"
    last = result_path / "last.pth"
    return (last, "auto") if not args.no_resume and last.exists() else (None, None)


def run(args) -> dict:
    """Train and/or validate, then infer, as the options say; returns the last metrics."""
    ctx = distributed.setup(args.device)
    try:
        return _run(args, ctx)
    finally:
        distributed.teardown(ctx)


def _run(args, ctx) -> dict:
    result_path, made = _prepare_result_path(args, ctx)
    try:
        fit, data, training = _start(args, ctx, result_path)
    except BaseException:
        if made and ctx.is_main and not any(result_path.iterdir()):
            result_path.rmdir()  # a failed start leaves nothing behind
        raise
    if ctx.is_main:
        save_opts(args, result_path / "opts.json")
    metrics = fit.run() if training else fit.evaluate_only()
    if args.inference:
        metrics = dict(metrics or {}, results=str(fit.infer(data.class_names)))
    return metrics


def _start(args, ctx, result_path):
    """Everything before the first epoch: the architecture, data, model, state and loaders;
    returns (Fit, RunData, whether it trains). Writes nothing."""
    resume, source = _resume_path(args, result_path)
    if resume is not None or args.pretrain_path is not None:
        adopt_architecture(args, resume or args.pretrain_path, source or "pretrain")
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.manual_seed)

    transforms = build_transforms(args)
    data = build_data(args, transforms)
    n_classes = args.n_classes or len(data.class_names)
    if n_classes != len(data.class_names):
        raise TrainingSetupError(f"--n-classes {n_classes}, but {args.annotation_path} has "
                                 f"{len(data.class_names)} labels")

    placed = place_model(build_model(args, n_classes), args, ctx)
    training = data.train is not None
    optimizer = build_optimizer(args, placed.bare) if training else None
    scheduler = build_scheduler(args, optimizer) if training else None
    settings = FitSettings.from_args(args, ctx, data.multilabel)
    state = TrainState(placed.bare, placed.arch, optimizer, scheduler,
                       build_scaler(settings.amp) if training else None,
                       extra=dict(describe_run(args, data.class_names),
                                  manual_seed=args.manual_seed))
    if resume is not None:
        state.resume(resume, weights_only=args.weights_only == "yes", training=training,
                     milestones=args.multistep_milestones if args.overwrite_milestones
                     else None, lr_scheduler=args.lr_scheduler, labels=data.class_names,
                     remap=args.remap_labels)
        if ctx.is_main:
            print(f"r3d-train: resuming from {resume} (epoch {state.epoch} done)")

    loaders, inputs = {}, {}
    train_tf, val_tf, infer_tf = transforms
    if training:
        loaders["train"] = train_loader(data.train, args, ctx)
        inputs["train"] = input_pipe(train_tf, ctx, args)
    if data.val is not None:
        loaders["val"] = val_loader(data.val, args, ctx)
        loaders["val_videos"] = (data.val_videos, window_loader(data.val_videos, args, ctx))
        inputs["val"] = input_pipe(val_tf, ctx, args)
    if data.infer is not None:
        loaders["infer"] = (data.infer, window_loader(data.infer, args, ctx,
                                                      nocrop=args.inference_crop == "nocrop"),
                            data.infer_subset)
        inputs["infer"] = input_pipe(infer_tf, ctx, args)

    criterion = nn.BCEWithLogitsLoss() if data.multilabel else nn.CrossEntropyLoss()
    return Fit(settings, ctx, state, placed.model, criterion, loaders, inputs), data, training
