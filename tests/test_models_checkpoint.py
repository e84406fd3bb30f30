"""Checkpoint loading and fine-tuning: the reference's checkpoint dict, 'module.'
prefixes, architecture inference, mismatch messages, head replacement and freezing."""
import argparse
import collections
import re

import pytest
import torch
from torch import nn

from training.models import (Checkpoint, CheckpointError, build_from_checkpoint,
                             clean_state_dict, fine_tuning_units, freeze_before, generate_model,
                             infer_architecture, infer_n_classes, list_models, load_pretrained,
                             load_weights, parse_arch, read_checkpoint, replace_head,
                             save_checkpoint, trainable_parameters)

CLIP = (2, 3, 8, 32, 32)


def _randomise_bn_stats(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _trained_reference_checkpoint(path, name="resnet", depth=10, n_classes=700, **options):
    """A file as the reference's training writes it: DataParallel keys ('module.'),
    nested under 'state_dict', with optimizer and MultiStepLR scheduler states."""
    torch.manual_seed(3)
    model = _randomise_bn_stats(generate_model(name, depth, n_classes=n_classes, **options))
    wrapped = nn.DataParallel(model)
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[50, 100, 150])
    out = wrapped(torch.randn(2, 3, 8, 32, 32))
    nn.functional.cross_entropy(out, torch.tensor([1, 2])).backward()
    optimizer.step()
    scheduler.step()
    state = {"epoch": 200, "arch": f"{name}-{depth}", "state_dict": wrapped.state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    assert next(iter(state["state_dict"])).startswith("module.")
    torch.save(state, path)
    return model.eval()


@pytest.fixture(scope="module")
def r10_k700(tmp_path_factory):
    """A resnet-10, 700-class (Kinetics-700 sized) checkpoint in the reference's format."""
    path = tmp_path_factory.mktemp("ckpt") / "r3d10_K_200ep.pth"
    model = _trained_reference_checkpoint(path)
    return path, model


def _same_backbone(a, b, skip_head="fc"):
    sa, sb = a.state_dict(), b.state_dict()
    keys = [k for k in sa if not k.startswith(skip_head + ".")]
    return all(torch.equal(sa[k], sb[k]) for k in keys)


def test_reference_checkpoint_dict_with_module_prefixes_loads(r10_k700):
    path, source = r10_k700
    ckpt = read_checkpoint(path)  # weights_only=True, with a Counter in the scheduler state
    assert (ckpt.epoch, ckpt.arch) == (200, "resnet-10")
    assert ckpt.scheduler["milestones"] == collections.Counter([50, 100, 150])
    assert ckpt.optimizer["param_groups"][0]["momentum"] == 0.9
    assert not any(k.startswith("module.") for k in ckpt.state_dict)
    assert ckpt.n_classes == 700
    target = generate_model("resnet", 10, n_classes=700).eval()
    load_weights(target, path)
    x = torch.randn(*CLIP)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))
    # the optimizer state resumes into an optimizer over the loaded model
    opt = torch.optim.SGD(target.parameters(), lr=0.1, momentum=0.9)
    opt.load_state_dict(ckpt.optimizer)
    assert all("momentum_buffer" in s for s in opt.state.values())


def test_bare_state_dict_file_loads(tmp_path):
    torch.manual_seed(0)
    source = _randomise_bn_stats(generate_model("resnet2p1d", 10, n_classes=3)).eval()
    path = tmp_path / "bare.pth"
    torch.save(source.state_dict(), path)
    ckpt = read_checkpoint(path)
    assert ckpt.epoch is None and ckpt.arch is None
    target = generate_model("resnet2p1d", 10, n_classes=3).eval()
    load_weights(target, ckpt)
    x = torch.randn(*CLIP)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


def test_wrapper_prefixes_are_stripped():
    sd = generate_model("resnet", 10, n_classes=2).state_dict()
    wrapped = {f"module._orig_mod.{k}": v for k, v in sd.items()}
    assert list(clean_state_dict(wrapped)) == list(sd)
    target = nn.DataParallel(generate_model("resnet", 10, n_classes=2))
    load_weights(target, wrapped)  # into the bare model inside the wrapper
    assert torch.equal(target.module.fc.weight, sd["fc.weight"])


def test_checkpoints_of_old_torch_without_num_batches_tracked_load():
    source = _randomise_bn_stats(generate_model("resnet", 10, n_classes=4))
    old = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    target = generate_model("resnet", 10, n_classes=4)
    load_weights(target, old)
    assert torch.equal(target.bn1.running_var, source.bn1.running_var)


def test_legacy_densenet_key_names_are_renamed():
    source = _randomise_bn_stats(generate_model("densenet", 121, n_classes=5)).eval()
    legacy = {}
    for k, v in source.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        k = re.sub(r"^features\.(conv|norm)1\.", r"features.\g<1>0.", k)
        k = re.sub(r"(denselayer\d+\.)(norm|conv)([12])\.", r"\1\2.\3.", k)
        legacy["module." + k] = v
    assert "module.features.denseblock1.denselayer1.conv.2.weight" in legacy
    assert "module.features.conv0.weight" in legacy
    target = generate_model("densenet", 121, n_classes=5)
    load_weights(target, legacy)
    loaded, expected = target.state_dict(), source.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items()
               if not k.endswith("num_batches_tracked"))


# ------------------------------------------------------------------ inference of the architecture

def test_architecture_is_inferred_for_every_listed_model():
    """Also builds every listed architecture (on the meta device: no memory, no init)."""
    with torch.device("meta"):
        for arch in list_models():
            name, depth = parse_arch(arch)
            spec = infer_architecture(generate_model(name, depth, n_classes=11).state_dict())
            assert spec == {"model": name, "depth": depth, "n_classes": 11}, arch


@pytest.mark.parametrize("name,depth,options", [
    ("resnet", 18, {"shortcut_type": "A"}),
    ("resnet", 50, {"shortcut_type": "A", "n_input_channels": 2, "conv1_t_size": 3}),
    ("resnet", 34, {"widen_factor": 0.5}),
    ("resnet2p1d", 50, {"conv1_t_size": 5, "shortcut_type": "A"}),
    ("preresnet", 18, {"widen_factor": 2.0}),
    ("preresnet", 200, {"n_input_channels": 2}),
    ("wideresnet", 50, {"k": 4}),
    ("resnext", 101, {"cardinality": 16}),
    ("densenet", 169, {"growth_rate": 16, "bn_size": 2, "n_input_channels": 2}),
    ("resnext", 101, {"stem_planes": 64}),  # the 2018 resnext-101-kinetics.pth layout
    ("wideresnet", 50, {"stem_planes": 64}),
])
def test_architecture_options_are_inferred(name, depth, options):
    with torch.device("meta"):
        sd = generate_model(name, depth, n_classes=7, **options).state_dict()
        spec = infer_architecture(sd)
        assert spec == {"model": name, "depth": depth, "n_classes": 7, **options}
        rebuilt = generate_model(**spec).state_dict()
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in sd.items()}


def test_unknown_state_dict_is_named():
    with pytest.raises(ValueError, match="no classification head"):
        infer_architecture({"encoder.weight": torch.zeros(2)})
    assert infer_n_classes({"classifier.weight": torch.zeros(13, 4)}) == 13


# ------------------------------------------------------------------ mismatch messages

def test_mismatch_names_what_the_checkpoint_looks_like(r10_k700):
    path, _ = r10_k700
    model = generate_model("resnet", 18, n_classes=400)
    with pytest.raises(CheckpointError) as e:
        load_weights(model, path)
    msg = str(e.value)
    assert str(path) in msg and "saved as arch 'resnet-10'" in msg
    assert "the model resnet-18 (400 classes)" in msg
    assert "looks like resnet-10 (700 classes)" in msg
    assert "generate_model('resnet', 10, n_classes=700)" in msg
    assert "missing keys: layer1.1.conv1.weight" in msg
    assert "fc.weight: checkpoint (700, 512) vs model (400, 512)" in msg
    assert "\n" not in msg


def test_old_shortcut_a_checkpoint_is_recognised(tmp_path):
    """As the 2018 Kinetics-400 files: shortcut A, 'module.' keys, pre-zip torch format."""
    old = generate_model("resnet", 10, n_classes=400, shortcut_type="A")
    path = tmp_path / "resnet-10-kinetics.pth"
    torch.save({"arch": "resnet-10", "state_dict": {"module." + k: v for k, v in
                                                    old.state_dict().items()}}, path,
               _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError) as e:
        load_weights(generate_model("resnet", 10), path)
    msg = str(e.value)
    assert "looks like resnet-10 (400 classes, shortcut_type A)" in msg
    assert "shortcut_type='A'" in msg
    assert re.search(r"\d+ missing keys: layer2\.0\.downsample\.0\.weight", msg)
    assert "unexpected keys" not in msg
    model = build_from_checkpoint(path)
    assert torch.equal(model.layer4[0].conv1.weight, old.layer4[0].conv1.weight)


def test_head_mismatch_without_finetune_classes_is_an_error(r10_k700):
    path, _ = r10_k700
    with pytest.raises(CheckpointError, match=r"shape mismatches: fc.weight"):
        load_pretrained(generate_model("resnet", 10, n_classes=101), path)


# ------------------------------------------------------------------ fine-tuning

def test_finetune_replaces_the_head_and_keeps_the_backbone(r10_k700):
    path, source = r10_k700
    model = generate_model("resnet", 10, n_classes=101)  # as built for the target data set
    load_pretrained(model, path, n_finetune_classes=101)
    assert model.fc.out_features == 101 and model.fc.in_features == 512
    assert _same_backbone(model, source)
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        assert model.eval()(torch.randn(*CLIP)).shape == (2, 101)


def test_build_from_checkpoint_needs_no_options(r10_k700):
    path, source = r10_k700
    model = build_from_checkpoint(path, n_finetune_classes=51, ft_begin_module="layer4")
    assert type(model).__name__ == "ResNet" and len(model.layer1) == 1
    assert model.fc.out_features == 51
    assert _same_backbone(model, source)
    assert not model.layer3[0].conv1.weight.requires_grad
    assert model.layer4[0].conv1.weight.requires_grad


def test_frozen_modules_do_not_change_in_a_training_step(r10_k700):
    path, _ = r10_k700
    model = generate_model("resnet", 10, n_classes=700)
    load_pretrained(model, path, n_finetune_classes=5, ft_begin_module="layer3")
    assert fine_tuning_units(model) == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4",
                                        "fc"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # as a training loop does; frozen BatchNorms must stay in eval
    # a naive optimizer over every parameter, with weight decay and momentum
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    for _ in range(2):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(torch.randn(*CLIP)), torch.tensor([0, 4]))
        loss.backward()
        opt.step()
    after = model.state_dict()
    frozen = ("conv1.", "bn1.", "layer1.", "layer2.")
    for k, v in after.items():
        if k.startswith(frozen):
            assert torch.equal(v, before[k]), f"{k} changed"
    for k in ("layer3.0.conv1.weight", "layer3.0.bn1.running_mean", "layer4.0.bn2.weight",
              "fc.weight"):
        assert not torch.equal(after[k], before[k]), f"{k} did not train"
    assert model.layer2[0].bn1.training is False and model.layer3[0].bn1.training is True
    assert {id(p) for p in trainable_parameters(model)} == {
        id(p) for n, p in model.named_parameters() if not n.startswith(frozen)}


def test_densenet_finetuning_units_and_head():
    model = generate_model("densenet", 121, n_classes=10)
    units = fine_tuning_units(model)
    assert units[:3] == ["conv1", "norm1", "denseblock1"]
    assert units[-3:] == ["denseblock4", "norm5", "classifier"]
    frozen = freeze_before(model, "denseblock4")
    assert frozen == units[:units.index("denseblock4")]
    assert not model.features.transition3.conv.weight.requires_grad
    assert model.features.norm5.weight.requires_grad
    head = replace_head(model, 3)
    assert model.classifier is head and head.in_features == 1024 and head.out_features == 3


def test_unknown_ft_begin_module_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'layer5' .* valid: conv1, bn1, layer1, layer2, layer3, "
                                         r"layer4, fc"):
        freeze_before(generate_model("resnet", 10), "layer5")
    assert freeze_before(generate_model("resnet", 10), None) == []


# ------------------------------------------------------------------ bad files and saving

def test_weights_only_refuses_pickled_objects(tmp_path):
    path = tmp_path / "objects.pth"
    sd = generate_model("resnet", 10, n_classes=2).state_dict()
    torch.save({"state_dict": sd, "opts": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match=r"weights_only=False"):
        read_checkpoint(path)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        read_checkpoint(tmp_path / "nothere.pth")
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"this is not a torch file")
    with pytest.raises(CheckpointError, match="garbage.pth.*not a readable torch file"):
        read_checkpoint(bad)
    truncated = tmp_path / "truncated.pth"
    torch.save({"fc.weight": torch.zeros(4, 4)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        read_checkpoint(truncated)
    odd = tmp_path / "list.pth"
    torch.save([1, 2], odd)
    with pytest.raises(CheckpointError, match="holds a list"):
        read_checkpoint(odd)


def test_save_checkpoint_writes_the_reference_format(tmp_path):
    torch.manual_seed(0)
    model = nn.DataParallel(generate_model("resnet2p1d", 10, n_classes=6))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "min", patience=10)
    path = tmp_path / "save_7.pth"
    save_checkpoint(path, model, epoch=7, arch="resnet2p1d-10", optimizer=opt, scheduler=sched)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"epoch", "arch", "state_dict", "optimizer", "scheduler"}
    assert raw["epoch"] == 7 and raw["arch"] == "resnet2p1d-10"
    assert "conv1_s.weight" in raw["state_dict"]  # no 'module.' prefix
    assert raw["scheduler"]["patience"] == 10
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    ckpt = read_checkpoint(path)
    assert isinstance(ckpt, Checkpoint)
    assert infer_architecture(ckpt.state_dict) == {"model": "resnet2p1d", "depth": 10,
                                                   "n_classes": 6}
