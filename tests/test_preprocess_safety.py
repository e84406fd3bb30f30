"""r3d-preprocess stays inside its folders and loses nothing: hostile list entries and file
names, reference-following formats, nested ids, two runs on one store, a full disk, a source
that vanishes, variable frame rates, symlinks, umask, a kill between a shard's records."""
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

import preprocess.writers
from conftest import decoded_frame_count, encode_vfr_video, encode_video
from preprocess import RunStopped, StoreBusy, convert_dataset
from preprocess.cli import main as cli_main
from preprocess.ffmpeg_bin import ffmpeg_exe
from preprocess.lock import store_lock
from preprocess.probe import declared_video_duration
from storeformat import frame_name, read_frame_bytes, read_index


def _content(dst):
    """{video id: [frame bytes, ...]} of every done video of a store, whatever its format."""
    out = {}
    for vid, rec in read_index(dst / "index.jsonl").items():
        if rec["status"] != "done":
            continue
        if rec["format"] == "jpg":
            d = dst / rec["path"]
            names = sorted(n for n in os.listdir(d) if n.endswith(".jpg"))
            assert names == [frame_name(i) for i in range(1, rec["n_frames"] + 1)]
            out[vid] = [(d / n).read_bytes() for n in names]
        else:
            with h5py.File(dst / rec["path"], "r") as f:
                out[vid] = read_frame_bytes(f[rec["key"]], range(rec["n_frames"]))
    return out


def _snapshot(root, skip):
    """Every path under `root` except `skip` and below, with its type, mode, size, mtime and
    content: what must not change."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) != str(skip)]
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            body = (os.readlink(p) if stat.S_ISLNK(st.st_mode) else
                    Path(p).read_bytes() if stat.S_ISREG(st.st_mode) else None)
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns, body)
    return out


def _videos(src, n, frames=20, **opts):
    for i in range(n):
        encode_video(src / f"c{i % 2}" / f"v{i}.mp4", frames=frames, **opts)
    return src


# -- confinement ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jpg", "hdf5"])
def test_list_entries_that_leave_src_fail_and_nothing_outside_dst_changes(tmp_path, fmt):
    src, dst = tmp_path / "src", tmp_path / "dst"
    encode_video(src / "cls/ok.mp4", frames=5)
    encode_video(tmp_path / "victim/data.mp4", frames=5)
    (tmp_path / "victim/data").mkdir()
    (tmp_path / "victim/data/keep.txt").write_text("not part of any store")
    encode_video(tmp_path / "outside/secret.mp4", frames=5)
    os.symlink(tmp_path / "outside/secret.mp4", src / "cls/link.mp4")
    lst = tmp_path / "list.txt"
    lst.write_text(f"cls/ok.mp4\n../victim/data.mp4\ncls/../../victim/data.mp4\n"
                   f"{tmp_path / 'outside/secret.mp4'}\n{src / 'cls/ok.mp4'}\ncls/link.mp4\n")
    before = _snapshot(tmp_path, dst)
    summary = convert_dataset(src, dst, fmt=fmt, list_file=lst, progress=False)
    assert _snapshot(tmp_path, dst) == before
    failed = dict(summary.failed)
    assert "leaves" in failed["../victim/data.mp4"]
    assert "leaves" in failed["cls/../../victim/data.mp4"]
    assert "absolute path outside" in failed[str(tmp_path / "outside/secret.mp4")]
    assert "outside" in failed["cls/link.mp4"]
    index = read_index(dst / "index.jsonl")
    assert sorted(index) == ["cls/ok"] and index["cls/ok"]["status"] == "done"
    if fmt == "hdf5":
        with h5py.File(dst / index["cls/ok"]["path"], "r") as f:
            names = []
            f.visit(names.append)
        assert not any(".." in n for n in names)


@pytest.mark.parametrize("fmt", ["jpg", "hdf5"])
def test_nested_ids_never_destroy_each_other(tmp_path, fmt):
    src = tmp_path / "src"
    encode_video(src / "cls/a.mp4", frames=6)
    encode_video(src / "cls/a/b.mp4", frames=7)
    encode_video(src / "cls/c.mp4", frames=5)
    dst = tmp_path / "dst"
    # Run 1 stores cls/a/b only; run 2 is asked for everything.
    lst = tmp_path / "list.txt"
    lst.write_text("cls/a/b.mp4\n")
    assert convert_dataset(src, dst, fmt=fmt, list_file=lst, progress=False).ok
    first = _content(dst)
    summary = convert_dataset(src, dst, fmt=fmt, progress=False)
    assert summary.failed == [("cls/a.mp4", "video id 'cls/a' nests with video id 'cls/a/b': "
                                            "one video's frames would lie inside the other's "
                                            "folder")]
    assert _content(dst)["cls/a/b"] == first["cls/a/b"]
    assert len(_content(dst)["cls/a/b"]) == 7
    assert "cls/a" not in read_index(dst / "index.jsonl")
    # In one run, the first in sorted order keeps its id, before anything is written.
    fresh = tmp_path / "fresh"
    summary = convert_dataset(src, fresh, fmt=fmt, progress=False)
    assert [s for s, _ in summary.failed] == ["cls/a/b.mp4"]
    assert len(_content(fresh)["cls/a"]) == 6
    if fmt == "jpg":
        assert sorted(os.listdir(fresh / "cls/a")) == [frame_name(i) for i in range(1, 7)]


def test_reserved_store_names_are_refused_and_later_runs_work(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    encode_video(src / "ok.mp4", frames=5)
    for name in ("failures.tsv", "index.jsonl", "store.json", "shard-00000.h5", "failures.tsv.tmp"):
        encode_video(src / f"{name}.mp4", frames=5)
    for _ in range(2):
        rc = cli_main([str(src), str(dst), "--no-progress"])
        assert rc == 1
        index = read_index(dst / "index.jsonl")
        assert list(index) == ["ok"]
        lines = (dst / "failures.tsv").read_text().splitlines()[1:]
        assert len(lines) == 5 and all("reserved" in line for line in lines)
        assert (dst / "failures.tsv").is_file() and (dst / "store.json").is_file()


# -- media files only -------------------------------------------------------------------------

def _ffmpeg_reads(path):
    """Frames plain ffmpeg (no whitelists) decodes from `path`: the control showing a file
    would pull in what it names."""
    out = subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", f"file:{path}",
                          "-f", "framecrc", "-"], capture_output=True, text=True)
    return sum(1 for line in out.stdout.splitlines() if line and not line.startswith("#"))


def test_playlists_concat_lists_and_image_sequences_are_refused(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    secret = tmp_path / "outside/secret.ts"
    encode_video(secret, frames=10, codec="mpeg2video", f="mpegts")
    encode_video(src / "ok.mp4", frames=5)
    os.makedirs(src / "x")
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.4,\n{}\n#EXT-X-ENDLIST\n"
    (src / "abs.m3u8").write_text(playlist.format(secret))
    (src / "x/rel.m3u8").write_text(playlist.format("../../outside/secret.ts"))
    (src / "hls.mp4").write_text(playlist.format(secret))
    (src / "seg.bin").write_bytes(secret.read_bytes())
    (src / "concat.mp4").write_text("ffconcat version 1.0\nfile seg.bin\n")
    (src / "list.mkv").write_text(f"file '{secret}'\n")
    for i in (1, 2, 3):
        encode_video(src / f"img{i:03d}.png", frames=1, codec="png", pix_fmt="rgb24",
                     f="image2", update=1)
    (src / "img%03d.png").write_bytes((src / "img001.png").read_bytes())
    for f in ("abs.m3u8", "x/rel.m3u8", "concat.mp4"):
        assert _ffmpeg_reads(src / f) >= 3, f"control: ffmpeg alone follows {f}"
    assert _ffmpeg_reads(src / "img%03d.png") == 3
    mtime = os.stat(secret).st_mtime_ns
    os.utime(secret, ns=(mtime - 10**9, mtime))  # so that a read would update the atime

    summary = convert_dataset(src, dst, extensions=["m3u8"], progress=False)
    failed = dict(summary.failed)
    assert summary.converted == 1 and read_index(dst / "index.jsonl")["ok"]["status"] == "done"
    for f in ("abs.m3u8", "x/rel.m3u8", "hls.mp4"):
        assert "HLS playlist (hls)" in failed[f]
    assert "concat list (concat)" in failed["concat.mp4"]
    assert "concat list (concat)" in failed["list.mkv"]
    summary = convert_dataset(src, tmp_path / "png", extensions=["png"], progress=False)
    assert "image" in dict(summary.failed)["img%03d.png"]
    assert os.stat(secret).st_atime_ns == mtime - 10**9


def test_other_formats_are_refused_naming_them(tmp_path):
    src = tmp_path / "src"
    encode_video(src / "image.mp4", frames=1, codec="png", pix_fmt="rgb24", f="image2", update=1)
    import ffmpeg
    (ffmpeg.input("sine=d=0.5", f="lavfi").output("file:" + str(src / "sound.avi"), f="wav")
     .global_args("-nostdin", "-loglevel", "error").run(cmd=ffmpeg_exe()))
    failed = dict(convert_dataset(src, tmp_path / "dst", progress=False).failed)
    assert "refused: ffmpeg reads it as format 'png_pipe'" in failed["image.mp4"]
    assert "refused: ffmpeg reads it as format 'wav'" in failed["sound.avi"]


def test_ffmpeg_reads_local_files_only():
    from preprocess.extract import FrameSettings, ffmpeg_stream
    args = ffmpeg_stream("/x/a.mp4", FrameSettings()).get_args()
    i = args.index("-i")
    options = dict(zip(args[:i:2], args[1:i:2]))
    assert options["-protocol_whitelist"] == "file"
    assert "hls" not in options["-format_whitelist"].split(",")
    assert args[i + 1] == "file:/x/a.mp4"


# -- one writer per store ---------------------------------------------------------------------

def test_second_run_is_refused_while_the_first_completes_intact(tmp_path, capsys):
    src = _videos(tmp_path / "src", 8, frames=40)
    ref = tmp_path / "ref"
    assert convert_dataset(src, ref, progress=False).ok
    dst = tmp_path / "dst"
    proc = subprocess.Popen([sys.executable, "-m", "preprocess", str(src), str(dst), "-j", "1",
                             "--no-progress"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = dst / "index.jsonl"
    try:
        while proc.poll() is None and not (index.exists() and index.read_bytes().count(b"\n")):
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGSTOP)  # the first run is mid-way, holding the lock
        assert proc.poll() is None, "the first run finished before the second started"
        rc = cli_main([str(src), str(dst), "-j", "1", "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2
        assert f"another r3d-preprocess run is writing this store (pid {proc.pid} on" in err
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    assert proc.wait() == 0
    assert _content(dst) == _content(ref)


def test_lock_of_a_killed_run_never_blocks(tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    code = ("import os, signal, sys; from preprocess.lock import store_lock\n"
            "with store_lock(sys.argv[1]):\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    rc = subprocess.run([sys.executable, "-c", code, str(dst)]).returncode
    assert rc == -signal.SIGKILL
    assert "pid" in (dst / ".r3d-lock").read_text()
    with store_lock(dst):
        with pytest.raises(StoreBusy, match=f"pid {os.getpid()}"):
            with store_lock(dst):
                pass
    src = _videos(tmp_path / "src", 1, frames=5)
    assert convert_dataset(src, dst, progress=False).ok


# -- environmental failures -------------------------------------------------------------------

def _disk_fills_after(monkeypatch, frames):
    """Frame files (what the workers write) fail with ENOSPC after `frames` of them."""
    written = [0]

    def full_open(path, mode="r", *a, **k):
        if "w" in mode:
            written[0] += 1
            if written[0] > frames:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return open(path, mode, *a, **k)
    monkeypatch.setattr(preprocess.writers, "open", full_open, raising=False)


def test_disk_full_stops_the_run_and_a_plain_rerun_converts_everything(tmp_path, monkeypatch,
                                                                       capsys):
    src = _videos(tmp_path / "src", 6, frames=10)
    ref = tmp_path / "ref"
    assert convert_dataset(src, ref, progress=False).ok
    dst = tmp_path / "dst"
    _disk_fills_after(monkeypatch, 25)
    rc = cli_main([str(src), str(dst), "-j", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "No space left on device" in err and "run the same command again" in err
    index = read_index(dst / "index.jsonl")
    assert len(index) == 2 and all(r["status"] == "done" for r in index.values())
    assert (dst / "failures.tsv").read_text() == "source\treason\n"
    monkeypatch.undo()  # space freed
    assert cli_main([str(src), str(dst), "-j", "1", "--no-progress"]) == 0
    assert _content(dst) == _content(ref)


def test_disk_full_in_hdf5_stops_the_run_and_a_rerun_converts_everything(tmp_path,
                                                                         monkeypatch):
    src = _videos(tmp_path / "src", 6, frames=8)
    ref = tmp_path / "ref"
    assert convert_dataset(src, ref, fmt="hdf5", videos_per_shard=2, progress=False).ok
    dst = tmp_path / "dst"
    real_write, calls = preprocess.writers.write_video, [0]

    def write_then_fill(h5, *args):
        calls[0] += 1
        if calls[0] > 3:  # what h5py raises when a write hits a full disk
            raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: "
                                        "errno = 28, error message = 'No space left on device')")
        return real_write(h5, *args)
    monkeypatch.setattr(preprocess.writers, "write_video", write_then_fill)
    with pytest.raises(RunStopped, match="No space left on device"):
        convert_dataset(src, dst, fmt="hdf5", videos_per_shard=2, progress=False)
    index = read_index(dst / "index.jsonl")
    assert all(r["status"] == "done" for r in index.values()) and len(index) == 2
    monkeypatch.undo()
    assert convert_dataset(src, dst, fmt="hdf5", videos_per_shard=2, progress=False).ok
    assert _content(dst) == _content(ref)


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 256 KiB (resizable through its second item), where mounting is permitted."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (the injected ENOSPC tests cover it)")

    def resize(size):
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)
    yield mnt, resize
    subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.mark.parametrize("fmt", ["jpg", "hdf5"])
def test_real_full_disk_then_rerun_after_space_is_freed(tmp_path, small_disk, fmt):
    mnt, resize = small_disk
    src = _videos(tmp_path / "src", 6, frames=12)
    ref = tmp_path / "ref"
    assert convert_dataset(src, ref, fmt=fmt, videos_per_shard=1, progress=False).ok
    dst = mnt / "store"
    cmd = [sys.executable, "-m", "preprocess", str(src), str(dst), "--format", fmt, "-j", "1",
           "--videos-per-shard", "1", "--no-progress"]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 2, first.stderr
    assert "No space left on device" in first.stderr
    index = read_index(dst / "index.jsonl")
    assert len(index) < 6 and all(r["status"] == "done" for r in index.values())
    resize("64m")
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert _content(dst) == _content(ref)


def test_source_gone_mid_run_stops_it_and_a_rerun_converts_everything(tmp_path, monkeypatch):
    src = _videos(tmp_path / "src", 6, frames=8)
    ref = tmp_path / "ref"
    assert convert_dataset(src, ref, progress=False).ok
    dst, moved = tmp_path / "dst", tmp_path / "moved"
    real_extract, calls = preprocess.writers.extract_frames, [0]

    def unmount_on_third(source, *args):
        calls[0] += 1
        if calls[0] == 3:
            src.rename(moved)
        return real_extract(source, *args)
    monkeypatch.setattr(preprocess.writers, "extract_frames", unmount_on_third)
    with pytest.raises(RunStopped, match="cannot read the source: No such file or directory"):
        convert_dataset(src, dst, progress=False)
    index = read_index(dst / "index.jsonl")
    assert len(index) == 2 and all(r["status"] == "done" for r in index.values())
    monkeypatch.undo()
    moved.rename(src)
    summary = convert_dataset(src, dst, progress=False)
    assert summary.ok and summary.converted == 4 and summary.skipped == 2
    assert _content(dst) == _content(ref)


def test_source_moved_away_under_parallel_workers(tmp_path):
    """The same with worker processes: the run stops (exit 2) and cancels its jobs."""
    src = _videos(tmp_path / "src", 6, frames=30)
    ref = tmp_path / "ref"
    assert convert_dataset(src, ref, progress=False).ok
    dst, moved = tmp_path / "dst", tmp_path / "moved"
    cmd = [sys.executable, "-m", "preprocess", str(src), str(dst), "-j", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    index = dst / "index.jsonl"
    while proc.poll() is None and not (index.exists() and index.read_bytes().count(b"\n")):
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGSTOP)
    src.rename(moved)
    os.killpg(proc.pid, signal.SIGCONT)
    err = proc.communicate()[1]
    assert proc.returncode == 2, err
    assert "Nothing is recorded against the videos" in err
    assert all(r["status"] == "done" for r in read_index(index).values())
    moved.rename(src)
    assert subprocess.run(cmd).returncode == 0
    assert _content(dst) == _content(ref)


# -- variable frame rate ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jpg", "hdf5"])
def test_variable_frame_rate_video_converts_with_every_frame(tmp_path, fmt):
    src = tmp_path / "src"
    vfr = encode_vfr_video(src / "phone.mp4")
    encode_video(src / "cfr.mp4", frames=10)
    declared = declared_video_duration(vfr)
    assert 32 / 30 < 0.9 * declared  # frame count over nominal fps would call it truncated
    summary = convert_dataset(src, tmp_path / "dst", fmt=fmt, progress=False)
    assert summary.ok, summary.failed
    index = read_index(tmp_path / "dst/index.jsonl")
    rec = index["phone"]
    assert rec["n_frames"] == decoded_frame_count(vfr) == 32
    assert rec["vfr"] is True and rec["nominal_fps"] == 30.0
    span = 16 / 30 + 15 / 10  # first to last timestamp
    assert rec["fps"] == pytest.approx(31 / span, rel=1e-4)
    assert rec["duration"] == pytest.approx(32 / rec["fps"], rel=1e-4)
    frames = _content(tmp_path / "dst")["phone"]
    assert len(frames) == 32 and len(set(frames)) == 32  # every frame once, none repeated
    assert "vfr" not in index["cfr"] and index["cfr"]["fps"] == 25.0


def test_fps_option_resamples_a_vfr_video_to_a_constant_rate(tmp_path):
    src = tmp_path / "src"
    encode_vfr_video(src / "phone.mp4")
    summary = convert_dataset(src, tmp_path / "dst", fps=10, progress=False)
    assert summary.ok
    rec = read_index(tmp_path / "dst/index.jsonl")["phone"]
    assert "vfr" not in rec and rec["fps"] == 10.0
    # ffmpeg 5.1's fps filter ends the resampled video at the last frame's timestamp (2.03 s:
    # 20 frames), 9.0's after that frame's duration (2.13 s: 21 frames); passthrough gives 32.
    assert rec["n_frames"] in (round(10 * (16 / 30 + 15 / 10)), round(10 * (16 / 30 + 16 / 10)))


# -- symlinks, umask --------------------------------------------------------------------------

def test_symlinks_followed_inside_src_reported_otherwise(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    encode_video(src / "cls/a.mp4", frames=5)
    encode_video(src / ".store/hidden_cls/b.mp4", frames=6)
    encode_video(tmp_path / "elsewhere/c.mp4", frames=5)
    os.symlink(src / ".store/hidden_cls", src / "linked")        # inside SRC: followed
    os.symlink(src / "cls/a.mp4", src / "cls/a_again.mp4")       # file inside: followed
    os.symlink(tmp_path / "elsewhere", src / "outside_cls")      # outside: reported
    os.symlink(src / "cls", src / "alias")                       # second path: reported
    os.makedirs(src / "loop")
    os.symlink(src / "loop", src / "loop/self")                  # a loop: reported, ends
    os.symlink(tmp_path / "nowhere", src / "broken.mp4")         # broken: reported
    summary = convert_dataset(src, dst, progress=False)
    index = read_index(dst / "index.jsonl")
    assert sorted(index) == ["cls/a", "cls/a_again", "linked/b"]
    assert index["linked/b"]["n_frames"] == 6
    failed = dict(summary.failed)
    assert "outside" in failed["outside_cls"] and "not followed" in failed["outside_cls"]
    assert "already walked" in failed["alias"]
    assert "already walked" in failed["loop/self"]
    assert "broken symlink" in failed["broken.mp4"]
    assert len(failed) == 4


@pytest.mark.parametrize("fmt, umask, jobs", [("jpg", 0o022, "2"), ("hdf5", 0o002, "1")])
def test_store_files_follow_the_umask(tmp_path, fmt, umask, jobs):
    src = _videos(tmp_path / "src", 2, frames=5)
    (src / "bad.mp4").write_text("not a video")
    dst = tmp_path / "dst"
    rc = subprocess.run([sys.executable, "-m", "preprocess", str(src), str(dst), "--format",
                         fmt, "-j", jobs, "--no-progress"], preexec_fn=lambda: os.umask(umask),
                        capture_output=True).returncode
    assert rc == 1
    modes = {}
    for p in [dst, *dst.rglob("*")]:
        modes[p.relative_to(dst).as_posix()] = stat.S_IMODE(p.stat().st_mode)
    assert {"index.jsonl", "store.json", "failures.tsv", ".r3d-lock"} <= set(modes)
    assert any(n.endswith(".h5" if fmt == "hdf5" else ".jpg") for n in modes)
    for name, mode in modes.items():
        want = 0o777 & ~umask if (dst / name).is_dir() else 0o666 & ~umask
        assert mode == want, (name, oct(mode), oct(want))


# -- a kill between the index records of one shard --------------------------------------------

def test_shard_copy_left_by_a_kill_between_records_is_removed(tmp_path):
    src = _videos(tmp_path / "src", 8, frames=6)
    ref = tmp_path / "ref"
    assert convert_dataset(src, ref, fmt="hdf5", videos_per_shard=4, progress=False).ok
    dst = tmp_path / "dst"
    assert convert_dataset(src, dst, fmt="hdf5", videos_per_shard=4, progress=False).ok
    lines = (dst / "index.jsonl").read_text().splitlines(True)
    records = [json.loads(line) for line in lines]
    shard = records[0]["path"]
    assert sum(r["path"] == shard for r in records) >= 2
    lost = next(r["id"] for r in records[1:] if r["path"] == shard)
    (dst / "index.jsonl").write_text("".join(l for l, r in zip(lines, records)
                                             if r["id"] != lost))

    summary = convert_dataset(src, dst, fmt="hdf5", videos_per_shard=4, progress=False)
    assert summary.converted == 1
    found = []
    for path in sorted(dst.glob("shard-*.h5")):
        with h5py.File(path, "r") as f:
            f["videos"].visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Group)
                                   and "offsets" in o else None)
    assert sorted(found) == sorted(read_index(dst / "index.jsonl"))
    assert _content(dst) == _content(ref)


@pytest.mark.parametrize("exc, environmental", [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EIO, "Input/output error"), True),
    (PermissionError(errno.EACCES, "Permission denied", "/dst/x"), True),
    (FileNotFoundError(errno.ENOENT, "No such file or directory"), True),
    (OSError("Can't write data (file write failed: errno = 122, error message = 'Disk quota "
             "exceeded')"), True),
    (OSError(errno.EINVAL, "Invalid argument"), False),
    (ValueError("no frames to store"), False),
])
def test_environmental_causes_told_from_the_video(exc, environmental):
    from preprocess.failures import environment_cause
    assert (environment_cause(exc) is not None) == environmental


def test_ffmpeg_messages_of_an_unreadable_source_are_environmental():
    from preprocess.failures import ffmpeg_environment_cause
    assert ffmpeg_environment_cause(["cannot decode: Error opening input: Input/output error"])
    assert ffmpeg_environment_cause(["Error opening input: Permission denied"])
    assert ffmpeg_environment_cause(["cannot decode: Invalid data found when processing "
                                     "input"]) is None


def test_a_frame_folder_holding_folders_is_never_replaced(tmp_path):
    """A store made before nesting ids were refused may hold cls/a and cls/a/b: converting
    cls/a again must not delete cls/a/b."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    encode_video(src / "cls/a.mp4", frames=5)
    assert convert_dataset(src, dst, progress=False).ok
    (dst / "cls/a/b").mkdir()
    (dst / "cls/a/b" / frame_name(1)).write_bytes(b"another video's frame")
    summary = convert_dataset(src, dst, overwrite=True, progress=False)
    assert "holds folders" in dict(summary.failed)["cls/a.mp4"]
    assert (dst / "cls/a/b" / frame_name(1)).read_bytes() == b"another video's frame"


def test_a_symlink_inside_dst_never_leads_writes_out(tmp_path):
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    encode_video(src / "cls/a.mp4", frames=5)
    encode_video(src / "other/b.mp4", frames=5)
    outside.mkdir()
    dst.mkdir()
    os.symlink(outside, dst / "cls")
    before = _snapshot(tmp_path, dst)
    summary = convert_dataset(src, dst, progress=False)
    assert _snapshot(tmp_path, dst) == before and not os.listdir(outside)
    assert "outside" in dict(summary.failed)["cls/a.mp4"]
    assert read_index(dst / "index.jsonl")["other/b"]["status"] == "done"


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_source_deleted_after_selection_stops_parallel_runs(tmp_path, monkeypatch, backend):
    """Workers in other processes (loky, or a Dask cluster) meet the vanished source; the
    parent stops the run and records nothing against it."""
    if backend == "dask":
        distributed = pytest.importorskip("distributed")
    src = _videos(tmp_path / "src", 4, frames=5)
    dst = tmp_path / "dst"
    import preprocess.convert
    real_select = preprocess.convert.select_sources

    def select_then_delete(*args):
        selected, problems = real_select(*args)
        (src / selected["c1/v3"]).unlink()
        return selected, problems
    monkeypatch.setattr(preprocess.convert, "select_sources", select_then_delete)
    if backend == "dask":
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            with pytest.raises(RunStopped, match="c1/v3.mp4: cannot read the source"):
                convert_dataset(src, dst, backend="dask", scheduler=cluster.scheduler_address,
                                progress=False)
    else:
        with pytest.raises(RunStopped, match="c1/v3.mp4: cannot read the source"):
            convert_dataset(src, dst, jobs=2, progress=False)
    assert all(r["status"] == "done" for r in read_index(dst / "index.jsonl").values())
    assert "c1/v3" not in read_index(dst / "index.jsonl")
