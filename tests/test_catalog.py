"""Video catalogs (training.data.catalog) on stores written by r3d-preprocess and by r3d's shard
writer: lookups, frame numbering, one pread per clip against h5py's bytes, staleness,
read-only stores, bounded and per-process file descriptors."""
import json
import multiprocessing
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from storeformat import INDEX_NAME, frame_name
from storeformat.hdf5 import mark_layout, write_video
from training.data.catalogfiles import CATALOG_DIR, META_NAME
from training.data.catalog import StoreCatalog
from training.data.videos import VideoCatalog
from training.data.catalog import main
from training.data.errors import FrameReadError, VideoNotFound
from training.data.stores import Hdf5Store, JpegDirStore, open_store
from training_data import VIDEOS, build_stores, copy_tree, frame_levels


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Stores converted by r3d-preprocess (layout v1: shards of two videos), plus the
    reference's per-video HDF5 files."""
    return build_stores(tmp_path_factory)


def _frame_files(stores, vid):
    return [(stores["jpg"] / vid / frame_name(i)).read_bytes()
            for i in range(1, VIDEOS[vid] + 1)]


def _h5py_frames(store_root, vid, frames):
    """The frames' bytes read the plain h5py way: the shard named by the index, the group's
    offsets, a slice of its jpeg dataset per frame."""
    records = [json.loads(line) for line in (store_root / INDEX_NAME).read_text().splitlines()]
    rec = next(r for r in records if r["id"] == vid)
    with h5py.File(store_root / rec["path"], "r") as f:
        group = f[rec["key"]]
        offsets = group["offsets"][()]
        return [group["jpeg"][offsets[i]:offsets[i + 1]].tobytes() for i in frames]


def _write_shards(root, jpegs, n_shards, per_shard, n_frames=5):
    """A store of `n_shards` shards written with r3d's shard writer, and its index."""
    root.mkdir(parents=True)
    lines = []
    for s in range(n_shards):
        name = f"shard-{s:05d}.h5"
        with h5py.File(root / name, "w") as h5:
            mark_layout(h5)
            for v in range(per_shard):
                vid = f"c{s % 3}/v{s}_{v}"
                frames = [jpegs[(s + v + i) % len(jpegs)] for i in range(n_frames)]
                meta = {"source": vid + ".mp4", "n_frames": n_frames, "fps": 30.0, "width": 64,
                        "height": 48, "duration": n_frames / 30}
                key = write_video(h5, vid, frames, meta)
                lines.append({"id": vid, "status": "done", "source": vid + ".mp4",
                              "format": "hdf5", "path": name, "key": key, **meta})
    (root / INDEX_NAME).write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


@pytest.fixture(scope="module")
def many_shards(tmp_path_factory, stores):
    """40 shards of 3 videos each, made of real frames of the preprocess store."""
    jpegs = _frame_files(stores, "walk/v_walk_0")
    return _write_shards(tmp_path_factory.mktemp("many") / "store", jpegs, 40, 3)


# --- one store ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, first", [("hdf5", 0), ("jpg", 1)])
def test_store_catalog_lookups(stores, kind, first):
    catalog = StoreCatalog.open(stores[kind])
    assert catalog.kind == kind and catalog.first_frame == first and len(catalog) == 4
    assert catalog.directory == stores[kind] / CATALOG_DIR
    rows = {vid: catalog.row(vid) for vid in VIDEOS}
    assert sorted(rows.values()) == [0, 1, 2, 3]  # sorted by key
    assert sorted(rows, key=rows.get) == sorted(VIDEOS)
    for vid, row in rows.items():
        assert catalog.key(row) == vid
        assert catalog.n_frames(row) == VIDEOS[vid]
        assert catalog.fps(row) == 25.0
        assert catalog.problem(row) is None
        assert catalog.direct(row) == (kind == "hdf5")
    for miss in ("walk/v_walk", "walk/v_walk_00", "", "x" * 500, "jump/v_jump_0/", None):
        assert catalog.row(miss) is None
    n = VIDEOS["walk/v_walk_0"]
    clip = catalog.read_bytes(rows["walk/v_walk_0"], [first, first + n - 1, first + 3])
    files = _frame_files(stores, "walk/v_walk_0")
    assert clip == [files[0], files[n - 1], files[3]]
    for bad in (first - 1, first + n):
        with pytest.raises(FrameReadError, match=rf"video 'walk/v_walk_0', frame {bad}: out of "
                                                 rf"range: the video has {n} frames, numbered "
                                                 rf"{first}..{first + n - 1}"):
            catalog.read_bytes(rows["walk/v_walk_0"], [first, bad])


@pytest.mark.parametrize("collide", [False, True])
def test_many_keys_at_once_equal_one_by_one(stores, monkeypatch, collide):
    """StoreCatalog.rows (hashes, each hit checked) agrees with row() for present, absent,
    empty, too long and near-miss keys, also when every key has the same hash."""
    from training.data import keytable

    if collide:
        monkeypatch.setattr(keytable, "hashes", lambda blob, offsets: np.zeros(len(offsets) - 1,
                                                                               np.uint64))
    catalog = StoreCatalog.open(stores["hdf5"])
    wanted = list(VIDEOS) + ["walk/v_walk", "walk/v_walk_00", "", "x" * 500, "jump/v_jump_0/",
                             "walk/v_walk_0 "]
    rows = catalog.rows(np.array([w.encode() for w in wanted]))
    assert rows.tolist() == [-1 if catalog.row(w) is None else catalog.row(w) for w in wanted]
    assert (rows[:len(VIDEOS)] >= 0).all()


def test_pread_equals_h5py_bytes(stores):
    catalog = StoreCatalog.open(stores["hdf5"])
    rng = np.random.default_rng(0)
    for vid, n in VIDEOS.items():
        row = catalog.row(vid)
        sets = [[0], [n - 1], [0, n - 1], list(range(n)), [n - 1, 0, 0, 3]]
        sets += [rng.integers(0, n, rng.integers(1, 20)).tolist() for _ in range(10)]
        for frames in sets:
            assert catalog.read_bytes(row, frames) == _h5py_frames(stores["hdf5"], vid, frames)
        assert catalog.read_bytes(row, np.array([2, 1])) == _frame_files(stores, vid)[2:0:-1]
        assert catalog.read_bytes(row, []) == []


def test_cli_derives_ahead_and_rebuilds(stores, tmp_path, capsys):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    shutil.rmtree(root / CATALOG_DIR, ignore_errors=True)
    assert main([str(root)]) == 0
    meta = json.loads((root / CATALOG_DIR / META_NAME).read_text())
    shards = {json.loads(line)["path"] for line in (root / INDEX_NAME).read_text().splitlines()}
    assert meta["videos"] == 4 and meta["kind"] == "hdf5"
    assert [name for name, _ in meta["shards"]] == sorted(shards)
    assert main(["--rebuild", str(root)]) == 0
    assert json.loads((root / CATALOG_DIR / META_NAME).read_text())["tag"] != meta["tag"]
    files = sorted(p.name for p in (root / CATALOG_DIR).iterdir())
    assert not any(meta["tag"] in name for name in files)  # the old catalog's files are gone
    assert "4 hdf5 videos" in capsys.readouterr().out
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "no index.jsonl" in capsys.readouterr().err


def test_stale_catalog_is_derived_again(stores, tmp_path):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    first = StoreCatalog.open(root)
    row = first.row("walk/v_walk_1")
    expected = first.read_bytes(row, [0, 19])
    assert StoreCatalog.open(root).meta["tag"] == first.meta["tag"]  # fresh: reused
    records = [json.loads(line) for line in (root / INDEX_NAME).read_text().splitlines()]
    kept = [r for r in records if r["id"] != "jump/v_jump_1"]
    kept.append({"id": "jump/v_jump_1", "status": "failed", "source": "jump/v_jump_1.mp4",
                 "reason": "truncated or corrupt"})
    (root / INDEX_NAME).write_text("".join(json.dumps(r) + "\n" for r in kept))
    second = StoreCatalog.open(root)
    assert second.meta["tag"] != first.meta["tag"] and len(second) == 3
    assert second.row("jump/v_jump_1") is None
    assert second.failure("jump/v_jump_1") == "truncated or corrupt"
    assert second.read_bytes(second.row("walk/v_walk_1"), [0, 19]) == expected
    # a process still holding the old catalog keeps reading it
    assert first.read_bytes(row, [0, 19]) == expected


def test_store_problems_are_read_errors(stores, tmp_path):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    records = [json.loads(line) for line in (root / INDEX_NAME).read_text().splitlines()]
    shard = next(r["path"] for r in records if r["id"] == "walk/v_walk_0")
    others = [r["id"] for r in records if r["path"] == shard]
    (root / shard).unlink()
    records[0] = {**records[0], "path": "../outside.h5"}
    (root / INDEX_NAME).write_text("".join(json.dumps(r) + "\n" for r in records))
    store = Hdf5Store(root)
    for vid in others:
        assert vid in store and store.n_frames(vid) == VIDEOS[vid]
        with pytest.raises(FrameReadError, match=rf"video '{vid}', frames: cannot open .*"
                                                 rf"{shard}"):
            store.read_bytes(vid, [0])
    with pytest.raises(VideoNotFound, match=r"its path '../outside.h5' has an empty, '.' or "
                                            r"'..' component"):
        store.read_bytes(records[0]["id"], [0])


def test_shard_changed_after_the_catalog_is_an_error(stores, tmp_path):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    catalog = StoreCatalog.open(root)
    row = catalog.row("jump/v_jump_0")
    with open(catalog.shard_path(row), "ab") as f:
        f.write(b"\0" * 10)
    with pytest.raises(FrameReadError, match="the shard changed since"):
        catalog.read_bytes(row, [0])


def _open_as_nobody(root, cache, queue):
    """In a child without root's rights: open the catalog of a read-only store."""
    try:
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        os.environ["R3D_CACHE"] = str(cache)
        catalog = StoreCatalog.open(root)
        row = catalog.row("walk/v_walk_1")
        queue.put((str(catalog.directory), catalog.read_bytes(row, [0, 19])))
    except Exception as e:  # report to the parent rather than dying silently
        queue.put(repr(e))


@pytest.fixture
def world_readable_tmp():
    """A folder another user can enter (pytest's own are private to the user)."""
    path = Path(tempfile.mkdtemp(prefix="r3d-catalog-"))
    path.chmod(0o755)
    yield path
    for d, subdirs, _ in os.walk(path):
        for s in subdirs:
            os.chmod(os.path.join(d, s), 0o755)
    shutil.rmtree(path)


def test_read_only_store_uses_the_cache_folder(stores, world_readable_tmp, monkeypatch):
    root = copy_tree(stores["hdf5"], world_readable_tmp / "h5")
    shutil.rmtree(root / CATALOG_DIR, ignore_errors=True)
    cache = world_readable_tmp / "cache"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    root.chmod(0o555)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_open_as_nobody, args=(root, cache, queue))
    proc.start()
    result = queue.get(timeout=120)
    proc.join(60)
    assert isinstance(result, tuple), result
    directory, clip = result
    assert Path(directory).parent == cache / "catalogs"
    assert not (root / CATALOG_DIR).exists()
    assert clip == _h5py_frames(root, "walk/v_walk_1", [0, 19])
    # a later process finds it there
    monkeypatch.setenv("R3D_CACHE", str(cache))
    assert str(StoreCatalog.open(root).directory) == directory


# --- file descriptors: bounded, per process -----------------------------------------------------

def _fd_count():
    return len(os.listdir("/proc/self/fd"))


def test_open_descriptors_are_bounded_with_many_shards(many_shards):
    catalog = StoreCatalog.open(many_shards, max_open_files=4)
    assert len(catalog) == 120 and len(catalog.meta["shards"]) == 40
    before = _fd_count()
    rng = np.random.default_rng(1)
    expected = {}
    for row in rng.permutation(len(catalog)).tolist() * 2:
        clip = catalog.read_bytes(row, [4, 0, 2])
        assert expected.setdefault(row, clip) == clip
        assert len(catalog.open_files()) <= 4 and _fd_count() - before <= 4
    catalog.close()
    assert _fd_count() == before
    vid = catalog.key(7)
    assert expected[7] == _h5py_frames(many_shards, vid, [4, 0, 2])


def _child_reads(catalog, rows, queue):
    try:
        clips = [catalog.read_bytes(r, [0, 2]) for r in rows]
        queue.put((os.getpid(), len(catalog.open_files()), clips))
    except Exception as e:  # report to the parent rather than dying silently
        queue.put(repr(e))


def test_forked_child_reads_the_same_bytes_with_its_own_descriptors(many_shards):
    catalog = StoreCatalog.open(many_shards, max_open_files=8)
    rows = [0, 50, 119]
    parent = [catalog.read_bytes(r, [0, 2]) for r in rows]
    handles = list(catalog.open_files().values())
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_reads, args=(catalog, rows, queue))
    proc.start()
    result = queue.get(timeout=60)
    proc.join(60)
    assert isinstance(result, tuple), result
    pid, n_open, clips = result
    assert pid != os.getpid() and clips == parent
    assert n_open == len({catalog.shard_path(r) for r in rows})  # opened its own
    assert list(catalog.open_files().values()) == handles and all(h.is_open for h in handles)
    clone = pickle.loads(pickle.dumps(catalog))
    assert len(clone.open_files()) == 0
    assert [clone.read_bytes(r, [0, 2]) for r in rows] == parent


def test_chunked_video_is_read_through_h5py(many_shards, tmp_path, stores):
    root = copy_tree(many_shards, tmp_path / "store")
    files = _frame_files(stores, "jump/v_jump_1")
    with h5py.File(root / "shard-00000.h5", "a") as f:
        del f["videos/c0/v0_1"]
        g = f.create_group("videos/c0/v0_1")
        g.create_dataset("jpeg", data=np.frombuffer(b"".join(files[:5]), np.uint8),
                         chunks=(1024,), compression="gzip")
        g.create_dataset("offsets", data=np.cumsum([0] + [len(b) for b in files[:5]]))
    # the index changes too, so the catalog copied along is derived again
    (root / INDEX_NAME).write_text((root / INDEX_NAME).read_text() + "\n")
    catalog = StoreCatalog.open(root)
    row = catalog.row("c0/v0_1")
    assert not catalog.direct(row) and catalog.direct(catalog.row("c0/v0_0"))
    assert catalog.read_bytes(row, [4, 0]) == [files[4], files[0]]


# --- the stores of a run ----------------------------------------------------------------------

def test_video_catalog_finds_videos_in_named_and_unnamed_stores(stores, tmp_path):
    jpg_root = copy_tree(stores["jpg"], tmp_path / "jpg")
    with open(jpg_root / INDEX_NAME, "a") as f:
        f.write(json.dumps({"id": "jump/v_lost", "status": "failed", "source": "jump/v_lost.mp4",
                            "reason": "cannot decode"}) + "\n")
    doc = {"roots": {"j": {"path": None}, "ref": {"path": None},
                     "h5": {"path": str(stores["hdf5"])}, "nopath": {"path": None}}}
    run = VideoCatalog({"j": jpg_root, "ref": open_store(stores["ref"])}, doc)
    assert run.names == ["j", "ref", "h5", "nopath"]
    # no root: every store given, in order (the JPEG store first)
    row = run.find(None, ["nope", "walk/v_walk_0"])
    assert run.store_index(row) == 0 and run.first_frame(row) == 1
    assert isinstance(run.store(row), JpegDirStore) and run.key(row) == "walk/v_walk_0"
    assert (run.n_frames(row), run.fps(row)) == (30, 25.0)
    files = _frame_files(stores, "walk/v_walk_0")
    assert run.read_bytes(row, [1, 30]) == [files[0], files[29]]
    # a named root: only that store, opened from the file's path
    h5_row = run.find("h5", ["walk/v_walk_0"])
    assert run.store_index(h5_row) == 2 and run.first_frame(h5_row) == 0
    assert run.read_bytes(h5_row, [0, 29]) == [files[0], files[29]]
    ref_row = run.find("ref", ["walk/v_walk_1"])
    assert run.first_frame(ref_row) == 0 and run.n_frames(ref_row) == 20
    assert run.fps(ref_row) is None
    assert run.read_bytes(ref_row, [19]) == [_frame_files(stores, "walk/v_walk_1")[19]]
    assert len({row, h5_row, ref_row}) == 3
    with pytest.raises(VideoNotFound, match=r"video 'v_lost' not found as 'jump/v_lost' or "
                                            r"'v_lost' in .*jpg, .*ref \(conversion failed: "
                                            r".*jpg: cannot decode\)"):
        run.find(None, ["jump/v_lost", "v_lost"], video_id="v_lost")
    with pytest.raises(VideoNotFound, match=r"video 'x' not found as 'x' in [^,]*ref$"):
        run.find("ref", ["x"])
    with pytest.raises(VideoNotFound, match="root 'nopath' has no path"):
        run.find("nopath", ["walk/v_walk_0"])
    with pytest.raises(VideoNotFound, match="root 'other' has no path"):
        run.find("other", ["walk/v_walk_0"])
    # stores given always win: one unnamed store serves every root; unknown names are refused
    alone = VideoCatalog(jpg_root, {"roots": {"h5": {"path": str(stores["hdf5"])}}})
    assert isinstance(alone.store(alone.find("h5", ["walk/v_walk_0"])), JpegDirStore)
    with pytest.raises(ValueError, match="root 'zzz', which the annotation file does not name"):
        VideoCatalog({"zzz": jpg_root}, doc)
    with pytest.raises(ValueError, match="give one store per root as NAME=PATH"):
        VideoCatalog(jpg_root, doc)
    # rows found in the reference store survive freezing and pickling
    run.freeze()
    clone = pickle.loads(pickle.dumps(run))
    for r in (row, h5_row, ref_row):
        assert clone.key(r) == run.key(r)
        first = run.first_frame(r)
        assert clone.read_bytes(r, [first]) == run.read_bytes(r, [first])


def test_video_catalog_shares_the_stores_catalog(stores):
    h5 = Hdf5Store(stores["hdf5"])
    run = VideoCatalog(h5)
    row = run.find(None, ["jump/v_jump_0"])
    run.read_bytes(row, [0])
    assert run.store(row) is h5 and len(h5.catalog.open_files()) == 1  # one descriptor cache for both
    unindexed = VideoCatalog(stores["ref"])
    row = unindexed.find(None, ["jump/v_jump_0"])
    assert frame_levels(unindexed.store(row).read(unindexed.key(row), [5])) == [5]


def test_torn_last_index_line_is_ignored_and_a_malformed_one_is_an_error(stores, tmp_path,
                                                                         caplog):
    root = copy_tree(stores["jpg"], tmp_path / "jpg")
    text = (root / INDEX_NAME).read_text()
    (root / INDEX_NAME).write_text(text + '{"id": "walk/v_new", "status": "do')
    catalog = StoreCatalog.open(root)
    assert len(catalog) == 4 and catalog.row("walk/v_new") is None
    assert "ignoring incomplete last line 5" in caplog.text
    (root / INDEX_NAME).write_text('{"id": "x", "status"\n' + text)
    with pytest.raises(ValueError, match=r"index.jsonl:1: malformed index record"):
        StoreCatalog.open(root)


def test_open_store_without_settings_takes_the_format_from_the_catalog(stores, tmp_path):
    for kind, cls in (("hdf5", Hdf5Store), ("jpg", JpegDirStore)):
        root = copy_tree(stores[kind], tmp_path / kind)
        (root / "store.json").unlink()
        store = open_store(root)
        assert type(store) is cls and store.catalog.kind == kind
    records = [json.loads(line) for line in (root / INDEX_NAME).read_text().splitlines()]
    records[0]["format"] = "hdf5"
    (root / INDEX_NAME).write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(ValueError, match=r"index lists \['hdf5', 'jpg'\] videos"):
        open_store(root)


def test_shards_read_in_several_processes_give_the_same_catalog(many_shards, tmp_path):
    root = copy_tree(many_shards, tmp_path / "store")
    (root / "shard-00007.h5").write_bytes(b"not hdf5")
    one = StoreCatalog.open(root, rebuild=True, jobs=1)
    two = StoreCatalog.open(root, rebuild=True, jobs=2)
    assert one.meta["tag"] != two.meta["tag"] and two.meta["problems"] == 3
    for name in ("key_blob", "key_offsets", "key_prefix", "n_frames", "shard", "data", "start", "offsets"):
        assert np.array_equal(getattr(one, "_" + name), getattr(two, "_" + name)), name
    assert one.meta["shards"] == two.meta["shards"]
    broken = two.row("c1/v7_0")
    with pytest.raises(FrameReadError, match="cannot open .*shard-00007.h5"):
        two.read_bytes(broken, [0])
    assert two.read_bytes(5, [1, 3]) == _h5py_frames(root, two.key(5), [1, 3])


def test_without_file_locks_only_the_replaced_catalog_is_removed(stores, tmp_path,
                                                                  monkeypatch):
    import fcntl
    root = copy_tree(stores["jpg"], tmp_path / "jpg")
    first = StoreCatalog.open(root)
    other = root / CATALOG_DIR / "0123456789ab.keys.npy"  # another process's, being written
    other.write_bytes(b"")

    def no_locks(fd, operation):
        raise OSError(37, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    second = StoreCatalog.open(root, rebuild=True)
    names = [p.name for p in (root / CATALOG_DIR).iterdir()]
    assert other.exists() and not any(n.startswith(first.meta["tag"]) for n in names)
    assert second.read_bytes(second.row("jump/v_jump_1"), [1]) == \
        [(root / "jump/v_jump_1" / frame_name(1)).read_bytes()]
    assert StoreCatalog.open(root).meta["tag"] == second.meta["tag"]  # loads unlocked too


def test_cli_opens_the_catalog_it_reports(stores, tmp_path, capsys):
    """The command checks a catalog as the trainer opens it: one that lost an array or whose
    shard changed is an error naming it, not reported as fine."""
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    assert main([str(root)]) == 0
    tag = json.loads((root / CATALOG_DIR / META_NAME).read_text())["tag"]
    (root / CATALOG_DIR / f"{tag}.n_frames.npy").unlink()
    capsys.readouterr()
    assert main([str(root)]) == 2
    assert "n_frames.npy" in capsys.readouterr().err
