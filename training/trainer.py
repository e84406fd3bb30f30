"""r3d-train's run: data, model, optimiser and schedule from the options; the epoch loop with
validation, logs and checkpoints; resumption; inference to the reference's results format."""
import json
import logging
import os
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from . import distributed
from .annotation_file import read_annotation_file
from .datasets import InferenceWindows, TrainingClips, ValidationClips, collate_multi_clips
from .engine import (ShardSampler, VideoBatchSampler, score_windows, top_results, train_epoch,
                     validate_clips)
from .evaluation import EvaluationError, resolve_subset, video_metrics
from .logs import BATCH_COLUMNS, TRAIN_COLUMNS, VAL_COLUMNS, CsvLog, TensorBoard
from .models import (arch_name, generate_model, load_pretrained, load_weights, read_checkpoint,
                     save_checkpoint, trainable_parameters)
from .options import save_opts
from .sampling import SlidingWindow, TemporalCenterCrop, TemporalEvenCrop, TemporalRandomCrop
from .transforms import eval_transform, train_transform

log = logging.getLogger(__name__)


class TrainingSetupError(ValueError):
    """The options, annotation and checkpoints do not fit together; the message says how."""


class FirstChannels:
    """A transform whose output keeps only its first `n` channels (2 for optical flow stored as
    the x and y channels of JPEG frames); everything else is the wrapped transform's."""

    def __init__(self, transform, n):
        self.transform, self.n = transform, n

    def __getattr__(self, name):
        return getattr(self.transform, name)

    def apply(self, clip, plan, **kwargs):
        return self.transform.apply(clip, plan, **kwargs)[:self.n]


def _seed_epoch(seed, epoch):
    """Every random draw of an epoch follows from (seed, epoch), so a resumed run repeats
    exactly what an uninterrupted one would have done."""
    s = seed * 100_003 + epoch
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    return s


def _model_options(args):
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


def build_model(args, n_classes):
    """The model the options describe, with pretrained weights and frozen modules if asked."""
    try:
        model = generate_model(args.model, args.model_depth, n_classes=n_classes,
                               **_model_options(args))
    except (ValueError, TypeError) as e:
        raise TrainingSetupError(f"--model {args.model} --model-depth {args.model_depth}: {e}") \
            from None
    if args.pretrain_path is not None:
        ckpt = read_checkpoint(args.pretrain_path, weights_only=args.weights_only == "yes")
        if args.n_pretrain_classes is not None and args.n_pretrain_classes != ckpt.n_classes:
            raise TrainingSetupError(
                f"--n-pretrain-classes {args.n_pretrain_classes}, but {args.pretrain_path} has "
                f"a {ckpt.n_classes}-class head")
        try:
            load_pretrained(model, ckpt, n_finetune_classes=n_classes,
                            ft_begin_module=args.ft_begin_module)
        except ValueError as e:
            raise TrainingSetupError(f"--ft-begin-module: {e}") from None
    return model


def _transforms(args):
    norm = dict(norm=args.mean_dataset, value_scale=args.value_scale,
                mean_norm=not args.no_mean_norm, std_norm=not args.no_std_norm)
    train = train_transform(args.sample_size, crop=args.train_crop, hflip=not args.no_hflip,
                            color_jitter=(0.4, 0.4, 0.4, 0.1) if args.colorjitter else None,
                            min_scale=args.train_crop_min_scale,
                            min_ratio=args.train_crop_min_ratio, **norm)
    val = eval_transform(args.sample_size, crop="center", **norm)
    infer = eval_transform(args.sample_size,
                           crop="center" if args.inference_crop == "center" else "none", **norm)
    if args.input_type == "flow":
        train, val, infer = (FirstChannels(t, 2) for t in (train, val, infer))
    return train, val, infer


def _loader_options(args, ctx):
    workers = args.n_threads
    return {"num_workers": workers, "pin_memory": ctx.device.type == "cuda",
            "persistent_workers": workers > 0}


class Run:
    """Everything one r3d-train invocation sets up, and its epoch loop."""

    def __init__(self, args):
        self.args = args
        self.ctx = distributed.setup(args.device)
        self.main = self.ctx.is_main
        self.progress = not args.no_progress
        torch.manual_seed(args.manual_seed)
        random.seed(args.manual_seed)
        self.result_path = Path(args.result_path)
        if self.main:
            self.result_path.mkdir(parents=True, exist_ok=True)
            save_opts(args, self.result_path / "opts.json")
        distributed.barrier(self.ctx)

        self.doc = read_annotation_file(args.annotation_path)
        self.class_names = list(self.doc["labels"])
        n_classes = args.n_classes or len(self.class_names)
        if n_classes != len(self.class_names):
            raise TrainingSetupError(f"--n-classes {n_classes}, but {args.annotation_path} has "
                                     f"{len(self.class_names)} labels")
        self.multilabel = bool(self.doc.get("multi_label"))
        self.criterion = nn.BCEWithLogitsLoss() if self.multilabel else nn.CrossEntropyLoss()
        self.train_tf, self.val_tf, self.infer_tf = _transforms(args)
        if self.ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.amp = args.amp if self.ctx.device.type == "cuda" else None
        if args.amp and self.amp is None and self.main:
            log.warning("--amp is for CUDA; the CPU trains in fp32")
        self.channels_last = args.channels_last and self.ctx.device.type == "cuda"

        self.bare = build_model(args, n_classes).to(self.ctx.device)
        if self.channels_last:
            self.bare = self.bare.to(memory_format=torch.channels_last_3d)
        self.model = self.bare
        if self.ctx.distributed:
            if args.batchnorm_sync and self.ctx.device.type == "cuda":
                self.bare = self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            elif args.batchnorm_sync and self.main:
                log.warning("--batchnorm-sync needs CUDA (SyncBatchNorm is GPU only): batch "
                            "statistics stay per process on the CPU")
            self.model = nn.parallel.DistributedDataParallel(
                self.bare, device_ids=[self.ctx.device.index] if self.ctx.device.type == "cuda"
                else None)
        self.arch = arch_name(args.model, args.model_depth)
        if args.nesterov and (args.momentum <= 0 or args.dampening != 0):
            raise TrainingSetupError("--nesterov needs --momentum > 0 and --dampening 0")
        self.optimizer = torch.optim.SGD(trainable_parameters(self.bare), lr=args.learning_rate,
                                         momentum=args.momentum, dampening=args.dampening,
                                         weight_decay=args.weight_decay, nesterov=args.nesterov)
        if args.lr_scheduler == "plateau":
            if args.no_val and not args.no_train:
                raise TrainingSetupError("--lr-scheduler plateau follows the validation loss: "
                                         "drop --no-val or use --lr-scheduler multistep")
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, "min", factor=0.1, patience=args.plateau_patience)
        else:
            self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
                self.optimizer, args.multistep_milestones, gamma=0.1)
        self.scaler = (torch.amp.GradScaler("cuda") if self.amp == "fp16" else None)
        self.start_epoch = 1
        self.best = None
        self._resume()

    # --- checkpoints -------------------------------------------------------------------------
    def _resume(self):
        args = self.args
        path = args.resume_path
        if path is None and not args.no_resume and (self.result_path / "last.pth").exists():
            path = self.result_path / "last.pth"
        if path is None:
            return
        ckpt = read_checkpoint(path, weights_only=args.weights_only == "yes")
        if ckpt.epoch is None:
            raise TrainingSetupError(f"{path}: not a training checkpoint (it has no 'epoch'); "
                                     f"to start from weights use --pretrain-path")
        load_weights(self.bare, ckpt)
        if ckpt.optimizer is not None:
            self.optimizer.load_state_dict(ckpt.optimizer)
        if ckpt.scheduler is not None:
            self.scheduler.load_state_dict(ckpt.scheduler)
            if args.overwrite_milestones and args.lr_scheduler == "multistep":
                self.scheduler.milestones = Counter(args.multistep_milestones)
        if self.scaler is not None and ckpt.extra.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt.extra["scaler"])
        self.best = ckpt.extra.get("best")
        self.start_epoch = int(ckpt.epoch) + 1
        if self.main:
            log.info("resumed from %s at epoch %d", path, self.start_epoch)
            print(f"r3d-train: resuming from {path} (epoch {ckpt.epoch} done)")

    def _save(self, name, epoch):
        extra = {"best": self.best, "manual_seed": self.args.manual_seed}
        if self.scaler is not None:
            extra["scaler"] = self.scaler.state_dict()
        save_checkpoint(self.result_path / name, self.bare, epoch, self.arch, self.optimizer,
                        self.scheduler, **extra)

    # --- data ----------------------------------------------------------------------------------
    def _dataset(self, cls, subset, transform, sampler, **extra):
        try:
            subset = resolve_subset(self.doc["database"], subset)
        except EvaluationError as e:
            raise TrainingSetupError(f"{self.args.annotation_path}: {e}") from None
        return cls(self.doc, self.args.stores, subset, transform, sampler,
                   on_bad=self.args.on_bad_video, **extra)

    def _train_loader(self):
        a = self.args
        sampler_cls = TemporalRandomCrop if a.train_t_crop == "random" else TemporalCenterCrop
        ds = self._dataset(TrainingClips, "training", self.train_tf,
                           sampler_cls(a.sample_duration, a.sample_t_stride))
        self._generator = torch.Generator()
        if self.ctx.distributed:
            sampler = DistributedSampler(ds, self.ctx.world_size, self.ctx.rank, shuffle=True,
                                         seed=a.manual_seed)
        else:
            sampler = RandomSampler(ds, generator=self._generator)
        return DataLoader(ds, batch_size=a.batch_size, sampler=sampler,
                          generator=self._generator, **_loader_options(a, self.ctx))

    def _val_loader(self):
        a = self.args
        ds = self._dataset(ValidationClips, "validation", self.val_tf,
                           TemporalEvenCrop(a.sample_duration, a.n_val_samples,
                                            a.sample_t_stride))
        per_batch = max(1, a.batch_size // a.n_val_samples)
        return DataLoader(ds, batch_size=per_batch, collate_fn=collate_multi_clips,
                          sampler=ShardSampler(len(ds), self.ctx.rank, self.ctx.world_size),
                          **_loader_options(a, self.ctx))

    def _window_loader(self, subset, transform, nocrop=False):
        a = self.args
        ds = self._dataset(InferenceWindows, subset, transform,
                           SlidingWindow(a.sample_duration, a.inference_stride, a.sample_t_stride))
        opts = _loader_options(a, self.ctx)
        opts["persistent_workers"] = False
        if nocrop:
            batches = VideoBatchSampler(ds._video, a.inference_batch_size, self.ctx.rank,
                                        self.ctx.world_size)
            return ds, DataLoader(ds, batch_sampler=batches, **opts)
        return ds, DataLoader(ds, batch_size=a.inference_batch_size,
                              sampler=ShardSampler(len(ds), self.ctx.rank, self.ctx.world_size),
                              **opts)

    # --- the loop ------------------------------------------------------------------------------
    def video_level(self, subset="validation"):
        """Video-level metrics over every sliding window of `subset` (the papers' protocol)."""
        ds, loader = self._window_loader(subset, self.val_tf)
        sums, counts, _ = score_windows(self.bare, loader, len(ds.samples), self.ctx,
                                        amp=self.amp, channels_last=self.channels_last,
                                        progress=self.progress, desc=f"{subset} videos")
        truth = [s.labels or ([s.label] if s.label is not None and s.label >= 0 else [])
                 for s in ds.samples]
        keep = [i for i, t in enumerate(truth) if t and counts[i] > 0]
        if not keep:
            return {}
        scores = sums[keep] / counts[keep, None]
        return video_metrics(scores, [truth[i] for i in keep], ks=(1, 5))

    def train(self):
        a = self.args
        train_loader = None if a.no_train else self._train_loader()
        val_loader = None if a.no_val else self._val_loader()
        logs = tb = None
        if self.main and train_loader is not None:
            keep = self.start_epoch - 1 if self.start_epoch > 1 else None
            logs = {"train": CsvLog(self.result_path / "train.csv", TRAIN_COLUMNS, keep),
                    "batch": CsvLog(self.result_path / "train_batch.csv", BATCH_COLUMNS, keep),
                    "val": CsvLog(self.result_path / "val.csv", VAL_COLUMNS, keep)}
            if not a.no_tensorboard:
                tb = TensorBoard(self.result_path / "tensorboard", self.start_epoch,
                                 (self.start_epoch - 1) * len(train_loader) + 1)
        final = {}
        try:
            if train_loader is None:
                return self._evaluate_only(val_loader)
            if self.start_epoch > a.n_epochs and self.main:
                print(f"r3d-train: training already finished ({a.n_epochs} epochs)")
            for epoch in range(self.start_epoch, a.n_epochs + 1):
                final = self._epoch(epoch, train_loader, val_loader, logs, tb)
        finally:
            for lg in (logs or {}).values():
                lg.close()
            if tb is not None:
                tb.close()
        return final

    def _epoch(self, epoch, train_loader, val_loader, logs, tb):
        a = self.args
        seed = _seed_epoch(a.manual_seed, epoch)
        self._generator.manual_seed(seed)
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        lr = self.optimizer.param_groups[0]["lr"]

        def on_batch(batch, iteration, loss, acc):
            logs["batch"].write(epoch=epoch, batch=batch, iteration=iteration, loss=loss,
                                acc=acc, lr=lr)
            if tb:
                tb.batch(iteration, loss=loss, acc=acc, lr=lr)

        t0 = time.perf_counter()
        loss, acc = train_epoch(self.model, train_loader, self.criterion, self.optimizer,
                                self.ctx, epoch, scaler=self.scaler, amp=self.amp,
                                channels_last=self.channels_last, multilabel=self.multilabel,
                                on_batch=on_batch if self.main else None, progress=self.progress)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch}
        if val_loader is not None:
            row["loss"], row["acc"] = validate_clips(
                self.bare, val_loader, self.criterion, self.ctx, epoch, amp=self.amp,
                channels_last=self.channels_last, multilabel=self.multilabel,
                progress=self.progress)
            every = a.val_video_level_every
            if epoch == a.n_epochs or (every and epoch % every == 0):
                vm = self.video_level("validation")
                row.update(video_top1=vm.get("top1"), video_top5=vm.get("top5"),
                           mean_class_top1=vm.get("mean_class_top1"))
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(row["loss"])
        else:
            self.scheduler.step()
        improved = False
        if "loss" in row:
            value = row["loss"] if a.best_metric == "loss" else row["acc"]
            better = (self.best is None or (value < self.best["value"] if a.best_metric == "loss"
                                            else value > self.best["value"]))
            if better:
                self.best = {"metric": f"val_{a.best_metric}", "value": value, "epoch": epoch}
                improved = True
        if self.main:
            logs["train"].write(epoch=epoch, loss=loss, acc=acc, lr=lr, seconds=seconds)
            if tb:
                tb.epoch("train", epoch, loss=loss, acc=acc, lr=lr)
            if "loss" in row:
                logs["val"].write(**row)
                if tb:
                    tb.epoch("val", epoch, **{k: v for k, v in row.items() if k != "epoch"})
            self._save("last.pth", epoch)
            if epoch % a.checkpoint == 0:
                self._save(f"save_{epoch}.pth", epoch)
            if improved:
                self._save("best.pth", epoch)
            print(_epoch_line(epoch, a.n_epochs, loss, acc, row, lr, seconds))
        return row

    def _evaluate_only(self, val_loader):
        row = {}
        if val_loader is not None:
            row["loss"], row["acc"] = validate_clips(
                self.bare, val_loader, self.criterion, self.ctx, 0, amp=self.amp,
                channels_last=self.channels_last, multilabel=self.multilabel,
                progress=self.progress)
            vm = self.video_level("validation")
            row.update(video_top1=vm.get("top1"), video_top5=vm.get("top5"),
                       mean_class_top1=vm.get("mean_class_top1"))
            if self.main:
                print(_epoch_line(None, None, None, None, row, None, None))
        return row

    def infer(self):
        """Score every window of the inference subset; write RESULT_PATH/<subset>.json."""
        a = self.args
        subset = resolve_subset(self.doc["database"], a.inference_subset)
        ds, loader = self._window_loader(subset, self.infer_tf,
                                         nocrop=a.inference_crop == "nocrop")
        sums, counts, windows = score_windows(self.bare, loader, len(ds.samples), self.ctx,
                                              amp=self.amp, channels_last=self.channels_last,
                                              keep_windows=a.inference_no_average,
                                              progress=self.progress, desc=f"{subset} inference")
        if not self.main:
            return None
        ids = [s.video_id for s in ds.samples]
        results = {}
        if a.inference_no_average:
            for v, segment, probs in sorted(windows, key=lambda w: (w[0], w[1][0])):
                results.setdefault(ids[v], []).append(
                    {"segment": segment, "result": top_results(probs, self.class_names,
                                                               a.output_topk)})
        else:
            for v, vid in enumerate(ids):
                if counts[v] > 0:
                    results[vid] = top_results(sums[v] / counts[v], self.class_names,
                                               a.output_topk)
        path = self.result_path / f"{subset}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"results": results}), encoding="utf-8")
        os.replace(tmp, path)
        print(f"r3d-train: {len(results)} videos scored; results in {path}")
        return path

    def close(self):
        distributed.teardown(self.ctx)


def _fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


def _epoch_line(epoch, n_epochs, loss, acc, row, lr, seconds):
    head = f"epoch {epoch}/{n_epochs}: train loss {_fmt(loss)} acc {_fmt(acc, '.3f')} | " \
        if epoch is not None else "evaluation: "
    line = head + f"val loss {_fmt(row.get('loss'))} acc {_fmt(row.get('acc'), '.3f')}"
    if row.get("video_top1") is not None:
        line += (f" | video top-1 {row['video_top1']:.3f} top-5 {row['video_top5']:.3f} "
                 f"mean class {row['mean_class_top1']:.3f}")
    if lr is not None:
        line += f" | lr {lr:.3g} | {seconds:.1f} s"
    return line


def run(args) -> dict:
    """Train and/or validate, then infer, as the options say; returns the last metrics."""
    r = Run(args)
    try:
        metrics = r.train()
        if args.inference:
            metrics = dict(metrics or {}, results=str(r.infer()))
        return metrics
    finally:
        r.close()
