"""r3d-train end to end on a tiny synthetic motion dataset: learning, resume, fine-tuning,
inference, evaluation, torchrun with gloo, and option errors."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from annotations.cli import main as annotate
from demo.synth import render_video, write_video
from preprocess import convert_dataset
from training.cli import main as train_main
from training.job.evaluation import evaluate
from training.models import generate_model

CLASSES = ("move_left", "move_right", "grow")
SMALL_MODEL = ["--model", "resnet", "--model-depth", "10", "--resnet-widen-factor", "0.125",
               "--conv1-t-size", "3", "--no-max-pool", "--sample-size", "32",
               "--sample-duration", "8", "--train-crop", "center", "--no-hflip",
               "--batch-size", "4", "--n-threads", "0", "--no-progress",
               "--lr-scheduler", "multistep", "--learning-rate", "0.05"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 classes x 4 real MP4 videos -> JPEG store -> annotation with 1 video per class held
    out."""
    root = tmp_path_factory.mktemp("motion")
    rng = np.random.default_rng(0)
    for label in CLASSES:
        for i in range(4):
            write_video(render_video(label, rng, n_frames=20), root / "videos" / label /
                        f"{label}_{i}.mp4")
    assert convert_dataset(root / "videos", root / "frames", height=48, progress=False).ok
    ann = root / "ann.json"
    assert annotate(["folder", str(root / "videos"), "--out", str(ann), "--index",
                     str(root / "frames"), "--val-fraction", "0.25", "-q"]) == 0
    return root, ann


def _train(data, result, *extra):
    root, ann = data
    argv = ["--video-path", str(root / "frames"), "--annotation-path", str(ann),
            "--result-path", str(result)] + SMALL_MODEL + [str(x) for x in extra]
    return train_main(argv)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_training_reduces_loss_and_writes_logs(data, tmp_path):
    out = tmp_path / "run"
    assert _train(data, out, "--n-epochs", 6, "--checkpoint", 3, "--multistep-milestones", 5) == 0
    rows = _rows(out / "train.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    batches = _rows(out / "train_batch.csv")
    assert len(batches) == 6 * 3  # 9 training videos, batches of 4
    assert [int(b["iteration"]) for b in batches] == list(range(1, 19))
    val = _rows(out / "val.csv")
    assert len(val) == 6 and val[-1]["video_top1"] != "" and val[0]["video_top1"] == ""
    assert float(rows[-1]["lr"]) == pytest.approx(0.005)
    for name in ("last.pth", "best.pth", "save_3.pth", "save_6.pth", "opts.json"):
        assert (out / name).exists(), name
    opts = json.loads((out / "opts.json").read_text())
    assert opts["weight_decay"] == 1e-3 and opts["sample_duration"] == 8
    ckpt = torch.load(out / "last.pth", weights_only=True)
    assert ckpt["epoch"] == 6 and ckpt["arch"] == "resnet-10"
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert {"optimizer", "scheduler", "best"} <= set(ckpt)
    assert sorted(ckpt["class_names"]) == sorted(CLASSES)
    assert ckpt["model_spec"]["model"] == "resnet" and ckpt["clip"]["sample_duration"] == 8
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(str(out / "tensorboard" / "epoch"))
    ev.Reload()
    assert {"train/loss", "train/acc", "train/lr", "val/loss", "val/acc"} <= set(ev.Tags()["scalars"])
    assert [e.step for e in ev.Scalars("train/loss")] == list(range(1, 7))
    tools = Path(__file__).resolve().parents[1] / "tools" / "plot_curves.py"
    png = subprocess.run([sys.executable, str(tools), str(out)], capture_output=True, text=True)
    assert png.returncode == 0, png.stderr
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


KILL_IN_EPOCH_3 = """
import os, signal, sys
import training.job.fit as fit
real = fit.train_epoch
def train_epoch(model, loader, criterion, optimizer, ctx, epoch, **kwargs):
    if epoch == 3:
        next(iter(loader))
        os.killpg(0, signal.SIGKILL)
    return real(model, loader, criterion, optimizer, ctx, epoch, **kwargs)
fit.train_epoch = train_epoch
from training.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_killed_run_resumes_to_the_same_weights(data, tmp_path, workers):
    """Every run in its own process with one thread, so that the reference, the killed and the
    resumed run add floating-point numbers in the same order. With worker processes (which
    persist between epochs) as without: the draws do not depend on them."""
    root, ann = data
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def cmd(result, n_threads=workers):
        return [sys.executable, "-m", "training.cli", "--video-path", str(root / "frames"),
                "--annotation-path", str(ann), "--result-path", str(result), *SMALL_MODEL,
                "--n-epochs", "3", "--multistep-milestones", "2", "--n-threads", str(n_threads)]

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert subprocess.run(cmd(ref), env=env, capture_output=True).returncode == 0
    if workers == 2:  # the same run without workers draws the same clips
        plain = tmp_path / "plain"
        assert subprocess.run(cmd(plain, 0), env=env, capture_output=True).returncode == 0
        assert [r["loss"] for r in _rows(plain / "train.csv")] == \
            [r["loss"] for r in _rows(ref / "train.csv")]
    # Killed (SIGKILL, workers and all) once epoch 3 has drawn its first batch: a fixed point
    # mid-run, whatever the machine's load.
    killer = [sys.executable, "-c", KILL_IN_EPOCH_3, *cmd(killed)[3:]]
    proc = subprocess.run(killer, env=env, capture_output=True, text=True,
                          start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [r["epoch"] for r in _rows(killed / "train.csv")] == ["1", "2"]
    resumed = subprocess.run(cmd(killed), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    a = torch.load(ref / "last.pth", weights_only=True)
    b = torch.load(killed / "last.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert a["scheduler"] == b["scheduler"]
    ref_rows, rows = _rows(ref / "train.csv"), _rows(killed / "train.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref_rows]


def test_inference_results_agree_with_r3d_eval(data, tmp_path):
    out = tmp_path / "inf"
    assert _train(data, out, "--n-epochs", 1, "--inference", "--output-topk", 2) == 0
    root, ann = data
    doc = json.loads(ann.read_text())
    val_ids = {v for v, e in doc["database"].items() if e["subset"] == "validation"}
    results = json.loads((out / "validation.json").read_text())["results"]
    assert set(results) == val_ids
    hits = 0
    for vid, res in results.items():
        assert len(res) == 2 and res[0]["score"] >= res[1]["score"]
        assert 0 < res[0]["score"] <= 1
        hits += res[0]["label"] == doc["database"][vid]["annotations"]["label"]
    assert evaluate(ann, out / "validation.json", ks=(1,))["top1"] == hits / len(val_ids)
    assert _train(data, out, "--no-train", "--no-val", "--inference", "--inference-no-average",
                  "--inference-subset", "val") == 0
    per_window = json.loads((out / "validation.json").read_text())["results"]
    for vid, windows in per_window.items():
        # 20 frames, windows of 8 that do not overlap: [1, 9), [9, 17), [17, 25) loop-padded
        assert [w["segment"] for w in windows] == [[1, 9], [9, 17], [17, 21]]
        assert all(len(w["result"]) == 5 or len(w["result"]) == 3 for w in windows)


def test_fine_tuning_trains_only_the_chosen_modules(data, tmp_path):
    pre = generate_model("resnet", 10, n_classes=7, widen_factor=0.125, conv1_t_size=3,
                         no_max_pool=True)
    path = tmp_path / "pre.pth"
    torch.save({"epoch": 5, "arch": "resnet-10",
                "state_dict": {"module." + k: v for k, v in pre.state_dict().items()}}, path)
    out = tmp_path / "ft"
    assert _train(data, out, "--pretrain-path", path, "--n-epochs", 2) == 0
    opts = json.loads((out / "opts.json").read_text())
    assert opts["ft_begin_module"] == "layer4" and opts["weight_decay"] == 1e-5
    tuned = torch.load(out / "last.pth", weights_only=True)["state_dict"]
    before = pre.state_dict()
    assert tuned["fc.weight"].shape == (len(CLASSES), before["fc.weight"].shape[1])
    for k, v in before.items():
        if k.startswith(("conv1.", "bn1.", "layer1.", "layer2.", "layer3.")):
            assert torch.equal(tuned[k], v), f"{k} changed but is frozen"
    assert not torch.equal(tuned["layer4.0.conv1.weight"], before["layer4.0.conv1.weight"])


def test_inference_from_a_fine_tuned_run_and_no_nan_results(data, tmp_path):
    """--no-train --inference on a fine-tuned run's last.pth needs its weights only (not its
    optimiser's parameter groups); a model giving NaN scores writes nothing and exits 2."""
    pre = generate_model("resnet", 10, n_classes=7, widen_factor=0.125, conv1_t_size=3,
                         no_max_pool=True)
    path = tmp_path / "pre.pth"
    torch.save({"epoch": 5, "arch": "resnet-10", "state_dict": pre.state_dict()}, path)
    out = tmp_path / "ft"
    assert _train(data, out, "--pretrain-path", path, "--n-epochs", 1) == 0
    assert _train(data, tmp_path / "inf", "--no-train", "--no-val", "--inference",
                  "--resume-path", out / "last.pth") == 0
    assert (tmp_path / "inf" / "validation.json").exists()
    ckpt = torch.load(out / "last.pth", weights_only=True)
    ckpt["state_dict"]["fc.bias"][0] = float("nan")
    torch.save(ckpt, tmp_path / "nan.pth")
    assert _train(data, tmp_path / "nan", "--no-train", "--no-val", "--inference",
                  "--resume-path", tmp_path / "nan.pth") == 2
    assert not (tmp_path / "nan" / "validation.json").exists()


def test_reference_checkpoints_resume_and_class_order_is_checked(data, tmp_path, capsys):
    """A reference fine-tuning checkpoint (one optimiser group per tensor) resumes; a
    checkpoint whose recorded classes are in another order is refused, or remapped on
    request."""
    out = tmp_path / "run"
    assert _train(data, out, "--n-epochs", 1) == 0
    ckpt = torch.load(out / "last.pth", weights_only=True)
    groups = ckpt["optimizer"]["param_groups"]
    ckpt["optimizer"]["param_groups"] = [dict(groups[0], params=[p]) for p in groups[0]["params"]]
    for name in ("class_names", "model_spec", "clip", "best", "manual_seed"):
        ckpt.pop(name)
    torch.save(ckpt, tmp_path / "reference.pth")
    assert _train(data, tmp_path / "resumed", "--n-epochs", 2,
                  "--resume-path", tmp_path / "reference.pth") == 0
    assert [r["epoch"] for r in _rows(tmp_path / "resumed" / "train.csv")] == ["2"]
    mine = torch.load(out / "last.pth", weights_only=True)
    mine["class_names"] = mine["class_names"][::-1]
    torch.save(mine, tmp_path / "reordered.pth")
    infer = ["--no-train", "--no-val", "--inference", "--resume-path", tmp_path / "reordered.pth"]
    capsys.readouterr()
    assert _train(data, tmp_path / "inf", *infer) == 2
    assert "--remap-labels" in capsys.readouterr().err
    assert _train(data, tmp_path / "inf", *infer, "--remap-labels") == 0


def test_a_bad_frame_in_a_worker_is_one_clear_line(data, tmp_path, capsys):
    root, ann = data
    frames = tmp_path / "frames"
    shutil.copytree(root / "frames", frames)
    victim = sorted(p for p in frames.glob("*/*") if p.is_dir())[0]
    for jpg in victim.glob("image_*.jpg"):
        jpg.write_bytes(b"\xff\xd8broken")
    argv = ["--video-path", str(frames), "--annotation-path", str(ann), "--result-path",
            str(tmp_path / "run"), *SMALL_MODEL, "--n-epochs", "1", "--n-threads", "1"]
    capsys.readouterr()
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("r3d-train: error:") and "\n" not in err, err
    assert victim.name in err


def test_torchrun_gloo_two_processes_one_set_of_logs(data, tmp_path):
    root, ann = data
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "training.cli", "--video-path", str(root / "frames"),
           "--annotation-path", str(ann), "--result-path", str(out), *SMALL_MODEL,
           "--n-epochs", "2", "--inference", "--batchnorm-sync"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["epoch"] for r in _rows(out / "train.csv")] == ["1", "2"]
    assert len(_rows(out / "val.csv")) == 2
    assert proc.stdout.count("epoch 2/2") == 1
    results = json.loads((out / "validation.json").read_text())["results"]
    doc = json.loads(ann.read_text())
    assert set(results) == {v for v, e in doc["database"].items() if e["subset"] == "validation"}
    assert not any(k.startswith("module.")
                   for k in torch.load(out / "last.pth", weights_only=True)["state_dict"])
    # scores summed with all_reduce over 2 processes equal one process's
    single = tmp_path / "single"
    assert _train(data, single, "--no-train", "--no-val", "--inference", "--resume-path",
                  out / "last.pth") == 0
    alone = json.loads((single / "validation.json").read_text())["results"]
    assert set(alone) == set(results)
    for vid, res in results.items():
        assert [r["label"] for r in res] == [r["label"] for r in alone[vid]]
        assert [r["score"] for r in res] == pytest.approx([r["score"] for r in alone[vid]],
                                                          abs=1e-6)


@pytest.mark.parametrize("extra, message", [
    (["--no-train", "--no-val"], "nothing to do"),
    (["--model-depth", "11"], "valid depths"),
    (["--n-classes", "5"], "has 3 labels"),
    (["--sample-size", "0"], "--sample-size must be at least 1"),
    (["--inference-subset", "nosuch", "--no-train", "--no-val", "--inference"],
     "no video in subset 'nosuch'"),
])
def test_bad_options_get_a_clear_message(data, tmp_path, capsys, extra, message):
    try:
        rc = _train(data, tmp_path / "bad", *extra)
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    assert rc == 2
    assert message in capsys.readouterr().err


def test_fine_tuning_defaults_are_the_papers(data, tmp_path):
    from training.job.options import parse
    root, ann = data
    base = ["--video-path", str(root), "--annotation-path", str(ann), "--result-path",
            str(tmp_path)]
    scratch = parse(base)
    assert (scratch.learning_rate, scratch.weight_decay, scratch.ft_begin_module) == \
        (0.1, 1e-3, None)
    tuned = parse(base + ["--pretrain-path", "x.pth", "--model", "densenet"])
    assert (tuned.learning_rate, tuned.weight_decay, tuned.ft_begin_module) == \
        (0.001, 1e-5, "denseblock4")
    assert scratch.lr_scheduler == "plateau" and scratch.plateau_patience == 10
    assert scratch.momentum == 0.9 and scratch.train_crop == "corner"


def test_demo_pipeline_runs_and_reports_accuracy(tmp_path, capsys):
    """The README's demo line, shrunk: every stage runs and the last line has the format the
    README promises (the full-size demo's accuracy is in docs/benchmarks.md)."""
    import re

    from demo.cli import main as demo_main
    assert demo_main(["--workdir", str(tmp_path / "demo"), "--videos-per-class", "4",
                      "--epochs", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"video top-1 accuracy: [01]\.\d{3}", last), last
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["videos"] == 24 and 0 <= summary["top1"] <= 1


def test_flow_input_uses_two_channels(data, tmp_path):
    out = tmp_path / "flow"
    assert _train(data, out, "--input-type", "flow", "--n-epochs", 1) == 0
    weights = torch.load(out / "last.pth", weights_only=True)["state_dict"]
    assert weights["conv1.weight"].shape[1] == 2
