"""The architecture of a run that resumes or fine-tunes: read from the checkpoint it starts from
(r3d checkpoints record it, see training.job.checkpoint_info), so that no architecture flag needs
repeating (nor, resuming, --lr-scheduler); flags given that contradict the checkpoint are
refused in r3d-train's words."""
from ..models import arch_name, infer_architecture, read_checkpoint
from ..models.checkpoint import GENERATE_DEFAULTS, scheduler_kind
from .builders import TrainingSetupError, model_options
from .checkpoint_info import model_spec
from .options import ARCH_DEFAULTS, fill_ft_begin_module

#: r3d-train's architecture options: attribute -> generate_model argument.
SPEC_OPTIONS = {"model": "model", "model_depth": "depth", "conv1_t_size": "conv1_t_size",
                "conv1_t_stride": "conv1_t_stride", "no_max_pool": "no_max_pool",
                "resnet_shortcut": "shortcut_type", "resnet_widen_factor": "widen_factor",
                "wide_resnet_k": "k", "resnext_cardinality": "cardinality"}
#: Where the checkpoint comes from -> what to do instead of the contradicting flags.
ADVICE = {
    "auto": "r3d-train resumes from --result-path's last.pth on its own (auto-resume): drop "
            "{flags} to continue that run, or use --no-resume (or another --result-path) to "
            "start a new one",
    "resume": "drop {flags}, or give another --resume-path",
    "pretrain": "drop {flags}: fine-tuning keeps the pretrained model's architecture",
}


def flag(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def flags_of(values: dict) -> str:
    """'--model resnet --model-depth 10' for {attribute: value}."""
    return " ".join(flag(a) if v is True else f"{flag(a)} {v}" for a, v in values.items()
                    if v is not False)


def _same(a, b) -> bool:
    return float(a) == float(b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
        else a == b


def adopt_architecture(args, path, source: str) -> None:
    """Set the architecture options of `args` from the checkpoint at `path` (`source`: 'auto',
    'resume' or 'pretrain'; see ADVICE) and, fine-tuning, --n-pretrain-classes from its head.
    Checkpoints that record no architecture (the reference's) keep the options, which must
    then describe the weights."""
    ckpt = read_checkpoint(path, weights_only=args.weights_only == "yes")
    if source != "pretrain" and not args.scheduler_given:
        args.lr_scheduler = scheduler_kind(ckpt.scheduler, str(path)) or args.lr_scheduler
    recorded = ckpt.extra.get("model_spec")
    if not (isinstance(recorded, dict) and "model" in recorded and "depth" in recorded):
        _check_unrecorded(args, ckpt, path)
        return
    spec = model_spec(ckpt)
    theirs = {a: spec.get(o) for a, o in SPEC_OPTIONS.items()}
    clash = {a: v for a, v in args.arch_given.items()
             if theirs[a] is not None and not _same(v, theirs[a])}
    if clash:
        raise TrainingSetupError(
            f"{flags_of(clash)} {'contradicts' if len(clash) == 1 else 'contradict'} the "
            f"checkpoint {path}, a {arch_name(theirs['model'], theirs['model_depth'])} "
            f"({flags_of(_described(theirs))}); "
            + ADVICE[source].format(flags=" and ".join(flag(a) for a in clash)))
    for attr, value in theirs.items():
        if value is not None:
            setattr(args, attr, value)
    if source == "pretrain":
        n = int(spec.get("n_classes", ckpt.n_classes))
        if args.n_pretrain_classes is not None and args.n_pretrain_classes != n:
            raise TrainingSetupError(f"--n-pretrain-classes {args.n_pretrain_classes}, but "
                                     f"{path} has a {n}-class head: drop --n-pretrain-classes")
        args.n_pretrain_classes = n
    fill_ft_begin_module(args)


def _described(theirs: dict) -> dict:
    """The options that describe an architecture: model and depth, and the others where they
    are not r3d-train's defaults."""
    return {a: v for a, v in theirs.items()
            if v is not None and (a in ("model", "model_depth") or not _same(v, ARCH_DEFAULTS[a]))}


def _check_unrecorded(args, ckpt, path) -> None:
    """A checkpoint without a recorded architecture must fit the options: say which flags build
    what its weights look like when they do not (where the weights can be read)."""
    try:
        looks = infer_architecture(ckpt.state_dict)
    except ValueError:
        return  # loading reports the mismatch
    ours = {"model": args.model, "depth": args.model_depth, **model_options(args)}
    attrs = {o: a for a, o in SPEC_OPTIONS.items()}
    wrong = [o for o in ours if o in attrs and (o in looks or o in GENERATE_DEFAULTS)
             and not _same(ours[o], looks.get(o, GENERATE_DEFAULTS.get(o)))]
    if wrong:
        need = {attrs[o]: looks.get(o, GENERATE_DEFAULTS.get(o)) for o in attrs if o in ours
                and (o in ("model", "depth") or o in wrong)}
        now = {attrs[o]: ours[o] for o in wrong}
        raise TrainingSetupError(
            f"{path} holds a {arch_name(looks['model'], looks['depth'])} and records no "
            f"architecture: pass {flags_of(need)} (the options now give {flags_of(now)})")
