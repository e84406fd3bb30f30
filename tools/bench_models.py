"""Benchmark forward + backward of each model family on the same clips.

Every model runs on the same random clips in the same run, in rounds that time each model
once, so load from other jobs hits all alike; the baseline is ResNet-18, so the ratios say
what a family costs relative to it. On CPU each model is also timed in channels_last_3d
memory format; on CUDA the fp32 contiguous step is compared with channels_last_3d +
autocast (bf16 where supported, else fp16), the usual mixed-precision path on a GPU.
Prints a table and ratios; the last line is one JSON object.

    python tools/bench_models.py                      # CPU: batch 2, 16x112x112 clips
    python tools/bench_models.py --models resnet-18 densenet-121 --repeats 5
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.models import generate_model, parse_arch  # noqa: E402

DEFAULT_MODELS = ("resnet-18", "resnet-50", "resnet2p1d-18", "resnet2p1d-50", "preresnet-50",
                  "wideresnet-50", "resnext-101", "densenet-121")
BASELINE = "resnet-18"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(model, clips, labels, channels_last: bool, amp_dtype) -> float:
    """Seconds of one forward, loss and backward in train mode; converting the weights to
    the memory format beforehand is not timed."""
    device = clips.device
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    x = clips.contiguous(memory_format=fmt)
    model.zero_grad(set_to_none=True)
    sync(device)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        loss = F.cross_entropy(model(x), labels)
    loss.backward()
    sync(device)
    return time.perf_counter() - start


def median_seconds(models, clips, labels, repeats: int, warmup: int, variants):
    """Median step seconds per model and variant. Each round runs every model in every
    variant once, so a machine shared with other jobs slows all of them alike."""
    times = [[[] for _ in variants] for _ in models]
    for i in range(warmup + repeats):
        for m, model in enumerate(models):
            for v, (channels_last, amp_dtype) in enumerate(variants):
                t = step_seconds(model, clips, labels, channels_last, amp_dtype)
                if i >= warmup:
                    times[m][v].append(t)
        print(f"  round {i + 1}/{warmup + repeats}" + (" (warm-up)" if i < warmup else ""),
              flush=True)
    return [[statistics.median(t) for t in per_model] for per_model in times]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                   help=f"architectures as model-depth (default: one or two per family; "
                        f"{BASELINE} is always added as the baseline)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument("--batch", type=int, default=None, help="clips per step (default 2 on CPU, "
                                                           "16 on CUDA)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112, help="height and width of a clip")
    p.add_argument("--classes", type=int, default=400)
    p.add_argument("--repeats", type=int, default=5,
                   help="timed rounds (each times every model once per variant); median")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch or (16 if device.type == "cuda" else 2)
    archs = [BASELINE] + [a for a in args.models if a != BASELINE]
    try:
        specs = [parse_arch(a) for a in archs]
    except ValueError as e:
        p.error(str(e))
    amp_dtype = None
    if device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # fp32 on CPU: bf16 autocast gives NaN Conv3d gradients there
    variant = "channels_last_3d" if device.type == "cpu" else (
        f"channels_last_3d + autocast {str(amp_dtype).replace('torch.', '')}")

    gen = torch.Generator().manual_seed(0)
    clips = torch.randn(batch, 3, args.frames, args.size, args.size, generator=gen).to(device)
    labels = torch.randint(0, args.classes, (batch,), generator=gen).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU, {torch.get_num_threads()} threads")
    print(f"device: {name}; torch {torch.__version__}; batch {batch} x 3 x {args.frames} x "
          f"{args.size} x {args.size}; median of {args.repeats} rounds after {args.warmup} "
          f"warm-up")

    models = []
    for model_name, depth in specs:
        torch.manual_seed(0)
        models.append(generate_model(model_name, depth, n_classes=args.classes).to(device).train())
    seconds = median_seconds(models, clips, labels, args.repeats, args.warmup,
                             [(False, None), (True, amp_dtype)])
    results = []
    for arch, model, (base, fast) in zip(archs, models, seconds):
        results.append({"model": arch, "params": sum(q.numel() for q in model.parameters()),
                        "fwd_bwd_ms": round(base * 1e3, 1), "clips_per_s": round(batch / base, 2),
                        "variant_ms": round(fast * 1e3, 1),
                        "variant_speedup": round(base / fast, 2)})

    base_ms = results[0]["fwd_bwd_ms"]
    for r in results:
        r["vs_baseline"] = round(r["fwd_bwd_ms"] / base_ms, 2)
    print()
    print(f"| model | params | fwd+bwd ms | clips/s | vs {BASELINE} | {variant} ms | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['model']} | {r['params'] / 1e6:.1f} M | {r['fwd_bwd_ms']:,.0f} | "
              f"{r['clips_per_s']:.2f} | {r['vs_baseline']:.2f} | {r['variant_ms']:,.0f} | "
              f"{r['variant_speedup']:.2f} |")
    print(json.dumps({"device": name, "torch": torch.__version__, "batch": batch,
                      "clip": [3, args.frames, args.size, args.size], "baseline": BASELINE,
                      "variant": variant, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
