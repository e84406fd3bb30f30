"""Reading the reference's checkpoints and fine-tuning from them.

A checkpoint file is either a bare state_dict or the reference's dict
{'epoch', 'arch', 'state_dict', 'optimizer', 'scheduler'}; keys may carry the
'module.' prefix of (Distributed)DataParallel or torch.compile's '_orig_mod.'. The
architecture (family, depth, class count, shortcut type, ...) is read off the keys and
shapes, so a mismatch is explained in one message and `build_from_checkpoint` needs no
options at all.
"""
import logging
import os
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from storeformat.atomic import write_atomically

from . import densenet, resnet, resnext
from .registry import FAMILIES, arch_name, generate_model

log = logging.getLogger(__name__)

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: generate_model's option defaults, left out of inferred specs so that they read like its calls.
GENERATE_DEFAULTS = {"n_input_channels": 3, "conv1_t_size": 7, "shortcut_type": "B",
                     "widen_factor": 1.0, "k": 2, "cardinality": 32, "growth_rate": 32,
                     "num_init_features": 64, "bn_size": 4}
# The reference's 2018 DenseNets named their modules conv0/norm0 and norm.1, conv.1, ...
_LEGACY_DENSENET = ((re.compile(r"^features\.(conv|norm)0\."), r"features.\g<1>1."),
                    (re.compile(r"(\.denselayer\d+\.)(norm|relu|conv)\.([12])\."), r"\1\2\3."))
_MAX_KEYS_SHOWN = 6

Source = Union[str, os.PathLike, "Checkpoint", Mapping[str, Any]]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message names
    the file and says why."""


#: The entries of the reference implementation's checkpoint dict.
_REFERENCE_KEYS = ("epoch", "arch", "state_dict", "optimizer", "scheduler")


@dataclass
class Checkpoint:
    """A checkpoint read from `path`: the cleaned state_dict and, for the reference's
    checkpoint dict, its epoch, arch, optimizer and scheduler states (else None) and in
    `extra` any other entries it holds (r3d-train's best metric, gradient scaler, seed)."""
    path: str
    state_dict: "OrderedDict[str, torch.Tensor]"
    epoch: Optional[int] = None
    arch: Optional[str] = None
    optimizer: Optional[dict] = None
    scheduler: Optional[dict] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return infer_n_classes(self.state_dict)

    def architecture(self) -> Dict[str, Any]:
        return infer_architecture(self.state_dict)


def read_checkpoint(path: Union[str, os.PathLike], *, weights_only: bool = True,
                    map_location: Any = "cpu") -> Checkpoint:
    """Load a checkpoint file with torch.load (weights_only=True unless told otherwise:
    a pickle can run code, so only pass False for files you trust)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as e:
        text = str(e)
        if weights_only and "Weights only load failed" in text:
            reason = next((line.strip() for line in text.splitlines()
                           if "WeightsUnpickler error" in line), text.splitlines()[0])
            raise CheckpointError(
                f"checkpoint {path!r} holds Python objects beyond tensors and plain containers, "
                f"so weights_only=True refuses it ({reason}). If you trust the file, load it "
                f"with weights_only=False.") from e
        raise CheckpointError(f"checkpoint {path!r} is not a readable torch file: {e}") from e
    except Exception as e:  # torch reports bad files as RuntimeError, KeyError, EOFError ...
        raise CheckpointError(f"checkpoint {path!r} is not a readable torch file (truncated or "
                              f"not a checkpoint?): {type(e).__name__}: {e}") from e
    return checkpoint_from_object(obj, path)


def checkpoint_from_object(obj: Any, path: str = "<in memory>") -> Checkpoint:
    """A Checkpoint from what torch.load returned: a bare state_dict or a dict holding
    one under 'state_dict'."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path!r} holds a {type(obj).__name__}, not a "
                              f"state_dict or a dict with a 'state_dict' entry")
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        meta = obj
        raw = obj["state_dict"]
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        meta, raw = {}, obj
    else:
        keys = ", ".join(map(repr, list(obj)[:_MAX_KEYS_SHOWN]))
        raise CheckpointError(f"checkpoint {path!r} is neither a state_dict nor a dict with "
                              f"a 'state_dict' entry (its keys: {keys})")
    bad = [k for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path!r}: state_dict entries are not tensors: "
                              f"{', '.join(bad[:_MAX_KEYS_SHOWN])}")
    epoch = meta.get("epoch")
    extra = {k: v for k, v in meta.items() if k not in _REFERENCE_KEYS}
    return Checkpoint(path=path, state_dict=clean_state_dict(raw), epoch=epoch,
                      arch=meta.get("arch"), optimizer=meta.get("optimizer"),
                      scheduler=meta.get("scheduler"), extra=extra)


def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Strip wrapper prefixes ('module.', '_orig_mod.') and rename the reference's
    2018 DenseNet keys to the current names."""
    out = OrderedDict()
    for key, value in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix):], True
        if key.startswith("features."):
            for pattern, repl in _LEGACY_DENSENET:
                key = pattern.sub(repl, key)
        out[key] = value
    return out


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DataParallel / DistributedDataParallel / torch.compile."""
    while True:
        for attr in ("module", "_orig_mod"):
            inner = getattr(model, attr, None)
            if isinstance(inner, nn.Module):
                model = inner
                break
        else:
            return model


# ---------------------------------------------------------------- architecture inference

def _head_key(state_dict: Mapping[str, torch.Tensor]) -> str:
    for key in ("fc.weight", "classifier.weight"):
        if key in state_dict:
            return key
    raise ValueError("the state_dict has no classification head (neither 'fc.weight' nor "
                     "'classifier.weight')")


def infer_n_classes(state_dict: Mapping[str, torch.Tensor]) -> int:
    """The class count of a state_dict, read off its head's weight."""
    return int(state_dict[_head_key(state_dict)].shape[0])


def _blocks_per_stage(state_dict, prefix_fmt: str, n_stages: int) -> List[int]:
    counts = []
    for stage in range(1, n_stages + 1):
        pattern = re.compile(re.escape(prefix_fmt.format(stage)) + r"(\d+)\.")
        found = {int(m.group(1)) for k in state_dict for m in [pattern.match(k)] if m}
        counts.append(len(found))
    return counts


def _depth_of(table: Mapping[int, tuple], counts: List[int], what: str) -> int:
    for depth, layers in table.items():
        if list(layers) == counts:
            return depth
    raise ValueError(f"{what} with {counts} blocks per stage matches no known depth")


def _resnet_like(sd) -> Dict[str, Any]:
    bottleneck = "layer1.0.conv3.weight" in sd
    counts = _blocks_per_stage(sd, "layer{}.", 4)
    table = resnet.BOTTLENECK_LAYERS if bottleneck else resnet.BASIC_LAYERS
    spec: Dict[str, Any] = {}
    fc_in = sd["fc.weight"].shape[1]
    if "conv1_s.weight" in sd:
        model, stem = "resnet2p1d", sd["conv1_t.weight"]
        spec.update(n_input_channels=sd["conv1_s.weight"].shape[1])
    else:
        stem = sd["conv1.weight"]
        spec.update(n_input_channels=stem.shape[1])
        # pre-activation: the first BatchNorm of a block normalises its input, so in a
        # stage's first block (whose input is narrower or wider) it has the input's width
        conv1, bn1 = sd["layer2.0.conv1.weight"], sd["layer2.0.bn1.weight"]
        preact = bn1.shape[0] == conv1.shape[1] != conv1.shape[0]
        conv2 = sd["layer1.0.conv2.weight"]
        if preact:
            model = "preresnet"
        elif bottleneck and conv2.shape[0] != conv2.shape[1]:  # grouped 3x3x3
            model = "resnext"
            spec["cardinality"] = conv2.shape[0] // conv2.shape[1]
        elif bottleneck and sd["layer1.0.conv3.weight"].shape[0] == 2 * conv2.shape[0]:
            model = "wideresnet"  # expansion 2 without groups
        else:
            model = "resnet"
    spec["conv1_t_size"] = stem.shape[2]
    expansion = {"resnext": 2, "wideresnet": 2}.get(model, 4 if bottleneck else 1)
    base = {"resnext": resnext.BLOCK_INPLANES[3]}.get(model, resnet.BLOCK_INPLANES[3])
    if model == "wideresnet":
        k, rest = divmod(fc_in, base * expansion)
        spec["k"] = k if k and not rest else fc_in / (base * expansion)
        first_stage = int(resnet.BLOCK_INPLANES[0] * spec["k"])
    else:
        spec["widen_factor"] = fc_in / (base * expansion)
        first = resnext.BLOCK_INPLANES[0] if model == "resnext" else resnet.BLOCK_INPLANES[0]
        first_stage = int(first * spec["widen_factor"])
    if stem.shape[0] != first_stage:  # the 2018 ResNeXt and Wide ResNet: a 64-channel stem
        spec["stem_planes"] = stem.shape[0]
    spec["shortcut_type"] = "B" if any(".downsample." in k for k in sd) else "A"
    depth = _depth_of(table, counts, f"{model} ({'bottleneck' if bottleneck else 'basic'} blocks)")
    return {"model": model, "depth": depth, **spec}


def _densenet_like(sd) -> Dict[str, Any]:
    n_blocks = len({m.group(1) for k in sd for m in [re.match(r"features\.denseblock(\d+)\.", k)]
                    if m})
    counts = _blocks_per_stage(sd, "features.denseblock{}.denselayer", n_blocks)
    # denselayer indices start at 1, so count distinct names instead of trusting 0..n-1
    depth = _depth_of(densenet.BLOCK_CONFIGS, counts, "densenet")
    conv1 = sd["features.conv1.weight"]
    growth = sd["features.denseblock1.denselayer1.conv2.weight"].shape[0]
    return {"model": "densenet", "depth": depth, "n_input_channels": conv1.shape[1],
            "conv1_t_size": conv1.shape[2], "growth_rate": growth,
            "num_init_features": conv1.shape[0],
            "bn_size": sd["features.denseblock1.denselayer1.conv1.weight"].shape[0] // growth}


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """What a state_dict was saved from, as generate_model arguments: {'model', 'depth',
    'n_classes'} plus the options that differ from their defaults.

    conv1_t_stride and no_max_pool leave no trace in the weights and are not reported.
    Raises ValueError when the keys fit no known family.
    """
    sd = state_dict
    n_classes = infer_n_classes(sd)
    try:
        if "features.conv1.weight" in sd and "classifier.weight" in sd:
            spec = _densenet_like(sd)
        elif "fc.weight" in sd and ("conv1.weight" in sd or "conv1_s.weight" in sd):
            spec = _resnet_like(sd)
        else:
            raise ValueError("its keys fit none of " + ", ".join(FAMILIES))
    except KeyError as e:
        raise ValueError(f"the state_dict lacks {e.args[0]!r}, which its family needs") from None
    spec["n_classes"] = n_classes
    return {k: v for k, v in spec.items() if GENERATE_DEFAULTS.get(k, object()) != v}


def describe_architecture(spec: Mapping[str, Any]) -> str:
    """'resnet-50 (700 classes, shortcut_type A)' for an inferred spec."""
    options = [f"{k} {v}" for k, v in spec.items() if k not in ("model", "depth", "n_classes")]
    inner = ", ".join([f"{spec['n_classes']} classes"] + options)
    return f"{arch_name(spec['model'], spec['depth'])} ({inner})"


def spec_call(spec: Mapping[str, Any]) -> str:
    """The generate_model call that builds a spec, for error messages."""
    args = [repr(spec["model"]), str(spec["depth"])] + [
        f"{k}={v!r}" for k, v in spec.items() if k not in ("model", "depth")]
    return f"generate_model({', '.join(args)})"


# ---------------------------------------------------------------- loading

def _as_checkpoint(source: Source, weights_only: bool) -> Checkpoint:
    if isinstance(source, Checkpoint):
        return source
    if isinstance(source, Mapping):
        return checkpoint_from_object(source)
    return read_checkpoint(source, weights_only=weights_only)


def _mismatch_message(model: nn.Module, ckpt: Checkpoint) -> Optional[str]:
    """None when the state_dict fits the model exactly, else one explanation."""
    own = model.state_dict()
    theirs = ckpt.state_dict
    # old files (torch < 0.4.1) have no num_batches_tracked; BatchNorm fills it in
    missing = [k for k in own if k not in theirs and not k.endswith("num_batches_tracked")]
    extra = [k for k in theirs if k not in own]
    shapes = [f"{k}: checkpoint {tuple(theirs[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in theirs and theirs[k].shape != v.shape]
    if not (missing or extra or shapes):
        return None

    def listing(what, items):
        hidden = len(items) - _MAX_KEYS_SHOWN
        more = f", ... ({hidden} more)" if hidden > 0 else ""
        return f"{len(items)} {what}: {', '.join(items[:_MAX_KEYS_SHOWN])}{more}"

    try:
        own_desc = describe_architecture(infer_architecture(own))
    except ValueError:
        own_desc = type(model).__name__
    try:
        spec = infer_architecture(theirs)
        looks = f"it looks like {describe_architecture(spec)}; build that with {spec_call(spec)}"
    except ValueError as e:
        looks = f"it looks like no model of the registry ({e})"
    saved = f" (saved as arch {ckpt.arch!r})" if ckpt.arch else ""
    parts = [listing(what, items) for what, items in
             (("missing keys", missing), ("unexpected keys", extra), ("shape mismatches", shapes))
             if items]
    return (f"checkpoint {ckpt.path!r}{saved} does not fit the model {own_desc}: {looks}. "
            + "; ".join(parts))


def load_weights(model: nn.Module, source: Source, *, weights_only: bool = True) -> Checkpoint:
    """Load a checkpoint into `model` strictly; CheckpointError explains any mismatch.
    Returns the Checkpoint (epoch, arch, optimizer and scheduler states for resuming)."""
    ckpt = _as_checkpoint(source, weights_only)
    target = _unwrap(model)
    problem = _mismatch_message(target, ckpt)
    if problem:
        raise CheckpointError(problem)
    target.load_state_dict(ckpt.state_dict, strict=True)
    return ckpt


def head_name(model: nn.Module) -> str:
    """'fc' or 'classifier': the attribute holding the model's final Linear layer."""
    model = _unwrap(model)
    for name in ("fc", "classifier"):
        if isinstance(getattr(model, name, None), nn.Linear):
            return name
    raise ValueError(f"{type(model).__name__} has no 'fc' or 'classifier' Linear head")


def replace_head(model: nn.Module, n_classes: int) -> nn.Linear:
    """Swap the head for a freshly initialised Linear with `n_classes` outputs (same
    device and dtype) and return it."""
    if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    model = _unwrap(model)
    name = head_name(model)
    old = getattr(model, name)
    new = nn.Linear(old.in_features, n_classes, device=old.weight.device, dtype=old.weight.dtype)
    setattr(model, name, new)
    return new


def fine_tuning_units(model: nn.Module) -> List[str]:
    """The names ft_begin_module may take, in forward order: the top-level modules that
    hold parameters (for DenseNet the children of `features`, then 'classifier')."""
    return [name for name, _ in _units(_unwrap(model))]


def _units(model: nn.Module):
    def has_parameters(module):
        return any(True for _ in module.parameters())

    for name, child in model.named_children():
        if name == "features" and isinstance(child, nn.Sequential):
            yield from ((n, c) for n, c in child.named_children() if has_parameters(c))
        elif has_parameters(child):
            yield name, child


def _stay_in_eval(module: nn.Module, args) -> None:
    """Forward pre-hook of a frozen BatchNorm: normalise with the stored statistics and
    never update them, even after model.train()."""
    module.training = False


def freeze_before(model: nn.Module, ft_begin_module: Optional[str]) -> List[str]:
    """Freeze every module before `ft_begin_module` (the reference's option: the first
    module that is trained): its parameters stop requiring grad and its BatchNorms keep
    their running statistics fixed in train mode too. Returns the frozen module names."""
    if not ft_begin_module:
        return []
    units = list(_units(_unwrap(model)))
    names = [n for n, _ in units]
    if ft_begin_module not in names:
        raise ValueError(f"ft_begin_module {ft_begin_module!r} is not a module of this model; "
                         f"valid: {', '.join(names)}")
    frozen = []
    for name, unit in units:
        if name == ft_begin_module:
            break
        for p in unit.parameters():
            p.requires_grad_(False)
        for m in unit.modules():
            if isinstance(m, _BatchNorm) and not getattr(m, "_r3d_frozen", False):
                m.register_forward_pre_hook(_stay_in_eval)
                m._r3d_frozen = True
                m.eval()
        frozen.append(name)
    return frozen


def trainable_parameters(model: nn.Module) -> List[nn.Parameter]:
    """The parameters an optimizer should get after freeze_before."""
    return [p for p in model.parameters() if p.requires_grad]


def load_pretrained(model: nn.Module, source: Source, n_finetune_classes: Optional[int] = None,
                    ft_begin_module: Optional[str] = None, *,
                    weights_only: bool = True) -> nn.Module:
    """Load pretrained weights and prepare fine-tuning, as the reference's
    --pretrain_path / --n_finetune_classes / --ft_begin_module do.

    With n_finetune_classes the head is first sized to the checkpoint's class count
    (read off its head), loaded, then replaced by a fresh n_finetune_classes head;
    without it the model's head must already fit. Returns the model.
    """
    ckpt = _as_checkpoint(source, weights_only)
    if n_finetune_classes is not None:
        n_pretrain = ckpt.n_classes
        if getattr(_unwrap(model), head_name(model)).out_features != n_pretrain:
            replace_head(model, n_pretrain)
    load_weights(model, ckpt)
    if n_finetune_classes is not None:
        replace_head(model, n_finetune_classes)
    frozen = freeze_before(model, ft_begin_module)
    log.info("loaded %s%s%s", ckpt.path,
             f", new {n_finetune_classes}-class head" if n_finetune_classes is not None else "",
             f", frozen: {', '.join(frozen)}" if frozen else "")
    return model


def build_from_checkpoint(source: Source, n_finetune_classes: Optional[int] = None,
                          ft_begin_module: Optional[str] = None, *, weights_only: bool = True,
                          **options) -> nn.Module:
    """Build the model a checkpoint was saved from (architecture read off its keys) and
    load it; `options` add what the weights cannot tell (conv1_t_stride, no_max_pool)."""
    ckpt = _as_checkpoint(source, weights_only)
    try:
        spec = infer_architecture(ckpt.state_dict)
    except ValueError as e:
        raise CheckpointError(f"checkpoint {ckpt.path!r}: cannot tell its architecture: {e}") \
            from None
    spec.update(options)
    model = generate_model(**spec)
    return load_pretrained(model, ckpt, n_finetune_classes, ft_begin_module)


def save_checkpoint(path: Union[str, os.PathLike], model: nn.Module, epoch: int, arch: str,
                    optimizer: Optional[torch.optim.Optimizer] = None,
                    scheduler: Optional[Any] = None, **extra: Any) -> None:
    """Write the reference's checkpoint dict (epoch, arch, state_dict without wrapper
    prefixes, optimizer, scheduler, then any `extra` entries) atomically: a crash leaves the
    old file intact."""
    path = os.fspath(path)
    clash = sorted(set(extra) & set(_REFERENCE_KEYS))
    if clash:
        raise ValueError(f"extra checkpoint entries {clash} would replace the reference's keys")
    state = {"epoch": epoch, "arch": arch, "state_dict": _unwrap(model).state_dict()}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    state.update(extra)
    write_atomically(path, lambda tmp: torch.save(state, tmp))


# ---------------------------------------------------------------- resuming reference runs

def load_optimizer_state(optimizer: torch.optim.Optimizer, state: Mapping[str, Any],
                         where: str = "checkpoint") -> None:
    """Load a saved optimiser state into `optimizer`, also when its parameter groups differ
    from the optimiser's: the reference's fine-tuning checkpoints hold one group per tensor.
    Parameters are then matched by order (both list them in the model's order); each of the
    optimiser's groups takes the hyperparameters (lr, momentum, ...) of the saved group of its
    first parameter. The parameter counts and the saved buffers' shapes must agree."""
    groups, saved_groups = optimizer.param_groups, state.get("param_groups")
    if not isinstance(saved_groups, list) or not isinstance(state.get("state"), Mapping):
        raise CheckpointError(f"{where}: the optimizer entry is not an optimiser state")
    if [len(g["params"]) for g in groups] == [len(g["params"]) for g in saved_groups]:
        optimizer.load_state_dict(state)
        return
    saved_ids = [(i, pid) for i, g in enumerate(saved_groups) for pid in g["params"]]
    params = [p for g in groups for p in g["params"]]
    if len(saved_ids) != len(params):
        raise CheckpointError(
            f"{where}: the saved optimiser state has {len(saved_ids)} parameter tensors in "
            f"{len(saved_groups)} group(s), the optimiser {len(params)} in {len(groups)}: "
            f"another model or --ft-begin-module (the reference's default '' trains all)")
    new_state, new_groups, position = {}, [], 0
    for group in groups:
        first_saved = saved_groups[saved_ids[position][0]]
        hyper = {k: v for k, v in first_saved.items() if k != "params"}
        indices = list(range(position, position + len(group["params"])))
        for index in indices:
            param, saved = params[index], state["state"].get(saved_ids[index][1])
            if saved is not None:
                _check_buffers(saved, param, index, where)
                new_state[index] = saved
        new_groups.append({**hyper, "params": indices})
        position += len(group["params"])
    optimizer.load_state_dict({"state": new_state, "param_groups": new_groups})
    log.info("%s: optimiser state of %d group(s) mapped onto %d by parameter order", where,
             len(saved_groups), len(groups))


def _check_buffers(saved, param, index, where):
    for name, value in saved.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
            raise CheckpointError(f"{where}: optimiser state {name!r} of parameter {index} has "
                                  f"shape {tuple(value.shape)}, the parameter "
                                  f"{tuple(param.shape)}")


#: r3d-train's --lr-scheduler names of the schedulers a checkpoint can hold.
SCHEDULER_KINDS = {"plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
                   "multistep": torch.optim.lr_scheduler.MultiStepLR}


def scheduler_kind(state: Optional[Mapping[str, Any]], where: str = "checkpoint"
                   ) -> Optional[str]:
    """'plateau' (ReduceLROnPlateau) or 'multistep' (MultiStepLR): the scheduler a saved
    scheduler state belongs to, told by its entries; None without a state."""
    if state is None:
        return None
    if isinstance(state, Mapping):
        if "milestones" in state and "gamma" in state:
            return "multistep"
        if "patience" in state and "num_bad_epochs" in state:
            return "plateau"
    keys = sorted(state) if isinstance(state, Mapping) else type(state).__name__
    raise CheckpointError(f"{where}: the scheduler state is neither MultiStepLR's nor "
                          f"ReduceLROnPlateau's (entries: {keys})")


def check_scheduler(lr_scheduler: str, state: Optional[Mapping[str, Any]],
                    where: str = "checkpoint") -> None:
    """Raise CheckpointError when a saved scheduler state is not of the `lr_scheduler` kind
    r3d-train was asked for (loading it would merge one scheduler's state into another's)."""
    kind = scheduler_kind(state, where)
    if kind is not None and kind != lr_scheduler:
        raise CheckpointError(f"{where}: its scheduler is {kind} ({SCHEDULER_KINDS[kind].__name__}"
                              f"), not {lr_scheduler}: resume with --lr-scheduler {kind}")


def class_names_mismatch(recorded: Optional[List[str]], labels: List[str],
                         where: str = "checkpoint") -> Optional[str]:
    """None when a checkpoint's recorded class names (`ckpt.extra.get('class_names')`) equal
    the annotation's `labels` or were not recorded, else a message saying how they differ."""
    if recorded is None or list(recorded) == list(labels):
        return None
    recorded, labels = list(recorded), list(labels)
    if sorted(recorded) == sorted(labels):
        moved = [n for i, n in enumerate(labels) if recorded[i] != n]
        return (f"{where}: its {len(recorded)} classes are the annotation's in another order "
                f"({len(moved)} at other indices, e.g. {moved[:4]}); pass --remap-labels to "
                f"reorder its output layer by name")
    missing = [n for n in labels if n not in set(recorded)]
    extra = [n for n in recorded if n not in set(labels)]
    return (f"{where}: its classes differ from the annotation's: {len(missing)} of the "
            f"annotation's missing (e.g. {missing[:4]}), {len(extra)} not in the annotation "
            f"(e.g. {extra[:4]})" + ("; pass --remap-labels to keep the rows of the "
                                     "annotation's classes" if not missing else ""))


def remap_head(state_dict: Mapping[str, torch.Tensor], recorded: List[str],
               labels: List[str], where: str = "checkpoint") -> "OrderedDict[str, torch.Tensor]":
    """A copy of `state_dict` whose classification head has one row per annotation label, in
    the annotation's order, taken by name from the checkpoint's rows (`recorded`: its class
    names). Every label must be a recorded class."""
    key = _head_key(state_dict)
    n_rows = state_dict[key].shape[0]
    if len(recorded) != n_rows:
        raise CheckpointError(f"{where}: it records {len(recorded)} class names for a head of "
                              f"{n_rows} outputs")
    position = {name: i for i, name in enumerate(recorded)}
    missing = [n for n in labels if n not in position]
    if missing:
        raise CheckpointError(f"{where}: cannot remap its output layer: it has no class "
                              f"{missing[:4]} of the annotation")
    index = torch.tensor([position[n] for n in labels], dtype=torch.long)
    out = OrderedDict(state_dict)
    for name in (key, key[:-len("weight")] + "bias"):
        if name in out:
            out[name] = out[name].index_select(0, index)
    return out
