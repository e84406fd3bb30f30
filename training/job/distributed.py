"""Multi-process training with torchrun: process group set-up, rank helpers, reductions.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them everything runs in one process.
"""
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto", backend: str = None) -> Context:
    """Join the process group torchrun describes (if any) and pick this process's device:
    'auto' is the local GPU when CUDA is available, else the CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine")
        dev = torch.device("cuda", local_rank if device in ("auto", "cuda") else
                           torch.device(device).index or 0)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"))
        log.info("process %d of %d on %s", rank, world_size, dev)
    return Context(rank=rank, local_rank=local_rank, world_size=world_size, device=dev)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sums(ctx: Context, *values):
    """Sum each number over all processes (a no-op in one process)."""
    if not ctx.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64,
                     device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return tuple(t.tolist())


def all_reduce_tensor(ctx: Context, t: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of a CPU tensor over all processes (in place; through the GPU
    under NCCL)."""
    if not ctx.distributed:
        return t
    if ctx.device.type == "cuda":
        on_device = t.to(ctx.device)
        dist.all_reduce(on_device)
        return t.copy_(on_device.cpu())
    dist.all_reduce(t)
    return t


def broadcast_buffers(ctx: Context, module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics): each DDP process
    updates its own in its last training step, so without this the processes would evaluate
    slightly different models, none of them quite the one rank 0 saves."""
    if not ctx.distributed:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)


def all_true(ctx: Context, flag: bool) -> bool:
    """True when `flag` is true on every process (so all of them stop together)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0],
                     device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


def gather_objects(ctx: Context, obj):
    """Every process's `obj`, in rank order (a one-element list in one process)."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(ctx: Context, obj):
    """Rank 0's `obj` on every process."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()
