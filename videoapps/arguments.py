"""The command lines of r3d-predict and r3d-features, built without torch: --help, a typo or
a bad value answers at once, and torch loads only for a run (videoapps.cli)."""
import argparse
from pathlib import Path

from storeformat.cliparser import Parser
from training.choices import MODEL_NAMES
from training.data.presets import NORM_PRESETS

from .featurefile import FORMATS

#: Decoding processes r3d-predict and r3d-features use by default with CUDA.
MAX_DEFAULT_WORKERS = 8

#: The module r3d-features reads by default: the pooled features the classifier takes.
PENULTIMATE = "penultimate"


def positive_int(text) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_input_options(p):
    g = p.add_argument_group("input: raw videos (VIDEO...) or a store and its annotation file")
    g.add_argument("videos", nargs="*", metavar="VIDEO",
                   help="video files in any container r3d-preprocess reads")
    g.add_argument("--video-path", action="append", default=[], metavar="[NAME=]PATH",
                   help="frame store written by r3d-preprocess (or the reference's layouts); "
                        "NAME=PATH for the named roots of a merged annotation file")
    g.add_argument("--annotation-path", type=Path, default=None,
                   help="annotation file listing the store's videos")
    g.add_argument("--subset", default=None,
                   help="only the videos of this subset (default: every video of the file)")
    g = p.add_argument_group("frame rule for raw videos (as r3d-preprocess; use the store's)")
    g.add_argument("--height", type=int, default=240, help="frame height (default: %(default)s)")
    g.add_argument("--short-side", type=int, default=None,
                   help="scale the short side to this instead of --height")
    g.add_argument("--fps", type=float, default=None, help="resample to this frame rate")
    g.add_argument("--quality", type=int, default=90, help="JPEG quality of the frames")


def add_model_options(p):
    g = p.add_argument_group("model (r3d checkpoints record these; needed for reference ones)")
    g.add_argument("--checkpoint", type=Path, required=True, help="r3d or reference checkpoint")
    g.add_argument("--weights-only", choices=("yes", "no"), default="yes",
                   help="torch.load(weights_only=...); 'no' only for files you trust")
    g.add_argument("--model", choices=MODEL_NAMES, default=None)
    g.add_argument("--model-depth", type=int, default=None)
    g.add_argument("--n-classes", type=int, default=None)
    g.add_argument("--conv1-t-size", type=int, default=None)
    g.add_argument("--conv1-t-stride", type=int, default=None)
    g.add_argument("--no-max-pool", action="store_true", default=None)
    g.add_argument("--resnet-shortcut", choices=("A", "B"), default=None)
    g.add_argument("--resnet-widen-factor", type=float, default=None)
    g.add_argument("--wide-resnet-k", type=int, default=None)
    g.add_argument("--resnext-cardinality", type=int, default=None)
    g = p.add_argument_group("clip settings (default: the checkpoint's, else r3d-train's)")
    g.add_argument("--sample-size", type=int, default=None, help="crop height and width")
    g.add_argument("--sample-duration", type=int, default=None, help="frames per window")
    g.add_argument("--sample-t-stride", type=int, default=None, help="take every N-th frame")
    g.add_argument("--mean-dataset", choices=sorted(NORM_PRESETS), default=None,
                   help="normalisation preset (with --value-scale, --no-mean-norm, "
                        "--no-std-norm: as r3d-train)")
    g.add_argument("--value-scale", type=int, choices=(1, 255), default=None)
    g.add_argument("--no-mean-norm", action="store_true")
    g.add_argument("--no-std-norm", action="store_true")
    g = p.add_argument_group("hardware")
    g.add_argument("--device", default="auto",
                   help="auto (the GPU when CUDA is available), cpu, or cuda[:N]")
    g.add_argument("--batch", type=int, default=32,
                   help="windows per forward pass (default: %(default)s)")
    g.add_argument("--workers", type=int, default=None,
                   help="processes decoding videos and windows, each taking every N-th video "
                        "(default: 0 on the CPU, where a background thread does it; "
                        f"min({MAX_DEFAULT_WORKERS}, CPU cores) with CUDA; at most the CPU "
                        "cores)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


PREDICT_EPILOG = """\
examples:
  r3d-predict clip.mp4 other.mkv --checkpoint runs/ft/best.pth
  r3d-predict clip.mp4 --checkpoint r3d50_K_200ep.pth --model resnet --model-depth 50 \\
              --labels kinetics700.txt --per-window --json
  r3d-predict --video-path ucf101_hdf5 --annotation-path ucf101_01.json --subset validation \\
              --checkpoint runs/ft/best.pth --json > predictions.json
"""


def predict_parser():
    p = Parser(
        prog="r3d-predict", epilog=PREDICT_EPILOG,
        description="Classify videos with a trained 3D CNN: every sliding window is scored and "
                    "the softmax scores averaged per video, as r3d-train --inference does.")
    add_input_options(p)
    add_model_options(p)
    g = p.add_argument_group("output")
    g.add_argument("--labels", type=Path, default=None,
                   help="class names for checkpoints that do not record them: a text file "
                        "with one name per line, or an annotation file (its 'labels')")
    g.add_argument("-k", "--top-k", type=positive_int, default=5, help="classes shown per video")
    g.add_argument("--per-window", action="store_true",
                   help="also each window's frames, time span and top class")
    g.add_argument("--stride", type=int, default=None,
                   help="frames between window starts (default: windows that do not overlap)")
    g.add_argument("--crop", choices=("center", "nocrop"), default=None,
                   help="spatial crop (default: the checkpoint's inference crop, else center)")
    g.add_argument("--json", action="store_true",
                   help='print {"results": {video: [{"label", "score"}, ...]}} (r3d-eval reads '
                        "it); with --per-window each video lists its windows instead")
    return p


FEATURES_EPILOG = """\
examples:
  r3d-features --video-path anet_hdf5 --annotation-path activitynet.json \\
               --checkpoint r3d50_K_200ep.pth --model resnet --model-depth 50 --out anet.h5
  r3d-features videos/*.mp4 --root videos --checkpoint runs/ft/best.pth --out feats.h5
  torchrun --nproc-per-node 4 -m videoapps.features ... (one merged file at the end)
docs/features.md describes the file.
"""


def features_parser():
    p = Parser(
        prog="r3d-features", epilog=FEATURES_EPILOG,
        description="Extract clip features of every sliding window of videos, aligned to frames "
                    "and seconds, into one HDF5 file. A rerun resumes.")
    add_input_options(p)
    p.add_argument("--root", type=Path, default=None,
                   help="raw videos' ids are their paths relative to this folder, without "
                        "extension (default: the file name without extension)")
    add_model_options(p)
    g = p.add_argument_group("features")
    g.add_argument("--out", type=Path, required=True, help="FILE.h5, or a folder for --format npy")
    g.add_argument("--format", choices=FORMATS, default="h5")
    g.add_argument("--window", type=int, default=None,
                   help="frames per window (default: the checkpoint's clip length)")
    g.add_argument("--stride", type=int, default=None,
                   help="frames between window starts (default: windows that do not overlap)")
    g.add_argument("--layer", default=PENULTIMATE,
                   help="module whose output is averaged over time and space, e.g. layer3, "
                        "layer4, fc (default: the global-average-pooled features the "
                        "classifier reads: 512-d for ResNet-18/34, 2048-d for ResNet-50+)")
    g.add_argument("--crop", choices=("center", "nocrop", "five"), default="center",
                   help="centre crop, whole frame, or the average over five crops (centre "
                        "and corners)")
    g.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    g.add_argument("--amp", choices=("bf16", "fp16"), default=None,
                   help="mixed-precision forward pass on CUDA")
    g.add_argument("--overwrite", action="store_true",
                   help="start over instead of resuming (removes the output, only when "
                        "r3d-features made it; never an input or other files)")
    return p
