"""Training and validation curves of an r3d-train result directory, as PNG (the papers' Fig. 4).

    python tools/plot_curves.py RESULT_DIR [-o curves.png]

Reads RESULT_DIR/train.csv and val.csv; plots loss and accuracy (clip accuracy, and video-level
top-1 where it was measured) against epochs. Needs matplotlib (pip install "r3d[plot]").
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.job.logs import read_csv_log  # noqa: E402


def plot(result_dir, out=None, title=None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result_dir = Path(result_dir)
    train_path, val_path = result_dir / "train.csv", result_dir / "val.csv"
    if not train_path.exists():
        raise FileNotFoundError(f"{train_path}: no training log in {result_dir}")
    train = read_csv_log(train_path)
    val = read_csv_log(val_path) if val_path.exists() else []
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))

    def series(rows, key):
        pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    ax_loss.plot(*series(train, "loss"), label="training")
    ax_acc.plot(*series(train, "acc"), label="training (clip)")
    if val:
        ax_loss.plot(*series(val, "loss"), label="validation")
        ax_acc.plot(*series(val, "acc"), label="validation (clip)")
        xs, ys = series(val, "video_top1")
        if xs:
            ax_acc.plot(xs, ys, "o-", label="validation (video top-1)")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out) if out else result_dir / "curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("result_dir", help="an r3d-train result directory")
    p.add_argument("-o", "--out", default=None, help="PNG path (default: RESULT_DIR/curves.png)")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    try:
        print(plot(args.result_dir, args.out, args.title))
    except FileNotFoundError as e:
        print(f"plot_curves: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
