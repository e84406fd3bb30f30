"""Every command's failure paths speak the command line's words: one line on stderr, a non-zero
exit, and no Python syntax (`name=` keyword arguments, `snake_case(` calls) a user never typed."""
import json
import re

import pytest

from annotations.cli import main as annotate
from preprocess.cli import main as preprocess
from preprocess.reference_export import main as export_reference
from tests.conftest import encode_video
from training.cli import main as train
from training.eval_cli import main as evaluate
from videoapps.cli import features_main as features
from videoapps.cli import predict_main as predict

PYTHON_WORDS = [
    re.compile(r"(?<![-\w])[a-z_][a-z0-9_]*=(?!=)"),  # on_bad='skip', n_classes=3
    re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]*\("),     # generate_model('resnet', ...)
]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A real store of two videos, its folder annotation and a results file."""
    root = tmp_path_factory.mktemp("words")
    videos = root / "videos"
    encode_video(videos / "run/a.mp4", frames=6, width=64, height=48)
    encode_video(videos / "walk/b.mp4", frames=6, width=64, height=48)
    assert preprocess([str(videos), str(root / "store"), "--no-progress"]) == 0
    assert annotate(["folder", str(videos), "--out", str(root / "ann.json"), "--index",
                     str(root / "store"), "-q"]) == 0
    (root / "bad.json").write_text('{"labels": ["a"], "database": {}, "database": {}}')
    (root / "results.json").write_text(json.dumps({"results": {"x": "not a list"}}))
    return root


def _failures(made):
    t = made
    missing = str(t / "nowhere")
    return [
        ("r3d-preprocess", preprocess, [missing, str(t / "dst1")]),
        ("r3d-preprocess", preprocess, [str(t / "videos"), str(t / "dst2"), "--height", "100000"]),
        ("r3d-preprocess", preprocess, [str(t / "store"), str(t / "dst3")]),
        ("r3d-annotate", annotate, ["folder", missing, "--out", str(t / "o.json")]),
        ("r3d-annotate", annotate, ["stats", str(t / "bad.json")]),
        ("r3d-annotate", annotate, ["check", str(t / "bad.json")]),
        ("r3d-annotate", annotate, ["subset", missing, "-o", str(t / "s.json"),
                                    "--instances", "0.5"]),
        ("r3d-eval", evaluate, [str(t / "ann.json"), missing]),
        ("r3d-eval", evaluate, [str(t / "ann.json"), str(t / "results.json")]),
        ("r3d-predict", predict, [str(t / "videos/run/a.mp4"), "--checkpoint", missing]),
        ("r3d-features", features, [str(t / "videos/run/a.mp4"), "--checkpoint", missing,
                                    "--out", str(t / "videos/run/a.mp4")]),
        ("r3d-export-reference", export_reference, [missing, str(t / "ref")]),
        ("r3d-train", train, ["--annotation-path", missing, "--result-path", str(t / "r1")]),
        ("r3d-train", train, ["--annotation-path", str(t / "ann.json"), "--result-path",
                              str(t / "r2"), "--model-depth", "7", "--no-progress"]),
        ("r3d-train", train, ["--annotation-path", str(t / "ann.json"), "--result-path",
                              str(t / "r3"), "--video-path", str(t / "videos"),
                              "--no-progress"]),
        ("r3d-train", train, ["--annotation-path", str(t / "ann.json"), "--result-path",
                              str(t / "r4"), "--pretrain-path", missing, "--no-progress"]),
    ]


def test_failure_messages_are_one_line_in_command_words(made, capsys):
    bad = []
    for name, main, argv in _failures(made):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse's own refusals
            rc = e.code
        err = capsys.readouterr().err.strip()
        lines = [line for line in err.splitlines() if "error" in line]
        if rc == 0 or not lines:
            bad.append(f"{name} {argv}: exit {rc}, no error line: {err!r}")
            continue
        text = lines[-1].replace(str(made), "")
        for pattern in PYTHON_WORDS:
            if pattern.search(text):
                bad.append(f"{name}: Python words in {text!r}")
        if "Traceback" in err:
            bad.append(f"{name}: a traceback: {err[-300:]!r}")
    assert not bad, "\n".join(bad)


def test_the_word_patterns_catch_what_they_claim():
    assert any(p.search("(pass on_bad='skip' to leave them out)") for p in PYTHON_WORDS)
    assert any(p.search("build that with generate_model('resnet', 10)") for p in PYTHON_WORDS)
    assert not any(p.search("use --on-bad-video skip, or --fps=10 (2 video(s))")
                   for p in PYTHON_WORDS)


def test_a_folder_given_as_a_video_says_what_to_pass(made):
    from preprocess.extract import FrameSettings
    from videoapps.sources import file_sources
    with pytest.raises(ValueError, match=r"a folder, not a video file: pass its videos .*--root"):
        file_sources([str(made / "videos")], FrameSettings())
    with pytest.raises(ValueError, match="an r3d store: pass it as --video-path"):
        file_sources([str(made / "store")], FrameSettings())
