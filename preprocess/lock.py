"""One writer per store: the output lock (storeformat.lock) on DST/.r3d-lock."""
from pathlib import Path

from storeformat import LOCK_NAME
from storeformat.lock import OutputBusy, output_lock


class StoreBusy(OutputBusy):
    """Another run is writing the same store."""


def store_lock(dst):
    """Hold the store lock of the folder `dst` for a `with` block; raises StoreBusy naming the
    other process when another run holds it."""
    return output_lock(Path(dst) / LOCK_NAME, dst, "r3d-preprocess", busy=StoreBusy, what="store")
