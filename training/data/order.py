"""Traversal order: which items each process reads, in which order, with which randomness.
Every random draw of a training item follows from (seed, epoch, item), and every epoch's order
from (seed, epoch); evaluation shares its items between processes without padding.

Nothing depends on global random state, on which DataLoader worker loads an item, on whether
workers persist between epochs, or on how many processes share the epoch: a run resumed from a
checkpoint draws exactly the clips an uninterrupted one would have drawn.
"""
import math
import random

import numpy as np
import torch
from torch.utils.data import Sampler


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (a hash, so that nearby inputs give unrelated
    streams)."""
    state = np.random.SeedSequence([int(p) & (2**64 - 1) for p in parts]).generate_state(2)
    return (int(state[0]) << 31 ^ int(state[1])) & (2**63 - 1)


def item_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The generator of item `index` in `epoch`: temporal start, crop, flip, jitter."""
    return random.Random(derive_seed(seed, epoch, index))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The torch generator of an epoch's order (and of the main process's own draws)."""
    return torch.Generator().manual_seed(derive_seed(seed, epoch, 2**32))


class EpochSampler(Sampler):
    """An epoch's items as ``(epoch, index)`` keys: a permutation drawn from (seed, epoch)
    (or the plain order with ``shuffle=False``), of which process `rank` of `world_size` takes
    every `world_size`-th entry (padded by wrapping around, as DistributedSampler does, so that
    every process gets as many). The dataset derives each item's generator from the key, so
    the draws travel with the index to whichever worker loads it. Call `set_epoch` before each
    epoch."""

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        if n < 1:
            raise ValueError("EpochSampler needs at least one item")
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.shuffle = shuffle
        self.epoch = 1
        self.per_rank = math.ceil(n / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self) -> torch.Tensor:
        """This epoch's full order, before it is shared out between processes."""
        if not self.shuffle:
            return torch.arange(self.n)
        return torch.randperm(self.n, generator=epoch_generator(self.seed, self.epoch))

    def __iter__(self):
        order = self.order()
        total = self.per_rank * self.world_size
        if total > self.n:
            order = torch.cat([order, order.repeat(math.ceil(total / self.n))[:total - self.n]])
        epoch = self.epoch
        return iter([(epoch, i) for i in order[self.rank:total:self.world_size].tolist()])

    def __len__(self):
        return self.per_rank


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
