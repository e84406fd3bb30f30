"""r3d-train's options: the reference implementation's opts.py set, in --kebab-case or the
reference's --snake_case, with the papers' settings as defaults (--reference-defaults: the
reference's own). docs/training.md and docs/migrating.md map every reference name."""
import argparse
import json
import os
import re
import sys
from pathlib import Path

from storeformat import cliparser

from ..choices import MODEL_NAMES
from ..data.presets import NORM_PRESETS

#: Values that depend on whether a pretrained model is fine-tuned (the papers' protocol).
SCRATCH = {"learning_rate": 0.1, "weight_decay": 1e-3}
FINE_TUNE = {"learning_rate": 0.001, "weight_decay": 1e-5}
#: The first trained module when fine-tuning, per family: conv5_x and the classifier.
FINE_TUNE_BEGIN = {"densenet": "denseblock4"}
FINE_TUNE_BEGIN_DEFAULT = "layer4"
#: r3d's default colour jitter strengths (brightness, contrast, saturation, hue).
COLORJITTER = (0.4, 0.4, 0.4, 0.1)
#: The reference's defaults where r3d's differ, applied by --reference-defaults to the options
#: not given. Its ColorJitter is built without arguments, so --colorjitter changes nothing; its
#: ft_begin_module '' fine-tunes every layer; it does not resume on its own. (Its n_classes
#: default, 400, is left out: r3d refuses a head that does not match the annotation's labels.)
REFERENCE_DEFAULTS = {
    "train_crop": "random", "lr_scheduler": "multistep", "ft_begin_module": "",
    "learning_rate": 0.1, "weight_decay": 1e-3, "inference_stride": 16,
    "colorjitter_strengths": (0.0, 0.0, 0.0, 0.0), "temporal_rule": "reference",
}
#: Largest --sample-size accepted (the papers use 112 to 224).
MAX_SAMPLE_SIZE = 1024
#: The reference's options r3d-train does not take, and what to use instead.
REJECTED = {
    "distributed": "launch r3d-train under torchrun instead: torchrun --nproc-per-node N -m "
                   "training.cli ... (docs/training.md)",
    "dist_url": "torchrun sets the rendezvous: torchrun --rdzv-endpoint HOST:PORT ... "
                "(docs/training.md)",
    "world_size": "torchrun sets it: torchrun --nnodes N --nproc-per-node M ... "
                  "(docs/training.md)",
}
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

EPILOG = """\
examples:
  train from scratch (Kinetics):
    r3d-train --video-path k700_hdf5 --annotation-path k700.json --result-path runs/r3d50 \\
              --model resnet --model-depth 50 --batch-size 128 --n-threads 8
  fine-tune on UCF-101 split 1 from a published checkpoint, then infer and evaluate:
    r3d-train --video-path ucf101_jpg --annotation-path ucf101_01.json --result-path runs/ft \\
              --pretrain-path r3d50_K_200ep.pth --model resnet --model-depth 50 \\
              --n-epochs 100 --inference
    r3d-eval ucf101_01.json runs/ft/validation.json -k 1 5
  several GPUs or nodes: torchrun --nproc-per-node 8 -m training.cli ... (docs/training.md)
"""


#: The architecture options, defaulted only after the checkpoint a run resumes or fine-tunes
#: from had its say (an r3d checkpoint records its architecture; see training.job.run_arch).
ARCH_DEFAULTS = {"model": "resnet", "model_depth": 18, "conv1_t_size": 7, "conv1_t_stride": 1,
                 "no_max_pool": False, "resnet_shortcut": "B", "resnet_widen_factor": 1.0,
                 "wide_resnet_k": 2, "resnext_cardinality": 32}


def default_workers() -> int:
    """--n-threads' default: 4 DataLoader workers, never more than the CPU cores available."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _fill_arch_defaults(ns) -> None:
    """Record the architecture options given (`arch_given`: {attribute: value}), then give the
    others their defaults: a checkpoint may still replace those (training.job.run_arch)."""
    if not hasattr(ns, "model_depth") or hasattr(ns, "arch_given"):
        return
    ns.arch_given = {k: getattr(ns, k) for k in ARCH_DEFAULTS if getattr(ns, k) is not None}
    for key, value in ARCH_DEFAULTS.items():
        if getattr(ns, key) is None:
            setattr(ns, key, value)


def _arch_help(what, dest):
    return f"{what} (default: {ARCH_DEFAULTS[dest]}, or what the checkpoint records)"


class Parser(cliparser.Parser):
    """The commands' parser (no abbreviations, suggestions, defaults in --help) that also takes
    every --dashed-option in the reference's --snake_case spelling."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        ns, rest = super().parse_known_args([self._dashed(a) for a in args], namespace)
        _fill_arch_defaults(ns)
        return ns, rest

    def _dashed(self, arg):
        if not arg.startswith("--") or "_" not in arg:
            return arg
        name, eq, value = arg.partition("=")
        dashed = "--" + name[2:].replace("_", "-")
        return dashed + eq + value if dashed in self._option_string_actions else arg

    def is_option(self, name) -> bool:
        return super().is_option(self._dashed(name))

    error_note = " (see r3d-train -h)"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="r3d-train", epilog=EPILOG,
        description="Train, fine-tune, validate and run inference with 3D CNNs on r3d stores. "
                    "Resumes automatically from RESULT_PATH/last.pth. Every option is also "
                    "taken in the reference's spelling (--video_path for --video-path).")
    g = p.add_argument_group("data")
    g.add_argument("--root-path", type=Path, default=None,
                   help="directory that relative --video-path, --annotation-path, "
                        "--result-path and --pretrain-path are taken from")
    g.add_argument("--video-path", action="append", default=[], metavar="[NAME=]PATH",
                   help="frame store (JPEG directories, r3d HDF5, or reference .hdf5 files); "
                        "repeat as NAME=PATH for the named roots of a merged annotation file")
    g.add_argument("--annotation-path", type=Path, required=True,
                   help="annotation JSON (r3d-annotate's or the reference's)")
    g.add_argument("--result-path", type=Path, required=True,
                   help="directory for opts.json, logs, checkpoints and inference results "
                        "(created if missing)")
    g.add_argument("--n-classes", type=int, default=None,
                   help="classes of the model's output (default: the annotation's label count)")
    g.add_argument("--input-type", choices=("rgb", "flow"), default="rgb",
                   help="flow: the stores' first two channels are x and y flow")
    g.add_argument("--on-bad-video", choices=("raise", "skip"), default="raise",
                   help="a missing or unreadable video stops the run (raise) or is left out "
                        "with a warning (skip)")
    g.add_argument("--remap-labels", action="store_true",
                   help="when the checkpoint's recorded class names are in another order than "
                        "the annotation's labels, reorder its output layer by name instead of "
                        "refusing")
    g.add_argument("--dataset", choices=("kinetics", "activitynet", "ucf101", "hmdb51", "mit"),
                   default=None,
                   help="accepted for the reference's command lines; r3d reads everything it "
                        "needs from the annotation file")
    g.add_argument("--file-type", choices=("jpg", "hdf5"), default=None,
                   help="accepted for the reference's command lines; r3d recognises each "
                        "store's format (JPEG directories, r3d HDF5, reference .hdf5 files)")

    g = p.add_argument_group("clips and augmentation")
    g.add_argument("--sample-size", type=int, default=112, help="crop height and width")
    g.add_argument("--sample-duration", type=int, default=16, help="frames per clip")
    g.add_argument("--sample-t-stride", type=int, default=1,
                   help="take every N-th frame, in training, validation and inference alike")
    g.add_argument("--train-crop", choices=("corner", "random", "center"), default=None,
                   help="corner (default): the papers' multi-scale corner crop; random: random "
                        "resized crop (the reference's default); center")
    g.add_argument("--train-crop-min-scale", type=float, default=0.25,
                   help="smallest area share of --train-crop random")
    g.add_argument("--train-crop-min-ratio", type=float, default=0.75,
                   help="smallest aspect ratio of --train-crop random")
    g.add_argument("--train-t-crop", choices=("random", "center"), default="random",
                   help="where the training clip is taken in the video")
    g.add_argument("--no-hflip", action="store_true", help="no random horizontal flip")
    g.add_argument("--colorjitter", action="store_true",
                   help="random brightness, contrast, saturation (0.4) and hue (0.1); under "
                        "--reference-defaults all strengths are 0, as in the reference")
    g.add_argument("--mean-dataset", choices=sorted(NORM_PRESETS), default="kinetics",
                   help="normalisation mean and std preset (default: %(default)s; use "
                        "kinetics with the reference's published checkpoints)")
    g.add_argument("--no-mean-norm", action="store_true", help="no mean subtraction")
    g.add_argument("--no-std-norm", action="store_true", help="no division by the std")
    g.add_argument("--value-scale", type=int, choices=(1, 255), default=1,
                   help="1: pixel values in [0, 1]; 255: in [0, 255]")

    g = p.add_argument_group("model")
    g.add_argument("--model", choices=MODEL_NAMES, default=None,
                   help=_arch_help("model family", "model"))
    g.add_argument("--model-depth", type=int, default=None,
                   help=_arch_help("layers", "model_depth"))
    g.add_argument("--conv1-t-size", type=int, default=None,
                   help=_arch_help("temporal kernel of conv1", "conv1_t_size"))
    g.add_argument("--conv1-t-stride", type=int, default=None,
                   help=_arch_help("temporal stride of conv1", "conv1_t_stride"))
    g.add_argument("--no-max-pool", action="store_true", default=None,
                   help="no max pooling after conv1 (default: max pooling, or the checkpoint's)")
    g.add_argument("--resnet-shortcut", choices=("A", "B"), default=None,
                   help=_arch_help("shortcut type of ResNet-like models", "resnet_shortcut"))
    g.add_argument("--resnet-widen-factor", type=float, default=None,
                   help=_arch_help("channel width multiplier of ResNet-like models",
                                   "resnet_widen_factor"))
    g.add_argument("--wide-resnet-k", type=int, default=None,
                   help=_arch_help("width of WideResNet", "wide_resnet_k"))
    g.add_argument("--resnext-cardinality", type=int, default=None,
                   help=_arch_help("groups of ResNeXt", "resnext_cardinality"))

    g = p.add_argument_group("fine-tuning")
    g.add_argument("--pretrain-path", type=Path, default=None,
                   help="checkpoint to start from (a bare state_dict or the reference's dict)")
    g.add_argument("--n-pretrain-classes", type=int, default=None,
                   help="classes of the pretrained head; read off the checkpoint when omitted")
    g.add_argument("--ft-begin-module", default=None,
                   help="first module trained when fine-tuning; everything before it is frozen "
                        "(default with --pretrain-path: layer4, or denseblock4 for DenseNet: "
                        "conv5_x and the classifier; 'conv1' trains everything)")
    g.add_argument("--weights-only", choices=("yes", "no"), default="yes",
                   help="load checkpoints with torch.load(weights_only=...); 'no' only for "
                        "files you trust")

    g = p.add_argument_group("optimisation")
    g.add_argument("--learning-rate", type=float, default=None,
                   help="initial learning rate (default: 0.1 from scratch, 0.001 fine-tuning)")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--dampening", type=float, default=0.0)
    g.add_argument("--weight-decay", type=float, default=None,
                   help="default: 1e-3 from scratch, 1e-5 fine-tuning")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    g.add_argument("--optimizer", choices=("sgd",), default="sgd",
                   help="SGD, the only optimiser (as in the reference)")
    g.add_argument("--lr-scheduler", choices=("plateau", "multistep"), default=None,
                   help="plateau (default): divide by 10 when the validation loss stops falling "
                        "(the papers); multistep (the reference's default): divide by 10 at "
                        "--multistep-milestones")
    g.add_argument("--multistep-milestones", type=int, nargs="+", default=[50, 100, 150])
    g.add_argument("--overwrite-milestones", action="store_true",
                   help="on resume, use the milestones given now instead of the checkpoint's")
    g.add_argument("--plateau-patience", type=int, default=10)
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--n-epochs", type=int, default=200, help="last epoch to train")
    g.add_argument("--max-iters-per-epoch", type=int, default=None, metavar="N",
                   help="train at most N batches per epoch (default: every batch): for smoke "
                        "runs, e.g. --max-iters-per-epoch 2 --n-epochs 1")
    g.add_argument("--manual-seed", type=int, default=1)

    g = p.add_argument_group("validation, checkpoints and logs")
    g.add_argument("--no-train", action="store_true", help="no training")
    g.add_argument("--no-val", action="store_true", help="no validation")
    g.add_argument("--n-val-samples", type=int, default=3,
                   help="evenly spaced clips per validation video")
    g.add_argument("--val-video-level-every", type=int, default=0, metavar="N",
                   help="also compute video-level top-1/top-5 and mean class accuracy (every "
                        "sliding window of every validation video, as the papers report) every "
                        "N epochs; always done after the last epoch (0: only then)")
    g.add_argument("--best-metric", choices=("loss", "acc"), default="loss",
                   help="best.pth keeps the lowest validation loss or highest clip accuracy")
    g.add_argument("--checkpoint", type=int, default=10,
                   help="also save save_N.pth every N epochs (last.pth is saved every epoch)")
    g.add_argument("--resume-path", type=Path, default=None,
                   help="checkpoint to resume from (default: RESULT_PATH/last.pth if present)")
    g.add_argument("--no-resume", action="store_true",
                   help="start over even if RESULT_PATH/last.pth exists")
    g.add_argument("--no-tensorboard", action="store_true", help="CSV logs only")
    g.add_argument("--tensorboard", action="store_true",
                   help="TensorBoard logs even under --reference-defaults (which, like the "
                        "reference, writes none without it); r3d writes them by default")
    g.add_argument("--reference-defaults", action="store_true",
                   help="the reference implementation's defaults for every option not given: "
                        "random train crop, multistep scheduler, lr 0.1 and weight decay 1e-3 "
                        "also when fine-tuning, every layer fine-tuned, inference stride 16, "
                        "colour jitter strengths 0, its validation clip positions, "
                        "no TensorBoard, no automatic resume (docs/migrating.md)")

    g = p.add_argument_group("inference")
    g.add_argument("--inference", action="store_true",
                   help="after training, score every sliding window of --inference-subset and "
                        "write RESULT_PATH/<subset>.json")
    g.add_argument("--inference-subset", default="validation",
                   help="training, validation or testing (train/val/test accepted)")
    g.add_argument("--inference-stride", type=int, default=None,
                   help="frames between window starts (default: windows that do not overlap: "
                        "--sample-duration x --sample-t-stride; under --reference-defaults "
                        "counted in every --sample-t-stride-th frame, default 16, as the "
                        "reference)")
    g.add_argument("--inference-crop", choices=("center", "nocrop"), default="center",
                   help="center: short side resized and centre-cropped to --sample-size; "
                        "nocrop: the whole resized frame (batches hold one video's windows)")
    g.add_argument("--inference-no-average", action="store_true",
                   help="write per-window results instead of the per-video average")
    g.add_argument("--inference-batch-size", type=int, default=None,
                   help="clips per inference batch (default: --batch-size)")
    g.add_argument("--output-topk", type=int, default=5,
                   help="labels kept per result; 0 or less: every class (as the reference)")

    g = p.add_argument_group("hardware")
    g.add_argument("--device", default="auto",
                   help="auto (the GPU when CUDA is available), cpu, or cuda[:N]")
    g.add_argument("--no-cuda", action="store_true", help="same as --device cpu")
    g.add_argument("--accimage", action="store_true",
                   help="accepted for the reference's command lines; r3d always decodes JPEG "
                        "with simplejpeg")
    for name in REJECTED:
        g.add_argument("--" + name.replace("_", "-"), dest=f"rejected_{name}", nargs="?",
                       const=True, default=None, help=argparse.SUPPRESS)
    g.add_argument("--n-threads", type=int, default=default_workers(),
                   help="DataLoader worker processes (default: 4, at most the CPU cores: "
                        "%(default)s here)")
    g.add_argument("--amp", nargs="?", const="bf16", choices=("bf16", "fp16"), default=None,
                   help="mixed precision on CUDA (bf16 by default; fp16 uses a gradient "
                        "scaler); ignored on the CPU, which trains in fp32")
    g.add_argument("--channels-last", action="store_true",
                   help="channels_last_3d memory format on CUDA")
    g.add_argument("--batchnorm-sync", action="store_true",
                   help="SyncBatchNorm across processes under torchrun")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def parse_store_paths(values, root=None) -> dict:
    """{root name or None: path} from the --video-path values."""
    stores = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or "/" in name or not name:
            name, path = None, value
        if name in stores:
            raise ValueError(f"--video-path given twice for {name or 'the default store'}")
        stores[name] = _under(root, Path(path))
    return stores


def _under(root, path):
    if path is None:
        return None
    return path if root is None or path.is_absolute() else root / path


def resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Check option values and combinations, apply --root-path and fill the defaults that depend
    on fine-tuning or --reference-defaults. Errors go through parser.error (one line, exit 2).

    Besides the options, the result has `stores` ({root name or None: path}),
    `colorjitter_strengths` ((brightness, contrast, saturation, hue), or None without
    --colorjitter) and `temporal_rule` ("r3d" or "reference": the clip positions of
    training.data.sampling); `output_topk` None means every class."""
    for name, advice in REJECTED.items():
        if getattr(args, f"rejected_{name}") is not None:
            parser.error(f"--{name} is not an r3d-train option: {advice}")
        delattr(args, f"rejected_{name}")
    root = args.root_path
    try:
        args.stores = parse_store_paths(args.video_path, root)
    except ValueError as e:
        parser.error(str(e))
    args.annotation_path = _under(root, args.annotation_path)
    args.result_path = _under(root, args.result_path)
    args.pretrain_path = _under(root, args.pretrain_path)
    args.resume_path = _under(root, args.resume_path)
    if args.result_path.exists() and not args.result_path.is_dir():
        parser.error(f"--result-path {args.result_path} is a file, not a directory")
    if args.no_train and not (args.inference or not args.no_val):
        parser.error("nothing to do: --no-train with --no-val and without --inference")
    _check_values(args, parser)
    if args.no_cuda:
        args.device = "cpu"
    _check_device(args.device, parser)
    args.scheduler_given = args.lr_scheduler is not None or args.reference_defaults
    defaults = dict(REFERENCE_DEFAULTS) if args.reference_defaults else {
        "train_crop": "corner", "lr_scheduler": "plateau", "temporal_rule": "r3d",
        "colorjitter_strengths": COLORJITTER, "inference_stride": None,
        **(FINE_TUNE if args.pretrain_path is not None else SCRATCH)}
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if not args.colorjitter:
        args.colorjitter_strengths = None
    if args.reference_defaults:
        # The reference's stride counts frames of the list already thinned by the t_stride.
        args.inference_stride *= args.sample_t_stride
        args.no_tensorboard = args.no_tensorboard or not args.tensorboard
        args.no_resume = args.no_resume or args.resume_path is None
    if args.n_pretrain_classes == 0:  # the reference's "not given"
        args.n_pretrain_classes = None
    args.ft_begin_given = args.ft_begin_module is not None
    fill_ft_begin_module(args)
    if args.inference_batch_size is None or args.inference_batch_size == 0:
        args.inference_batch_size = args.batch_size
    if args.output_topk <= 0:
        args.output_topk = args.n_classes
    return args


def fill_ft_begin_module(args) -> None:
    """--ft-begin-module's default for the model family, when fine-tuning and not given."""
    if args.pretrain_path is not None and not args.ft_begin_given:
        args.ft_begin_module = FINE_TUNE_BEGIN.get(args.model, FINE_TUNE_BEGIN_DEFAULT)


def _check_values(args, parser):
    for name in ("sample_size", "sample_duration", "sample_t_stride", "batch_size", "n_epochs",
                 "n_val_samples", "checkpoint"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.sample_size > MAX_SAMPLE_SIZE:
        parser.error(f"--sample-size {args.sample_size} is more than {MAX_SAMPLE_SIZE} pixels")
    if args.max_iters_per_epoch is not None and args.max_iters_per_epoch < 1:
        parser.error("--max-iters-per-epoch must be at least 1")
    if args.n_threads < 0:
        parser.error("--n-threads must be 0 or more")
    if args.plateau_patience < 0:
        parser.error("--plateau-patience must be 0 or more")
    if any(m < 1 for m in args.multistep_milestones):
        parser.error(f"--multistep-milestones must be epochs (1 or more), got "
                     f"{args.multistep_milestones}")
    if args.inference_stride is not None and args.inference_stride < 1:
        parser.error("--inference-stride must be at least 1")
    if args.inference_batch_size is not None and args.inference_batch_size < 0:
        parser.error("--inference-batch-size must be 0 (same as --batch-size) or more")
    if args.n_classes is not None and args.n_classes < 1:
        parser.error("--n-classes must be at least 1")


def _check_device(device, parser):
    if not _DEVICE.match(device):
        parser.error(f"--device {device!r}: use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            parser.error(f"--device {device}: CUDA is not available here (use --device cpu)")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            parser.error(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")


def missing_input(args):
    """The one-line complaint about an input file the options name that is not there, or None:
    checked before the run's modules (and torch) load."""
    for option, path in (("--annotation-path", args.annotation_path),
                         ("--pretrain-path", args.pretrain_path),
                         ("--resume-path", args.resume_path)):
        if path is not None and not path.is_file():
            return f"{option} {path}: {'a folder, not a file' if path.is_dir() else 'no such file'}"
    return None


def parse(argv=None) -> argparse.Namespace:
    parser = build_parser()
    return resolve(parser.parse_args(argv), parser)


def save_opts(args: argparse.Namespace, path) -> None:
    """Write the resolved options as JSON (paths as strings)."""
    out = {}
    for k, v in sorted(vars(args).items()):
        if isinstance(v, Path):
            v = str(v)
        elif isinstance(v, dict):
            v = {str(kk): str(vv) for kk, vv in v.items()}
        out[k] = v
    Path(path).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
