"""The epoch loop of r3d-train, video-level evaluation and inference, driven by one
`FitSettings` object and a `TrainState`."""
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from storeformat.atomic import write_text_atomically

from ..data.order import epoch_generator
from .distributed import broadcast_buffers
from .engine import NonFiniteLoss, score_windows, top_results, train_epoch, validate_clips
from .evaluation import video_metrics
from .logs import BATCH_COLUMNS, CsvLog, TRAIN_COLUMNS, TensorBoard, VAL_COLUMNS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    """What the loop needs to know, read once from the options."""
    result_path: Path
    n_epochs: int
    seed: int
    checkpoint_every: int
    best_metric: str = "loss"           # "loss" or "acc"
    video_level_every: int = 0
    amp: Optional[str] = None
    multilabel: bool = False
    progress: bool = True
    tensorboard: bool = True
    output_topk: int = 5
    keep_windows: bool = False          # inference: every window's scores, not averages

    @classmethod
    def from_args(cls, args, ctx, multilabel):
        amp = args.amp if ctx.device.type == "cuda" else None
        if args.amp and amp is None and ctx.is_main:
            log.warning("--amp is for CUDA; the CPU trains in fp32")
        return cls(result_path=Path(args.result_path), n_epochs=args.n_epochs,
                   seed=args.manual_seed, checkpoint_every=args.checkpoint,
                   best_metric=args.best_metric, video_level_every=args.val_video_level_every,
                   amp=amp, multilabel=multilabel, progress=not args.no_progress,
                   tensorboard=not args.no_tensorboard, output_topk=args.output_topk,
                   keep_windows=args.inference_no_average)


class Fit:
    """The loop over epochs: train, validate, step the schedule, log, save."""

    def __init__(self, settings, ctx, state, model, criterion, loaders, inputs):
        self.s, self.ctx, self.state, self.model = settings, ctx, state, model
        self.criterion, self.loaders, self.inputs = criterion, loaders, inputs

    def video_level(self):
        """Video-level metrics over every sliding window of the validation videos."""
        ds, loader = self.loaders["val_videos"]
        sums, counts, _ = score_windows(self.state.model, loader, len(ds.samples),
                                        len(ds.class_names), self.ctx, amp=self.s.amp,
                                        inputs=self.inputs["val"], progress=self.s.progress,
                                        desc="validation videos")
        table = ds.samples
        truth = [list(table.labels_of(i)) or ([int(table.labels[i])] if table.labels[i] >= 0
                                               else []) for i in range(len(table))]
        keep = [i for i, t in enumerate(truth) if t and counts[i] > 0]
        if not keep:
            return {}
        scores = sums[keep] / counts[keep, None]
        return video_metrics(scores, [truth[i] for i in keep], ks=(1, 5))

    def validate(self, epoch):
        row = {}
        broadcast_buffers(self.ctx, self.state.model)
        loss, acc = validate_clips(self.state.model, self.loaders["val"], self.criterion,
                                   self.ctx, epoch, amp=self.s.amp, inputs=self.inputs["val"],
                                   multilabel=self.s.multilabel, progress=self.s.progress)
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"epoch {epoch}: the validation loss is {loss}")
        row["loss"], row["acc"] = loss, acc
        every = self.s.video_level_every
        if epoch in (0, self.s.n_epochs) or (every and epoch % every == 0):
            vm = self.video_level()
            row.update(video_top1=vm.get("top1"), video_top5=vm.get("top5"),
                       mean_class_top1=vm.get("mean_class_top1"))
        return row

    def evaluate_only(self):
        """Validation without training (--no-train)."""
        if "val" not in self.loaders:
            return {}
        row = self.validate(0)
        if self.ctx.is_main:
            print(_epoch_line(None, None, None, None, row, None, None))
        return row

    def run(self):
        """Train from the epoch after the state's to n_epochs; returns the last row."""
        s, start = self.s, self.state.epoch + 1
        logs, tb = self._open_logs(start)
        final = {}
        try:
            if start > s.n_epochs and self.ctx.is_main:
                done = self.state.epoch
                print(f"r3d-train: training already finished: {done} epochs done (--n-epochs "
                      f"{s.n_epochs}); pass --n-epochs {done + 1} or more to train on, or "
                      f"--no-resume to start over")
            for epoch in range(start, s.n_epochs + 1):
                final = self._epoch(epoch, logs, tb)
        finally:
            for lg in (logs or {}).values():
                lg.close()
            if tb is not None:
                tb.close()
        return final

    def _open_logs(self, start):
        if not self.ctx.is_main:
            return None, None
        keep = start - 1 if start > 1 else None
        path = self.s.result_path
        logs = {"train": CsvLog(path / "train.csv", TRAIN_COLUMNS, keep),
                "batch": CsvLog(path / "train_batch.csv", BATCH_COLUMNS, keep),
                "val": CsvLog(path / "val.csv", VAL_COLUMNS, keep)}
        tb = None
        if self.s.tensorboard:
            tb = TensorBoard(path / "tensorboard", start,
                             (start - 1) * len(self.loaders["train"]) + 1)
        return logs, tb

    def _epoch(self, epoch, logs, tb):
        s, state = self.s, self.state
        # The main process's own draws (dropout) follow from (seed, epoch) too.
        torch.manual_seed(epoch_generator(s.seed, epoch).initial_seed())
        loader = self.loaders["train"]
        loader.sampler.set_epoch(epoch)
        lr = state.optimizer.param_groups[0]["lr"]

        def on_batch(batch, iteration, loss, acc):
            logs["batch"].write(epoch=epoch, batch=batch, iteration=iteration, loss=loss,
                                acc=acc, lr=lr)
            if tb:
                tb.batch(iteration, loss=loss, acc=acc, lr=lr)

        t0 = time.perf_counter()
        loss, acc = train_epoch(self.model, loader, self.criterion, state.optimizer, self.ctx,
                                epoch, scaler=state.scaler, amp=s.amp,
                                inputs=self.inputs["train"], multilabel=s.multilabel,
                                on_batch=on_batch if self.ctx.is_main else None,
                                progress=s.progress)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch}
        if "val" in self.loaders:
            row.update(self.validate(epoch))
        if isinstance(state.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            state.scheduler.step(row["loss"])
        else:
            state.scheduler.step()
        state.epoch = epoch
        improved = "loss" in row and state.improve(
            f"val_{s.best_metric}", row[s.best_metric], lower_is_better=s.best_metric == "loss")
        if self.ctx.is_main:
            logs["train"].write(epoch=epoch, loss=loss, acc=acc, lr=lr, seconds=seconds)
            if tb:
                tb.epoch("train", epoch, loss=loss, acc=acc, lr=lr)
            if "loss" in row:
                logs["val"].write(**row)
                if tb:
                    tb.epoch("val", epoch, **{k: v for k, v in row.items() if k != "epoch"})
            state.save(s.result_path, improved, s.checkpoint_every)
            print(_epoch_line(epoch, s.n_epochs, loss, acc, row, lr, seconds))
        return row

    def infer(self, class_names):
        """Score every window of the inference subset; write RESULT_PATH/<subset>.json (main
        process). Non-finite scores are refused, never written."""
        ds, loader, subset = self.loaders["infer"]
        broadcast_buffers(self.ctx, self.state.model)
        sums, counts, windows = score_windows(self.state.model, loader, len(ds.samples),
                                              len(class_names), self.ctx, amp=self.s.amp,
                                              inputs=self.inputs["infer"],
                                              keep_windows=self.s.keep_windows,
                                              progress=self.s.progress,
                                              desc=f"{subset} inference")
        if not bool(torch.isfinite(sums).all()):
            raise NonFiniteLoss(f"inference on {subset}: the model gives non-finite scores; "
                                f"nothing written")
        if not self.ctx.is_main:
            return None
        ids = ds.video_ids
        k = self.s.output_topk
        results = {}
        if self.s.keep_windows:
            for v, segment, probs in sorted(windows, key=lambda w: (w[0], w[1][0])):
                results.setdefault(ids[v], []).append(
                    {"segment": segment, "result": top_results(probs, class_names, k)})
        else:
            for v, vid in enumerate(ids):
                if counts[v] > 0:
                    results[vid] = top_results(sums[v] / counts[v], class_names, k)
        path = self.s.result_path / f"{subset}.json"
        write_text_atomically(path, json.dumps({"results": results}, allow_nan=False))
        print(f"r3d-train: {len(results)} videos scored; results in {path}")
        return path


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
