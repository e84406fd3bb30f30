"""Spatial transforms of whole clips, with one set of random parameters per clip.

A clip enters as uint8 T x H x W x C (numpy array or tensor) and leaves `Normalize` as a float32
tensor C x T x H x W. Every transform works on all frames at once (no per-frame Python loop).
Resampling is antialiased bilinear, which is what the reference's PIL ``BILINEAR`` resize does
(results agree with Pillow to within 1 grey level).

Random parameters come from `rng` (a `random.Random`; the `random` module by default, which
PyTorch's DataLoader seeds differently in every worker).

A `Compose` can also be *planned* before the frames are decoded: `plan` draws the parameters
from the frame size alone, `decode_factor` tells how much smaller the frames may be decoded
(DCT-domain scaling, see training.data.decode), and `apply` runs the plan on the decoded clip.
"""
import math
import random as _random

import numpy as np
import torch
import torch.nn.functional as F

from .decode import reduction_factor
from .presets import NORM_PRESETS


#: The paper's multi-scale crop sizes, as fractions of the frame's short side.
MULTISCALE_SCALES = tuple(2.0 ** (-i / 4) for i in range(5))
CORNER_POSITIONS = ("c", "tl", "tr", "bl", "br")
#: Shrinking by at least this factor, `resize` does the vertical pass first (measured faster).
VERTICAL_FIRST_RATIO = 1.3


def as_clip(clip) -> torch.Tensor:
    """A uint8 T x H x W x C numpy array or tensor as a tensor (no copy)."""
    if isinstance(clip, np.ndarray):
        clip = torch.from_numpy(clip)
    if clip.dim() != 4:
        raise ValueError(f"expected a clip T x H x W x C, got shape {tuple(clip.shape)}")
    return clip


def _size2(size):
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(map(int, size))


class Transform:
    """Base class. `params` draws the random parameters for a clip of frame size `hw`;
    `apply` transforms a clip with them; calling the transform does both."""

    def params(self, hw, rng):
        return None

    def output_size(self, hw, p):
        return hw

    def apply(self, clip, p):
        raise NotImplementedError

    def __call__(self, clip, rng=None):
        clip = as_clip(clip)
        return self.apply(clip, self.params(tuple(clip.shape[1:3]), rng or _random))

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class ResizedCrop(Transform):
    """Base of the geometric transforms: take a box (top, left, height, width) of every frame
    and resample it to an output size. Subclasses choose the box and the size."""

    def box(self, hw, p):
        return (0, 0) + tuple(hw)

    def output_size(self, hw, p):
        return tuple(self.box(hw, p)[2:])

    def apply(self, clip, p, box=None):
        hw = tuple(clip.shape[1:3])
        top, left, h, w = box if box is not None else self.box(hw, p)
        out = self.output_size(hw, p) if box is None else p["out"]
        if top < 0 or left < 0 or top + h > hw[0] or left + w > hw[1] or h < 1 or w < 1:
            raise ValueError(f"{type(self).__name__}: crop box {w}x{h} at ({left}, {top}) does "
                             f"not fit a {hw[1]}x{hw[0]} frame")
        clip = clip[:, top:top + h, left:left + w]
        return resize(clip, out)


def resize(clip, out_hw):
    """Resample every frame of a T x H x W x C clip to `out_hw` (antialiased bilinear)."""
    out_hw = tuple(out_hw)
    if tuple(clip.shape[1:3]) == out_hw:
        return clip
    x = clip.permute(0, 3, 1, 2)  # T x C x H x W, stored channels-last: uint8 fast path
    if x.shape[2] >= VERTICAL_FIRST_RATIO * out_hw[0] and x.shape[3] > out_hw[1]:
        # PyTorch resamples rows first; shrinking the height first leaves fewer rows for the
        # (costlier) horizontal pass: 10-20% faster, still within 1 grey level of Pillow.
        x = F.interpolate(x, size=(out_hw[0], x.shape[3]), mode="bilinear", antialias=True,
                          align_corners=False)
    y = F.interpolate(x, size=out_hw, mode="bilinear", antialias=True, align_corners=False)
    return y.permute(0, 2, 3, 1)


class Resize(ResizedCrop):
    """Scale frames so the short side is `size` (long side: int(size * long / short), as the
    reference); or to exactly (height, width) when `size` is a pair."""

    def __init__(self, size):
        self.size = size

    def params(self, hw, rng):
        return {"out": self._out(hw)}

    def _out(self, hw):
        if not isinstance(self.size, (int, np.integer)):
            return _size2(self.size)
        h, w = hw
        if h <= w:
            return self.size, int(self.size * w / h)
        return int(self.size * h / w), self.size

    def output_size(self, hw, p):
        return p["out"]


class CenterCrop(ResizedCrop):
    """Crop `size` (int or (height, width)) from the centre of every frame."""

    def __init__(self, size):
        self.size = _size2(size)

    def box(self, hw, p):
        h, w = self.size
        return int(round((hw[0] - h) / 2.0)), int(round((hw[1] - w) / 2.0)), h, w


def corner_box(hw, crop_hw, position):
    """Box of a `crop_hw` crop at `position` ('c', 'tl', 'tr', 'bl' or 'br') of a frame."""
    (H, W), (h, w) = hw, crop_hw
    if position == "c":
        return int(round((H - h) / 2.0)), int(round((W - w) / 2.0)), h, w
    top = 0 if position[0] == "t" else H - h
    left = 0 if position[1] == "l" else W - w
    if position not in CORNER_POSITIONS:
        raise ValueError(f"unknown crop position {position!r}; use one of {CORNER_POSITIONS}")
    return top, left, h, w


class CornerCrop(ResizedCrop):
    """Crop `size` at a corner or the centre: `position`, or one drawn per clip from
    `positions` when `position` is None."""

    def __init__(self, size, position=None, positions=CORNER_POSITIONS):
        self.size = _size2(size)
        self.position = position
        self.positions = tuple(positions)

    def params(self, hw, rng):
        return {"position": self.position or rng.choice(self.positions)}

    def box(self, hw, p):
        return corner_box(hw, self.size, p["position"])


class MultiScaleCornerCrop(ResizedCrop):
    """The paper's training crop: a square of side int(short side x scale), the scale drawn
    from `scales`, at one of `positions` (4 corners and the centre), resized to `size`."""

    def __init__(self, size, scales=MULTISCALE_SCALES, positions=CORNER_POSITIONS):
        self.size = _size2(size)
        self.scales = tuple(scales)
        self.positions = tuple(positions)

    def params(self, hw, rng):
        return {"scale": rng.choice(self.scales), "position": rng.choice(self.positions),
                "out": self.size}

    def box(self, hw, p):
        side = int(min(hw) * p["scale"])
        return corner_box(hw, (side, side), p["position"])

    def output_size(self, hw, p):
        return self.size


class RandomResizedCrop(ResizedCrop):
    """A random box covering `scale` of the frame area with aspect ratio in `ratio`
    (log-uniform), resized to `size`; the reference's defaults for 3D CNN training."""

    def __init__(self, size, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = _size2(size)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)

    def params(self, hw, rng):
        H, W = hw
        area = H * W
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(log_lo, log_hi))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= W and 0 < h <= H:
                return {"box": (rng.randint(0, H - h), rng.randint(0, W - w), h, w),
                        "out": self.size}
        # Fallback: the largest central box whose ratio is within range.
        in_ratio = W / H
        if in_ratio < min(self.ratio):
            w, h = W, int(round(W / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = H, int(round(H * max(self.ratio)))
        else:
            h, w = H, W
        return {"box": ((H - h) // 2, (W - w) // 2, h, w), "out": self.size}

    def box(self, hw, p):
        return p["box"]

    def output_size(self, hw, p):
        return self.size


class HorizontalFlip(Transform):
    """Mirror the whole clip left-right with probability `p`."""

    def __init__(self, p=0.5):
        self.p = p

    def params(self, hw, rng):
        return rng.random() < self.p

    def apply(self, clip, flip):
        return clip.flip(2) if flip else clip


def _to_unit_float(clip):
    return clip.float().div_(255.0) if clip.dtype == torch.uint8 else clip


def _gray(x):
    return (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]).unsqueeze(-1)


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue, one draw per clip and applied in a random
    order (as torchvision's ColorJitter, which the reference wrapped but never parameterised).
    Factors are drawn from [max(0, 1 - v), 1 + v]; the hue shift from [-hue, hue] (hue <= 0.5).
    Works on float values in [0, 1]: a uint8 clip is converted."""

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0):
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        self.brightness, self.contrast, self.saturation, self.hue = (
            float(brightness), float(contrast), float(saturation), float(hue))

    def params(self, hw, rng):
        order = ["brightness", "contrast", "saturation", "hue"]
        rng.shuffle(order)
        p = {}
        for name in order:
            v = getattr(self, name)
            if v > 0:
                p[name] = rng.uniform(-v, v) if name == "hue" else rng.uniform(max(0.0, 1 - v),
                                                                              1 + v)
        return p

    def apply(self, clip, p):
        x = _to_unit_float(clip)
        for name, v in p.items():
            if name == "brightness":
                x = (x * v).clamp_(0, 1)
            elif name == "contrast":
                mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
                x = (x * v + mean * (1 - v)).clamp_(0, 1)
            elif name == "saturation":
                x = (x * v + _gray(x) * (1 - v)).clamp_(0, 1)
            else:
                x = _shift_hue(x, v)
        return x


def _shift_hue(x, shift):
    """Rotate the hue of float RGB values in [0, 1] (last axis) by `shift` turns."""
    r, g, b = x.unbind(-1)
    maxc, _ = x.max(-1)
    minc, _ = x.min(-1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)),
                    torch.zeros_like(maxc))
    h = (h + shift) % 1.0
    v = maxc
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    pv, qv, tv = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = torch.stack([
        torch.stack([v, tv, pv], -1), torch.stack([qv, v, pv], -1),
        torch.stack([pv, v, tv], -1), torch.stack([pv, qv, v], -1),
        torch.stack([tv, pv, v], -1), torch.stack([v, pv, qv], -1)], 0)
    idx = i.unsqueeze(0).unsqueeze(-1).expand(1, *i.shape, 3)
    return choices.gather(0, idx).squeeze(0)


class Normalize(Transform):
    """Output stage: float32 C x T x H x W with values (x * value_scale - mean) / std, where x is
    the pixel value in [0, 1]. `mean` and `std` are in units of `value_scale` (as the
    reference's ScaleValue + Normalize). The defaults only convert (to [0, value_scale])."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), value_scale=1):
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.value_scale = value_scale
        std_t = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1, 1)
        mean_t = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1, 1)
        self._scale_unit = float(value_scale) / std_t
        self._scale_byte = float(value_scale) / (255.0 * std_t)
        self._shift = -mean_t / std_t

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std}, value_scale={self.value_scale})"

    def batch(self, x: torch.Tensor, channels: int = None) -> torch.Tensor:
        """Normalise a collated batch N x C x T x H x W (uint8 from workers that left this
        stage out, or float in [0, 1]) on its own device: the same arithmetic as `apply`, so
        the same numbers. `channels`: use the first `channels` channels' mean and std."""
        c = channels or x.shape[1]
        scale = (self._scale_byte if x.dtype == torch.uint8 else self._scale_unit)[:c]
        shift = self._shift[:c]
        if x.shape[1] != c:
            raise ValueError(f"Normalize for {c} channels, the batch has {x.shape[1]}")
        out = x.to(torch.float32)
        return out.mul_(scale.to(x.device)).add_(shift.to(x.device))

    def apply(self, clip, p=None):
        src = clip.permute(3, 0, 1, 2)
        scale = self._scale_byte if clip.dtype == torch.uint8 else self._scale_unit
        if src.shape[0] != scale.shape[0]:
            raise ValueError(f"Normalize has {scale.shape[0]} channels, the clip {src.shape[0]}")
        out = torch.empty(src.shape, dtype=torch.float32)
        # Reorder the small uint8 clip first, then convert and scale in place: the fastest of
        # the orders measured (one strided float pass is slower).
        out.copy_(src.contiguous())
        return out.mul_(scale).add_(self._shift)


def normalize(preset="kinetics", value_scale=1, mean_norm=True, std_norm=True) -> Normalize:
    """The reference's normalisation: `preset` ('kinetics', 'activitynet' or '0.5') mean and
    std scaled by `value_scale` (1: inputs in [0, 1]; 255: inputs in [0, 255]); `mean_norm` /
    `std_norm` False leave out the mean subtraction / std division (its --no_mean_norm and
    --no_std_norm, where the kept term stays scaled and the dropped one becomes 0 or 1)."""
    try:
        mean, std = NORM_PRESETS[str(preset)]
    except KeyError:
        raise ValueError(f"unknown normalisation preset {preset!r}; "
                         f"choose from {sorted(NORM_PRESETS)}") from None
    mean = [m * value_scale for m in mean] if mean_norm else [0.0, 0.0, 0.0]
    std = [s * value_scale for s in std] if std_norm else [1.0, 1.0, 1.0]
    return Normalize(mean, std, value_scale)


class Compose(Transform):
    """Transforms applied in order with one set of parameters per clip; the result is always a
    float tensor C x T x H x W (values in [0, 1] when the list has no `Normalize`)."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        if not self.transforms or not isinstance(self.transforms[-1], Normalize):
            self.transforms.append(Normalize())
        if any(isinstance(t, Normalize) for t in self.transforms[:-1]):
            raise ValueError("Normalize must be the last transform")

    def __repr__(self):
        inner = ",\n  ".join(map(repr, self.transforms))
        return f"Compose([\n  {inner}])"

    def plan(self, hw, rng=None):
        """Draw every transform's parameters for frames of size `hw` = (height, width)."""
        rng = rng or _random
        plan = []
        for t in self.transforms:
            p = t.params(hw, rng)
            plan.append(p)
            hw = t.output_size(hw, p)
        return plan

    def decode_factor(self, hw, plan, max_factor=8) -> int:
        """How much smaller (1, 2, 4, 8) the frames may be decoded for this plan: only when the
        first transform crops and scales the clip down by that factor or more."""
        first = self.transforms[0]
        if not isinstance(first, ResizedCrop):
            return 1
        box = first.box(hw, plan[0])
        return reduction_factor(box[2:], first.output_size(hw, plan[0]), max_factor)

    def first_box(self, hw, plan, decoded_hw=None):
        """The part of the frame (top, left, height, width) this plan reads: the first
        transform's crop box for frames of size `hw`, mapped onto frames decoded at size
        `decoded_hw`; None when the first transform does not crop."""
        first = self.transforms[0]
        if not isinstance(first, ResizedCrop):
            return None
        box = first.box(hw, plan[0])
        return box if decoded_hw is None else _scale_box(box, hw, decoded_hw)

    def normalizer(self) -> Normalize:
        """The last stage, for batches whose clips were transformed with normalize=False."""
        return self.transforms[-1]

    def apply(self, clip, plan, full_hw=None, box=None, normalize=True):
        """Run `plan` on `clip`. When the clip was decoded at a reduced size or only in part,
        `full_hw` is the frames' full size, to which the plan refers, and `box` where the first
        transform's crop lies in `clip` (by default: the crop box scaled to the clip's size).
        `normalize=False` stops before the last stage (`normalizer()`): the clip comes back as
        C x T x H x W in its own dtype (uint8 unless a colour jitter made it float)."""
        clip = as_clip(clip)
        start = 0
        hw = tuple(clip.shape[1:3])
        if full_hw is not None and (box is not None or tuple(full_hw) != hw):
            first = self.transforms[0]
            if box is None:
                box = self.first_box(full_hw, plan, hw)
            clip = first.apply(clip, {**(plan[0] or {}), "out": first.output_size(full_hw,
                                                                                   plan[0])}, box)
            start = 1
        stages = list(zip(self.transforms, plan))[start:]
        if not normalize:
            stages = stages[:-1]
        for t, p in stages:
            clip = t.apply(clip, p)
        return clip if normalize else clip.permute(3, 0, 1, 2).contiguous()

    def __call__(self, clip, rng=None):
        clip = as_clip(clip)
        return self.apply(clip, self.plan(tuple(clip.shape[1:3]), rng))


def _scale_box(box, full_hw, hw):
    """A box in full-size coordinates mapped onto the same frame decoded at size `hw`."""
    sy, sx = hw[0] / full_hw[0], hw[1] / full_hw[1]
    top, left = int(round(box[0] * sy)), int(round(box[1] * sx))
    h = max(1, min(int(round(box[2] * sy)), hw[0] - top))
    w = max(1, min(int(round(box[3] * sx)), hw[1] - left))
    return top, left, h, w


def train_transform(size=112, crop="corner", scales=MULTISCALE_SCALES, hflip=True,
                    color_jitter=None, norm="kinetics", value_scale=1, mean_norm=True,
                    std_norm=True, min_scale=0.25, min_ratio=0.75) -> Compose:
    """The reference's training pipeline. `crop`: 'corner' (multi-scale corner crop, the paper),
    'random' (random resized crop, area in [min_scale, 1], ratio in [min_ratio, 1/min_ratio]) or
    'center' (resize + centre crop). `color_jitter`: None or (brightness, contrast, saturation,
    hue)."""
    if crop == "corner":
        ops = [MultiScaleCornerCrop(size, scales)]
    elif crop == "random":
        ops = [RandomResizedCrop(size, (min_scale, 1.0), (min_ratio, 1.0 / min_ratio))]
    elif crop == "center":
        ops = [Resize(size), CenterCrop(size)]
    else:
        raise ValueError(f"unknown training crop {crop!r}; use 'corner', 'random' or 'center'")
    if hflip:
        ops.append(HorizontalFlip())
    if color_jitter:
        ops.append(ColorJitter(*color_jitter))
    ops.append(normalize(norm, value_scale, mean_norm, std_norm))
    return Compose(ops)


def eval_transform(size=112, crop="center", norm="kinetics", value_scale=1, mean_norm=True,
                   std_norm=True) -> Compose:
    """The reference's validation / inference pipeline: short side resized to `size`, then a
    centre crop (`crop` = 'center') or the whole resized frame ('none')."""
    ops = [Resize(size)]
    if crop == "center":
        ops.append(CenterCrop(size))
    elif crop not in ("none", None):
        raise ValueError(f"unknown evaluation crop {crop!r}; use 'center' or 'none'")
    ops.append(normalize(norm, value_scale, mean_norm, std_norm))
    return Compose(ops)
