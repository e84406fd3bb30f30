"""r3d-demo: the whole pipeline on a synthetic motion dataset, on the CPU in a few minutes.

generate videos -> r3d-preprocess -> r3d-annotate -> r3d-train (+ inference) -> r3d-eval.
Every stage runs the same entry point a user would call from the shell.
"""
import json
import shutil
import sys
import time
from pathlib import Path

from storeformat.cliparser import Parser

from .synth import CLASSES, make_dataset


def _stage(n, title):
    print(f"\n== [{n}/5] {title}", flush=True)


def _call(main, argv, name):
    print("$ " + " ".join([name] + [str(a) for a in argv]), flush=True)
    rc = main([str(a) for a in argv])
    if rc != 0:
        raise SystemExit(f"r3d-demo: {name} failed with exit status {rc}")


def build_parser():
    p = Parser(prog="r3d-demo", description=__doc__)
    p.add_argument("--workdir", type=Path, default=Path("r3d_demo"),
                   help="folder for videos, frames, annotations and results "
                        "(default: ./r3d_demo, replaced on every run)")
    p.add_argument("--videos-per-class", type=int, default=30)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--jobs", type=int, default=2, help="preprocessing processes")
    p.add_argument("--threads", type=int, default=1, help="DataLoader workers")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from annotations.cli import main as annotate
    from preprocess.cli import main as preprocess
    from training.cli import main as train
    from training.eval_cli import main as evaluate

    t0 = time.perf_counter()
    work = args.workdir
    if work.exists():
        shutil.rmtree(work)
    videos, frames, ann, results = (work / "videos", work / "frames", work / "demo.json",
                                    work / "results")

    _stage(1, f"generating {args.videos_per_class} videos for each of {len(CLASSES)} motion "
              f"classes: {', '.join(CLASSES)}")
    paths = make_dataset(videos, videos_per_class=args.videos_per_class, seed=args.seed)
    print(f"{len(paths)} MP4 files under {videos}")

    _stage(2, "r3d-preprocess: videos to JPEG frames")
    _call(preprocess, [videos, frames, "--height", 64, "--jobs", args.jobs, "--no-progress"],
          "r3d-preprocess")

    _stage(3, "r3d-annotate: class folders to an annotation file, 25% held out per class")
    _call(annotate, ["folder", videos, "--out", ann, "--index", frames, "--val-fraction", 0.25,
                     "--seed", args.seed, "--name", "demo"], "r3d-annotate")
    _call(annotate, ["stats", ann], "r3d-annotate")

    _stage(4, "r3d-train: a small 3D ResNet-10 on 16-frame 48x48 clips, then inference "
              "on the held-out videos")
    # No horizontal flip: it would turn 'move_left' into 'move_right'.
    _call(train, ["--video-path", frames, "--annotation-path", ann, "--result-path", results,
                  "--model", "resnet", "--model-depth", 10, "--resnet-widen-factor", 0.25,
                  "--conv1-t-size", 3, "--no-max-pool", "--sample-size", 48,
                  "--sample-duration", 16, "--train-crop", "center", "--no-hflip",
                  "--batch-size", 16, "--learning-rate", 0.05, "--weight-decay", 1e-4,
                  "--lr-scheduler", "multistep", "--multistep-milestones",
                  max(1, args.epochs * 2 // 3), "--n-epochs", args.epochs,
                  "--checkpoint", args.epochs, "--n-threads", args.threads,
                  "--manual-seed", args.seed, "--inference", "--no-progress"], "r3d-train")

    _stage(5, "r3d-eval: video-level accuracy of the inference results")
    _call(evaluate, [ann, results / "validation.json", "-k", 1, 2], "r3d-eval")
    from training.job.evaluation import evaluate as metrics_of
    m = metrics_of(ann, results / "validation.json", ks=(1,))
    summary = {"videos": len(paths), "classes": len(CLASSES), "epochs": args.epochs,
               "seconds": round(time.perf_counter() - t0, 1), "top1": m["top1"]}
    (work / "summary.json").write_text(json.dumps(summary) + "\n")
    print(f"\nr3d-demo finished in {summary['seconds']:.0f} s; everything is in {work}/")
    print(f"video top-1 accuracy: {m['top1']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
