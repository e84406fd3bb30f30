"""The trainer's parts on their own: randomness as data, uint8 clips normalised after
collation, freezing after SyncBatchNorm, the train state's checkpoints, one-line worker errors."""
import math

import pytest
import torch
from torch.utils.data import DataLoader

from training.job.builders import sync_and_freeze
from training.data.datasets import (ClipLoadError, TrainingClips, ValidationClips,
                                    collate_multi_clips)
from training.job.engine import Inputs
from training.models import generate_model, read_checkpoint
from training.data.order import EpochSampler, item_rng
from training.data.sampling import TemporalEvenCrop
from training.job.state import TrainState, remove_stale_temporaries
from training.data.transforms import eval_transform, train_transform
from training_data import build_stores, copy_tree, reference_doc

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return build_stores(tmp_path_factory)


def test_epoch_order_and_draws_follow_from_seed_epoch_and_item():
    one = list(EpochSampler(10, seed=3))
    assert sorted(i for _, i in one) == list(range(10)) and {e for e, _ in one} == {1}
    assert one == list(EpochSampler(10, seed=3))
    two = EpochSampler(10, seed=3)
    two.set_epoch(2)
    assert [i for _, i in two] != [i for _, i in one]
    # 3 processes share the same order, padded so each gets as many items
    parts = [list(EpochSampler(10, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert [len(p) for p in parts] == [4, 4, 4]
    merged = [p[k] for k in range(4) for p in parts][:10]
    assert merged == one
    a, b = item_rng(1, 2, 3), item_rng(1, 2, 3)
    assert [a.random() for _ in range(3)] == [b.random() for _ in range(3)]
    assert item_rng(1, 2, 3).random() != item_rng(1, 3, 2).random()


@pytest.mark.parametrize("transform", [
    train_transform(32, crop="corner"), train_transform(32, crop="random"),
    train_transform(32, value_scale=255, norm="activitynet")])
def test_uint8_clips_normalised_after_collation_equal_the_float_path(stores, transform):
    floats = TrainingClips(reference_doc(), stores["hdf5"], transform=transform)
    bytes_ = TrainingClips(reference_doc(), stores["hdf5"], transform=transform,
                           output="uint8")
    keys = [(5, i) for i in range(len(floats))]
    expect = torch.stack([floats[k][0] for k in keys])
    batch = torch.stack([bytes_[k][0] for k in keys])
    assert batch.dtype == torch.uint8 and batch.shape == expect.shape
    got = Inputs(torch.device("cpu"), transform.normalizer())(batch)
    assert torch.allclose(got, expect, atol=1e-6, rtol=0)


def test_validation_uint8_batches_through_workers(stores):
    doc = reference_doc(subsets=["validation"] * 4)
    tf = eval_transform(32)
    kw = dict(transform=tf, sampler=TemporalEvenCrop(8, 3))
    expect = ValidationClips(doc, stores["jpg"], **kw)
    ds = ValidationClips(doc, stores["jpg"], output="uint8", **kw)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_multi_clips,
                        multiprocessing_context="fork")
    got = torch.cat([Inputs(torch.device("cpu"), tf.normalizer())(c) for c, _, _ in loader])
    want = torch.cat([expect[i][0] for i in range(len(expect))])
    assert torch.allclose(got, want, atol=1e-6, rtol=0)


def test_frozen_batchnorm_statistics_survive_syncbatchnorm_conversion():
    model = generate_model("resnet", 10, n_classes=3, widen_factor=0.25, no_max_pool=True)
    model, frozen = sync_and_freeze(model, True, "layer4")
    assert frozen == ("conv1", "bn1", "layer1", "layer2", "layer3")
    assert isinstance(model.bn1, torch.nn.SyncBatchNorm)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.train()
    model.layer4.eval()  # SyncBatchNorm trains only on CUDA: exercise the frozen ones here
    model(torch.randn(2, 3, 8, 32, 32))
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), f"{k} changed but is frozen"
    assert not any(p.requires_grad for p in model.layer3.parameters())


def _state(tmp_path):
    model = generate_model("resnet", 10, n_classes=3, widen_factor=0.125)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [2])
    return TrainState(model, "resnet-10", opt, sched, extra={"class_names": ["a", "b", "c"]})


def test_best_is_never_stale_after_a_kill_between_checkpoints(tmp_path, monkeypatch):
    state = _state(tmp_path)
    state.epoch = 1
    assert state.improve("val_loss", 2.0, lower_is_better=True)
    state.save(tmp_path, True)
    state.epoch = 2
    improved = state.improve("val_loss", 1.0, lower_is_better=True)
    written = []
    real = TrainState.write

    def killed_after_best(self, path):
        real(self, path)
        written.append(path.name)
        if path.name == "best.pth":
            raise KeyboardInterrupt  # the kill: last.pth is never replaced
    monkeypatch.setattr(TrainState, "write", killed_after_best)
    with pytest.raises(KeyboardInterrupt):
        state.save(tmp_path, improved)
    assert written == ["best.pth"]
    last, best = read_checkpoint(tmp_path / "last.pth"), read_checkpoint(tmp_path / "best.pth")
    # last.pth still describes epoch 1, whose best it names; best.pth is never older than it
    assert last.epoch == 1 and last.extra["best"]["epoch"] == 1 and best.epoch == 2
    assert last.extra["class_names"] == ["a", "b", "c"]


def test_non_finite_results_are_never_a_best(tmp_path):
    state = _state(tmp_path)
    state.epoch = 3
    with pytest.raises(FloatingPointError, match="epoch 3: val_loss is nan"):
        state.improve("val_loss", math.nan, lower_is_better=True)
    assert state.best is None


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / "last.pth.tmp1234").write_bytes(b"x" * 10)
    (tmp_path / "keep.txt").write_text("x")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == ["last.pth.tmp1234"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_a_bad_frame_in_a_worker_is_one_line(tmp_path, stores):
    jpg = copy_tree(stores["jpg"], tmp_path / "jpg")
    for frame in (jpg / "walk" / "v_walk_0").glob("image_*.jpg"):
        frame.write_bytes(b"not a jpeg")
    doc = reference_doc(["walk/v_walk_0"])
    ds = TrainingClips(doc, jpg, transform=train_transform(32), output="uint8")
    loader = DataLoader(ds, batch_size=1, num_workers=1, multiprocessing_context="fork")
    with pytest.raises(ClipLoadError) as e:
        next(iter(loader))
    assert "\n" not in str(e.value) and "v_walk_0" in str(e.value)
