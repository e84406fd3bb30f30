"""r3d-features' output: one HDF5 file (or .npy files and a JSON manifest), written so that a
killed run loses at most the videos in flight and never leaves a damaged file.

While a run goes on, each finished video is written on its own into the parts folder
(``OUT.parts/``): ``<h>.npy`` (its features) and then ``<h>.json`` (its windows and metadata;
its presence marks the video done), each through a temporary name and a rename; ``h`` is the
SHA-1 of the video id, so ids never become paths. Every video is handled by one process, so no
two processes write the same file. At the end one process merges the parts and whatever the
previous output held into a new output, renamed over the old one, and removes the parts. A
rerun skips the videos the output or the parts already hold. docs/features.md describes the
format.
"""
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import h5py
import numpy as np

from storeformat.atomic import write_atomically
from storeformat.hdf5 import attr_value
from storeformat.paths import inside

FORMAT_NAME = "r3d-features"
FORMAT_VERSION = 1
FORMATS = ("h5", "npy")
MANIFEST_NAME = "manifest.json"
#: Suffix of the lock file next to the output (storeformat.lock: one run per output).
LOCK_SUFFIX = ".r3d-lock"
SETTINGS_NAME = "settings.json"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Settings that do not change the features (a moved checkpoint is the same checkpoint).
NOT_COMPARED = ("checkpoint",)


class OutputMismatch(ValueError):
    """The output (or its parts) was made with other settings."""


def _same(a: dict, b: dict) -> list:
    keys = (set(a) | set(b)) - set(NOT_COMPARED)
    return [f"{k}: {a.get(k)!r} there, {b.get(k)!r} now" for k in sorted(keys)
            if a.get(k) != b.get(k)]


class FeatureOutput:
    """The output `path` of format 'h5' (one file) or 'npy' (a folder of <video id>.npy files
    and manifest.json), for features made with `settings` (a flat dict of plain values)."""

    def __init__(self, path, fmt, settings: dict):
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.path, self.fmt, self.settings = Path(path), fmt, dict(settings)
        self.parts = (self.path.with_name(self.path.name + ".parts") if fmt == "h5"
                      else self.path / ".parts")
        absolute = Path(os.path.abspath(self.path))  # 'OUT/.' and '.' name their folder
        self.lock_path = absolute.with_name(absolute.name + LOCK_SUFFIX)

    # --- set-up (one process) ------------------------------------------------------------
    def prepare(self, overwrite=False) -> None:
        """Check that an existing output and parts were made with the same settings (or
        remove them with `overwrite`), and create the parts folder. Whatever r3d-features did
        not make (a video, a folder of other files) is refused, never replaced."""
        self._check_ours()
        if overwrite:
            self._remove()
        old = self._final_settings()
        if old is not None:
            self._check(old, self.path)
        marker = self.parts / SETTINGS_NAME
        if marker.exists():
            self._check(json.loads(marker.read_text(encoding="utf-8")), self.parts)
        self.parts.mkdir(parents=True, exist_ok=True)
        # what a killed process was writing when it died (the output lock keeps live runs out)
        stale = [*self.parts.glob("*.tmp*"), *self.path.parent.glob(self.path.name + ".tmp*")]
        if self.fmt == "npy":
            stale += [*self.path.glob(MANIFEST_NAME + ".tmp*"), *self.path.rglob("*.npy.tmp*")]
        for path in stale:
            path.unlink()
        write_atomically(marker, lambda p: p.write_text(json.dumps(self.settings, indent=1),
                                                     encoding="utf-8"))

    def _refuse(self, path, why):
        raise OutputMismatch(f"{path}: {why}; r3d-features writes (and --overwrite replaces) "
                             f"only its own output: choose another --out")

    def _check_ours(self) -> None:
        """OutputMismatch unless the output and the parts folder are absent, empty folders, or
        what r3d-features made (an HDF5 file of its format; a folder with its manifest; a
        parts folder with its settings)."""
        if self.parts.exists() and not (self.parts.is_dir() and (
                (self.parts / SETTINGS_NAME).is_file() or not any(self.parts.iterdir()))):
            self._refuse(self.parts, "not a parts folder of r3d-features")
        if not self.path.exists():
            return
        if self.fmt == "h5":
            if not self.path.is_file():
                self._refuse(self.path, "not a file")
            if _file_format(self.path) != FORMAT_NAME:
                self._refuse(self.path, "not an r3d-features HDF5 file")
            return
        if not self.path.is_dir():
            self._refuse(self.path, "not a folder (--format npy writes a folder)")
        manifest = self.path / MANIFEST_NAME
        if manifest.is_file():
            if _json_format(manifest) != FORMAT_NAME:
                self._refuse(manifest, "not an r3d-features manifest")
        elif not (self.parts / SETTINGS_NAME).is_file() and any(self.path.iterdir()):
            self._refuse(self.path, "a folder holding other files, not an r3d-features output")

    def _remove(self) -> None:
        """Remove what the output holds that r3d-features wrote (after _check_ours): the HDF5
        file, or the .npy files the manifest and the parts list and the manifest, never other
        files; then the parts."""
        if self.fmt == "h5":
            self.path.unlink(missing_ok=True)
        elif self.path.is_dir():
            ids = set((self._manifest() or {}).get("videos", {}))
            ids.update(r["id"] for r in self._part_records())
            for vid in ids:
                npy = self._npy_path(vid)
                npy.unlink(missing_ok=True)
                for folder in npy.parents:  # the folders nested ids made, once empty
                    if folder == self.path or any(folder.iterdir()):
                        break
                    folder.rmdir()
            (self.path / MANIFEST_NAME).unlink(missing_ok=True)
        shutil.rmtree(self.parts, ignore_errors=True)

    def _npy_path(self, video_id) -> Path:
        return inside(self.path, video_id + ".npy", "video id")

    def _check(self, old, where):
        diff = _same(old, self.settings)
        if diff:
            raise OutputMismatch(f"{where}: made with other settings ({'; '.join(diff)}); use "
                                 f"the same settings to resume, another --out, or --overwrite")

    def _final_settings(self):
        if self.fmt == "h5":
            if not self.path.exists():
                return None
            try:
                with h5py.File(self.path, "r") as f:
                    return json.loads(attr_value(f.attrs["settings"]))
            except (OSError, KeyError, ValueError) as e:
                raise OutputMismatch(f"{self.path}: not a readable r3d-features file ({e}); "
                                     f"choose another --out") from None
        manifest = self._manifest()
        return manifest["attributes"] if manifest else None

    def _manifest(self):
        path = self.path / MANIFEST_NAME
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    # --- what is done ----------------------------------------------------------------------
    def done_ids(self) -> set:
        """Ids of the videos the output or the parts already hold."""
        done = {meta["id"] for meta in self._part_records()}
        if self.fmt == "h5" and self.path.exists():
            with h5py.File(self.path, "r") as f:
                done.update(attr_value(x) for x in f["video_ids"][()])
        elif self.fmt == "npy":
            done.update((self._manifest() or {}).get("videos", {}))
        return done

    def _part_records(self):
        if not self.parts.is_dir():
            return []
        return [json.loads(p.read_text(encoding="utf-8"))
                for p in sorted(self.parts.glob("*.json")) if p.name != SETTINGS_NAME]

    # --- writing one video (any process) ---------------------------------------------------
    def write_video(self, video_id, features, first, last, seconds, fps, n_frames,
                    source) -> None:
        """Store one finished video: features [windows, dim], the windows' first and last
        frames (0-based) and [start, end] seconds (None: unknown), the video's fps (None:
        unknown) and frame count."""
        h = hashlib.sha1(video_id.encode("utf-8")).hexdigest()
        if self.fmt == "npy":
            npy = self._npy_path(video_id)
            npy.parent.mkdir(parents=True, exist_ok=True)
        else:
            npy = self.parts / f"{h}.npy"
        write_atomically(npy, lambda p: _save_npy(p, features))
        first, last = np.asarray(first, dtype=np.int64), np.asarray(last, dtype=np.int64)
        record = {"id": video_id, "part": h, "source": str(source), "n_frames": int(n_frames),
                  "fps": float(fps) if fps else None, "n_windows": int(features.shape[0]),
                  "dim": int(features.shape[1]),
                  "frames": np.stack([first, last], 1).tolist(),
                  "seconds": None if seconds is None else np.asarray(seconds, dtype=np.float64)
                  .tolist()}
        write_atomically(self.parts / f"{h}.json",
                         lambda p: p.write_text(json.dumps(record), encoding="utf-8"))

    # --- the end (one process) -------------------------------------------------------------
    def merge(self) -> int:
        """Fold the parts into the output; returns how many videos it holds."""
        records = self._part_records()
        final = self.path if self.fmt == "h5" else self.path / MANIFEST_NAME
        if not records and final.exists():  # nothing new: keep the output as it is
            shutil.rmtree(self.parts, ignore_errors=True)
            return len(self.done_ids())
        n = self._merge_h5(records) if self.fmt == "h5" else self._merge_npy(records)
        shutil.rmtree(self.parts, ignore_errors=True)
        return n

    def _merge_h5(self, records) -> int:
        def write(tmp):
            with h5py.File(tmp, "w") as out:
                for k, v in self.settings.items():
                    if v is not None:
                        out.attrs[k] = v
                out.attrs["format"] = FORMAT_NAME
                out.attrs["format_version"] = FORMAT_VERSION
                out.attrs["settings"] = json.dumps(self.settings)
                new = {r["id"]: r for r in records}
                old = h5py.File(self.path, "r") if self.path.exists() else None
                try:
                    kept = [attr_value(x) for x in old["video_ids"][()]] if old else []
                    ids = sorted(set(kept) | set(new))
                    for vid in ids:
                        if vid in new:
                            _write_group(out.create_group("videos/" + vid), new[vid],
                                         np.load(self.parts / f"{new[vid]['part']}.npy"))
                        else:
                            parent, _, name = ("videos/" + vid).rpartition("/")
                            old.copy(old["videos/" + vid], out.require_group(parent), name)
                finally:
                    if old is not None:
                        old.close()
                out.create_dataset("video_ids", data=np.array(ids, dtype=object),
                                   dtype=h5py.string_dtype())
                count[0] = len(ids)

        count = [0]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, write)
        return count[0]

    def _merge_npy(self, records) -> int:
        manifest = self._manifest() or {"videos": {}}
        videos = manifest["videos"]
        for r in records:
            videos[r["id"]] = {k: v for k, v in r.items() if k not in ("id", "part")}
            videos[r["id"]]["file"] = r["id"] + ".npy"
        doc = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
               "attributes": self.settings, "videos": videos}
        write_atomically(self.path / MANIFEST_NAME,
                         lambda p: p.write_text(json.dumps(doc, indent=1), encoding="utf-8"))
        return len(videos)


def _save_npy(path, array):
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


def is_feature_output(path) -> bool:
    """Whether `path` is something r3d-features wrote (an output file or folder, its parts
    folder, its lock file), so that a glob over a folder of videos never takes it for one."""
    path = Path(path)
    if path.is_dir():
        return ((path.name.endswith(".parts") and (path / SETTINGS_NAME).is_file()) or
                _json_format(path / MANIFEST_NAME) == FORMAT_NAME)
    if path.name.endswith(LOCK_SUFFIX):
        return True
    try:
        with open(path, "rb") as f:
            if f.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                return False
    except OSError:
        return False
    return _file_format(path) == FORMAT_NAME


def _file_format(path):
    """The `format` attribute of an HDF5 file, None for anything else."""
    try:
        with h5py.File(path, "r") as f:
            return attr_value(f.attrs.get("format"))
    except (OSError, ValueError):
        return None


def _json_format(path):
    """The "format" entry of a JSON object file, None for anything else."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc.get("format") if isinstance(doc, dict) else None


def _write_group(group, record, features):
    group.create_dataset("features", data=features)
    group.create_dataset("frames", data=np.asarray(record["frames"], dtype=np.int64)
                         .reshape(-1, 2))
    seconds = record["seconds"]
    group.create_dataset("seconds", data=np.full((record["n_windows"], 2), math.nan)
                         if seconds is None else np.asarray(seconds, dtype=np.float64)
                         .reshape(-1, 2))
    group.attrs["id"] = record["id"]
    group.attrs["source"] = record["source"]
    group.attrs["fps"] = record["fps"] if record["fps"] else math.nan
    group.attrs["n_frames"] = record["n_frames"]
