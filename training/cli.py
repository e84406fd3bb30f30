"""r3d-train: train, fine-tune, validate and infer (python -m training.cli, or torchrun)."""
import logging
import sys

from .job.options import missing_input, parse


def main(argv=None) -> int:
    args = parse(argv)  # --help, bad options and missing files answer before torch loads
    missing = missing_input(args)
    if missing:
        print(f"r3d-train: error: {missing}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from .data.datasets import ClipLoadError
    from .data.errors import FrameReadError, VideoNotFound
    from .models import CheckpointError
    from .job.trainer import TrainingSetupError, run
    try:
        run(args)
    except (TrainingSetupError, CheckpointError, FileNotFoundError, ValueError, VideoNotFound,
            FrameReadError, FloatingPointError, ClipLoadError) as e:
        print(f"r3d-train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("r3d-train: interrupted; run the same command again to resume from last.pth",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
