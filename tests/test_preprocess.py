"""r3d-preprocess on real videos encoded at test time: layouts, counts, failures, resume."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import simplejpeg

from conftest import decoded_frame_count, encode_video
from preprocess import convert_dataset
from preprocess.cli import main as cli_main
from storeformat import frame_name, read_frame_bytes, read_index, read_settings

# relative path -> (encoder options, expected output width at height 240)
GOOD = {
    "Archery/v_Archery_g01_c01.avi": (dict(codec="mpeg4", frames=30), 320),
    "Archery/clip two.mp4": (dict(frames=20), 320),
    "Archery/h264 in.avi": (dict(frames=10), 320),
    "Bowling/ünïcødé 'q\".mkv": (dict(frames=18), 320),
    "Bowling/-lead.webm": (dict(codec="libvpx", width=320, height=180, frames=12), 426),
    "Bowling/portrait.mov": (dict(width=240, height=320, frames=16), 180),
    "Bowling/old.flv": (dict(codec="flv1", frames=10), 320),
}
BAD = {
    "Bowling/zero.avi": "empty file",
    "Bowling/text.mp4": "cannot decode",
    "Bowling/truncated.mp4": "truncated",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A class-folder dataset with several containers and codecs, odd names, bad files."""
    src = tmp_path_factory.mktemp("videos")
    for rel, (opts, _) in GOOD.items():
        encode_video(src / rel, **opts)
    (src / "Bowling/zero.avi").write_bytes(b"")
    (src / "Bowling/text.mp4").write_text("this is not a video\n")
    full = encode_video(src / "full.mp4", frames=50, movflags="+faststart")
    data = full.read_bytes()
    (src / "Bowling/truncated.mp4").write_bytes(data[:len(data) // 2])
    full.unlink()
    (src / "Bowling/notes.txt").write_text("not a video extension: ignored")
    return src


@pytest.fixture(scope="module")
def jpg_store(dataset, tmp_path_factory):
    dst = tmp_path_factory.mktemp("jpg") / "store"
    summary = convert_dataset(dataset, dst, fmt="jpg", jobs=2, progress=False)
    return dst, summary


def _vid(rel):
    return rel.rsplit(".", 1)[0]


def test_good_videos_converted_with_ffprobe_counts_and_sizes(dataset, jpg_store):
    dst, summary = jpg_store
    index = read_index(dst / "index.jsonl")
    assert summary.converted == len(GOOD)
    for rel, (_, width) in GOOD.items():
        rec = index[_vid(rel)]
        assert rec["status"] == "done", rec
        assert rec["source"] == rel
        assert rec["n_frames"] == decoded_frame_count(dataset / rel)
        assert (rec["width"], rec["height"]) == (width, 240)
        assert rec["fps"] == 25.0
        assert rec["duration"] == pytest.approx(rec["n_frames"] / 25.0)
        frame_dir = dst / rec["path"]
        assert frame_dir == dst / _vid(rel)
        names = sorted(os.listdir(frame_dir))
        assert names == [frame_name(i) for i in range(1, rec["n_frames"] + 1)]
        for name in (names[0], names[-1]):
            img = simplejpeg.decode_jpeg((frame_dir / name).read_bytes())
            assert img.shape == (240, width, 3)


def test_frames_hold_the_video_content(dataset, jpg_store):
    """The first frame matches ffmpeg's own decode of the source (up to JPEG loss)."""
    dst, _ = jpg_store
    import av
    with av.open(str(dataset / "Archery/clip two.mp4")) as c:
        ref = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
    got = simplejpeg.decode_jpeg((dst / "Archery/clip two" / frame_name(1)).read_bytes())
    assert np.abs(got.astype(np.float32) - ref).mean() < 6.0


def test_bad_files_reported_not_fatal(jpg_store):
    dst, summary = jpg_store
    failed = dict(summary.failed)
    assert set(failed) == set(BAD)
    for rel, word in BAD.items():
        assert word in failed[rel]
        assert read_index(dst / "index.jsonl")[_vid(rel)]["status"] == "failed"
    lines = (dst / "failures.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "source\treason"
    assert sorted(line.split("\t")[0] for line in lines[1:]) == sorted(BAD)
    assert not (dst / ".r3d-tmp").exists()
    assert not (dst / "Bowling/notes").exists()


def test_second_run_does_no_work_and_exits_the_same(dataset, jpg_store, capsys):
    dst, _ = jpg_store
    stamps = {p: p.stat().st_mtime_ns for p in dst.rglob("*.jpg")}
    index_before = (dst / "index.jsonl").read_bytes()
    rc = cli_main([str(dataset), str(dst), "--jobs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "0 converted" in out and f"{len(GOOD)} already done" in out
    assert all(f"FAILED {rel}" in out for rel in BAD)
    assert (dst / "index.jsonl").read_bytes() == index_before
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.jpg")} == stamps


def test_hdf5_frames_identical_to_jpg(dataset, jpg_store, tmp_path):
    jdst, _ = jpg_store
    hdst = tmp_path / "h5"
    summary = convert_dataset(dataset, hdst, fmt="hdf5", jobs=2, videos_per_shard=4,
                              progress=False)
    assert summary.converted == len(GOOD) and len(summary.failed) == len(BAD)
    hindex, jindex = read_index(hdst / "index.jsonl"), read_index(jdst / "index.jsonl")
    shards = sorted(p.name for p in hdst.glob("*.h5"))
    assert 1 <= len(shards) < len(GOOD)
    assert not list(hdst.rglob("*.jpg"))
    for rel in GOOD:
        h, j = hindex[_vid(rel)], jindex[_vid(rel)]
        assert h["path"] in shards and h["key"] == "videos/" + _vid(rel)
        for field in ("n_frames", "fps", "width", "height", "duration", "source"):
            assert h[field] == j[field]
        with h5py.File(hdst / h["path"], "r") as f:
            assert f.attrs["layout"] == "r3d-hdf5"
            group = f[h["key"]]
            assert group.attrs["n_frames"] == h["n_frames"]
            assert group.attrs["source"] == rel
            assert group["offsets"].shape == (h["n_frames"] + 1,)
            frames = read_frame_bytes(group, range(h["n_frames"]))
        for i, data in enumerate(frames, 1):
            assert data == (jdst / j["path"] / frame_name(i)).read_bytes()


def test_short_side_and_fps(dataset, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("Bowling/portrait.mov\nArchery/v_Archery_g01_c01.avi\n")
    dst = tmp_path / "out"
    summary = convert_dataset(dataset, dst, short_side=112, fps=10, list_file=lst, progress=False)
    assert summary.ok and summary.converted == 2
    index = read_index(dst / "index.jsonl")
    portrait = index["Bowling/portrait"]
    assert (portrait["width"], portrait["height"]) == (112, 150)
    land = index["Archery/v_Archery_g01_c01"]
    assert (land["width"], land["height"]) == (150, 112)
    # 30 frames at 25 fps = 1.2 s; at 10 fps that is 12 frames.
    assert land["n_frames"] == 12 and land["fps"] == 10.0
    assert sorted(index) == ["Archery/v_Archery_g01_c01", "Bowling/portrait"]
    assert read_settings(dst / "store.json")["short_side"] == 112


def test_ext_adds_extensions_and_list_reports_missing(tmp_path):
    src = tmp_path / "src"
    encode_video(src / "a.mp4", frames=5)
    shutil.copy(src / "a.mp4", src / "b.vid")
    dst = tmp_path / "out"
    assert convert_dataset(src, dst, progress=False).converted == 1
    assert convert_dataset(src, dst, extensions=[".vid"], progress=False).converted == 1
    lst = tmp_path / "list.txt"
    lst.write_text("# comment\na.mp4\nmissing.mp4\n")
    summary = convert_dataset(src, dst, list_file=lst, progress=False)
    assert summary.skipped == 1
    assert summary.failed and "not found" in summary.failed[0][1]


def test_same_id_from_two_containers_is_a_reported_conflict(tmp_path):
    src = tmp_path / "src"
    encode_video(src / "a.avi", codec="mpeg4", frames=5)
    encode_video(src / "a.mp4", frames=5)
    summary = convert_dataset(src, tmp_path / "out", progress=False)
    assert summary.converted == 1
    assert summary.failed == [("a.mp4", "same video id 'a' as a.avi")]


def test_other_settings_refused_without_overwrite(dataset, jpg_store, tmp_path, capsys):
    dst, _ = jpg_store
    rc = cli_main([str(dataset), str(dst), "--height", "128", "--no-progress"])
    assert rc == 2
    assert "height: 240 there, 128 now" in capsys.readouterr().err


def test_help_explains(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("--format", "--height", "--short-side", "--fps", "--quality", "--jobs",
                 "--list", "--overwrite", "--ext", "index.jsonl"):
        assert word in out


def _store_content(dst):
    """{video id: [frame bytes, ...]} of every done video of a store, whatever its format."""
    out = {}
    for vid, rec in read_index(dst / "index.jsonl").items():
        if rec["status"] != "done":
            continue
        if rec["format"] == "jpg":
            d = dst / rec["path"]
            names = sorted(os.listdir(d))
            assert names == [frame_name(i) for i in range(1, rec["n_frames"] + 1)]
            out[vid] = [(d / n).read_bytes() for n in names]
        else:
            with h5py.File(dst / rec["path"], "r") as f:
                out[vid] = read_frame_bytes(f[rec["key"]], range(rec["n_frames"]))
    return out


def test_resume_repairs_every_crash_state(dataset, jpg_store, tmp_path):
    """States a kill can leave: a finished directory the index never heard of, a torn last
    index line, leftovers in the temporary folder, an output gone missing."""
    ref_dst, _ = jpg_store
    dst = tmp_path / "store"
    shutil.copytree(ref_dst, dst)
    index_lines = (dst / "index.jsonl").read_text(encoding="utf-8").splitlines(True)
    dropped = "Bowling/portrait"
    kept = [line for line in index_lines if json.loads(line)["id"] != dropped]
    assert len(kept) == len(index_lines) - 1
    with open(dst / "index.jsonl", "w", encoding="utf-8") as f:
        f.writelines(kept)
        f.write('{"id": "Archery/clip two", "sta')
    (dst / dropped / frame_name(999)).write_bytes(b"partial")
    (dst / ".r3d-tmp" / "jpg-123").mkdir(parents=True)
    (dst / ".r3d-tmp" / "jpg-123" / frame_name(1)).write_bytes(b"junk")
    shutil.rmtree(dst / "Archery/v_Archery_g01_c01")

    summary = convert_dataset(dataset, dst, jobs=2, progress=False)
    assert summary.converted == 2
    assert _store_content(dst) == _store_content(ref_dst)
    assert not (dst / ".r3d-tmp").exists()
    again = convert_dataset(dataset, dst, jobs=2, progress=False)
    assert again.converted == 0 and again.skipped == len(GOOD)


@pytest.mark.parametrize("fmt", ["jpg", "hdf5"])
def test_killed_run_resumed_equals_uninterrupted(tmp_path, fmt):
    src = tmp_path / "src"
    for i in range(8):
        encode_video(src / f"c{i % 2}" / f"v{i}.mp4", frames=60)
    ref = tmp_path / "ref"
    assert convert_dataset(src, ref, fmt=fmt, videos_per_shard=2, progress=False).ok
    dst = tmp_path / "killed"
    cmd = [sys.executable, "-m", "preprocess", str(src), str(dst), "--format", fmt, "-j", "1",
           "--videos-per-shard", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 60
    index = dst / "index.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if index.exists() and index.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(read_index(index)) if index.exists() else 0
    assert done_before < 8, "the run finished before it could be killed"
    rc = subprocess.run(cmd[:-1] + ["--no-progress"], capture_output=True).returncode
    assert rc == 0
    assert _store_content(dst) == _store_content(ref)
    records = read_index(index)
    assert sorted(records) == sorted(read_index(ref / "index.jsonl"))


def test_dask_backend_on_a_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    src = tmp_path / "src"
    for i in range(3):
        encode_video(src / f"v{i}.mp4", frames=8)
    (src / "bad.mp4").write_bytes(b"\x00" * 100)
    ref = tmp_path / "ref"
    convert_dataset(src, ref, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        rc = cli_main([str(src), str(tmp_path / "dask"), "--backend", "dask",
                       "--scheduler", cluster.scheduler_address, "--no-progress"])
    assert rc == 1
    assert _store_content(tmp_path / "dask") == _store_content(ref)
    assert read_index(tmp_path / "dask/index.jsonl")["bad"]["status"] == "failed"
