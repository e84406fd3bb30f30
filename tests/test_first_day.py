"""A new user's first day with r3d-train (issue 21): reruns and fine-tuning without repeating
the architecture, CLI words in errors, nothing left behind by a failed start, small runs,
and stores found from the annotation file."""
import csv
import os

import numpy as np
import pytest
import torch

from annotations.cli import main as annotate
from demo.synth import render_video, write_video
from preprocess import convert_dataset
from training.cli import main as train_main
from training.job.options import build_parser

CLASSES = ("move_left", "move_right", "grow")
ARCH = ["--model", "resnet", "--model-depth", "10", "--resnet-widen-factor", "0.125",
        "--conv1-t-size", "3", "--no-max-pool"]
RUN = ["--sample-size", "32", "--sample-duration", "4", "--train-crop", "center", "--no-hflip",
       "--batch-size", "4", "--n-threads", "0", "--no-progress", "--no-tensorboard",
       "--lr-scheduler", "multistep"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 classes x 2 real MP4 videos -> JPEG store -> annotation recording the store's path."""
    root = tmp_path_factory.mktemp("firstday")
    rng = np.random.default_rng(0)
    for label in CLASSES:
        for i in range(2):
            write_video(render_video(label, rng, n_frames=8), root / "videos" / label /
                        f"{label}_{i}.mp4")
    assert convert_dataset(root / "videos", root / "frames", height=40, progress=False).ok
    ann = root / "ann.json"
    assert annotate(["folder", str(root / "videos"), "--out", str(ann), "--index",
                     str(root / "frames"), "--val-fraction", "0.5", "-q"]) == 0
    return root, ann


def _train(data, result, *extra, store="frames"):
    root, ann = data
    argv = (["--video-path", str(root / store)] if store else []) + [
        "--annotation-path", str(ann), "--result-path", str(result)] + RUN + [str(x) for x in extra]
    return train_main(argv)


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A small run trained for 1 epoch."""
    out = tmp_path_factory.mktemp("runs") / "small"
    assert _train(data, out, *ARCH, "--n-epochs", 1) == 0
    return out


def _epoch(path):
    return torch.load(path, weights_only=True)["epoch"]


def test_rerun_with_more_epochs_reads_the_architecture(data, finished, tmp_path):
    out = tmp_path / "again"
    out.mkdir()
    for name in ("last.pth", "opts.json"):
        (out / name).write_bytes((finished / name).read_bytes())
    root, ann = data
    no_scheduler = RUN[:RUN.index("--lr-scheduler")]
    assert train_main(["--video-path", str(root / "frames"), "--annotation-path", str(ann),
                       "--result-path", str(out), "--n-epochs", "2"] + no_scheduler) == 0
    assert _epoch(out / "last.pth") == 2


def test_contradicting_flag_names_the_flag_and_no_resume(data, finished, capsys):
    assert _train(data, finished, "--model-depth", 18, "--n-epochs", 2) == 2
    err = capsys.readouterr().err
    assert "--model-depth 18 contradicts" in err and "resnet-10" in err
    assert "--no-resume" in err and "auto-resume" in err and "generate_model" not in err


def test_fine_tune_from_an_r3d_checkpoint_without_architecture_flags(data, finished, tmp_path):
    out = tmp_path / "ft"
    assert _train(data, out, "--pretrain-path", finished / "last.pth", "--n-epochs", 1) == 0
    ckpt = torch.load(out / "last.pth", weights_only=True)
    assert ckpt["model_spec"]["depth"] == 10 and ckpt["model_spec"]["widen_factor"] == 0.125


def test_finished_run_says_the_epochs_done(data, finished, capsys):
    assert _train(data, finished, "--n-epochs", 1) == 0
    out = capsys.readouterr().out
    assert "1 epochs done" in out and "--n-epochs 2" in out


def test_raw_videos_folder_is_named_and_nothing_is_left(data, tmp_path, capsys):
    out = tmp_path / "new"
    assert _train(data, out, *ARCH, "--n-epochs", 1, store="videos") == 2
    err = capsys.readouterr().err
    assert "raw videos" in err and "r3d-preprocess" in err
    assert not out.exists()


def test_bad_videos_speak_cli_words(data, tmp_path, capsys):
    root, ann = data
    empty = tmp_path / "empty_frames"
    (empty / "move_left").mkdir(parents=True)
    out = tmp_path / "bad"
    assert train_main(["--video-path", str(empty), "--annotation-path", str(ann),
                       "--result-path", str(out), "--n-epochs", "1"] + RUN + ARCH) == 2
    err = capsys.readouterr().err
    assert "--on-bad-video skip" in err and "on_bad=" not in err
    assert not out.exists()


def test_store_from_annotation_and_capped_epochs(data, tmp_path):
    out = tmp_path / "noroot"
    assert _train(data, out, *ARCH, "--n-epochs", 2, "--max-iters-per-epoch", 1,
                  "--batch-size", 1, store=None) == 0
    with open(out / "train_batch.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert (out / "opts.json").exists()


def test_help_shows_defaults_and_workers_fit_the_cores():
    text = build_parser().format_help()
    for default in ("(default: 128)", "(default: 200)", "(default: 112)", "default: 18"):
        assert default in text, default
    assert "--max-iters-per-epoch" in text
    workers = build_parser().get_default("n_threads")
    assert 1 <= workers <= min(4, len(os.sched_getaffinity(0)))


def test_reference_checkpoint_that_does_not_fit_names_the_flags(data, tmp_path, capsys):
    from training.models import generate_model
    bare = tmp_path / "bare.pth"
    torch.save(generate_model("resnet", 10, n_classes=5, widen_factor=0.125).state_dict(), bare)
    assert _train(data, tmp_path / "ref", "--pretrain-path", bare, "--n-epochs", 1) == 2
    err = capsys.readouterr().err
    assert "--model-depth 10" in err and "--resnet-widen-factor 0.125" in err
    assert "generate_model" not in err
