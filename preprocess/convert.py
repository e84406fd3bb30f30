"""Converting a whole folder of videos into a store, in parallel and resumably.

The parent process alone writes the index: workers return one record per video and the parent
appends it (fsynced) as results arrive. A rerun trusts the index: videos recorded as done are
skipped, failed ones are reported again (or retried with `retry_failed`), and anything else,
including a video whose output was left half-written by a killed run, is converted anew.

One run at a time writes a store (an OS file lock held for the run). A failure of the
environment (disk full, I/O error, source gone) stops the run without recording the video as
failed, so a plain rerun converts it once the cause is fixed."""
import collections
import logging
import math
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import h5py
from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from storeformat import (FAILURES_NAME, INDEX_NAME, LOCK_NAME, SETTINGS_NAME, IndexWriter,
                         read_index, read_settings, write_settings)
from storeformat.atomic import write_atomically, write_text_atomically

from .discover import VIDEO_EXTENSIONS, assign_ids, find_videos, normalise_extensions, read_list
from .extract import FrameSettings
from .failures import environment_cause
from .ffmpeg_bin import ffmpeg_version
from .lock import store_lock
from .paths import id_problem, is_inside, nesting_conflicts
from .writers import STOPPED, convert_to_jpeg_dir, convert_to_shard

log = logging.getLogger(__name__)

FORMATS = ("jpg", "hdf5")
TMP_NAME = ".r3d-tmp"
SHARD_TEMPLATE = "shard-{:05d}.h5"
#: Settings that define a store's content; a rerun with other values would mix two stores.
STORE_KEYS = ("format", "height", "short_side", "fps", "quality")


@dataclass
class Summary:
    """What a run did. `failed` lists (source, reason) for every selected video that is not
    converted, including failures recorded by earlier runs."""
    converted: int = 0
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    failed: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.converted} converted ({self.frames} frames, {rate:.0f} frames/s), "
                f"{self.skipped} already done, {len(self.failed)} failed")


class SettingsMismatch(ValueError):
    """The destination holds a store made with other settings."""


class NothingToConvert(ValueError):
    """SRC holds no video to convert (an empty folder, the wrong folder, or a store)."""


class RunStopped(RuntimeError):
    """The run stopped early because of the environment (disk full, I/O error, permission,
    source gone); the video concerned is not recorded as failed."""


def _check_settings(dst: Path, settings: dict, overwrite: bool) -> None:
    old = read_settings(dst / SETTINGS_NAME)
    if old is not None and not overwrite:
        diff = [f"{k}: {old.get(k)!r} there, {settings[k]!r} now" for k in STORE_KEYS
                if old.get(k) != settings[k]]
        if diff:
            raise SettingsMismatch(f"{dst / SETTINGS_NAME}: the store was made with other "
                                   f"settings ({'; '.join(diff)}); use the same settings to "
                                   f"resume, another destination, or --overwrite")
    now = ffmpeg_version()
    if old is not None and not overwrite and old.get("ffmpeg", now) != now:
        log.warning("%s: the store was made with ffmpeg %s, this run uses %s: frames converted "
                    "now may differ byte for byte from the others (use the same ffmpeg, or "
                    "--overwrite to remake them all)", dst, old["ffmpeg"], now)
    else:
        settings = {**settings, "ffmpeg": now}
    write_settings(dst / SETTINGS_NAME, {"layout": "r3d", "version": 1,
                                         **(old or {}), **settings})


def select_sources(src: Path, list_file, extensions, index):
    """(selected {id: relative source}, failures (source, reason) for sources that cannot be
    converted: missing or escaping list entries, links out of SRC, same or nesting ids,
    reserved names)."""
    problems = []
    if list_file is not None:
        listed, problems = read_list(list_file, src)
        rel = []
        for p in listed:
            if (src / p).is_file():
                rel.append(p)
            else:
                problems.append((p, f"listed in {list_file} but not found under {src}"))
    else:
        rel = find_videos(src, extensions, problems)
    by_id, conflicts = assign_ids(rel)
    problems += conflicts
    for vid in list(by_id):
        reason = id_problem(vid)
        if reason:
            problems.append((by_id.pop(vid), f"video id '{vid}' {reason}"))
    stored = [vid for vid, r in index.items() if r["status"] == "done"]
    accepted, refused = nesting_conflicts(by_id, stored)
    problems += [(by_id[vid], reason) for vid, reason in refused]
    return {vid: by_id[vid] for vid in accepted}, problems


def _output_exists(dst: Path, record: dict) -> bool:
    return (dst / record["path"]).exists()


def _next_shard_number(dst: Path) -> int:
    numbers = [int(p.name[6:11]) for p in dst.glob("shard-[0-9][0-9][0-9][0-9][0-9].h5")]
    return max(numbers, default=-1) + 1


def _remove_unreferenced_shards(dst: Path, index: dict) -> None:
    referenced = {r["path"] for r in index.values() if r["status"] == "done" and
                  r.get("format") == "hdf5"}
    for shard in dst.glob("shard-*.h5"):
        if shard.name not in referenced:
            log.info("removing %s: none of its videos is current any more", shard)
            shard.unlink()


def _tidy_shards(dst: Path, index: dict, tmp_root: Path) -> None:
    """Rewrite, without them, the shards that hold copies of videos the index no longer
    points to (left by a kill between a shard's index records, or by --overwrite): a reader
    scanning the shards then finds each video once. Only shards holding fewer current videos
    than they were written with are opened."""
    current = collections.defaultdict(set)
    written = {}
    for r in index.values():
        if r["status"] == "done" and r.get("format") == "hdf5":
            current[r["path"]].add(r["key"])
            written[r["path"]] = max(written.get(r["path"], 0), r.get("shard_videos", 0))
    for name, keys in sorted(current.items()):
        if len(keys) < written[name]:
            _rewrite_shard(dst / name, keys, tmp_root)


def _rewrite_shard(path: Path, keys, tmp_root: Path) -> None:
    with h5py.File(path, "r") as old:
        stale = sorted(set(_video_keys(old)) - set(keys))
        if not stale:
            return
        log.info("%s: removing %d stale copies (%s ...)", path, len(stale), stale[0])

        def write(tmp):
            with h5py.File(tmp, "w") as new:
                new.attrs.update(old.attrs)
                for key in sorted(keys):
                    parent, name = key.rsplit("/", 1)
                    old.copy(old[key], new.require_group(parent), name=name)
        write_atomically(path, write, tmp_root)


def _video_keys(h5):
    """Keys of every video group of an r3d shard (groups with an `offsets` dataset)."""
    keys = []
    if "videos" in h5:
        h5["videos"].visititems(lambda name, obj: keys.append("videos/" + name)
                                if isinstance(obj, h5py.Group) and "offsets" in obj else None)
    return keys


def _write_failures(dst: Path, index: dict, problems) -> None:
    """Rewrite failures.tsv: every failure the index holds plus this run's unconvertible
    sources (missing list entries, id conflicts), which have no index record."""
    failed = [(r["source"], r["reason"]) for r in index.values() if r["status"] == "failed"]
    lines = [f"{source}\t{' '.join(reason.split())}\n"
             for source, reason in sorted(failed + list(problems))]
    write_text_atomically(dst / FAILURES_NAME, "source\treason\n" + "".join(lines))


def convert_dataset(src, dst, fmt="jpg", height=240, short_side=None, fps=None, quality=90,
                    jobs=1, list_file=None, extensions=(), overwrite=False, retry_failed=False,
                    videos_per_shard=100, backend="loky", scheduler=None, threads=1,
                    progress=True) -> Summary:
    """Convert every video under `src` (or those named in `list_file`) into a store at `dst`.

    `fmt` is 'jpg' (DST/<id>/image_00001.jpg ...) or 'hdf5' (DST/shard-00000.h5 ...). Frames are
    `height` pixels high (aspect kept), or have a short side of `short_side`; `fps` resamples by
    dropping or repeating frames. `backend='dask'` runs the jobs on the Dask cluster at
    `scheduler`. Returns a Summary; per-video failures never raise. Raises StoreBusy when
    another run writes `dst`, RunStopped when the environment stopped the run."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if short_side is not None:
        height = None
    settings = FrameSettings(height=height, short_side=short_side, fps=fps, quality=quality,
                             threads=threads)
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: source folder not found")
    if is_inside(dst, src) or is_inside(src, dst):
        raise ValueError(f"{dst}: the destination and the source folder {src} must not contain "
                         f"each other")
    if (src / INDEX_NAME).is_file() or (src / SETTINGS_NAME).is_file():
        raise NothingToConvert(f"{src}: this is an r3d store (it holds {INDEX_NAME}), not a "
                               f"folder of videos: pass the folder of raw videos as SRC")
    created = not dst.exists()
    dst.mkdir(parents=True, exist_ok=True)
    try:
        with store_lock(dst):
            return _convert_locked(src, dst, fmt, settings, jobs, list_file, extensions,
                                   overwrite, retry_failed, videos_per_shard, backend, scheduler,
                                   progress)
    except NothingToConvert:
        if created:  # leave no empty store behind: only what this run made is there
            for name in (SETTINGS_NAME, LOCK_NAME):
                (dst / name).unlink(missing_ok=True)
            shutil.rmtree(dst / TMP_NAME, ignore_errors=True)
            dst.rmdir()
        raise


def _convert_locked(src, dst, fmt, settings, jobs, list_file, extensions, overwrite,
                    retry_failed, videos_per_shard, backend, scheduler, progress):
    _check_settings(dst, {"format": fmt, "height": settings.height,
                          "short_side": settings.short_side, "fps": settings.fps,
                          "quality": settings.quality}, overwrite)
    tmp_root = dst / TMP_NAME
    shutil.rmtree(tmp_root, ignore_errors=True)
    tmp_root.mkdir()

    index_path = dst / INDEX_NAME
    index = read_index(index_path) if index_path.exists() else {}
    exts = normalise_extensions(extensions) if extensions else VIDEO_EXTENSIONS
    selected, problems = select_sources(src, list_file, exts, index)
    if not selected and not problems:
        shutil.rmtree(tmp_root, ignore_errors=True)
        what = (f"{list_file} names no video" if list_file is not None else
                f"no file with a video extension ({', '.join(sorted(exts))}) under it; "
                f"--ext adds others")
        raise NothingToConvert(f"{src}: nothing to convert: {what}")

    summary = Summary()
    pending = []
    for vid, rel in selected.items():
        rec = index.get(vid)
        if rec is not None and not overwrite:
            if rec["status"] == "done" and _output_exists(dst, rec):
                summary.skipped += 1
                continue
            if rec["status"] == "failed" and not retry_failed:
                summary.failed.append((rel, rec["reason"]))
                continue
        pending.append((vid, rel))
    log.info("%d videos selected: %d to convert, %d already done, %d failed before",
             len(selected), len(pending), summary.skipped, len(summary.failed))

    start = time.perf_counter()
    summary.failed.extend(problems)
    stop = None
    try:
        with IndexWriter(index_path) as writer:
            if pending:
                stop = run_pending(pending, fmt, src, dst, tmp_root, settings, jobs,
                                   videos_per_shard, backend, scheduler, progress, writer, index,
                                   summary)
    except OSError as e:
        cause = environment_cause(e)
        if cause is None:
            raise
        stop = {"source": str(index_path), "reason": f"cannot write the index: {cause}"}
    summary.seconds = time.perf_counter() - start
    summary.failed.sort()
    if fmt == "hdf5":
        _remove_unreferenced_shards(dst, index)
    if stop is not None:
        shutil.rmtree(tmp_root, ignore_errors=True)
        try:
            _write_failures(dst, index, problems)
        except OSError as e:
            log.error("%s: not rewritten: %s", dst / FAILURES_NAME, e)
        raise RunStopped(f"stopped early: {stop['source']}: {stop['reason']}. Nothing is "
                         f"recorded against the videos: fix the cause and run the same command "
                         f"again to convert the rest ({summary.converted} converted in this run)")
    if fmt == "hdf5":
        _tidy_shards(dst, index, tmp_root)
    shutil.rmtree(tmp_root, ignore_errors=True)
    _write_failures(dst, index, problems)
    return summary


def _tasks(pending, fmt, src, dst, tmp_root, settings, jobs, videos_per_shard):
    """(number of videos, delayed call) per unit of work."""
    if fmt == "jpg":
        for vid, rel in pending:
            yield 1, delayed(convert_to_jpeg_dir)(vid, rel, src, dst, tmp_root, settings)
        return
    # Small runs are split so that every job gets several shards to keep the workers busy.
    per_shard = max(1, min(videos_per_shard, math.ceil(len(pending) / (max(jobs, 1) * 4))))
    first = _next_shard_number(dst)
    for k, i in enumerate(range(0, len(pending), per_shard)):
        items = pending[i:i + per_shard]
        yield len(items), delayed(convert_to_shard)(items, SHARD_TEMPLATE.format(first + k), src,
                                                    dst, tmp_root, settings)


def run_pending(pending, fmt, src, dst, tmp_root, settings, jobs, videos_per_shard, backend,
                scheduler, progress, writer, index, summary):
    """Convert `pending`, recording each outcome; returns the STOPPED record of an
    environmental failure that ended the run early, else None."""
    tasks = list(_tasks(pending, fmt, src, dst, tmp_root, settings, jobs, videos_per_shard))
    bar = tqdm(total=len(pending), unit="video", disable=not progress, dynamic_ncols=True,
               desc=f"r3d-preprocess {fmt}")
    start = time.perf_counter()
    client = None
    try:
        if backend == "dask":
            from distributed import Client
            client = Client(scheduler)
            config = parallel_config(backend="dask")
            n_jobs = -1
        else:
            config = parallel_config(backend=backend)
            n_jobs = jobs
        with config:
            results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                call for _, call in tasks)
            for records in results:
                for rec in records if isinstance(records, list) else [records]:
                    if rec["status"] == STOPPED:
                        log.info("%s: %s: stopping", rec["source"], rec["reason"])
                        with warnings.catch_warnings():  # joblib warns of the cancelled jobs
                            warnings.simplefilter("ignore")
                            results.close()  # cancels the jobs not yet done
                        return rec
                    writer.append(rec)
                    index[rec["id"]] = rec
                    if rec["status"] == "done":
                        summary.converted += 1
                        summary.frames += rec["n_frames"]
                    else:
                        summary.failed.append((rec["source"], rec["reason"]))
                        log.warning("%s: %s", rec["source"], rec["reason"])
                    bar.update(1)
                elapsed = time.perf_counter() - start
                bar.set_postfix(frames_s=f"{summary.frames / max(elapsed, 1e-9):.0f}",
                                failed=len(summary.failed), refresh=False)
        return None
    finally:
        bar.close()
        if client is not None:
            client.close()
