"""r3d-predict and r3d-features on real encoded videos (several containers) with a tiny
checkpoint that describes itself: the scores equal r3d-train's sliding-window inference on the
r3d-preprocess store, the features equal the model's pooled activations on the same windows,
the windows follow the sliding-window rule, an interrupted run resumes to the same file, and a
2-process torchrun writes the file a single process writes."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import encode_video
from preprocess import convert_dataset
from training.job.checkpoint_info import (class_names_of, clip_settings, describe_run,
                                          inference_transforms, model_from_checkpoint)
from training.cli import main as train_main
from training.data.datasets import InferenceWindows
from training.models import generate_model, read_checkpoint, save_checkpoint
from training.job.options import build_parser
from training.data.sampling import SlidingWindow
from training.data.stores import open_store
from training.data.transforms import eval_transform
from videoapps import featurefile
from videoapps.cli import features_main
from videoapps.cli import predict_main

NAMES = ["alpha", "beta", "gamma"]
#: file name -> (frames, width, codec): 13 and 9 frames end in a loop-padded 4-frame window.
VIDEOS = {"a.mp4": (20, 64, "libx264"), "b.mkv": (13, 80, "libvpx-vp9"),
          "c.avi": (9, 64, "mpeg4"), "d.mov": (6, 64, "libx264")}
HEIGHT = 48
TRAIN_ARGS = ["--video-path", "s", "--annotation-path", "a.json", "--result-path", "r",
              "--model-depth", "10", "--sample-size", "32", "--sample-duration", "4",
              "--conv1-t-size", "3"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Videos, their r3d-preprocess store and annotation file, and an r3d checkpoint."""
    root = tmp_path_factory.mktemp("videoapps")
    for name, (frames, width, codec) in VIDEOS.items():
        encode_video(root / "videos" / name, width=width, height=HEIGHT, frames=frames,
                     codec=codec)
    assert convert_dataset(root / "videos", root / "store", height=HEIGHT, progress=False).ok
    doc = {"labels": NAMES, "database": {
        Path(n).stem: {"subset": "validation", "annotations": {"label": NAMES[i % 3]}}
        for i, n in enumerate(VIDEOS)}}
    (root / "ann.json").write_text(json.dumps(doc))
    args = build_parser().parse_args(TRAIN_ARGS)
    torch.manual_seed(0)
    info = describe_run(args, NAMES)
    model = generate_model(**info["model_spec"]).eval()
    _randomise_batchnorm(model)
    save_checkpoint(root / "ck.pth", model, 3, "resnet-10", **info)
    return root, model


def _randomise_batchnorm(model):
    """Non-trivial running statistics, so that eval-mode BatchNorm matters."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def _videos(root, names=VIDEOS):
    return [str(root / "videos" / n) for n in names]


def _h5_contents(path):
    """Everything a features file holds, as plain Python and numpy values."""
    out = {}
    with h5py.File(path, "r") as f:
        out["attrs"] = {k: np.asarray(v).tolist() for k, v in f.attrs.items()}
        out["ids"] = [x.decode() for x in f["video_ids"][()]]
        for vid in out["ids"]:
            g = f["videos/" + vid]
            out[vid] = {k: g[k][()] for k in g} | {"attrs": dict(g.attrs)}
    return out


def _assert_same_contents(a, b, atol=0.0):
    assert a["attrs"] == b["attrs"] and a["ids"] == b["ids"]
    for vid in a["ids"]:
        np.testing.assert_allclose(a[vid]["features"], b[vid]["features"], atol=atol, rtol=0)
        for key in ("frames", "seconds"):
            np.testing.assert_array_equal(a[vid][key], b[vid][key])
        assert a[vid]["attrs"] == b[vid]["attrs"]


# --- checkpoints that describe themselves ----------------------------------------------------

def test_checkpoint_records_names_model_and_clip(setup):
    root, model = setup
    ckpt = read_checkpoint(root / "ck.pth")  # weights_only: the record is plain data
    assert class_names_of(ckpt) == NAMES
    spec = ckpt.extra["model_spec"]
    assert (spec["model"], spec["depth"], spec["n_classes"], spec["conv1_t_size"]) == \
        ("resnet", 10, 3, 3)
    clip = clip_settings(ckpt)
    assert (clip["sample_size"], clip["sample_duration"], clip["sample_t_stride"]) == (32, 4, 1)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(model_from_checkpoint(ckpt)(x), model(x))
    tf, = inference_transforms(clip)
    frames = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    assert torch.equal(tf(frames), eval_transform(32, "center")(frames))


def test_r3d_train_checkpoint_is_all_predict_needs(setup, tmp_path, capsys):
    """r3d-train records what r3d-predict needs: a quarter-width model with 4-frame 32-pixel
    clips runs from --checkpoint alone and is named with the annotation's classes."""
    root, _ = setup
    doc = json.loads((root / "ann.json").read_text())
    for entry in doc["database"].values():
        entry["subset"] = "training"
    (tmp_path / "train.json").write_text(json.dumps(doc))
    assert train_main(["--video-path", str(root / "store"), "--annotation-path",
                       str(tmp_path / "train.json"), "--result-path", str(tmp_path / "run"),
                       "--resnet-widen-factor", "0.25", "--n-epochs", "1", "--batch-size", "2",
                       "--no-val", "--lr-scheduler", "multistep", "--n-threads", "0",
                       "--no-progress"] + TRAIN_ARGS[6:]) == 0
    ckpt = read_checkpoint(tmp_path / "run" / "last.pth")
    assert ckpt.extra["model_spec"]["widen_factor"] == 0.25 and class_names_of(ckpt) == NAMES
    capsys.readouterr()
    assert predict_main(_videos(root, ["a.mp4"]) + ["--checkpoint",
                                                    str(tmp_path / "run" / "last.pth"),
                                                    "--height", str(HEIGHT),
                                                    "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and {line.split()[1] for line in out[1:]} == set(NAMES)


def test_reference_checkpoint_needs_or_infers_the_model(setup, tmp_path):
    root, model = setup
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ref.pth")
    ckpt = read_checkpoint(tmp_path / "ref.pth")
    assert class_names_of(ckpt) is None
    assert clip_settings(ckpt)["sample_duration"] == 16  # r3d-train's default
    built = model_from_checkpoint(ckpt, {"model": "resnet", "depth": 10, "conv1_t_size": 3})
    inferred = model_from_checkpoint(ckpt)  # read off the weights
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(built(x), model(x)) and torch.equal(inferred(x), model(x))


# --- r3d-predict -----------------------------------------------------------------------------

def _inference_scores(root, model, crop="center"):
    """Per-video average softmax over InferenceWindows, as r3d-train --inference computes it
    on the store."""
    ds = InferenceWindows(root / "ann.json", root / "store", "validation",
                          eval_transform(32, crop), SlidingWindow(4))
    sums = {}
    with torch.no_grad():
        for clips, videos, _ in DataLoader(ds, batch_size=3 if crop == "center" else 1):
            for v, p in zip(videos.tolist(), torch.softmax(model(clips), 1).double()):
                sums.setdefault(ds.video_ids[v], []).append(p)
    return {vid: torch.stack(ps).mean(0).tolist() for vid, ps in sums.items()}


@pytest.mark.parametrize("crop", ["center", "nocrop"])
def test_predict_equals_sliding_window_inference(setup, capsys, crop):
    root, model = setup
    expected = _inference_scores(root, model, "none" if crop == "nocrop" else crop)
    # batches of 5 windows span videos (and, uncropped, frame sizes: b.mkv is wider); the
    # uncropped run decodes in two processes, whose batches interleave
    assert predict_main(_videos(root) + ["--checkpoint", str(root / "ck.pth"), "--json",
                                         "-k", "3", "--height", str(HEIGHT), "--no-progress",
                                         "--batch", "5", "--crop", crop, "--workers",
                                         "2" if crop == "nocrop" else "0"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == len(VIDEOS)
    for path, top in results.items():
        want = expected[Path(path).stem]
        assert [r["label"] for r in top] == [NAMES[i] for i in np.argsort(want)[::-1]]
        for r in top:
            assert r["score"] == pytest.approx(want[NAMES.index(r["label"])], abs=1e-6)
    if crop == "nocrop":
        return
    # the same videos read from the store give the same scores
    assert predict_main(["--video-path", str(root / "store"), "--annotation-path",
                         str(root / "ann.json"), "--checkpoint", str(root / "ck.pth"), "--json",
                         "-k", "1", "--no-progress"]) == 0
    stored = json.loads(capsys.readouterr().out)["results"]
    for vid, top in stored.items():
        assert top[0]["score"] == pytest.approx(max(expected[vid]), abs=1e-6)


def test_predict_equals_r3d_train_inference(setup, capsys, tmp_path):
    """The same checkpoint through r3d-train --inference on the store, end to end."""
    root, _ = setup
    assert train_main(["--video-path", str(root / "store"), "--annotation-path",
                       str(root / "ann.json"), "--result-path", str(tmp_path / "run"),
                       "--resume-path", str(root / "ck.pth"), "--no-train", "--no-val",
                       "--inference", "--output-topk", "3", "--n-threads", "0",
                       "--no-progress"] + TRAIN_ARGS[6:]) == 0
    expected = json.loads((tmp_path / "run" / "validation.json").read_text())["results"]
    capsys.readouterr()
    assert predict_main(_videos(root) + ["--checkpoint", str(root / "ck.pth"), "--json",
                                         "-k", "3", "--height", str(HEIGHT),
                                         "--no-progress"]) == 0
    got = json.loads(capsys.readouterr().out)["results"]
    assert len(expected) == len(got) == len(VIDEOS)
    for path, top in got.items():
        want = expected[Path(path).stem]
        assert [r["label"] for r in top] == [r["label"] for r in want]
        assert [r["score"] for r in top] == pytest.approx([r["score"] for r in want], abs=1e-6)


def test_predict_per_window_and_class_names(setup, capsys, tmp_path):
    root, model = setup
    video = _videos(root, ["b.mkv"])
    assert predict_main(video + ["--checkpoint", str(root / "ck.pth"), "--per-window", "--json",
                                 "--height", str(HEIGHT), "--no-progress"]) == 0
    windows = json.loads(capsys.readouterr().out)["results"][video[0]]
    assert [w["segment"] for w in windows] == [[0, 4], [4, 8], [8, 12], [12, 13]]
    assert [w["seconds"] for w in windows] == [[0, 0.16], [0.16, 0.32], [0.32, 0.48],
                                               [0.48, 0.52]]
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ref.pth")
    ref = ["--checkpoint", str(tmp_path / "ref.pth"), "--model", "resnet", "--model-depth", "10",
           "--conv1-t-size", "3", "--sample-size", "32", "--sample-duration", "4",
           "--height", str(HEIGHT), "--no-progress"]
    assert predict_main(video + ref) == 0
    captured = capsys.readouterr()
    assert "class indices" in captured.err and "  1. " in captured.out
    assert not any(n in captured.out for n in NAMES)
    (tmp_path / "labels.txt").write_text("\n".join(NAMES) + "\n")
    assert predict_main(video + ref + ["--labels", str(tmp_path / "labels.txt")]) == 0
    assert any(n in capsys.readouterr().out for n in NAMES)
    broken = tmp_path / "broken.webm"
    broken.write_bytes(b"\x1aE\xdf\xa3" + b"\x00" * 2048)
    assert predict_main(video + [str(broken)] + ref) == 1  # reported, the others still scored
    captured = capsys.readouterr()
    assert f"skipped {broken}" in captured.err and captured.out.startswith(video[0])
    (tmp_path / "two.txt").write_text("x\ny\n")
    assert predict_main(video + ref + ["--labels", str(tmp_path / "two.txt")]) == 2
    assert "names 2 classes, the model has 3" in capsys.readouterr().err


# --- r3d-features ----------------------------------------------------------------------------

def _features(root, out, *extra, videos=None):
    argv = (videos if videos is not None else _videos(root)) + [
        "--checkpoint", str(root / "ck.pth"), "--out", str(out), "--height", str(HEIGHT),
        "--no-progress", "--batch", "3"] + [str(x) for x in extra]
    return features_main(argv)


def _direct_features(root, model, vid, window, layer=None, stride=None):
    """The model's pooled activations on every window, computed here from the store."""
    store = open_store(root / "store")
    n = store.n_frames(vid)
    first = store.first_frame
    sampler = SlidingWindow(window, stride)
    tf = eval_transform(32, "center")
    out = []
    with torch.no_grad():
        for s in sampler.starts(n):
            clip = sampler.clip_at(range(first, first + n), s)
            x = tf(store.read(vid, clip))[None]
            if layer is None:
                out.append(model.forward_features(x)[0])
            else:
                acts = []
                hook = dict(model.named_modules())[layer].register_forward_hook(
                    lambda m, i, o: acts.append(o))
                model(x)
                hook.remove()
                out.append(acts[0].mean(dim=(2, 3, 4))[0])
    return torch.stack(out).numpy()


def test_features_windows_times_and_values(setup, tmp_path):
    root, model = setup
    assert _features(root, tmp_path / "f.h5") == 0
    got = _h5_contents(tmp_path / "f.h5")
    assert got["ids"] == ["a", "b", "c", "d"]
    attrs = got["attrs"]
    assert (attrs["model"], attrs["depth"], attrs["layer"], attrs["window"], attrs["stride"]) \
        == ("resnet", 10, "penultimate", 4, 4)
    assert attrs["checkpoint_sha256"] and attrs["norm_mean"] == [0.4345, 0.4051, 0.3775]
    for name, (n, _, _) in VIDEOS.items():
        vid = Path(name).stem
        v = got[vid]
        starts = list(range(0, n, 4))  # every window starting inside the video
        assert v["frames"].tolist() == [[s, min(s + 3, n - 1)] for s in starts]
        np.testing.assert_allclose(v["seconds"], np.stack(
            [v["frames"][:, 0] / 25, (v["frames"][:, 1] + 1) / 25], 1))
        assert (v["attrs"]["fps"], v["attrs"]["n_frames"]) == (25.0, n)
        assert v["features"].shape == (len(starts), 512) and v["features"].dtype == np.float32
        np.testing.assert_allclose(v["features"], _direct_features(root, model, vid, 4),
                                   atol=1e-5, rtol=1e-5)
    assert got["b"]["frames"][-1].tolist() == [12, 12]  # loop-padded last window
    # two decoding processes, each taking every other video, write the same file
    assert _features(root, tmp_path / "w.h5", "--workers", "2") == 0
    _assert_same_contents(_h5_contents(tmp_path / "w.h5"), got, atol=1e-5)


def test_features_layer_window_stride_and_store_input(setup, tmp_path):
    root, model = setup
    assert _features(root, tmp_path / "l.h5", "--layer", "layer3", "--window", "2",
                     "--stride", "3", videos=_videos(root, ["c.avi"])) == 0
    got = _h5_contents(tmp_path / "l.h5")["c"]
    assert got["frames"].tolist() == [[0, 1], [3, 4], [6, 7]]
    want = _direct_features(root, model, "c", 2, layer="layer3", stride=3)
    assert want.shape == (3, 256)
    np.testing.assert_allclose(got["features"], want, atol=1e-5, rtol=1e-5)
    assert _features(root, tmp_path / "p.h5", "--layer", "avgpool",
                     videos=_videos(root, ["c.avi"])) == 0
    np.testing.assert_allclose(_h5_contents(tmp_path / "p.h5")["c"]["features"],
                               _direct_features(root, model, "c", 4), atol=1e-5, rtol=1e-5)
    assert _features(root, tmp_path / "x.h5", "--layer", "layer9",
                     videos=_videos(root, ["c.avi"])) == 2
    assert not list(tmp_path.glob("x.h5*"))  # refused before anything is written
    # the store and its annotation give the features the raw videos give
    assert features_main(["--video-path", str(root / "store"), "--annotation-path",
                          str(root / "ann.json"), "--checkpoint", str(root / "ck.pth"),
                          "--out", str(tmp_path / "s.h5"), "--no-progress"]) == 0
    raw = tmp_path / "r.h5"
    assert _features(root, raw) == 0
    stored, direct = _h5_contents(tmp_path / "s.h5"), _h5_contents(raw)
    for vid in direct["ids"]:
        np.testing.assert_allclose(stored[vid]["features"], direct[vid]["features"], atol=1e-5)
        np.testing.assert_array_equal(stored[vid]["frames"], direct[vid]["frames"])


def test_features_npy_five_crops_and_bad_video(setup, tmp_path, capsys):
    root, model = setup
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 4096)
    out = tmp_path / "npy"
    assert _features(root, out, "--format", "npy", "--crop", "five", "--dtype", "float16",
                     videos=_videos(root, ["a.mp4", "d.mov"]) + [str(bad)]) == 1
    assert "FAILED broken" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["videos"]) == ["a", "d"] and manifest["attributes"]["crop"] == "five"
    d = manifest["videos"]["d"]
    assert d["frames"] == [[0, 3], [4, 5]] and d["n_frames"] == 6
    feats = np.load(out / "d.npy")
    assert feats.dtype == np.float16 and feats.shape == (2, 512)
    assert not (out / ".parts").exists()
    # the centre crop alone gives other features than the average of five crops
    centre = _direct_features(root, model, "d", 4)
    assert not np.allclose(feats, centre, atol=1e-3)


def test_features_interrupted_run_resumes_to_the_same_file(setup, tmp_path, monkeypatch):
    root, _ = setup
    clean = tmp_path / "clean.h5"
    assert _features(root, clean) == 0
    out = tmp_path / "f.h5"
    assert _features(root, out, videos=_videos(root, ["a.mp4"])) == 0
    before = _h5_contents(out)
    real = featurefile.FeatureOutput.write_video
    calls = []

    def killed_after_one(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) > 1:
            raise KeyboardInterrupt  # as a kill between two videos
        return real(self, *args, **kwargs)

    monkeypatch.setattr(featurefile.FeatureOutput, "write_video", killed_after_one)
    assert _features(root, out) == 130
    monkeypatch.undo()
    _assert_same_contents(_h5_contents(out), before)  # the old file is untouched
    assert len(list((tmp_path / "f.h5.parts").glob("*.npy"))) == 1  # one video survived
    # a kill inside the video's own write leaves no half record either
    real_atomic = featurefile.write_atomically

    def killed_in_write(path, write):
        if path.suffix == ".json" and path.name != featurefile.SETTINGS_NAME:
            raise KeyboardInterrupt
        return real_atomic(path, write)

    monkeypatch.setattr(featurefile, "write_atomically", killed_in_write)
    assert _features(root, out) == 130
    monkeypatch.undo()
    assert _features(root, out) == 0
    _assert_same_contents(_h5_contents(out), _h5_contents(clean), atol=1e-6)
    assert not (tmp_path / "f.h5.parts").exists()
    # a rerun has nothing left to do and keeps the file as it is; other settings are refused
    assert _features(root, out) == 0
    _assert_same_contents(_h5_contents(out), _h5_contents(clean), atol=1e-6)
    assert _features(root, out, "--window", "2") == 2


def test_features_torchrun_two_processes_write_one_file(setup, tmp_path):
    root, _ = setup
    single = tmp_path / "one.h5"
    assert _features(root, single) == 0
    merged = tmp_path / "two.h5"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "videoapps.features"] + _videos(root) + [
        "--checkpoint", str(root / "ck.pth"), "--out", str(merged), "--height", str(HEIGHT),
        "--no-progress", "--batch", "3", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 videos (" in proc.stdout  # rank 0 reports both ranks' videos
    _assert_same_contents(_h5_contents(merged), _h5_contents(single), atol=1e-5)


def test_features_killed_process_resumes(setup, tmp_path):
    """SIGKILL in the middle of a run: the previous file stays intact, the rerun completes."""
    root, _ = setup
    links = []
    for i in range(8):  # 8 videos, two of each source
        link = tmp_path / "videos" / f"l{i}{Path(list(VIDEOS)[i % 4]).suffix}"
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(root / "videos" / list(VIDEOS)[i % 4])
        links.append(str(link))
    out = tmp_path / "f.h5"
    assert _features(root, out, videos=links[:1]) == 0
    before = _h5_contents(out)
    cmd = [sys.executable, "-m", "videoapps.features"] + links + [
        "--checkpoint", str(root / "ck.pth"), "--out", str(out), "--height", str(HEIGHT),
        "--no-progress", "--batch", "3", "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "f.h5.parts"
    try:
        while proc.poll() is None and len(list(parts.glob("*.json"))) < 3:  # settings + 2
            time.sleep(0.02)
    finally:
        proc.kill()
    assert proc.wait() == -9  # killed while videos were left to do
    _assert_same_contents(_h5_contents(out), before)
    assert features_main(cmd[3:]) == 0
    after = _h5_contents(out)
    assert after["ids"] == [f"l{i}" for i in range(8)] and not parts.exists()
    _assert_same_contents({**before, "ids": ["l0"]}, {**after, "ids": ["l0"]})
    for i in range(4):
        np.testing.assert_allclose(after[f"l{i}"]["features"], after[f"l{i + 4}"]["features"],
                                   atol=1e-5)
        np.testing.assert_array_equal(after[f"l{i}"]["frames"], after[f"l{i + 4}"]["frames"])



@pytest.mark.parametrize("package, forbidden", [
    ("training", ("preprocess", "annotations", "videoapps")),
    ("preprocess", ("training", "annotations", "videoapps"))])
def test_one_way_flow(package, forbidden):
    """Importing every module of training loads neither preprocess (no ffmpeg at training
    time) nor annotations nor videoapps; preprocess loads none of the packages after it."""
    script = (f"import importlib, pkgutil, sys, {package}\n"
              f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
              f"    if not m.name.endswith('__main__'):\n"
              f"        importlib.import_module(m.name)\n"
              f"print(sorted({{n.split('.')[0] for n in sys.modules}}))\n")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout
    assert f"'{package}'" in loaded
    for other in forbidden:
        assert f"'{other}'" not in loaded
