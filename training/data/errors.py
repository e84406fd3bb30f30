"""The errors of the data path: a video a store does not hold, a frame that cannot be read, a
catalog that cannot be derived or opened safely."""


class VideoNotFound(LookupError):
    """The store holds no video under that key."""


class FrameReadError(IOError):
    """A frame of a video cannot be read or decoded; names the store, the video and the frame."""

    def __init__(self, store, video, frame, reason):
        self.store, self.video, self.frame, self.reason = store, video, frame, reason
        where = f"frame {frame}" if frame is not None else "frames"
        super().__init__(f"{store}: video '{video}', {where}: {reason}")


class CatalogError(ValueError):
    """A catalog cannot be derived or opened safely (the message names the file and why)."""


def out_of_range(store, video, frames, first, n) -> FrameReadError:
    """The error for a read of `frames` (ints, or an int array) of which some fall outside the
    `n` frames numbered from `first`: it names the first of them."""
    bad = next(int(f) for f in frames if not first <= f < first + n)
    return FrameReadError(store, video, bad, f"out of range: the video has {n} frames, "
                                             f"numbered {first}..{first + n - 1}")
