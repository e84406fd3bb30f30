"""r3d-features can be trusted with its --out and its numbers (issue 19): --overwrite replaces
only what r3d-features made (never an input video, never a folder of other files); window
times on a variable-frame-rate video are its frames' own times; one run per output at a
time; --workers, r3d-preprocess's --jobs and --height are bounded before any work starts;
an output next to the videos is not taken for one; video ids follow the one name rule."""
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
import torch

import preprocess.convert
import videoapps.features
from conftest import encode_vfr_video, encode_video
from preprocess import convert_dataset
from preprocess.cli import main as preprocess_main
from training.job.checkpoint_info import describe_run
from training.models import generate_model, save_checkpoint
from training.job.options import build_parser
from videoapps.cli import features_main
from videoapps.cli import predict_main

HEIGHT = 32
#: A tiny self-describing checkpoint: ResNet-10 at a quarter width, 4-frame 32-pixel clips.
TRAIN_ARGS = ["--video-path", "s", "--annotation-path", "a.json", "--result-path", "r",
              "--model-depth", "10", "--resnet-widen-factor", "0.25", "--sample-size", "32",
              "--sample-duration", "4", "--conv1-t-size", "3"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    args = build_parser().parse_args(TRAIN_ARGS)
    torch.manual_seed(0)
    info = describe_run(args, ["x", "y"])
    model = generate_model(**info["model_spec"]).eval()
    save_checkpoint(root / "ck.pth", model, 1, "resnet-10", **info)
    return root / "ck.pth"


def _run(ckpt, videos, out, *extra):
    argv = [str(v) for v in videos] + ["--checkpoint", str(ckpt), "--out", str(out),
                                       "--height", str(HEIGHT), "--no-progress"]
    return features_main(argv + [str(x) for x in extra])


def _tree(root):
    """{relative path: bytes (files) or None (folders)} of everything under `root`."""
    root = Path(root)
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- case 4: --overwrite replaces only r3d-features' own output --------------------------------

def test_overwrite_never_replaces_an_input_video_or_another_file(ckpt, tmp_path, capsys):
    video = encode_video(tmp_path / "a.mp4", width=48, height=HEIGHT, frames=6)
    notes = tmp_path / "notes.h5"
    with h5py.File(notes, "w") as f:
        f["x"] = [1, 2, 3]
    kept = {p: p.read_bytes() for p in (video, notes)}
    capsys.readouterr()
    assert _run(ckpt, [video], video, "--overwrite") == 2
    line = _one_line(capsys.readouterr().err)
    assert str(video) in line and "input video" in line and "--overwrite" in line
    assert _run(ckpt, [video], notes, "--overwrite") == 2
    line = _one_line(capsys.readouterr().err)
    assert str(notes) in line and "not an r3d-features HDF5 file" in line
    assert {p: p.read_bytes() for p in kept} == kept
    # its own file is replaced
    out = tmp_path / "f.h5"
    assert _run(ckpt, [video], out) == 0
    assert _run(ckpt, [video], out, "--overwrite", "--stride", "2") == 0
    with h5py.File(out) as f:
        assert f["videos/a/frames"][:, 0].tolist() == [0, 2, 4]


def test_npy_output_never_deletes_or_fills_a_folder_of_other_files(ckpt, tmp_path, capsys):
    video = encode_video(tmp_path / "in/a.mp4", width=48, height=HEIGHT, frames=6)
    other = tmp_path / "mine"
    encode_video(other / "holiday.mp4", width=48, height=HEIGHT, frames=3)
    (other / "notes.txt").write_text("keep me")
    (other / "sub").mkdir()
    (other / "sub/x.npy").write_bytes(b"not ours")
    before = _tree(other)
    capsys.readouterr()
    for extra in ([], ["--overwrite"]):
        assert _run(ckpt, [video], other, "--format", "npy", *extra) == 2
        line = _one_line(capsys.readouterr().err)
        assert str(other) in line and "not an r3d-features output" in line
        assert _tree(other) == before
    # --overwrite of its own npy output removes what it wrote, not what a user put there
    out = tmp_path / "feats"
    assert _run(ckpt, [video], out, "--format", "npy") == 0
    (out / "README.txt").write_text("how these were made")
    assert _run(ckpt, [video], out, "--format", "npy", "--overwrite", "--stride", "2") == 0
    assert (out / "README.txt").read_text() == "how these were made"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["videos"]["a"]["frames"] == [[0, 3], [2, 5], [4, 5]]
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "a.npy", "manifest.json"]


# -- case 5: window times of a variable-frame-rate video ---------------------------------------

def _pyav_times(path):
    with av.open(str(path)) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    return [t - times[0] for t in times]


def test_vfr_window_seconds_are_the_frames_own_times(ckpt, tmp_path, capsys):
    vfr = encode_vfr_video(tmp_path / "phone.mp4")
    times = _pyav_times(vfr)
    assert len(times) == 32
    ends = times[1:] + [2 * times[-1] - times[-2]]
    assert _run(ckpt, [vfr], tmp_path / "f.h5", "--stride", "2") == 0
    with h5py.File(tmp_path / "f.h5") as f:
        frames, seconds = f["videos/phone/frames"][()], f["videos/phone/seconds"][()]
    want = [[times[a], ends[b]] for a, b in frames]
    np.testing.assert_allclose(seconds, want, atol=1e-6)
    assert seconds[8, 0] == pytest.approx(16 / 30)  # the mean rate put it at 1.05 s
    # r3d-predict's per-window times are the same
    capsys.readouterr()
    assert predict_main([str(vfr), "--checkpoint", str(ckpt), "--height", str(HEIGHT),
                         "--per-window", "--json", "--stride", "2", "--no-progress"]) == 0
    windows = json.loads(capsys.readouterr().out)["results"][str(vfr)]
    np.testing.assert_allclose([w["seconds"] for w in windows], want, atol=1e-6)


# -- case 8: one run per output ----------------------------------------------------------------

def test_second_run_on_one_output_is_refused_and_the_first_completes(ckpt, tmp_path, capsys):
    videos = [encode_video(tmp_path / f"v/{i}.mp4", width=48, height=HEIGHT, frames=40)
              for i in range(6)]
    out = tmp_path / "f.h5"
    cmd = [sys.executable, "-m", "videoapps.features"] + [str(v) for v in videos] + [
        "--checkpoint", str(ckpt), "--out", str(out), "--height", str(HEIGHT),
        "--no-progress", "--batch", "1", "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"),
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    parts = tmp_path / "f.h5.parts"
    try:
        while proc.poll() is None and len(list(parts.glob("*.json"))) < 2:  # settings + 1
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGSTOP)  # mid-way, holding the lock
        assert proc.poll() is None, "the first run finished before the second started"
        capsys.readouterr()
        assert features_main(cmd[3:]) == 2
        line = _one_line(capsys.readouterr().err)
        assert f"another r3d-features run is writing this output (pid {proc.pid} on" in line
        assert str(out) in line
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    with h5py.File(out) as f:
        assert f["video_ids"].asstr()[()].tolist() == [str(i) for i in range(6)]
    assert not parts.exists()


# -- cases 8/10: bounded options, outputs beside the videos, ids -------------------------------

def test_workers_are_capped_at_the_cpu_cores(ckpt, tmp_path, monkeypatch, caplog):
    videos = [encode_video(tmp_path / f"{i}.mp4", width=48, height=HEIGHT, frames=4)
              for i in range(3)]
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    asked = []
    real = videoapps.features.window_events

    def spy(sources, sampler, transforms, batch, workers=0):
        asked.append(workers)
        return real(sources, sampler, transforms, batch, workers)

    monkeypatch.setattr(videoapps.features, "window_events", spy)
    with caplog.at_level(logging.WARNING):
        assert _run(ckpt, videos, tmp_path / "f.h5", "--workers", "100000") == 0
    assert asked == [2]
    assert "--workers 100000 is more than the 2 CPU cores; using 2" in caplog.text


def test_preprocess_jobs_are_capped_at_the_cpu_cores(tmp_path, monkeypatch, capsys):
    encode_video(tmp_path / "src/a.mp4", width=48, height=HEIGHT, frames=4)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    asked = []
    real = preprocess.convert.run_pending

    def spy(pending, fmt, src, dst, tmp_root, settings, jobs, *rest):
        asked.append(jobs)
        return real(pending, fmt, src, dst, tmp_root, settings, min(jobs, 1), *rest)

    monkeypatch.setattr(preprocess.convert, "run_pending", spy)
    rc = preprocess_main([str(tmp_path / "src"), str(tmp_path / "dst"), "--jobs", "100000",
                          "--no-progress"])
    assert rc == 0 and asked == [1]
    assert "--jobs 100000 is more than the 1 CPU cores; using 1" in capsys.readouterr().err


def test_out_of_range_height_exits_with_one_line_before_any_video(ckpt, tmp_path, capsys):
    video = encode_video(tmp_path / "src/a.mp4", width=48, height=HEIGHT, frames=4)
    dst = tmp_path / "dst"
    capsys.readouterr()
    assert preprocess_main([str(tmp_path / "src"), str(dst), "--height", "100000",
                            "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "height must be 2 to 4320 pixels, got 100000" in line
    assert not dst.exists()
    assert features_main([str(video), "--checkpoint", str(ckpt), "--out",
                          str(tmp_path / "f.h5"), "--height", "100000", "--no-progress"]) == 2
    assert "height must be 2 to 4320 pixels" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "f.h5").exists()


def test_an_output_beside_the_videos_is_never_taken_for_one(ckpt, tmp_path, capsys, caplog):
    folder = tmp_path / "videos"
    for i in range(2):
        encode_video(folder / f"{i}.mp4", width=48, height=HEIGHT, frames=4)
    out = folder / "f.h5"
    assert _run(ckpt, sorted(folder.iterdir()), out, "--root", folder) == 0
    npy = folder / "npy"
    assert _run(ckpt, sorted(folder.glob("*.mp4")), npy, "--format", "npy") == 0
    encode_video(folder / "2.mp4", width=48, height=HEIGHT, frames=4)
    capsys.readouterr()
    # 'videos/*' now also names f.h5, its lock file and the npy folder
    assert _run(ckpt, sorted(folder.iterdir()), out, "--root", folder) == 0
    captured = capsys.readouterr()
    assert "1 videos (1 windows) extracted, 2 already done, 0 failed" in captured.out
    assert f"skipping what r3d-features wrote (not videos): {out}, {out}.r3d-lock, {npy}, " \
           f"{npy}.r3d-lock" in caplog.text
    with h5py.File(out) as f:
        assert f["video_ids"].asstr()[()].tolist() == ["0", "1", "2"]


def test_video_ids_follow_the_one_name_rule(ckpt, tmp_path, capsys):
    encode_video(tmp_path / "src/a.mp4", width=48, height=HEIGHT, frames=4)
    assert convert_dataset(tmp_path / "src", tmp_path / "store", height=HEIGHT,
                           progress=False).ok
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"labels": ["x"], "database": {
        "a": {"subset": "validation", "annotations": {"label": "x"}},
        "a\u0000b": {"subset": "validation", "annotations": {"label": "x"}}}}))
    out = tmp_path / "f.h5"
    capsys.readouterr()
    assert features_main(["--video-path", str(tmp_path / "store"), "--annotation-path",
                          str(ann), "--checkpoint", str(ckpt), "--out", str(out),
                          "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "video id 'a\\x00b' holds a NUL byte" in line
    assert not out.exists()
