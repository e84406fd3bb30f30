"""r3d-predict: a checkpoint's top classes for raw videos or the videos of a store, scored over
sliding windows exactly as r3d-train's inference scores them (softmax per window, averaged per
video)."""
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from storeformat.annotation import load_annotation
from training.job.checkpoint_info import class_names_of, inference_transforms

from .options import Loaded, forward_crops, sources
from .windows import Batch, VideoFailed, VideoStarted, window_events

def read_labels(path) -> list:
    """Class names from a text file (one per line) or an annotation file's 'labels'."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return [str(x) for x in load_annotation(path, full=False)["labels"]]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot read the labels: {e.strerror}") from None
    return [line.strip() for line in lines if line.strip()]


def class_names(ckpt, labels_path, n_classes):
    """(names, note): the checkpoint's names, else --labels, else class indices with a note."""
    if labels_path is not None:
        names = read_labels(labels_path)
        source = str(labels_path)
    else:
        names, source = class_names_of(ckpt), f"{ckpt.path}"
    if names is None:
        return [str(i) for i in range(n_classes)], (
            f"{ckpt.path} records no class names and no --labels was given: showing class "
            f"indices")
    if len(names) != n_classes:
        raise ValueError(f"{source} names {len(names)} classes, the model has {n_classes}")
    return names, None


def top(scores, names, k):
    values, idx = torch.topk(scores.double(), min(k, len(names)))
    return [{"label": names[i], "score": float(v)} for v, i in zip(values.tolist(),
                                                                   idx.tolist())]


def predict(args, out=None):
    """Score the videos the options name; print them to `out` (default: stdout) and return
    {video: result} and the failures as (video, reason)."""
    out = out or sys.stdout
    loaded = Loaded(args, stride=args.stride)
    n_classes = loaded.ckpt.n_classes
    names, note = class_names(loaded.ckpt, args.labels, n_classes)
    if note:
        print(f"r3d-predict: note: {note}", file=sys.stderr)
    transforms = inference_transforms(loaded.clip, args.crop)
    model, ctx = loaded.model, loaded.ctx

    def scores(x):
        return F.softmax(model(x).float(), dim=1)

    results, failures, current = {}, [], {}
    videos = sources(args, keep_paths=True)
    events = window_events(videos, loaded.sampler, transforms, args.batch, loaded.workers)
    bar = tqdm(total=len(videos), unit="video", disable=args.no_progress, leave=False,
               dynamic_ncols=True, desc="r3d-predict", file=sys.stderr)
    with torch.no_grad():
        for e in events:
            if isinstance(e, VideoStarted):
                n = len(e.first)
                current[e.slot] = (e, torch.zeros(n, n_classes, dtype=torch.float64), [0])
            elif isinstance(e, VideoFailed):
                current.pop(e.slot, None)
                failures.append((e.video_id, e.reason))
                print(f"r3d-predict: skipped {e.video_id}: {e.reason}", file=sys.stderr)
                bar.update(1)
            elif isinstance(e, Batch):
                probs = forward_crops(scores, e.inputs, ctx)
                for (slot, w), p in zip(e.owners, probs):
                    if slot not in current:  # its video failed after this batch was made
                        continue
                    started, table, filled = current[slot]
                    table[w] = p.double()
                    filled[0] += 1
                    if filled[0] == len(table):
                        del current[slot]
                        vid = started.video_id
                        results[vid] = _result(started, table, names, args)
                        if not args.json:
                            _print_video(vid, results[vid], args, out)
                        bar.update(1)
    bar.close()
    results = {v.video_id: results[v.video_id] for v in videos if v.video_id in results}
    if args.json:
        json.dump({"results": results}, out, indent=1)
        out.write("\n")
    return results, failures


def _result(started, table, names, args):
    average = top(table.mean(0), names, args.top_k)
    if not args.per_window:
        return average
    windows = []
    for w, (a, b) in enumerate(zip(started.first.tolist(), started.last.tolist())):
        entry = {"segment": [a, b + 1]}
        if started.seconds is not None:
            entry["seconds"] = [round(float(t), 6) for t in started.seconds[w]]
        entry["result"] = top(table[w], names, args.top_k if args.json else 1)
        windows.append(entry)
    return {"result": average, "windows": windows} if not args.json else windows


def _print_video(vid, result, args, out):
    average = result["result"] if args.per_window else result
    out.write(f"{vid}\n")
    for rank, r in enumerate(average, 1):
        out.write(f"  {rank}. {r['label']}  {r['score']:.4f}\n")
    if args.per_window:
        for w in result["windows"]:
            span = (f"{w['seconds'][0]:.2f}-{w['seconds'][1]:.2f} s" if "seconds" in w
                    else "")
            best = w["result"][0]
            out.write(f"    frames {w['segment'][0]}-{w['segment'][1] - 1} {span}: "
                      f"{best['label']} {best['score']:.4f}\n")


if __name__ == "__main__":  # python -m / torchrun -m
    from .cli import predict_main
    sys.exit(predict_main())
