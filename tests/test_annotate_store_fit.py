"""r3d-annotate with the wrong --index: a store holding under half of the entries, or one
matching a folder's video only by file name from another class folder, is an error."""
import pytest

from annotations.cli import main
from preprocess.convert import convert_dataset
from tests.conftest import encode_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    src = root / "videos"
    for rel in ("archery/x.mp4", "archery/y.mp4", "bowling/z.mp4", "bowling/w.mp4"):
        encode_video(src / rel, frames=4, width=64, height=48)
    right = root / "right"
    assert convert_dataset(src, right, progress=False).ok
    other = root / "other"
    encode_video(other / "cooking/x.mp4", frames=4, width=64, height=48)
    encode_video(other / "archery/y.mp4", frames=4, width=64, height=48)
    encode_video(other / "bowling/z.mp4", frames=4, width=64, height=48)
    wrong = root / "wrong"
    assert convert_dataset(other, wrong, progress=False).ok
    few = root / "few_src"
    encode_video(few / "archery/x.mp4", frames=4, width=64, height=48)
    partial = root / "partial"
    assert convert_dataset(few, partial, progress=False).ok
    return {"src": src, "right": right, "wrong": wrong, "partial": partial}


def test_the_store_made_from_the_videos_builds(videos, tmp_path):
    out = tmp_path / "a.json"
    assert main(["folder", str(videos["src"]), "--out", str(out), "--index",
                 str(videos["right"]), "-q"]) == 0
    assert out.is_file()


def test_a_match_by_file_name_from_another_class_folder_is_an_error(videos, tmp_path, capsys):
    out = tmp_path / "a.json"
    # 3 of 4 match (majority), but archery/x only as cooking/x: the wrong store.
    assert main(["folder", str(videos["src"]), "--out", str(out), "--index",
                 str(videos["wrong"]), "-q"]) == 1
    err = capsys.readouterr().err
    assert "archery/x -> cooking/x" in err and "another class folder" in err
    assert "--partial-store" in err and err.count("\n") == 1
    assert not out.exists()
    assert main(["folder", str(videos["src"]), "--out", str(out), "--index",
                 str(videos["wrong"]), "-q", "--partial-store"]) == 0


def test_a_store_holding_under_half_of_the_entries_is_an_error(videos, tmp_path, capsys):
    out = tmp_path / "a.json"
    assert main(["folder", str(videos["src"]), "--out", str(out), "--index",
                 str(videos["partial"]), "-q"]) == 1
    err = capsys.readouterr().err
    assert "only 1 of 4" in err and str(videos["partial"]) in err and not out.exists()
    assert main(["folder", str(videos["src"]), "--out", str(out), "--index",
                 str(videos["partial"]), "-q", "--partial-store"]) == 0
