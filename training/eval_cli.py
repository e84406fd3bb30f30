"""r3d-eval: video-level top-k and mean class accuracy (and mAP for multi-label files) of an
inference results file."""
import json
import sys

from storeformat.cliparser import Parser

from .job.evaluation import EvaluationError, evaluate


def build_parser():
    p = Parser(
        prog="r3d-eval",
        description="Video-level accuracy of RESULTS.json (written by r3d-train inference or the "
                    "reference's inference) against the annotation file GT.json; mAP too when "
                    "GT.json is multi-label. Result labels not in GT.json's labels and result "
                    "ids not in GT.json are reported on stderr.")
    p.add_argument("ground_truth", metavar="GT.json", help="annotation file")
    p.add_argument("results", metavar="RESULTS.json",
                   help='{"results": {video_id: [{"label", "score"}, ...]}}')
    p.add_argument("-k", type=int, nargs="+", default=[1, 5], metavar="K",
                   help="top-k accuracies to report (default: 1 5)")
    p.add_argument("--subset", default="validation",
                   help="subset as named in GT.json; train/val/test are accepted as aliases "
                        "(default: %(default)s)")
    p.add_argument("--ignore-missing", action="store_true",
                   help="leave out videos without a result instead of counting them wrong")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if any(k < 1 for k in args.k):
        parser.error("-k values must be at least 1")
    try:
        metrics = evaluate(args.ground_truth, args.results, ks=args.k, subset=args.subset,
                           ignore_missing=args.ignore_missing)
    except EvaluationError as e:
        print(f"r3d-eval: error: {e}", file=sys.stderr)
        return 2
    for line in metrics.pop("warnings"):
        print(f"r3d-eval: warning: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(metrics))
        return 0
    for k in args.k:
        print(f"top-{k} video accuracy: {metrics[f'top{k}']:.4f}")
    print(f"mean class top-1 accuracy: {metrics['mean_class_top1']:.4f}")
    if "mAP" in metrics:
        print(f"mAP: {metrics['mAP']:.4f} (over the {metrics['n_map_classes']} classes with a "
              "positive video)")
    missing = f", {metrics['n_missing']} without result"
    missing += " (left out)" if args.ignore_missing else " (counted wrong)"
    print(f"videos: {metrics['n_videos']}{missing if metrics['n_missing'] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
