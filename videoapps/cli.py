"""r3d-predict and r3d-features: the arguments are read first (videoapps.arguments, no torch),
then the run's modules load."""
import logging
import sys

from .arguments import features_parser, predict_parser

#: Failures r3d-features lists one by one at the end; the rest are counted.
MAX_LISTED_FAILURES = 10


def predict_main(argv=None) -> int:
    args = predict_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from training.models import CheckpointError

    from .predict import predict
    try:
        _, failures = predict(args)
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"r3d-predict: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("r3d-predict: interrupted", file=sys.stderr)
        return 130
    return 1 if failures else 0


def features_main(argv=None) -> int:
    args = features_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from training.models import CheckpointError

    from .features import extract
    try:
        result = extract(args)
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        print(f"r3d-features: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("r3d-features: interrupted; run the same command again to resume",
              file=sys.stderr)
        return 130
    if result["total"] is None:
        return 0
    print(f"r3d-features: {result['videos']} videos ({result['windows']} windows) extracted, "
          f"{result['skipped']} already done, {len(result['failed'])} failed; {result['total']} "
          f"videos in {args.out}")
    for vid, reason in result["failed"][:MAX_LISTED_FAILURES]:
        print(f"  FAILED {vid}: {reason}")
    if len(result["failed"]) > MAX_LISTED_FAILURES:
        print(f"  ... and {len(result['failed']) - MAX_LISTED_FAILURES} more")
    return 1 if result["failed"] else 0
