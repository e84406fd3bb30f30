"""A synthetic action dataset whose classes differ only in motion.

Every video shows one bright shape (disc or square) of a random colour on a random dark
two-tone background (bright on dark: a small 3D CNN learns motion from that in minutes, while
backgrounds of arbitrary brightness first need far more data to learn to ignore); its class says how the shape moves: left, right, up, down, growing or shrinking.
Colours, shape, start position, speed and background are drawn independently of the class, so a
single frame tells nothing: a model must look at time. Videos are encoded as real H.264 MP4.
"""
import logging
from pathlib import Path

import ffmpeg
import numpy as np

from preprocess.ffmpeg_bin import ffmpeg_exe

log = logging.getLogger(__name__)

CLASSES = ("move_left", "move_right", "move_up", "move_down", "grow", "shrink")


def _background(rng, h, w):
    """Two random dark colours split along a random line, plus mild static noise."""
    a, b = rng.integers(0, 72, size=(2, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, np.pi)
    side = (np.cos(angle) * (xx - w / 2) + np.sin(angle) * (yy - h / 2)) > rng.uniform(-8, 8)
    img = np.where(side[..., None], a, b).astype(np.int16)
    img += rng.integers(-8, 9, size=(h, w, 1), dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_video(label: str, rng, n_frames=32, height=96, width=128) -> np.ndarray:
    """Frames (T x H x W x 3 uint8) of one video of class `label`."""
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; classes are {', '.join(CLASSES)}")
    bg = _background(rng, height, width)
    colour = rng.integers(110, 256, size=3)
    square = bool(rng.integers(2))
    # The shape crosses about 60% of the frame during the video (or its size changes 3-fold),
    # at a random pace, from a start that mirrors the direction of travel.
    travel = rng.uniform(0.5, 0.7) / max(n_frames - 1, 1)
    size = rng.uniform(0.12, 0.16) * height
    cy = rng.uniform(0.35, 0.65) * height
    cx = rng.uniform(0.35, 0.65) * width
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for t in range(n_frames):
        u = t * travel - (n_frames - 1) * travel / 2
        y, x, r = cy, cx, size
        if label == "move_left":
            x = cx - u * width
        elif label == "move_right":
            x = cx + u * width
        elif label == "move_up":
            y = cy - u * height
        elif label == "move_down":
            y = cy + u * height
        elif label == "grow":
            r = size * 2.0 ** (3 * u)
        else:
            r = size * 2.0 ** (-3 * u)
        if square:
            mask = (np.abs(yy - y) <= r * 0.85) & (np.abs(xx - x) <= r * 0.85)
        else:
            mask = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        frames[t] = bg
        frames[t][mask] = colour
    return frames


def write_video(frames: np.ndarray, path, fps=25) -> Path:
    """Encode T x H x W x 3 uint8 frames as an H.264 MP4 file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t, h, w, _ = frames.shape
    (ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", r=fps)
     .output("file:" + str(path), vcodec="libx264", pix_fmt="yuv420p", preset="veryfast", crf=18)
     .global_args("-nostdin", "-loglevel", "error")
     .overwrite_output()
     .run(input=np.ascontiguousarray(frames).tobytes(), cmd=ffmpeg_exe()))
    return path


def make_dataset(root, videos_per_class=30, n_frames=32, seed=0, classes=CLASSES) -> list:
    """Write `videos_per_class` videos of every class as root/<class>/<class>_NNN.mp4."""
    rng = np.random.default_rng(seed)
    paths = []
    for label in classes:
        for i in range(videos_per_class):
            frames = render_video(label, rng, n_frames=n_frames)
            paths.append(write_video(frames, Path(root) / label / f"{label}_{i:03d}.mp4"))
    return paths
