"""r3d-preprocess on a new user's wrong input: nothing to convert is an error that leaves no
store behind, and store.json records the ffmpeg that made the store."""
import json
import logging

import pytest

from preprocess.cli import main as cli_main
from preprocess.convert import NothingToConvert, convert_dataset
from preprocess.ffmpeg_bin import ffmpeg_version
from tests.conftest import encode_video


def test_a_folder_without_videos_is_an_error_and_creates_no_store(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "notes").mkdir(parents=True)
    (src / "notes/readme.txt").write_text("no videos here")
    with pytest.raises(NothingToConvert, match="no file with a video extension"):
        convert_dataset(src, dst, progress=False)
    assert not dst.exists()
    assert cli_main([str(src), str(dst), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to convert" in err and str(src) in err
    assert not dst.exists()


def test_nothing_to_convert_into_an_existing_folder_keeps_the_folder(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (dst / "mine.txt").write_text("kept")
    with pytest.raises(NothingToConvert):
        convert_dataset(src, dst, progress=False)
    assert (dst / "mine.txt").read_text() == "kept"


def test_a_store_passed_as_src_is_refused_before_anything_is_written(tmp_path, capsys):
    src, store = tmp_path / "videos", tmp_path / "store"
    encode_video(src / "cls/a.mp4", frames=4)
    assert convert_dataset(src, store, progress=False).ok
    assert cli_main([str(store), str(tmp_path / "again"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is an r3d store" in err and "raw videos" in err and err.count("\n") == 1
    assert not (tmp_path / "again").exists()


def test_store_json_records_ffmpeg_and_a_rerun_with_another_one_warns(tmp_path, caplog):
    src, dst = tmp_path / "src", tmp_path / "dst"
    encode_video(src / "cls/a.mp4", frames=4)
    assert convert_dataset(src, dst, progress=False).ok
    settings = json.loads((dst / "store.json").read_text())
    assert settings["ffmpeg"] == ffmpeg_version() != "unknown"
    settings["ffmpeg"] = "4.2.7-other"
    (dst / "store.json").write_text(json.dumps(settings))
    encode_video(src / "cls/b.mp4", frames=4)
    with caplog.at_level(logging.WARNING, logger="preprocess.convert"):
        assert convert_dataset(src, dst, progress=False).converted == 1
    assert any("made with ffmpeg 4.2.7-other" in r.getMessage() and ffmpeg_version() in
               r.getMessage() for r in caplog.records)
    assert json.loads((dst / "store.json").read_text())["ffmpeg"] == "4.2.7-other"
