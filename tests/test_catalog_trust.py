"""What a store catalog trusts (training.data.catalog), on stores converted by r3d-preprocess: the
catalog folder is never a link and clean-up deletes only the catalog's own files, shard paths
are confined when a catalog is opened, each index record is checked on its own, long ids cost
their own bytes, links out of a shard are refused, and errors name the file and the reason."""
import json
import multiprocessing
import os
import shutil

import h5py
import pytest

from storeformat import INDEX_NAME
from training.data import derive as derive_module
from training.data.catalogfiles import CATALOG_DIR, META_NAME
from training.data.errors import CatalogError
from training.data.catalog import StoreCatalog
from training.data.catalog import main
from training.data.errors import FrameReadError, VideoNotFound
from training.data.stores import Hdf5Store, JpegDirStore
from training_data import VIDEOS, build_stores, copy_tree


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """JPEG and HDF5 stores converted by r3d-preprocess (shards of two videos)."""
    return build_stores(tmp_path_factory)


def _records(root):
    return [json.loads(line) for line in (root / INDEX_NAME).read_text().splitlines()]


def _write_index(root, records):
    (root / INDEX_NAME).write_text("".join(json.dumps(r) + "\n" for r in records))


def _h5py_frames(root, vid, frames):
    rec = next(r for r in _records(root) if r["id"] == vid)
    with h5py.File(root / rec["path"], "r") as f:
        offsets = f[rec["key"]]["offsets"][()]
        return [f[rec["key"]]["jpeg"][offsets[i]:offsets[i + 1]].tobytes() for i in frames]


# --- case 1: the catalog folder ---------------------------------------------------------------

def test_a_linked_catalog_folder_deletes_nothing_outside_the_store(stores, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("R3D_CACHE", str(tmp_path / "cache"))
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    outside = tmp_path / "precious"
    outside.mkdir()
    for name in ("thesis.tex", "0123456789ab.keys.npy", META_NAME):
        (outside / name).write_text("mine")
    (root / CATALOG_DIR).symlink_to(outside)
    catalog = StoreCatalog.open(root, rebuild=True)
    assert sorted(p.name for p in outside.iterdir()) == sorted(
        ["thesis.tex", "0123456789ab.keys.npy", META_NAME])
    assert catalog.directory != root / CATALOG_DIR and catalog.directory.is_relative_to(
        tmp_path / "cache")
    assert catalog.read_bytes(catalog.row("walk/v_walk_0"), [3]) == \
        _h5py_frames(root, "walk/v_walk_0", [3])


def test_clean_up_removes_only_the_catalogs_own_files(stores, tmp_path):
    root = copy_tree(stores["jpg"], tmp_path / "jpg")
    first = StoreCatalog.open(root)
    folder = root / CATALOG_DIR
    strangers = ["notes.txt", "abc.npy", f"{first.meta['tag']}x.n_frames.npy"]
    for name in strangers:
        (folder / name).write_text("not the catalog's")
    StoreCatalog.open(root, rebuild=True)
    names = {p.name for p in folder.iterdir()}
    assert set(strangers) <= names
    assert not any(n.startswith(first.meta["tag"] + ".") for n in names)


# --- case 2: a catalog shipped inside a store ------------------------------------------------

@pytest.mark.parametrize("how", ["absolute", "dotdot", "backslash"])
def test_a_shipped_catalog_cannot_name_a_file_outside_the_store(stores, tmp_path, how):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    catalog = StoreCatalog.open(root)
    meta = json.loads((root / CATALOG_DIR / META_NAME).read_text())
    rel, size = meta["shards"][0]
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"S" * size)  # same size as the shard it stands for
    name = {"absolute": str(secret), "dotdot": f"x/../../{secret.name}",
            "backslash": f"..\\{secret.name}"}[how]
    meta["shards"][0] = [name, size]
    (root / CATALOG_DIR / META_NAME).write_text(json.dumps(meta))  # index unchanged: "fresh"
    shipped = StoreCatalog.open(root)
    row = next(r for r in range(len(catalog)) if catalog.shard_path(r) == root / rel)
    with pytest.raises(FrameReadError, match=r"refused: .*shard"):
        shipped.read_bytes(row, [0])
    assert catalog.read_bytes(row, [0]) != [b"S"]


def test_a_shipped_catalog_tag_cannot_name_files_outside_its_folder(stores, tmp_path):
    root = copy_tree(stores["jpg"], tmp_path / "jpg")
    StoreCatalog.open(root)
    path = root / CATALOG_DIR / META_NAME
    meta = json.loads(path.read_text())
    for name in ("key_blob", "key_offsets", "key_prefix", "n_frames", "fps"):
        shutil.copy(root / CATALOG_DIR / f"{meta['tag']}.{name}.npy", tmp_path / f"x.{name}.npy")
    path.write_text(json.dumps({**meta, "tag": "../../x"}))
    with pytest.raises(CatalogError, match=rf"{META_NAME}: not a catalog r3d wrote .*'../../x'"):
        StoreCatalog.open(root)


# --- case 7: one bad record ------------------------------------------------------------------

@pytest.mark.parametrize("bad", [-5, 0, 4294967326, "12", 2.5, True])
def test_a_bad_frame_count_spoils_only_its_own_record(stores, tmp_path, caplog, bad):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    records = _records(root)
    ids = sorted(r["id"] for r in records)
    victim = ids[0]
    for r in records:
        if r["id"] == victim:
            r["n_frames"] = bad
    _write_index(root, records)
    store = Hdf5Store(root)
    for vid in ids[1:]:
        assert store.read_bytes(vid, [0, VIDEOS[vid] - 1]) == \
            _h5py_frames(root, vid, [0, VIDEOS[vid] - 1])
    with pytest.raises(VideoNotFound, match=rf"{victim}.*n_frames {bad!r} is not a whole number"):
        store.read_bytes(victim, [0])
    assert victim in caplog.text and "n_frames" in caplog.text


# --- case 8: long ids, jobs, read-only stores, NUL bytes -------------------------------------

def test_one_long_id_costs_its_own_bytes(stores, tmp_path):
    root = copy_tree(stores["jpg"], tmp_path / "jpg")
    records = _records(root)
    template = next(r for r in records if r["id"] == "walk/v_walk_1")
    long_id = "walk/" + "x" * 100_000
    extra = [{**template, "id": f"more/v{i:04d}"} for i in range(300)]
    long_path = {**template, "id": "walk/long_path", "path": "walk/" + "y" * 100_000}
    _write_index(root, records + extra + [{**template, "id": long_id}, long_path])
    catalog = StoreCatalog.open(root)
    size = sum(p.stat().st_size for p in catalog.directory.iterdir())
    assert size < 1_000_000  # padded to the longest id or path: 300 * 100 KB = 30 MB
    assert catalog.key(catalog.row(long_id)) == long_id
    wanted = [long_id, "more/v0007", "walk/" + "x" * 99_999, "jump/v_jump_1"]
    rows = catalog.rows([w.encode() for w in wanted])
    assert rows.tolist() == [catalog.row(long_id), catalog.row("more/v0007"), -1,
                             catalog.row("jump/v_jump_1")]
    assert catalog.read_bytes(catalog.row(long_id), [1]) == \
        catalog.read_bytes(catalog.row("walk/v_walk_1"), [1])
    with pytest.raises(FrameReadError, match="walk/long_path"):
        catalog.read_bytes(catalog.row("walk/long_path"), [1])


def test_an_old_format_catalog_is_derived_again(stores, tmp_path):
    root = copy_tree(stores["jpg"], tmp_path / "jpg")
    StoreCatalog.open(root)
    path = root / CATALOG_DIR / META_NAME
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "version": 1}))
    again = StoreCatalog.open(root)
    assert again.meta["tag"] != meta["tag"] and again.meta["version"] == 2


def test_jobs_never_exceed_the_cpus(stores, tmp_path, monkeypatch):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    asked = []
    real_pool = multiprocessing.Pool

    def pool(n):
        asked.append(n)
        return real_pool(1)
    monkeypatch.setattr(derive_module.multiprocessing, "Pool", pool)
    assert main(["--jobs", "100000", str(root)]) == 0
    assert asked and max(asked) <= os.cpu_count()


def test_no_writable_catalog_folder_is_one_clear_error(stores, tmp_path, monkeypatch):
    root = copy_tree(stores["jpg"], tmp_path / "jpg")
    (root / CATALOG_DIR).write_text("a file where the folder would be")
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    monkeypatch.setenv("R3D_CACHE", str(blocker))  # nothing can be made under a file
    with pytest.raises(CatalogError, match=rf"{root}: no folder to write its catalog in .*"
                                           rf"set R3D_CACHE to a writable folder"):
        JpegDirStore(root)
    assert issubclass(CatalogError, ValueError)  # r3d-train prints it as one line


def test_a_nul_byte_in_an_index_path_names_the_video(stores, tmp_path, caplog):
    root = copy_tree(stores["jpg"], tmp_path / "jpg")
    records = _records(root)
    for r in records:
        if r["id"] == "jump/v_jump_1":
            r["path"] = "jump/v_jump_1\x00x"
    _write_index(root, records)
    store = JpegDirStore(root)
    with pytest.raises(VideoNotFound, match=r"'jump/v_jump_1'.*holds a NUL byte"):
        store.read_bytes("jump/v_jump_1", [1])
    assert len(store.read_bytes("jump/v_jump_0", [1, 2])) == 2
    assert "jump/v_jump_1" in caplog.text


# --- case 10: what a shard may hold ----------------------------------------------------------

def test_offsets_past_the_end_say_the_real_numbers(stores, tmp_path):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    rec = next(r for r in _records(root) if r["id"] == "jump/v_jump_0")
    with h5py.File(root / rec["path"], "r+") as f:
        offsets = f[rec["key"]]["offsets"]
        size = f[rec["key"]]["jpeg"].shape[0]
        offsets[-1] = size + 1000
    with pytest.raises(FrameReadError, match=rf"frame offsets from 0 to {size + 1000}, but "
                                             rf"its jpeg dataset holds {size} bytes"):
        Hdf5Store(root).read_bytes("jump/v_jump_0", [0])


def test_a_shard_linked_out_of_the_store_is_refused(stores, tmp_path):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    rec = next(r for r in _records(root) if r["id"] == "walk/v_walk_0")
    elsewhere = tmp_path / "elsewhere.h5"
    shutil.move(root / rec["path"], elsewhere)
    (root / rec["path"]).symlink_to(elsewhere)
    store = Hdf5Store(root)
    with pytest.raises(FrameReadError, match=r"refused: .*resolves to .*outside"):
        store.read_bytes("walk/v_walk_0", [0])


@pytest.mark.parametrize("link", ["external", "soft"])
def test_a_link_inside_a_shard_is_refused(stores, tmp_path, link):
    root = copy_tree(stores["hdf5"], tmp_path / "h5")
    rec = next(r for r in _records(root) if r["id"] == "walk/v_walk_0")
    other = tmp_path / "other.h5"
    with h5py.File(root / rec["path"], "r+") as f:
        group = f[rec["key"]]
        jpeg = group["jpeg"][()]
        if link == "external":
            with h5py.File(other, "w") as o:
                o["jpeg"] = jpeg
            del group["jpeg"]
            group["jpeg"] = h5py.ExternalLink(str(other), "/jpeg")
        else:
            f["elsewhere"] = jpeg
            del group["jpeg"]
            group["jpeg"] = h5py.SoftLink("/elsewhere")
    store = Hdf5Store(root)
    with pytest.raises(FrameReadError, match=rf"refused: .*jpeg' is an? {link} link"):
        store.read_bytes("walk/v_walk_0", [0])
    assert len(store.read_bytes("jump/v_jump_0", [0])) == 1


def test_r3d_train_reports_an_unwritable_catalog_in_one_line(stores, tmp_path, monkeypatch,
                                                              capsys):
    from training.cli import main as train_main
    from training_data import reference_doc

    root = copy_tree(stores["jpg"], tmp_path / "jpg")
    (root / CATALOG_DIR).write_text("a file where the folder would be")
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    monkeypatch.setenv("R3D_CACHE", str(blocker))
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(reference_doc()))
    argv = ["--video-path", str(root), "--annotation-path", str(ann), "--result-path",
            str(tmp_path / "run"), "--model", "resnet", "--model-depth", "10",
            "--resnet-widen-factor", "0.125", "--sample-size", "32", "--sample-duration", "8",
            "--batch-size", "2", "--n-threads", "0", "--no-progress", "--n-epochs", "1"]
    capsys.readouterr()
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("r3d-train: error:") and "\n" not in err, err
    assert str(root) in err and "R3D_CACHE" in err
