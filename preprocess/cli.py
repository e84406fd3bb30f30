"""r3d-preprocess: convert a folder of videos into JPEG frame directories or HDF5 shards."""
import logging
import os
import sys

from storeformat.cliparser import Parser

from .convert import FORMATS, convert_dataset

DESCRIPTION = """\
Convert every video under SRC (any depth, every common container) into frames at DST.

  jpg:   DST/<class>/<video>/image_00001.jpg ...   (the reference layout, 1-based)
  hdf5:  DST/shard-00000.h5 ...                    (many videos per file, JPEG bytes inside)

DST/index.jsonl records every video (frames, fps, size, duration, status); a rerun skips what
is done, redoes what an interrupted run left unfinished, and reports earlier failures again.
Failed videos are listed with their reason in DST/failures.tsv; the command then exits 1.
Only files inside SRC are read (media files only, never playlists or lists of other files)
and only DST is written, by one run at a time. A full disk, an I/O error or a vanished
source stops the run (exit 2) without marking the video failed: rerun once it is fixed."""


def build_parser():
    p = Parser(prog="r3d-preprocess", description=DESCRIPTION)
    p.add_argument("src", metavar="SRC", help="folder of videos (class folders or flat)")
    p.add_argument("dst", metavar="DST", help="output store folder (created if missing)")
    p.add_argument("--format", choices=FORMATS, default="jpg", dest="fmt",
                   help="jpg: one frame directory per video; hdf5: shards of many videos "
                        "(default: %(default)s)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--height", type=int, default=240,
                      help="output height in pixels, aspect kept: the papers' rule "
                           "(default: %(default)s)")
    size.add_argument("--short-side", type=int, default=None, metavar="N",
                      help="scale so that the shorter side is N pixels (the reference code's "
                           "rule) instead of --height")
    p.add_argument("--fps", type=float, default=None, metavar="F",
                   help="resample to F frames/s by dropping or repeating frames (no "
                        "interpolation); default: keep every frame")
    p.add_argument("--quality", type=int, default=90, metavar="Q",
                   help="JPEG quality 1-100 (libjpeg scale; default: %(default)s)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="parallel worker processes, at most the CPU cores (default: all "
                        "%(default)s cores)")
    p.add_argument("--list", dest="list_file", default=None, metavar="FILE",
                   help="convert only the videos named in FILE, one path per line, relative "
                        "to SRC")
    p.add_argument("--ext", action="append", default=[], metavar="EXT",
                   help="also take files with this extension (repeatable)")
    p.add_argument("--overwrite", action="store_true",
                   help="convert again videos already done, and accept new settings for DST")
    p.add_argument("--retry-failed", action="store_true",
                   help="try again the videos an earlier run recorded as failed")
    p.add_argument("--videos-per-shard", type=int, default=100, metavar="N",
                   help="hdf5: videos per shard file (default: %(default)s)")
    p.add_argument("--backend", choices=("loky", "dask"), default="loky",
                   help="loky: processes on this machine; dask: a Dask distributed cluster "
                        "(needs --scheduler and 'pip install r3d[dask]')")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address, e.g. tcp://10.0.0.1:8786")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--verbose", "-v", action="store_true", help="log every failure as it happens")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.backend == "dask" and not args.scheduler:
        parser.error("--backend dask needs --scheduler ADDRESS")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    cores = os.cpu_count() or 1
    if args.backend == "loky" and args.jobs > cores:
        # more processes than cores only compete, and thousands exhaust memory and hang
        print(f"r3d-preprocess: note: --jobs {args.jobs} is more than the {cores} CPU cores; "
              f"using {cores}", file=sys.stderr)
        args.jobs = cores
    if args.videos_per_shard < 1:
        parser.error("--videos-per-shard must be at least 1")
    try:
        summary = convert_dataset(
            args.src, args.dst, fmt=args.fmt, height=args.height, short_side=args.short_side,
            fps=args.fps, quality=args.quality, jobs=args.jobs, list_file=args.list_file,
            extensions=args.ext, overwrite=args.overwrite, retry_failed=args.retry_failed,
            videos_per_shard=args.videos_per_shard, backend=args.backend,
            scheduler=args.scheduler, progress=not args.no_progress)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"r3d-preprocess: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("r3d-preprocess: interrupted; run the same command again to resume",
              file=sys.stderr)
        return 130
    print(f"r3d-preprocess: {summary.describe()}")
    if summary.failed:
        shown = summary.failed[:10]
        for source, reason in shown:
            print(f"  FAILED {source}: {reason}")
        if len(summary.failed) > len(shown):
            print(f"  ... and {len(summary.failed) - len(shown)} more")
        print(f"  full list: {os.path.join(args.dst, 'failures.tsv')}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
