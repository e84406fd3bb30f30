"""One epoch of training, clip-level validation, and sliding-window scoring of whole videos.

Every function works in one process or under torchrun: sums are all-reduced, per-video scores
gathered, and only the main process shows progress bars."""
import contextlib
import logging

import torch
import torch.nn.functional as F
from torch.utils.data import Sampler
from tqdm.auto import tqdm

from .distributed import all_reduce_sums, gather_objects

log = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or infinite: training cannot go on meaningfully."""


class ShardSampler(Sampler):
    """Every `world_size`-th index starting at `rank`, in order and without padding, so that
    evaluation sees each item exactly once across processes."""

    def __init__(self, n, rank=0, world_size=1):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class VideoBatchSampler(Sampler):
    """Batches of at most `batch_size` consecutive windows of a single video (for inference on
    uncropped frames, whose size differs between videos)."""

    def __init__(self, video_of_item, batch_size, rank=0, world_size=1):
        self.batches = []
        current, current_video = [], None
        for i, v in enumerate(video_of_item):
            if v % world_size != rank:
                continue
            if current and (v != current_video or len(current) == batch_size):
                self.batches.append(current)
                current = []
            current.append(i)
            current_video = v
        if current:
            self.batches.append(current)

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


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


def _to_device(x, device, channels_last=False):
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return x


def train_epoch(model, loader, criterion, optimizer, ctx, epoch, *, scaler=None, amp=None,
                channels_last=False, multilabel=False, on_batch=None, progress=True):
    """Train one epoch; returns (mean loss, clip accuracy) over every process's clips.
    `on_batch(batch, iteration, loss, acc)` is called on the main process after each step."""
    model.train()
    total_loss = total_hits = total_n = 0.0
    n_batches = len(loader)
    bar = tqdm(loader, desc=f"epoch {epoch} train", unit="batch", leave=False,
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    for batch, (inputs, targets) in enumerate(bar, 1):
        inputs = _to_device(inputs, ctx.device, channels_last)
        targets = targets.to(ctx.device, non_blocking=True)
        with autocast(ctx.device, amp):
            outputs = model(inputs)
            loss = criterion(outputs.float(), targets)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"epoch {epoch}, batch {batch}: the loss is {loss.item()}; "
                                f"lower --learning-rate, or check the inputs")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
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
def validate_clips(model, loader, criterion, ctx, epoch, *, amp=None, channels_last=False,
                   multilabel=False, progress=True):
    """Loss and accuracy over every validation clip (k per video); returns (loss, acc)."""
    model.eval()
    total_loss = total_hits = total_n = 0.0
    bar = tqdm(loader, desc=f"epoch {epoch} val", unit="batch", leave=False,
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    for inputs, targets, _ in bar:
        inputs = _to_device(inputs, ctx.device, channels_last)
        targets = targets.to(ctx.device, non_blocking=True)
        with autocast(ctx.device, amp):
            outputs = model(inputs).float()
        n = inputs.size(0)
        total_loss += criterion(outputs, targets).item() * n
        total_hits += _hits(outputs, targets, multilabel)
        total_n += n
    total_loss, total_hits, total_n = all_reduce_sums(ctx, total_loss, total_hits, total_n)
    return total_loss / max(total_n, 1), total_hits / max(total_n, 1)


@torch.no_grad()
def score_windows(model, loader, n_videos, ctx, *, amp=None, channels_last=False,
                  keep_windows=False, progress=True, desc="inference"):
    """Softmax scores of sliding windows (items: clip, video index, segment).

    Returns, on every process, (video score sums V x C, windows per video V) and, with
    `keep_windows`, a list of (video index, segment, scores) per window."""
    model.eval()
    sums, counts, windows = None, torch.zeros(n_videos, dtype=torch.long), []
    bar = tqdm(loader, desc=desc, unit="batch", leave=False,
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    for inputs, videos, segments in bar:
        inputs = _to_device(inputs, ctx.device, channels_last)
        with autocast(ctx.device, amp):
            probs = F.softmax(model(inputs).float(), dim=1).cpu()
        if sums is None:
            sums = torch.zeros(n_videos, probs.size(1), dtype=torch.float64)
        videos = torch.as_tensor(videos)
        sums.index_add_(0, videos, probs.double())
        counts.index_add_(0, videos, torch.ones_like(videos))
        if keep_windows:
            windows.extend(zip(videos.tolist(), segments.tolist(), probs))
    parts = gather_objects(ctx, (sums, counts, windows))
    sums = sum(p[0] for p in parts if p[0] is not None)
    counts = sum(p[1] for p in parts)
    windows = [w for p in parts for w in p[2]]
    return sums, counts, windows


def top_results(scores, class_names, k):
    """[{'label', 'score'}, ...] of the k best classes, best first (the reference's format)."""
    values, idx = torch.topk(torch.as_tensor(scores, dtype=torch.float64),
                             min(k, len(class_names)))
    return [{"label": class_names[i], "score": float(v)} for v, i in zip(values.tolist(),
                                                                        idx.tolist())]
