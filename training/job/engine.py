"""One epoch of training, clip-level validation, and sliding-window scoring of whole videos.

Every function works in one process or under torchrun: sums and per-video score sums are
all-reduced, and only the main process shows progress bars. Batches arrive as the workers made
them (uint8 clips, usually) and `Inputs` turns them into the model's float input on its device.
A batch whose items were all skipped (on_bad='skip') arrives as None and is passed over."""
import contextlib
import logging

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .distributed import all_reduce_sums, all_reduce_tensor, all_true, gather_objects

log = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or infinite: training cannot go on meaningfully."""


def autocast(device, amp):
    """Mixed precision context on CUDA; a no-op elsewhere (the CPU trains in fp32)."""
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _hits(outputs, targets, multilabel):
    """Clips whose top-1 class is (one of) their label(s)."""
    top1 = outputs.argmax(1)
    if multilabel:
        return int(targets.gather(1, top1[:, None]).gt(0.5).sum())
    return int((top1 == targets).sum())


class Inputs:
    """Collated clips -> the model's input: a non-blocking copy to `device` (from pinned
    memory on CUDA), then, for uint8 clips, conversion and normalisation there
    (`normalizer`: the transform's Normalize stage; `channels`: how many channels the model
    takes), then the memory format."""

    def __init__(self, device, normalizer=None, channels=None, channels_last=False):
        self.device, self.normalizer, self.channels = device, normalizer, channels
        self.channels_last = channels_last

    def __call__(self, x):
        x = x.to(self.device, non_blocking=True)
        if self.normalizer is not None:
            x = self.normalizer.batch(x, self.channels)
        if self.channels_last and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x


def _inputs(ctx, inputs):
    return inputs if inputs is not None else Inputs(ctx.device)


def optimizer_step(loss, optimizer, scaler=None) -> None:
    """Backward pass and parameter update, through the gradient scaler under fp16."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def train_epoch(model, loader, criterion, optimizer, ctx, epoch, *, scaler=None, amp=None,
                inputs=None, multilabel=False, on_batch=None, progress=True):
    """Train one epoch; returns (mean loss, clip accuracy) over every process's clips.
    `on_batch(batch, iteration, loss, acc)` is called on the main process after each step.
    A non-finite loss on any process stops every process with NonFiniteLoss (no hang)."""
    prepare = _inputs(ctx, inputs)
    model.train()
    total_loss = total_hits = total_n = 0.0
    n_batches = len(loader)
    bar = tqdm(loader, desc=f"epoch {epoch} train", unit="batch", leave=False,
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    for batch, items in enumerate(bar, 1):
        if items is None:
            continue
        inputs, targets = prepare(items[0]), items[1].to(ctx.device, non_blocking=True)
        with autocast(ctx.device, amp):
            outputs = model(inputs)
            loss = criterion(outputs.float(), targets)
        if not all_true(ctx, bool(torch.isfinite(loss))):
            where = f"the loss is {loss.item()}" if not torch.isfinite(loss) else \
                "another process's loss is not finite"
            raise NonFiniteLoss(f"epoch {epoch}, batch {batch}: {where}; lower "
                                f"--learning-rate, or check the inputs")
        optimizer_step(loss, optimizer, scaler)
        n = inputs.size(0)
        hits = _hits(outputs.detach(), targets, multilabel)
        total_loss += loss.item() * n
        total_hits += hits
        total_n += n
        if ctx.is_main:
            bar.set_postfix(loss=f"{loss.item():.4f}", acc=f"{hits / n:.3f}", refresh=False)
            if on_batch is not None:
                on_batch(batch, (epoch - 1) * n_batches + batch, loss.item(), hits / n)
    total_loss, total_hits, total_n = all_reduce_sums(ctx, total_loss, total_hits, total_n)
    return total_loss / max(total_n, 1), total_hits / max(total_n, 1)


@torch.no_grad()
def validate_clips(model, loader, criterion, ctx, epoch, *, amp=None, inputs=None,
                   multilabel=False, progress=True):
    """Loss and accuracy over every validation clip (k per video); returns (loss, acc)."""
    prepare = _inputs(ctx, inputs)
    model.eval()
    total_loss = total_hits = total_n = 0.0
    bar = tqdm(loader, desc=f"epoch {epoch} val", unit="batch", leave=False,
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    for items in bar:
        if items is None:
            continue
        inputs, targets = prepare(items[0]), items[1].to(ctx.device, non_blocking=True)
        with autocast(ctx.device, amp):
            outputs = model(inputs).float()
        n = inputs.size(0)
        total_loss += criterion(outputs, targets).item() * n
        total_hits += _hits(outputs, targets, multilabel)
        total_n += n
    total_loss, total_hits, total_n = all_reduce_sums(ctx, total_loss, total_hits, total_n)
    return total_loss / max(total_n, 1), total_hits / max(total_n, 1)


@torch.no_grad()
def score_windows(model, loader, n_videos, n_classes, ctx, *, amp=None, inputs=None,
                  keep_windows=False, progress=True, desc="inference"):
    """Softmax scores of sliding windows (items: clip, video index, segment).

    Returns, on every process, (video score sums V x C float32, windows per video V) summed
    over processes with all_reduce, and, with `keep_windows`, a list of (video index, segment,
    scores) per window (gathered from every process)."""
    prepare = _inputs(ctx, inputs)
    model.eval()
    sums = torch.zeros(n_videos, n_classes, dtype=torch.float32)
    counts, windows = torch.zeros(n_videos, dtype=torch.float32), []
    bar = tqdm(loader, desc=desc, unit="batch", leave=False,
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    for items in bar:
        if items is None:
            continue
        clips, videos, segments = items
        with autocast(ctx.device, amp):
            probs = F.softmax(model(prepare(clips)).float(), dim=1).cpu()
        videos = torch.as_tensor(videos)
        sums.index_add_(0, videos, probs)
        counts.index_add_(0, videos, torch.ones(len(videos)))
        if keep_windows:
            windows.extend(zip(videos.tolist(), segments.tolist(), probs))
    sums = all_reduce_tensor(ctx, sums)
    counts = all_reduce_tensor(ctx, counts)
    if keep_windows:
        windows = [w for part in gather_objects(ctx, windows) for w in part]
    return sums, counts.long(), windows


def top_results(scores, class_names, k):
    """[{'label', 'score'}, ...] of the k best classes (every class when k is None, as the
    reference's --output_topk <= 0), best first (the reference's format)."""
    n = len(class_names) if k is None else min(k, len(class_names))
    values, idx = torch.topk(torch.as_tensor(scores, dtype=torch.float64), n)
    return [{"label": class_names[i], "score": float(v)} for v, i in zip(values.tolist(),
                                                                        idx.tolist())]
