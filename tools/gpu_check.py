"""A few training steps of every model family on a CUDA GPU, the way r3d-train runs them under
torchrun: --amp, --channels-last and --batchnorm-sync, fine-tuning with the early modules
frozen. Checks that the frozen BatchNorm statistics stay fixed and prints the step time and
clips/s per family.

    python tools/gpu_check.py [--batch-size 8] [--steps 10] [--amp bf16|fp16]

Run as is, it launches itself under a one-process NCCL torchrun. Exits 2 without CUDA.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (family, depth, first trained module when fine-tuning)
FAMILIES = [("resnet", 18, "layer4"), ("resnet", 50, "layer4"), ("preresnet", 50, "layer4"),
            ("wideresnet", 50, "layer4"), ("resnext", 101, "layer4"),
            ("densenet", 121, "denseblock4"), ("resnet2p1d", 18, "layer4")]


def _args(model, depth, ft, amp):
    return SimpleNamespace(model=model, model_depth=depth, input_type="rgb", conv1_t_size=7,
                           conv1_t_stride=1, no_max_pool=False, resnet_shortcut="B",
                           resnet_widen_factor=1.0, wide_resnet_k=2, resnext_cardinality=32,
                           pretrain_path="(random weights)", ft_begin_module=ft,
                           channels_last=True, batchnorm_sync=True, amp=amp)


def _unit(key):
    """The fine-tuning unit a state_dict key belongs to (DenseNet's live in 'features')."""
    parts = key.split(".")
    return parts[1] if parts[0] == "features" else parts[0]


def check_family(model_name, depth, ft, opts, ctx):
    import torch
    from torch import nn

    from training.job.builders import place_model
    from training.job.engine import Inputs, autocast, optimizer_step
    from training.models import generate_model
    from training.data.transforms import normalize

    args = _args(model_name, depth, ft, opts.amp)
    placed = place_model(generate_model(model_name, depth, n_classes=400), args, ctx)
    frozen_stats = {k: v.clone() for k, v in placed.bare.state_dict().items()
                    if "running" in k and _unit(k) in placed.frozen}
    assert frozen_stats, f"{model_name}-{depth}: nothing frozen before {ft}"
    trainable = [p for p in placed.bare.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda") if opts.amp == "fp16" else None
    prepare = Inputs(ctx.device, normalize("kinetics"), channels_last=True)
    clips = torch.randint(0, 256, (opts.batch_size, 3, 16, 112, 112), dtype=torch.uint8)
    clips = clips.pin_memory()
    targets = torch.randint(0, 400, (opts.batch_size,), device=ctx.device)
    loss_fn = nn.CrossEntropyLoss()
    placed.model.train()
    times = []
    for step in range(opts.steps + 2):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast(ctx.device, opts.amp):
            loss = loss_fn(placed.model(prepare(clips)).float(), targets)
        optimizer_step(loss, optimizer, scaler)
        torch.cuda.synchronize()
        if step >= 2:  # the first steps pick cuDNN algorithms
            times.append(time.perf_counter() - t0)
    after = placed.bare.state_dict()
    moved = [k for k, v in frozen_stats.items() if not torch.equal(after[k], v)]
    step = sorted(times)[len(times) // 2]
    status = "ok" if not moved and torch.isfinite(loss) else \
        f"FAIL: {len(moved)} frozen statistics changed" if moved else f"FAIL: loss {loss.item()}"
    print(f"{model_name}-{depth:<4} step {step * 1000:8.1f} ms  "
          f"{opts.batch_size / step:8.1f} clips/s  frozen before {ft}: {status}", flush=True)
    return not moved


def inner(opts) -> int:
    import torch

    from training.job import distributed
    ctx = distributed.setup("cuda")
    torch.backends.cudnn.benchmark = True
    print(f"{torch.cuda.get_device_name(ctx.device)}, torch {torch.__version__}, "
          f"batch {opts.batch_size} x 3 x 16 x 112 x 112, amp {opts.amp}, channels-last, "
          f"SyncBatchNorm, NCCL world size {ctx.world_size}", flush=True)
    ok = True
    try:
        for name, depth, ft in FAMILIES:
            ok &= check_family(name, depth, ft, opts, ctx)
    finally:
        distributed.teardown(ctx)
    return 0 if ok else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--amp", choices=("bf16", "fp16"), default="bf16")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device on this machine", file=sys.stderr)
        return 2
    if opts.inner or "LOCAL_RANK" in os.environ:
        return inner(opts)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "1", __file__, "--inner", "--batch-size", str(opts.batch_size), "--steps",
           str(opts.steps), "--amp", opts.amp]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
