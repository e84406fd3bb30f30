"""r3d-train takes the reference implementation's command lines: every option in its snake_case
spelling with its meaning, the options r3d has no use for accepted or refused in one line
saying what to use instead, and --reference-defaults giving the reference's defaults."""
import pytest
import torch

from training.job.options import REFERENCE_DEFAULTS, parse

BASE = ["--video-path", "v", "--annotation-path", "a.json"]

#: The reference's opts.py options (its README and --help), with a value where they take one.
REFERENCE_OPTIONS = {
    "root_path": "/data", "video_path": "jpg", "annotation_path": "a.json",
    "result_path": "results", "dataset": "ucf101", "n_classes": "101",
    "n_pretrain_classes": "700", "pretrain_path": "r3d50_K_200ep.pth", "ft_begin_module": "fc",
    "sample_size": "112", "sample_duration": "16", "sample_t_stride": "1",
    "train_crop": "random", "train_crop_min_scale": "0.25", "train_crop_min_ratio": "0.75",
    "no_hflip": None, "colorjitter": None, "train_t_crop": "random", "learning_rate": "0.1",
    "momentum": "0.9", "dampening": "0.0", "weight_decay": "1e-3", "mean_dataset": "kinetics",
    "no_mean_norm": None, "no_std_norm": None, "value_scale": "1", "nesterov": None,
    "optimizer": "sgd", "lr_scheduler": "multistep", "multistep_milestones": ["50", "100"],
    "overwrite_milestones": None, "plateau_patience": "10", "batch_size": "128",
    "inference_batch_size": "0", "batchnorm_sync": None, "n_epochs": "200",
    "n_val_samples": "3", "resume_path": "save_100.pth", "no_train": None, "no_val": None,
    "inference": None, "inference_subset": "val", "inference_stride": "16",
    "inference_crop": "center", "inference_no_average": None, "no_cuda": None,
    "n_threads": "4", "checkpoint": "10", "model": "resnet", "model_depth": "50",
    "conv1_t_size": "7", "conv1_t_stride": "1", "no_max_pool": None, "resnet_shortcut": "B",
    "resnet_widen_factor": "1.0", "wide_resnet_k": "2", "resnext_cardinality": "32",
    "input_type": "rgb", "manual_seed": "1", "accimage": None, "output_topk": "5",
    "file_type": "jpg", "tensorboard": None,
}
REFUSED = {"distributed": None, "dist_url": "tcp://127.0.0.1:23456", "world_size": "2"}


def _argv(options):
    argv = []
    for name, value in options.items():
        argv.append("--" + name)
        argv += value if isinstance(value, list) else ([] if value is None else [value])
    return argv


def test_the_readme_command_line_parses_unchanged(tmp_path):
    args = parse(["--root_path", str(tmp_path), "--video_path", "kinetics_videos/jpg",
                  "--annotation_path", "kinetics.json", "--result_path", "results",
                  "--dataset", "kinetics", "--model", "resnet", "--model_depth", "50",
                  "--n_classes", "700", "--batch_size", "128", "--n_threads", "4",
                  "--checkpoint", "5"])
    assert args.stores == {None: tmp_path / "kinetics_videos/jpg"}
    assert args.annotation_path == tmp_path / "kinetics.json"
    assert args.result_path == tmp_path / "results"
    assert (args.model, args.model_depth, args.n_classes) == ("resnet", 50, 700)
    assert (args.batch_size, args.n_threads, args.checkpoint) == (128, 4, 5)
    assert args.dataset == "kinetics"


def test_every_reference_option_is_taken_in_its_spelling(tmp_path):
    assert len(REFERENCE_OPTIONS) + len(REFUSED) == 66
    options = dict(REFERENCE_OPTIONS, root_path=str(tmp_path), no_train=None, no_val=None)
    args = parse(_argv(options))
    for name, value in options.items():
        got = getattr(args, name)
        if name in ("root_path", "video_path", "annotation_path", "result_path",
                    "pretrain_path", "resume_path", "inference_batch_size", "n_pretrain_classes"):
            continue  # joined with --root-path / given a reference meaning, checked below
        if value is None:
            assert got is True, name
        elif isinstance(value, list):
            assert got == [int(v) for v in value], name
        else:
            assert str(got) == value or got == type(got)(value), (name, got, value)
    assert args.pretrain_path == tmp_path / "r3d50_K_200ep.pth"
    assert args.inference_batch_size == 128  # 0: the same as --batch_size
    # The dashed spelling means the same.
    dashed = parse(BASE + ["--result-path", str(tmp_path / "r"), "--sample-t-stride", "2",
                           "--n-classes=7"])
    snake = parse(BASE + ["--result_path", str(tmp_path / "r"), "--sample_t_stride", "2",
                          "--n_classes=7"])
    assert vars(dashed) == vars(snake)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_distributed_options_are_refused_in_one_line_naming_torchrun(name, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(BASE + ["--result_path", str(tmp_path)] + _argv({name: REFUSED[name]}))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--{name}" in err and "torchrun" in err


def test_reference_defaults(tmp_path):
    r3d = parse(BASE + ["--result-path", str(tmp_path), "--pretrain-path", "p.pth",
                        "--colorjitter"])
    assert (r3d.train_crop, r3d.lr_scheduler, r3d.ft_begin_module) == ("corner", "plateau",
                                                                        "layer4")
    assert (r3d.learning_rate, r3d.weight_decay) == (0.001, 1e-5)
    assert r3d.colorjitter_strengths == (0.4, 0.4, 0.4, 0.1) and r3d.temporal_rule == "r3d"
    assert r3d.inference_stride is None and r3d.n_classes is None
    assert not r3d.no_tensorboard and not r3d.no_resume

    ref = parse(BASE + ["--result_path", str(tmp_path), "--pretrain_path", "p.pth",
                        "--colorjitter", "--reference-defaults"])
    assert (ref.train_crop, ref.lr_scheduler, ref.ft_begin_module) == ("random", "multistep", "")
    assert (ref.learning_rate, ref.weight_decay) == (0.1, 1e-3)
    assert ref.colorjitter_strengths == (0.0, 0.0, 0.0, 0.0)
    assert ref.temporal_rule == "reference" and ref.inference_stride == 16
    assert ref.n_classes is None and ref.output_topk == 5  # the annotation's label count
    assert ref.no_tensorboard and ref.no_resume
    for key in REFERENCE_DEFAULTS:
        assert getattr(ref, key) == REFERENCE_DEFAULTS[key], key
    # Options given still win over the preset; --tensorboard turns the logs back on.
    ref = parse(BASE + ["--result_path", str(tmp_path), "--reference-defaults",
                        "--train_crop", "corner", "--learning_rate", "0.01", "--tensorboard",
                        "--resume_path", "x.pth", "--n_classes", "101", "--output_topk", "0"])
    assert (ref.train_crop, ref.learning_rate) == ("corner", 0.01)
    # The reference's inference stride counts frames of the list thinned by sample_t_stride.
    assert parse(BASE + ["--result_path", str(tmp_path), "--reference-defaults",
                         "--sample_t_stride", "2"]).inference_stride == 32
    assert not ref.no_tensorboard and not ref.no_resume
    # output_topk <= 0: every class, as the reference.
    assert ref.output_topk == 101
    assert parse(BASE + ["--result_path", str(tmp_path), "--output_topk", "-1"]).output_topk \
        is None


@pytest.mark.parametrize("extra, message", [
    (["--device", "tpu"], "--device 'tpu'"),
    (["--device", "cuda:x"], "--device 'cuda:x'"),
    (["--multistep-milestones", "-5"], "--multistep-milestones"),
    (["--multistep_milestones", "10", "-5"], "--multistep-milestones"),
    (["--plateau-patience", "-1"], "--plateau-patience"),
    (["--sample-size", "100000"], "--sample-size 100000"),
    (["--sample-size", "0"], "--sample-size"),
    (["--optimizer", "adam"], "--optimizer"),
    (["--n_classes", "0"], "--n-classes"),
])
def test_bad_values_are_refused_in_one_line(extra, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(BASE + ["--result-path", str(tmp_path)] + extra)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("r3d-train: error:") and message in err


def test_result_path_naming_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "results").write_text("not a directory")
    with pytest.raises(SystemExit) as exit_:
        parse(BASE + ["--result-path", str(tmp_path / "results")])
    assert exit_.value.code == 2 and "is a file" in capsys.readouterr().err


def test_cuda_device_without_cuda_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0"):
        with pytest.raises(SystemExit) as exit_:
            parse(BASE + ["--result-path", str(tmp_path), "--device", device])
        assert exit_.value.code == 2 and "CUDA is not available" in capsys.readouterr().err
    assert parse(BASE + ["--result-path", str(tmp_path), "--device", "cpu"]).device == "cpu"


def test_output_topk_none_keeps_every_class():
    from training.job.engine import top_results
    names = ["a", "b", "c"]
    assert [r["label"] for r in top_results([0.2, 0.5, 0.3], names, None)] == ["b", "c", "a"]
    assert [r["label"] for r in top_results([0.2, 0.5, 0.3], names, 2)] == ["b", "c"]
