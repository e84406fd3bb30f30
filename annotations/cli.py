"""r3d-annotate: build, merge, subset, summarize and check unified annotation files."""
import argparse
import logging
import sys
from pathlib import Path

import simplejson

from storeformat.annotation import AnnotationError, read_header
from storeformat.jsonstream import cycle_collector_paused
from storeformat.cliparser import Parser

from . import stats as stats_mod
from .builders import BuildOptions, activitynet, custom, hmdb51, kinetics, mit, ucf101
from .check import check_stores, prepare_stores
from .merge import merge_annotations
from .schema import read_annotation, write_annotation
from .store import StoreListing
from .subset import make_subset


log = logging.getLogger("r3d-annotate")

EPILOG = """\
examples:
  r3d-annotate ucf101 ucfTrainTestlist --out annotations/ --index stores/ucf101_jpg
  r3d-annotate kinetics k700/ --out k700.json --index stores/k700 --subsets validation
  r3d-annotate merge k700.json mit.json -o km.json
  r3d-annotate subset km.json --categories 0.3 --seed 0 -o km_c30.json
  r3d-annotate stats km.json
  r3d-annotate check km.json
See docs/annotations.md for the file format and every builder's input files.
"""


def _common(p):
    g = p.add_argument_group("output, frame counts and labels")
    g.add_argument("--out", "-o", required=True, type=Path,
                   help="output folder, or a .json file when the builder writes one file")
    g.add_argument("--index", type=Path,
                   help="store index (index.jsonl, or the store folder holding it) written by "
                        "r3d-preprocess: frame counts and fps come from it")
    g.add_argument("--frames-root", type=Path,
                   help="the frame store: with --index, only names where frames live; alone, "
                        "frames are counted in its JPEG directories / HDF5 files (slower)")
    g.add_argument("--partial-store", action="store_true",
                   help="accept a store that holds under half of the entries, or whose videos "
                        "match entries of a folder only by file name from another class folder "
                        "(by default taken for the wrong --index, an error)")
    g.add_argument("--missing", choices=("drop", "keep"), default="drop",
                   help="videos not (or empty) in the store: drop them (default) or keep them "
                        "without frame counts; the count is always reported")
    g.add_argument("--label-order", choices=("reference", "sorted", "official"),
                   default="reference",
                   help="class order: the reference implementation's for the dataset (default: "
                        "classInd for UCF-101, sorted for HMDB-51, first appearance in the "
                        "training CSV for Kinetics, the class list's order for MiT, the "
                        "taxonomy for ActivityNet, sorted for folder/csv) or sorted names; "
                        "'official' is an older name of 'reference'")
    g.add_argument("--labels-from", type=Path, metavar="FILE",
                   help="take the class order from a class list (one name per line, "
                        "'name,idx', 'idx name') or another annotation file, e.g. to match "
                        "a published checkpoint's output layer")
    g.add_argument("--name", help="source name written into the file (default: the dataset's)")


def _parser():
    parser = Parser(prog="r3d-annotate", description=__doc__, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")

    p = sub.add_parser("ucf101", parents=[quiet],
                       help="UCF-101 from classInd.txt, trainlist/testlist0N.txt")
    p.add_argument("folder", type=Path, help="the ucfTrainTestlist folder")
    p.add_argument("--splits", type=int, nargs="+", default=[1, 2, 3], choices=(1, 2, 3))
    _common(p)

    p = sub.add_parser("hmdb51", parents=[quiet], help="HMDB-51 from <class>_test_split{1,2,3}.txt")
    p.add_argument("folder", type=Path, help="the testTrainMulti_7030_splits folder")
    p.add_argument("--splits", type=int, nargs="+", default=[1, 2, 3], choices=(1, 2, 3))
    _common(p)

    p = sub.add_parser("kinetics", parents=[quiet],
                       help="Kinetics-400/600/700 from the official CSV files")
    p.add_argument("folder", type=Path, help="folder of the CSV files (2017 or 2020 names), or "
                                             "one CSV file")
    p.add_argument("--subsets", nargs="+", choices=("training", "validation", "testing"),
                   metavar="SUBSET", help="only these subsets: training, validation, testing "
                                          "(default: every file found)")
    p.add_argument("--release", choices=("2017", "2020"),
                   help="which file names to read when the folder holds both")
    _common(p)

    p = sub.add_parser("activitynet", parents=[quiet],
                       help="ActivityNet v1.3 from activity_net.v1-3.min.json")
    p.add_argument("folder", type=Path, help="the JSON file or the folder holding it")
    p.add_argument("--view", choices=("trimmed", "untrimmed", "both"), default="both",
                   help="one entry per segment (trimmed), per video (untrimmed) or both "
                        "files (default)")
    _common(p)

    p = sub.add_parser("mit", parents=[quiet],
                       help="Moments in Time from moments_categories.txt and "
                            "trainingSet.csv / validationSet.csv")
    p.add_argument("folder", type=Path, help="folder of the official files")
    p.add_argument("--classes", type=Path,
                   help="class list if not moments_categories.txt (e.g. category_momentsv1.txt)")
    _common(p)

    p = sub.add_parser("folder", parents=[quiet],
                       help="a new dataset from a folder of class folders")
    p.add_argument("folder", type=Path,
                   help="SRC/<class>/<video> (or SRC/<train|val|test>/<class>/<video>)")
    _split_args(p)
    _common(p)

    p = sub.add_parser("csv", parents=[quiet],
                       help="a new dataset from a CSV of (path, label[, subset]) rows")
    p.add_argument("csv", type=Path)
    p.add_argument("--multi-label", action="store_true",
                   help="several tags per video (HVU style): tags split by --label-sep and "
                        "rows of the same video joined")
    p.add_argument("--label-sep", default="|", help="tag separator in a cell (default '|')")
    p.add_argument("--path-column", help="name of the path column (default: detected)")
    p.add_argument("--label-column", help="name of the label column (default: detected)")
    p.add_argument("--subset-column", help="name of the subset column (default: detected)")
    _split_args(p)
    _common(p)

    p = sub.add_parser("merge", parents=[quiet], help="concatenate label spaces of several files")
    p.add_argument("inputs", type=Path, nargs="+", help="annotation files, in label order")
    p.add_argument("-o", "--out", type=Path, required=True, help="the merged file")
    p.add_argument("--unify-classes", action="store_true",
                   help="same-named classes become one (default: kept apart, qualified "
                        "'<source>:<name>')")
    p.add_argument("--names", nargs="+", help="a source name per input (needed when two "
                                              "inputs have the same source name)")

    p = sub.add_parser("subset", parents=[quiet], help="a deterministic stratified subset")
    p.add_argument("input", type=Path, help="annotation file")
    p.add_argument("-o", "--out", type=Path, required=True, help="the subset's file")
    p.add_argument("--categories", type=float, metavar="FRACTION",
                   help="keep round(FRACTION x classes) whole classes (labels re-indexed)")
    p.add_argument("--instances", type=float, metavar="FRACTION",
                   help="keep this fraction of every class's videos (at least one each)")
    p.add_argument("--subsets", nargs="+", default=["training"], metavar="SUBSET",
                   choices=("training", "validation", "testing"),
                   help="where --instances samples (default: training)")
    p.add_argument("--seed", type=int, default=0,
                   help="same seed, same subset; another seed, an independent one (default 0)")

    p = sub.add_parser("stats", parents=[quiet],
                       help="classes, videos per subset and class, frames")
    p.add_argument("inputs", type=Path, nargs="+", help="annotation files")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("check", parents=[quiet],
                       help="compare an annotation file with its frame store(s)",
                       description="Report annotated videos missing, empty, failed or not on "
                                   "disk in their store, frame counts that disagree, and store "
                                   "videos the file lacks. Exits 1 when an annotated video has "
                                   "a problem.")
    p.add_argument("input", type=Path, help="annotation file")
    p.add_argument("--index", type=Path, help="store index to check against (default: the "
                                              "store each root of the file records)")
    p.add_argument("--frames-root", type=Path, help="store folder to scan instead")
    p.add_argument("--root", help="check only this root of the file")
    p.add_argument("--deep", action="store_true",
                   help="also read every video's frame metadata (its group and offsets in its "
                        "shard, every frame file); by default only the index and the files")
    p.add_argument("--report", type=Path, help="write every problem and unlisted video as JSON")
    return parser


def _split_args(p):
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="without subsets given, move this share of every class to validation")
    p.add_argument("--seed", type=int, default=0, help="seed of --val-fraction (default 0)")


#: What the reference label order is, per builder command.
REFERENCE_ORDER = {
    "ucf101": "classInd.txt order",
    "hmdb51": "sorted names, as the reference's hmdb51_json",
    "kinetics": "first appearance in the training CSV, as the reference's kinetics_json",
    "activitynet": "taxonomy leaf order, as the reference's ActivityNet dataset",
    "mit": "the class list's line order, as the reference's mit_json",
}


def label_order_used(args) -> str:
    """One line saying which label order a build command uses."""
    if args.labels_from is not None:
        return f"from {args.labels_from}"
    if args.label_order == "sorted" or args.command not in REFERENCE_ORDER:
        return "sorted names"  # folder and csv: the reference has no builder for them
    return f"reference ({REFERENCE_ORDER[args.command]})"


def _options(args):
    listing = StoreListing.open(index=args.index, frames_root=args.frames_root)
    order = "reference" if args.label_order == "official" else args.label_order
    return BuildOptions(listing=listing, missing=args.missing, label_order=order,
                        labels_from=args.labels_from, name=args.name,
                        history={"label_order": label_order_used(args)},
                        partial_store=args.partial_store)


def _build(args):
    opts = _options(args)
    log.info("label order: %s", label_order_used(args))
    c = args.command
    if c == "ucf101":
        outputs = ucf101.build(args.folder, opts, splits=args.splits)
    elif c == "hmdb51":
        outputs = hmdb51.build(args.folder, opts, splits=args.splits)
    elif c == "kinetics":
        outputs = kinetics.build(args.folder, opts, subsets=args.subsets, release=args.release)
    elif c == "activitynet":
        views = activitynet.VIEWS if args.view == "both" else (args.view,)
        outputs = activitynet.build(args.folder, opts, views=views)
    elif c == "mit":
        outputs = mit.build(args.folder, opts, classes_file=args.classes)
    elif c == "folder":
        outputs = custom.build_from_folder(args.folder, opts, val_fraction=args.val_fraction,
                                           seed=args.seed)
    else:
        outputs = custom.build_from_csv(
            args.csv, opts, multi_label=args.multi_label, label_sep=args.label_sep,
            path_column=args.path_column, label_column=args.label_column,
            subset_column=args.subset_column, val_fraction=args.val_fraction, seed=args.seed)
    out = args.out
    if out.suffix.lower() == ".json":
        if len(outputs) != 1:
            raise AnnotationError(f"{out}: this command writes {len(outputs)} files "
                                  f"({', '.join(o.filename for o in outputs)}); give a folder")
        targets = [(out, outputs[0])]
    else:
        targets = [(out / o.filename, o) for o in outputs]
    for path, o in targets:
        write_annotation(o.doc, path)
        n = len(o.doc["database"])
        print(f"wrote {path}: {len(o.doc['labels'])} classes, {n} entries", file=sys.stderr)
    return 0


def _merge(args):
    inputs = [(p, read_annotation(p)) for p in args.inputs]
    doc = merge_annotations(inputs, unify=args.unify_classes, names=args.names)
    write_annotation(doc, args.out)
    print(f"wrote {args.out}: {len(doc['labels'])} classes, {len(doc['database'])} entries",
          file=sys.stderr)
    return 0


def _subset(args):
    doc = read_annotation(args.input)
    out = make_subset(doc, categories=args.categories, instances=args.instances, seed=args.seed,
                 subsets=args.subsets, source_file=args.input)
    write_annotation(out, args.out)
    print(f"wrote {args.out}: {len(out['labels'])} classes, {len(out['database'])} entries",
          file=sys.stderr)
    return 0


def _stats(args):
    results = {}
    for p in args.inputs:
        results[str(p)] = stats_mod.compute(read_annotation(p))
    if args.json:
        print(simplejson.dumps(results, indent=2))
    else:
        print("\n".join(stats_mod.format_text(s, name) for name, s in results.items()))
    return 0


def _check(args):
    # The stores' indexes are read in worker processes while the file is read here.
    pool, prepared = prepare_stores(read_header(args.input), index=args.index,
                                    frames_root=args.frames_root, root=args.root,
                                    deep=args.deep)
    try:
        doc = read_annotation(args.input)
        results = check_stores(doc, index=args.index, frames_root=args.frames_root,
                               root=args.root, deep=args.deep, prepared=prepared)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    for r in results:
        print("\n".join(r.lines()))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(simplejson.dumps([r.to_dict() for r in results], indent=2),
                               encoding="utf-8")
    return 0 if all(r.ok for r in results) else 1


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    handlers = {"merge": _merge, "subset": _subset, "stats": _stats, "check": _check}
    try:
        with cycle_collector_paused():
            return handlers.get(args.command, _build)(args)
    except AnnotationError as e:
        print(f"r3d-annotate: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"r3d-annotate: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
