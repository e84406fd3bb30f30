"""r3d-train's options: the reference implementation's opts.py set, in --kebab-case, with the
papers' settings as defaults. docs/training.md maps every reference name to its r3d name."""
import argparse
import json
from pathlib import Path

from .models import MODEL_NAMES
from .transforms import NORM_PRESETS

#: Values that depend on whether a pretrained model is fine-tuned (the papers' protocol).
SCRATCH = {"learning_rate": 0.1, "weight_decay": 1e-3}
FINE_TUNE = {"learning_rate": 0.001, "weight_decay": 1e-5}
#: The first trained module when fine-tuning, per family: conv5_x and the classifier.
FINE_TUNE_BEGIN = {"densenet": "denseblock4"}
FINE_TUNE_BEGIN_DEFAULT = "layer4"

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="r3d-train", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train, fine-tune, validate and run inference with 3D CNNs on r3d stores. "
                    "Resumes automatically from RESULT_PATH/last.pth.")
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

    g = p.add_argument_group("clips and augmentation")
    g.add_argument("--sample-size", type=int, default=112, help="crop height and width")
    g.add_argument("--sample-duration", type=int, default=16, help="frames per clip")
    g.add_argument("--sample-t-stride", type=int, default=1,
                   help="take every N-th frame, in training, validation and inference alike")
    g.add_argument("--train-crop", choices=("corner", "random", "center"), default="corner",
                   help="corner: the papers' multi-scale corner crop; random: random resized "
                        "crop; center (default: %(default)s)")
    g.add_argument("--train-crop-min-scale", type=float, default=0.25,
                   help="smallest area share of --train-crop random")
    g.add_argument("--train-crop-min-ratio", type=float, default=0.75,
                   help="smallest aspect ratio of --train-crop random")
    g.add_argument("--train-t-crop", choices=("random", "center"), default="random",
                   help="where the training clip is taken in the video")
    g.add_argument("--no-hflip", action="store_true", help="no random horizontal flip")
    g.add_argument("--colorjitter", action="store_true",
                   help="random brightness, contrast, saturation (0.4) and hue (0.1)")
    g.add_argument("--mean-dataset", choices=sorted(NORM_PRESETS), default="kinetics",
                   help="normalisation mean and std preset (default: %(default)s; use "
                        "kinetics with the reference's published checkpoints)")
    g.add_argument("--no-mean-norm", action="store_true", help="no mean subtraction")
    g.add_argument("--no-std-norm", action="store_true", help="no division by the std")
    g.add_argument("--value-scale", type=int, choices=(1, 255), default=1,
                   help="1: pixel values in [0, 1]; 255: in [0, 255]")

    g = p.add_argument_group("model")
    g.add_argument("--model", choices=MODEL_NAMES, default="resnet")
    g.add_argument("--model-depth", type=int, default=18)
    g.add_argument("--conv1-t-size", type=int, default=7, help="temporal kernel of conv1")
    g.add_argument("--conv1-t-stride", type=int, default=1, help="temporal stride of conv1")
    g.add_argument("--no-max-pool", action="store_true", help="no max pooling after conv1")
    g.add_argument("--resnet-shortcut", choices=("A", "B"), default="B")
    g.add_argument("--resnet-widen-factor", type=float, default=1.0,
                   help="channel width multiplier of ResNet-like models")
    g.add_argument("--wide-resnet-k", type=int, default=2)
    g.add_argument("--resnext-cardinality", type=int, default=32)

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
    g.add_argument("--lr-scheduler", choices=("plateau", "multistep"), default="plateau",
                   help="plateau: divide by 10 when the validation loss stops falling (the "
                        "papers); multistep: divide by 10 at --multistep-milestones")
    g.add_argument("--multistep-milestones", type=int, nargs="+", default=[50, 100, 150])
    g.add_argument("--overwrite-milestones", action="store_true",
                   help="on resume, use the milestones given now instead of the checkpoint's")
    g.add_argument("--plateau-patience", type=int, default=10)
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--n-epochs", type=int, default=200, help="last epoch to train")
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

    g = p.add_argument_group("inference")
    g.add_argument("--inference", action="store_true",
                   help="after training, score every sliding window of --inference-subset and "
                        "write RESULT_PATH/<subset>.json")
    g.add_argument("--inference-subset", default="validation",
                   help="training, validation or testing (train/val/test accepted)")
    g.add_argument("--inference-stride", type=int, default=None,
                   help="frames between window starts (default: windows that do not overlap: "
                        "--sample-duration x --sample-t-stride)")
    g.add_argument("--inference-crop", choices=("center", "nocrop"), default="center",
                   help="center: short side resized and centre-cropped to --sample-size; "
                        "nocrop: the whole resized frame (batches hold one video's windows)")
    g.add_argument("--inference-no-average", action="store_true",
                   help="write per-window results instead of the per-video average")
    g.add_argument("--inference-batch-size", type=int, default=None,
                   help="clips per inference batch (default: --batch-size)")
    g.add_argument("--output-topk", type=int, default=5, help="labels kept per result")

    g = p.add_argument_group("hardware")
    g.add_argument("--device", default="auto",
                   help="auto (the GPU when CUDA is available), cpu, or cuda[:N]")
    g.add_argument("--no-cuda", action="store_true", help="same as --device cpu")
    g.add_argument("--n-threads", type=int, default=4, help="DataLoader worker processes")
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
    """Check option combinations, apply --root-path and fill the defaults that depend on
    fine-tuning. Errors go through parser.error (usage message, exit 2)."""
    root = args.root_path
    try:
        args.stores = parse_store_paths(args.video_path, root)
    except ValueError as e:
        parser.error(str(e))
    args.annotation_path = _under(root, args.annotation_path)
    args.result_path = _under(root, args.result_path)
    args.pretrain_path = _under(root, args.pretrain_path)
    args.resume_path = _under(root, args.resume_path)
    if not args.stores:
        parser.error("--video-path is required: the frame store the annotation's videos are in")
    if args.no_train and not (args.inference or not args.no_val):
        parser.error("nothing to do: --no-train with --no-val and without --inference")
    for name in ("sample_size", "sample_duration", "sample_t_stride", "batch_size", "n_epochs",
                 "n_val_samples", "checkpoint", "output_topk"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.n_threads < 0:
        parser.error("--n-threads must be 0 or more")
    if args.inference_stride is not None and args.inference_stride < 1:
        parser.error("--inference-stride must be at least 1")
    if args.no_cuda:
        args.device = "cpu"
    fine_tuning = args.pretrain_path is not None
    for key, value in (FINE_TUNE if fine_tuning else SCRATCH).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if fine_tuning and args.ft_begin_module is None:
        args.ft_begin_module = FINE_TUNE_BEGIN.get(args.model, FINE_TUNE_BEGIN_DEFAULT)
    if args.inference_batch_size is None:
        args.inference_batch_size = args.batch_size
    return args


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
