"""The state of a training run (epoch, model, optimiser, scheduler, scaler, best result), the
only object that saves and resumes it.

Checkpoints are written atomically (a temporary file, then a rename) and in an order that
keeps them consistent after a kill at any moment: when an epoch improves on the best result,
``best.pth`` is written before ``last.pth``, so a ``last.pth`` never names a best epoch that
``best.pth`` does not hold. Temporaries left by a killed run are removed when the next starts.
"""
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from ..models import load_weights, read_checkpoint, save_checkpoint
from ..models.checkpoint import (CheckpointError, check_scheduler, class_names_mismatch,
                                 load_optimizer_state, remap_head)

log = logging.getLogger(__name__)

#: Name patterns of save_checkpoint's temporaries.
TEMPORARY_GLOB = "*.pth.tmp*"


def remove_stale_temporaries(result_path: Path) -> list:
    """Delete checkpoint temporaries a killed run left in `result_path`; returns them."""
    removed = []
    for tmp in Path(result_path).glob(TEMPORARY_GLOB):
        if tmp.is_file():
            tmp.unlink()
            removed.append(tmp)
            log.info("removed %s, left by an interrupted checkpoint save", tmp)
    return removed


@dataclass
class TrainState:
    """What a resumed run needs, and nothing else."""
    model: torch.nn.Module          # the bare model (no DDP wrapper)
    arch: str
    optimizer: Optional[torch.optim.Optimizer] = None
    scheduler: Any = None
    scaler: Any = None
    epoch: int = 0                  # last finished epoch
    best: Optional[dict] = None     # {"metric", "value", "epoch"}
    extra: dict = field(default_factory=dict)  # saved as is (seed, class names, model options)

    def improve(self, metric: str, value: float, lower_is_better: bool) -> bool:
        """Record `value` of `metric` for the current epoch if it beats the best; a
        non-finite value is an error, never a best."""
        if not math.isfinite(value):
            raise FloatingPointError(f"epoch {self.epoch}: {metric} is {value}")
        old = None if self.best is None else self.best["value"]
        if old is not None and not (value < old if lower_is_better else value > old):
            return False
        self.best = {"metric": metric, "value": float(value), "epoch": self.epoch}
        return True

    def write(self, path: Path) -> None:
        """This state as a checkpoint at `path`, written in one step."""
        extra = dict(self.extra, best=self.best)
        if self.scaler is not None:
            extra["scaler"] = self.scaler.state_dict()
        save_checkpoint(path, self.model, self.epoch, self.arch, self.optimizer,
                        self.scheduler, **extra)

    def save(self, result_path: Path, improved: bool, keep_every: int = 0) -> None:
        """Write this epoch's checkpoints: best.pth (if improved), then last.pth, then
        save_<epoch>.pth every `keep_every` epochs."""
        result_path = Path(result_path)
        if improved:
            self.write(result_path / "best.pth")
        self.write(result_path / "last.pth")
        if keep_every and self.epoch % keep_every == 0:
            self.write(result_path / f"save_{self.epoch}.pth")

    def resume(self, path, *, weights_only: bool = True, training: bool = True,
               milestones=None, lr_scheduler=None, labels=None, remap=False) -> None:
        """Continue from a training checkpoint: the weights always; with `training`, the
        optimiser, scheduler, scaler, best result and epoch too (evaluation-only runs need
        none of them, and a fine-tuned run's parameter groups need not match). `milestones`
        replaces a MultiStepLR's saved milestones (--overwrite-milestones); `lr_scheduler`
        ('plateau' or 'multistep') must be the saved scheduler's kind. Class names the
        checkpoint records must be the annotation's `labels` in order, unless `remap`, which
        reorders its output layer by name."""
        ckpt = read_checkpoint(path, weights_only=weights_only)
        if ckpt.epoch is None:
            raise ValueError(f"{path}: not a training checkpoint (it has no 'epoch'); to "
                             f"start from weights use --pretrain-path")
        recorded = ckpt.extra.get("class_names")
        problem = class_names_mismatch(recorded, labels, str(path)) if labels else None
        if problem and not remap:
            raise CheckpointError(problem)
        if problem:
            ckpt.state_dict = remap_head(ckpt.state_dict, recorded, labels, str(path))
            log.warning("%s: output layer reordered to the annotation's classes", path)
        load_weights(self.model, ckpt)
        self.epoch = int(ckpt.epoch)
        if not training:
            return
        if ckpt.optimizer is not None and self.optimizer is not None:
            load_optimizer_state(self.optimizer, ckpt.optimizer, str(path))
        if ckpt.scheduler is not None and self.scheduler is not None:
            if lr_scheduler is not None:
                check_scheduler(lr_scheduler, ckpt.scheduler, str(path))
            self.scheduler.load_state_dict(ckpt.scheduler)
            if milestones is not None and hasattr(self.scheduler, "milestones"):
                self.scheduler.milestones = Counter(milestones)
        if self.scaler is not None and ckpt.extra.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt.extra["scaler"])
        best = ckpt.extra.get("best")
        if best is not None and not math.isfinite(best.get("value", math.nan)):
            log.warning("%s records a non-finite best (%s); it is ignored", path, best)
            best = None
        self.best = best
