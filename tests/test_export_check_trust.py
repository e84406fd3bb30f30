"""r3d-export-reference and r3d-annotate check treat a store's index and shards as untrusted
input (storeformat.paths.inside, storeformat.h5local): nothing outside the store is read, and
a bad record is a per-video problem naming the video, never a traceback. A re-export notices
a store that changed since, and the exported annotation never overwrites its input."""
import json
import shutil

import h5py
import pytest

from annotations.cli import main as annotate
from conftest import encode_video
from preprocess import convert_dataset
from preprocess.reference_export import main as export
from storeformat import INDEX_NAME, read_index
from storeformat.paths import name_problem

VIDEOS = {"run/run_a.mp4": 6, "run/run_b.mp4": 5, "walk/walk_a.mp4": 7}
IDS = sorted(v.rsplit(".", 1)[0] for v in VIDEOS)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Source videos, a JPEG and an HDF5 store of them, and an annotation file for each."""
    base = tmp_path_factory.mktemp("trust")
    for rel, frames in VIDEOS.items():
        encode_video(base / "src" / rel, width=48, height=32, frames=frames, codec="mpeg4")
    out = {"src": base / "src"}
    for fmt in ("jpg", "hdf5"):
        assert convert_dataset(base / "src", base / fmt, fmt=fmt, height=32, progress=False).ok
        out[fmt] = base / fmt
        out[f"{fmt}.json"] = base / f"{fmt}.json"
        assert annotate(["folder", str(base / "src"), "--out", str(out[f"{fmt}.json"]),
                         "--index", str(base / fmt), "-q"]) == 0
    return out


def _store(made, fmt, tmp_path):
    """A copy of a store to tamper with (tmp/store), and its index records by id."""
    store = tmp_path / "store"
    shutil.copytree(made[fmt], store)
    return store, read_index(store / INDEX_NAME)


def _set_path(store, vid, path):
    """Rewrite the index so that video `vid` says its frames are at `path`."""
    recs = [json.loads(line) for line in (store / INDEX_NAME).read_text().splitlines()]
    for rec in recs:
        if rec["id"] == vid:
            rec["path"] = path
    (store / INDEX_NAME).write_text("".join(json.dumps(r) + "\n" for r in recs))


def _check(made, fmt, store, tmp_path, *options):
    """(exit status, this store's report) of r3d-annotate check."""
    report = tmp_path / "report.json"
    status = annotate(["check", str(made[f"{fmt}.json"]), "--index", str(store), "--report",
                       str(report), "-q", *options])
    (result,) = json.loads(report.read_text())
    return status, result


def _link_jpeg_out(store, rec, outside):
    """Replace a video's 'jpeg' dataset in its shard by an external link to a copy of it in
    the file `outside` (a file outside the store)."""
    with h5py.File(store / rec["path"], "a") as f:
        group = f[rec["key"]]
        with h5py.File(outside, "w") as o:
            o.create_dataset("jpeg", data=group["jpeg"][()])
        del group["jpeg"]
        group["jpeg"] = h5py.ExternalLink(str(outside), "/jpeg")


def _refused(capsys, caplog, vid, why):
    """The export logged the refused video with why, and counted it in its summary."""
    assert [m for m in caplog.messages if m.startswith(f"{vid}: not exported: ") and why in m], \
        caplog.messages
    assert "1 failed" in capsys.readouterr().err.splitlines()[-1]


def test_export_does_not_read_a_dotdot_index_path(made, tmp_path, capsys, caplog):
    store, index = _store(made, "jpg", tmp_path)
    shutil.copytree(store / index["run/run_a"]["path"], tmp_path / "secretdir" / "vid")
    _set_path(store, "run/run_a", "../secretdir/vid")
    out = tmp_path / "ref"
    assert export([str(store), str(out), "-q"]) == 1
    assert not (out / "run" / "run_a.hdf5").exists()
    assert (out / "walk" / "walk_a.hdf5").is_file() and (out / "run" / "run_b.hdf5").is_file()
    _refused(capsys, caplog, "run/run_a", "'..'")


def test_export_does_not_read_an_absolute_shard_path(made, tmp_path, capsys, caplog):
    store, index = _store(made, "hdf5", tmp_path)
    elsewhere = tmp_path / "elsewhere.h5"
    shutil.copy(store / index["walk/walk_a"]["path"], elsewhere)
    _set_path(store, "walk/walk_a", str(elsewhere))
    out = tmp_path / "ref"
    assert export([str(store), str(out), "-q"]) == 1
    assert not (out / "walk" / "walk_a.hdf5").exists()
    assert (out / "run" / "run_a.hdf5").is_file()
    _refused(capsys, caplog, "walk/walk_a", "absolute")


def test_export_does_not_follow_an_external_link_out_of_the_shard(made, tmp_path, capsys,
                                                                 caplog):
    store, index = _store(made, "hdf5", tmp_path)
    _link_jpeg_out(store, index["run/run_b"], tmp_path / "outside.h5")
    out = tmp_path / "ref"
    assert export([str(store), str(out), "-q"]) == 1
    assert not (out / "run" / "run_b.hdf5").exists()
    _refused(capsys, caplog, "run/run_b", "external link")


def test_check_deep_reports_a_nul_byte_in_an_index_path(made, tmp_path):
    for fmt in ("jpg", "hdf5"):
        store, index = _store(made, fmt, tmp_path / fmt)
        _set_path(store, "walk/walk_a", index["walk/walk_a"]["path"] + "\x00x")
        for deep in ((), ("--deep",)):
            status, result = _check(made, fmt, store, tmp_path, *deep)
            assert status == 1 and result["problems"]["not_on_disk"] == ["walk_a"]
            assert list(result["reasons"]) == ["walk_a"]
            assert "not a path inside the store" in result["reasons"]["walk_a"]
            assert "NUL" in result["reasons"]["walk_a"]


def test_check_reports_a_shard_symlinked_outside_the_store(made, tmp_path, capsys):
    store, index = _store(made, "hdf5", tmp_path)
    shard = index["run/run_a"]["path"]
    shutil.move(store / shard, tmp_path / "moved.h5")
    (store / shard).symlink_to(tmp_path / "moved.h5")
    gone = sorted(v.rsplit("/", 1)[1] for v, r in index.items() if r["path"] == shard)
    for deep in ((), ("--deep",)):
        status, result = _check(made, "hdf5", store, tmp_path, *deep)
        assert status == 1 and sorted(result["problems"]["not_on_disk"]) == gone
        assert set(result["reasons"]) == set(gone)
        reason = result["reasons"]["run_a"]
        assert reason.startswith(f"{shard!r}: not a path inside the store") and "link" in reason


def test_check_deep_reports_an_external_link_out_of_the_shard(made, tmp_path):
    store, index = _store(made, "hdf5", tmp_path)
    rec = index["walk/walk_a"]
    _link_jpeg_out(store, rec, tmp_path / "outside.h5")
    assert _check(made, "hdf5", store, tmp_path)[0] == 0  # the files alone look right
    status, result = _check(made, "hdf5", store, tmp_path, "--deep")
    assert status == 1 and result["problems"]["not_on_disk"] == ["walk_a"]
    reason = result["reasons"]["walk_a"]
    assert reason.startswith(f"{rec['path']}: {rec['key']}/jpeg is an external link")
    assert "outside.h5" in reason


@pytest.mark.parametrize("fmt", ["jpg", "hdf5"])
def test_a_reexport_refreshes_videos_whose_store_changed(made, tmp_path, capsys, fmt):
    store = tmp_path / "store"
    assert convert_dataset(made["src"], store, fmt=fmt, height=32, progress=False).ok
    out = tmp_path / "ref"
    assert export([str(store), str(out), "-q"]) == 0
    with h5py.File(out / "walk" / "walk_a.hdf5", "r") as f:
        before = len(f["video"][0])
    shutil.rmtree(store)  # the store made again, smaller frames
    assert convert_dataset(made["src"], store, fmt=fmt, height=16, progress=False).ok
    capsys.readouterr()
    assert export([str(store), str(out), "-q"]) == 0
    summary = capsys.readouterr().err.splitlines()[-1]
    assert f"{len(IDS)} refreshed" in summary and "0 already there" in summary
    reference = read_index(store / INDEX_NAME)["walk/walk_a"]
    with h5py.File(out / "walk" / "walk_a.hdf5", "r") as f:
        assert len(f["video"]) == reference["n_frames"]
        assert len(f["video"][0]) < before
    assert export([str(store), str(out), "-q"]) == 0
    summary = capsys.readouterr().err.splitlines()[-1]
    assert "0 refreshed" in summary and f"{len(IDS)} already there" in summary


def test_annotation_out_that_is_the_annotation_is_refused(made, tmp_path, capsys):
    ann = tmp_path / "ann" / "toy.json"
    ann.parent.mkdir()
    shutil.copy(made["hdf5.json"], ann)
    before = ann.read_bytes()
    (tmp_path / "other").mkdir()
    for same in (ann, tmp_path / "other" / ".." / "ann" / "toy.json"):
        capsys.readouterr()
        assert export([str(made["hdf5"]), str(tmp_path / "ref"), "--annotation", str(ann),
                       "--annotation-out", str(same), "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--annotation-out" in err
        assert ann.read_bytes() == before
    assert not (tmp_path / "ref").exists()


def test_preprocess_refuses_a_video_id_the_readers_would_refuse(made, tmp_path):
    """Ids pass the confinement rule's name check before they become index paths: a
    backslash in a file name would make a video that export and check refuse to read."""
    src = tmp_path / "src"
    (src / "walk").mkdir(parents=True)
    shutil.copy(made["src"] / "walk" / "walk_a.mp4", src / "walk" / "a\\b.mp4")
    shutil.copy(made["src"] / "walk" / "walk_a.mp4", src / "walk" / "fine.mp4")
    summary = convert_dataset(src, tmp_path / "store", fmt="jpg", height=32, progress=False)
    assert summary.converted == 1
    assert summary.failed == [("walk/a\\b.mp4",
                               "video id 'walk/a\\b' holds a backslash (names are "
                               "'/'-separated)")]


@pytest.mark.parametrize("fmt", ["jpg", "hdf5"])
@pytest.mark.parametrize("spelling", ["{d}/../{p}", "{p}/.", "./{p}", "{d}\\{b}", "{d}//{b}"])
def test_check_and_the_trainer_judge_an_index_path_alike(made, tmp_path, fmt, spelling):
    """A path that names the right frames in another spelling ('a/../b', 'a\\b', ...) is
    refused by both, for the one reason storeformat.paths gives, and the store's other videos
    stay readable."""
    from training.data.errors import VideoNotFound
    from training.data.stores import open_store

    store, index = _store(made, fmt, tmp_path)
    real = index["walk/walk_a"]["path"]
    d, _, b = real.rpartition("/") if "/" in real else ("run", "", real)
    bad = spelling.format(d=d, b=b, p=real)
    _set_path(store, "walk/walk_a", bad)
    why = name_problem(bad)
    status, result = _check(made, fmt, store, tmp_path)
    assert status == 1 and list(result["reasons"]) == ["walk_a"]
    assert why in json.dumps(result["reasons"]["walk_a"]), result["reasons"]
    frames = open_store(store)
    assert frames.n_frames("run/run_a") == VIDEOS["run/run_a.mp4"]
    with pytest.raises(VideoNotFound, match="walk/walk_a") as err:
        frames.read_bytes("walk/walk_a", [0])
    assert why in str(err.value)
