"""Checkpoints both ways: a reference fine-tuning checkpoint (one optimiser parameter group per
tensor) resumes into r3d's optimiser, the scheduler's type is told from its saved state, r3d's
checkpoints hold what the reference's main.py reads, and class names recorded in a checkpoint
are compared with an annotation's labels and remapped by name on request."""
import pytest
import torch

from training.models import freeze_before, generate_model, save_checkpoint, trainable_parameters
from training.models.checkpoint import (CheckpointError, check_scheduler, class_names_mismatch,
                                        load_optimizer_state, remap_head, scheduler_kind)


def _model(n_classes=4):
    torch.manual_seed(0)
    return generate_model("resnet", 10, n_classes=n_classes, widen_factor=0.125)


def _one_step(model, optimizer):
    optimizer.zero_grad()
    model(torch.randn(2, 3, 4, 16, 16)).sum().backward()
    optimizer.step()


def _reference_fine_tuning_optimizer(model, ft_begin_module):
    """The reference's fine-tuning parameters: from the first parameter of `ft_begin_module`
    on, each tensor in a group of its own; the ones before it frozen."""
    groups, on = [], False
    for name, p in model.named_parameters():
        on = on or name.split(".")[0] == ft_begin_module
        if on:
            groups.append({"params": p})
        else:
            p.requires_grad = False
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-3)


def test_reference_fine_tuning_checkpoint_resumes_into_one_group(tmp_path):
    theirs = _model()
    ref_opt = _reference_fine_tuning_optimizer(theirs, "layer4")
    _one_step(theirs, ref_opt)
    for g in ref_opt.param_groups:
        g["lr"] = 0.01  # as after a scheduler step
    saved = ref_opt.state_dict()
    assert len(saved["param_groups"]) > 1

    ours = _model()
    freeze_before(ours, "layer4")
    opt = torch.optim.SGD(trainable_parameters(ours), lr=0.1, momentum=0.9, weight_decay=1e-3)
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict(saved)  # what r3d-train did before
    load_optimizer_state(opt, saved, where="save_200.pth")
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["lr"] == 0.01
    theirs_params = [p for g in ref_opt.param_groups for p in g["params"]]
    for mine, ref in zip(opt.param_groups[0]["params"], theirs_params):
        assert torch.equal(opt.state[mine]["momentum_buffer"],
                           ref_opt.state[ref]["momentum_buffer"])
    # The same layout loads as is.
    again = torch.optim.SGD(trainable_parameters(ours), lr=0.5, momentum=0.9)
    load_optimizer_state(again, opt.state_dict())
    assert again.param_groups[0]["lr"] == 0.01


def test_optimizer_state_of_another_parameter_set_is_refused():
    theirs = _model()
    ref_opt = _reference_fine_tuning_optimizer(theirs, "layer3")
    _one_step(theirs, ref_opt)
    ours = _model()
    freeze_before(ours, "layer4")
    opt = torch.optim.SGD(trainable_parameters(ours), lr=0.1, momentum=0.9)
    with pytest.raises(CheckpointError, match="save_5.pth: the saved optimiser state has"):
        load_optimizer_state(opt, ref_opt.state_dict(), where="save_5.pth")


def test_scheduler_kind_is_told_from_the_saved_state():
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    multistep = torch.optim.lr_scheduler.MultiStepLR(opt, [50, 100]).state_dict()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "min", patience=10).state_dict()
    assert scheduler_kind(multistep) == "multistep" and scheduler_kind(plateau) == "plateau"
    assert scheduler_kind(None) is None
    check_scheduler("multistep", multistep)
    with pytest.raises(CheckpointError, match="--lr-scheduler multistep"):
        check_scheduler("plateau", multistep, where="save_10.pth")
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 10).state_dict()
    with pytest.raises(CheckpointError, match="neither MultiStepLR's nor ReduceLROnPlateau's"):
        scheduler_kind(cosine)


def test_r3d_checkpoint_holds_what_the_reference_main_reads(tmp_path):
    model = _model()
    opt = torch.optim.SGD(trainable_parameters(model), lr=0.1, momentum=0.9, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [50, 100, 150])
    _one_step(model, opt)
    sched.step()
    path = tmp_path / "save_3.pth"
    save_checkpoint(path, model, 3, "resnet-10", opt, sched, class_names=list("abcd"))
    # The reference's resume: torch.load, assert arch == '<model>-<depth>', a strict
    # load_state_dict into a fresh model, begin_epoch = epoch + 1, then its own SGD over
    # model.parameters() and MultiStepLR take the saved states.
    ckpt = torch.load(path, map_location="cpu")
    assert {"epoch", "arch", "state_dict", "optimizer", "scheduler"} <= set(ckpt)
    assert ckpt["arch"] == "resnet-10" and ckpt["epoch"] + 1 == 4
    fresh = generate_model("resnet", 10, n_classes=4, widen_factor=0.125)
    fresh.load_state_dict(ckpt["state_dict"])
    ref_opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    ref_opt.load_state_dict(ckpt["optimizer"])
    ref_sched = torch.optim.lr_scheduler.MultiStepLR(ref_opt, [50, 100, 150])
    ref_sched.load_state_dict(ckpt["scheduler"])
    assert ref_sched.last_epoch == 1
    assert all(not k.startswith("module.") for k in ckpt["state_dict"])


def test_class_names_are_compared_and_remapped_by_name():
    labels = ["Hammering", "HammerThrow", "JumpingJack", "JumpRope"]
    recorded = ["HammerThrow", "Hammering", "JumpRope", "JumpingJack"]
    assert class_names_mismatch(None, labels) is None
    assert class_names_mismatch(labels, labels) is None
    message = class_names_mismatch(recorded, labels, where="r3d50.pth")
    assert message.startswith("r3d50.pth: its 4 classes are the annotation's in another order")
    assert "--remap-labels" in message
    other = class_names_mismatch(["a", "b", "c", "d"], labels)
    assert "4 of the annotation's missing" in other and "--remap-labels" not in other

    model = _model()
    sd = model.state_dict()
    remapped = remap_head(sd, recorded, labels)
    for i, name in enumerate(labels):
        j = recorded.index(name)
        assert torch.equal(remapped["fc.weight"][i], sd["fc.weight"][j])
        assert torch.equal(remapped["fc.bias"][i], sd["fc.bias"][j])
    # A model with the remapped head scores the same clip under the annotation's indices.
    ref_model = _model()
    ref_model.eval()
    ours = _model()
    ours.load_state_dict(remapped)
    ours.eval()
    clip = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        theirs_scores, our_scores = ref_model(clip)[0], ours(clip)[0]
    for i, name in enumerate(labels):
        assert torch.allclose(our_scores[i], theirs_scores[recorded.index(name)])
    with pytest.raises(CheckpointError, match="no class"):
        remap_head(sd, recorded, ["Hammering", "Archery"])
