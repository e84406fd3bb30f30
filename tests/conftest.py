"""Shared test helpers: real videos encoded with ffmpeg at test time, and the shared fixtures."""
import os
from pathlib import Path

import av
import ffmpeg
import pytest
import torch

from preprocess.ffmpeg_bin import ffmpeg_exe

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def encode_video(path, width=320, height=240, fps=25, frames=20, codec="libx264",
                 pix_fmt="yuv420p", **options):
    """Encode a real test video (ffmpeg's testsrc2 pattern) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (ffmpeg.input(f"testsrc2=size={width}x{height}:rate={fps}", f="lavfi")
     .output("file:" + str(path), vframes=frames, vcodec=codec, pix_fmt=pix_fmt, **options)
     .global_args("-nostdin", "-loglevel", "error")
     .overwrite_output()
     .run(cmd=ffmpeg_exe()))
    return path


def encode_vfr_video(path):
    """16 frames at 30 fps then 16 at 10 fps (container time base 1/600): 2.13 s of video,
    while 32 frames at the nominal 30 fps would last 1.07 s."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (ffmpeg.input("testsrc2=size=320x240:rate=30", f="lavfi")
     .filter("setpts", "if(lt(N,16),N/30,16/30+(N-16)/10)/TB")
     .output("file:" + str(path), vframes=32, vcodec="libx264", pix_fmt="yuv420p",
             video_track_timescale=600, fps_mode="passthrough")
     .global_args("-nostdin", "-loglevel", "error").overwrite_output().run(cmd=ffmpeg_exe()))
    return path


def decoded_frame_count(path) -> int:
    """Frames a full decode yields (what 'ffprobe -count_frames' reports), through PyAV."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture
def shared_fixtures():
    """../shared/fixtures: skipped when absent, except in CI, where its absence is a failure."""
    if not SHARED_FIXTURES.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED_FIXTURES} is missing in CI")
        pytest.skip(f"{SHARED_FIXTURES} not present")
    return SHARED_FIXTURES


@pytest.fixture(scope="module")
def one_thread():
    """Clip-sized tensor ops run single-threaded, as in a DataLoader worker: on a busy 2-core
    machine, waiting for a second thread costs more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
