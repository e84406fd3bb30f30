"""Entry point of r3d-demo."""
import sys


def main(argv=None) -> int:
    print("r3d-demo: not yet available: the end-to-end demo arrives with the trainer "
          "(preprocess works now: see docs/preprocess.md).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
