"""Training logs: CSV files (append-only, resumable) and TensorBoard event files."""
import csv
import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)

TRAIN_COLUMNS = ("epoch", "loss", "acc", "lr", "seconds")
BATCH_COLUMNS = ("epoch", "batch", "iteration", "loss", "acc", "lr")
VAL_COLUMNS = ("epoch", "loss", "acc", "video_top1", "video_top5", "mean_class_top1")


class CsvLog:
    """A CSV file with a header. On resume, rows of epochs after `keep_through_epoch` (written
    by the interrupted run after its last checkpoint) are dropped and new rows are appended, so
    the file reads as if the run had never stopped."""

    def __init__(self, path, columns, keep_through_epoch=None):
        self.path = Path(path)
        self.columns = tuple(columns)
        rows = []
        if keep_through_epoch is not None and self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                if tuple(reader.fieldnames or ()) != self.columns:
                    raise ValueError(f"{self.path}: columns {reader.fieldnames} differ from "
                                     f"{list(self.columns)}; use a new result directory")
                rows = [r for r in reader if int(r["epoch"]) <= keep_through_epoch]
        self._f = open(self.path, "w", newline="", encoding="utf-8")
        self._w = csv.DictWriter(self._f, fieldnames=self.columns)
        self._w.writeheader()
        self._w.writerows(rows)
        self._f.flush()

    def write(self, **values):
        row = {k: _fmt(values.get(k)) for k in self.columns}
        self._w.writerow(row)
        self._f.flush()

    def close(self):
        self._f.close()


def _fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def read_csv_log(path) -> list:
    """Rows of a CSV log as dicts of floats (None for empty cells)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
                for row in csv.DictReader(f)]


class TensorBoard:
    """Scalars under the tags train/*, val/* (step = epoch) and train_batch/* (step = global
    iteration), in two event directories so that resuming can purge each on its own step
    scale. Does nothing when tensorboard is not installed."""

    def __init__(self, log_dir, start_epoch=1, start_iteration=1):
        self.writers = {}
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("tensorboard is not installed: logging to CSV files only")
            return
        log_dir = Path(log_dir)
        self.writers["epoch"] = SummaryWriter(log_dir / "epoch", purge_step=start_epoch)
        self.writers["batch"] = SummaryWriter(log_dir / "batch", purge_step=start_iteration)

    def epoch(self, prefix, epoch, **scalars):
        self._add("epoch", prefix, epoch, scalars)

    def batch(self, iteration, **scalars):
        self._add("batch", "train_batch", iteration, scalars)

    def _add(self, which, prefix, step, scalars):
        writer = self.writers.get(which)
        if writer is None:
            return
        for name, value in scalars.items():
            if value is not None:
                writer.add_scalar(f"{prefix}/{name}", value, step)

    def close(self):
        for w in self.writers.values():
            w.close()
