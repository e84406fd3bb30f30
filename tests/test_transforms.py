"""Spatial transforms on whole clips: crops land where expected on a synthetic gradient clip,
flip and normalisation values are exact, resampling agrees with Pillow's bilinear resize."""
import random

import numpy as np
import pytest
import simplejpeg
import torch
from PIL import Image

from training.data.decode import decode_clip
from training.data.transforms import (MULTISCALE_SCALES, CenterCrop, ColorJitter, Compose,
                                      CornerCrop, HorizontalFlip, MultiScaleCornerCrop, Normalize,
                                      RandomResizedCrop, Resize, eval_transform, normalize,
                                      train_transform)
from training.data.presets import NORM_PRESETS

T, H, W = 3, 200, 250


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def gradient():
    """uint8 T x H x W x 3 with R = x, G = y, B = 10 t: every pixel says where it came from."""
    t, y, x = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    return np.stack([x, y, 10 * t], -1).astype(np.uint8)


def _where(out):
    """(x, y, t) of the top-left pixel and the output size, from an uint8 T x H x W x 3 tensor."""
    out = np.asarray(out)
    return int(out[0, 0, 0, 0]), int(out[0, 0, 0, 1]), out.shape[1:3]


class Fixed(random.Random):
    """An rng whose choice() returns a given value (to force a crop position or scale)."""

    def __init__(self, **picks):
        super().__init__(0)
        self.picks = picks

    def choice(self, seq):
        for v in self.picks.values():
            if v in seq:
                return v
        return super().choice(seq)


@pytest.mark.parametrize("position, top, left", [
    ("tl", 0, 0), ("tr", 0, 150), ("bl", 100, 0), ("br", 100, 150), ("c", 50, 75)])
def test_multiscale_corner_crop_lands_where_expected(gradient, position, top, left):
    crop = MultiScaleCornerCrop(100, scales=(0.5,), positions=(position,))
    out = crop(gradient)
    assert out.shape == (T, 100, 100, 3)
    expected = gradient[:, top:top + 100, left:left + 100]
    assert np.array_equal(np.asarray(out), expected)


def test_multiscale_scales_are_the_papers():
    assert MULTISCALE_SCALES == pytest.approx([1, 2 ** -0.25, 2 ** -0.5, 2 ** -0.75, 0.5])
    crop = MultiScaleCornerCrop(112)
    sides = {crop.box((240, 320), {"scale": s, "position": "tl"})[2] for s in MULTISCALE_SCALES}
    assert sides == {240, 201, 169, 142, 120}


def test_multiscale_crop_resizes_like_pillow(gradient):
    for scale, position in [(1.0, "c"), (2 ** -0.25, "br"), (0.5, "tr")]:
        crop = MultiScaleCornerCrop(112, scales=(scale,), positions=(position,))
        out = np.asarray(crop(gradient))
        side = int(200 * scale)
        top, left, _, _ = crop.box((H, W), {"scale": scale, "position": position})
        for t in range(T):
            pil = Image.fromarray(gradient[t]).crop((left, top, left + side, top + side))
            pil = np.asarray(pil.resize((112, 112), Image.BILINEAR))
            assert np.abs(out[t].astype(int) - pil).max() <= 1


def test_center_and_corner_crop_and_resize(gradient):
    assert _where(CenterCrop(100)(gradient)) == (75, 50, (100, 100))
    assert _where(CenterCrop((50, 80))(gradient)) == (85, 75, (50, 80))
    assert _where(CornerCrop(60, "br")(gradient)) == (190, 140, (60, 60))
    assert _where(CornerCrop(60, "c")(gradient)) == (95, 70, (60, 60))
    assert Resize(100)(gradient).shape == (T, 100, 125, 3)
    assert Resize(112)(np.zeros((1, 240, 320, 3), np.uint8)).shape == (1, 112, 149, 3)
    assert Resize(112)(np.zeros((1, 320, 240, 3), np.uint8)).shape == (1, 149, 112, 3)
    assert Resize((30, 40))(gradient).shape == (T, 30, 40, 3)
    with pytest.raises(ValueError, match="does not fit"):
        CenterCrop(300)(gradient)
    with pytest.raises(ValueError, match="unknown crop position"):
        CornerCrop(10, "middle")(gradient)


def test_random_resized_crop_boxes_respect_scale_and_ratio():
    crop = RandomResizedCrop(112, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3))
    rng = random.Random(0)
    for _ in range(300):
        top, left, h, w = crop.params((240, 320), rng)["box"]
        assert 0 <= top and top + h <= 240 and 0 <= left and left + w <= 320
        assert 0.25 * 0.95 <= h * w / (240 * 320) <= 1.0
        assert 3 / 4 * 0.95 <= w / h <= 4 / 3 * 1.05
    # a box that can never fit: the fallback is the largest central box within the ratios
    tall = RandomResizedCrop(10, scale=(2.0, 3.0), ratio=(1.0, 1.0))
    assert tall.params((100, 40), rng)["box"] == (30, 0, 40, 40)
    out = crop(np.zeros((2, 240, 320, 3), np.uint8), rng)
    assert out.shape == (2, 112, 112, 3)


def test_flip_is_exact_and_one_draw_per_clip(gradient):
    flipped = np.asarray(HorizontalFlip(p=1.0)(gradient))
    assert np.array_equal(flipped, gradient[:, :, ::-1])
    assert flipped[0, 0, 0, 0] == W - 1
    assert np.array_equal(np.asarray(HorizontalFlip(p=0.0)(gradient)), gradient)
    # frames of one clip share the random parameters: identical frames stay identical
    still = np.repeat(gradient[:1], 8, axis=0)
    rng = random.Random(5)
    for _ in range(20):
        out = train_transform(64)(still, rng)
        assert out.shape == (3, 8, 64, 64)
        assert torch.equal(out[:, :1].expand_as(out), out)


def test_normalisation_values_are_exact():
    clip = np.zeros((2, 2, 2, 3), np.uint8)
    clip[..., 0] = 255
    clip[..., 1] = 0
    clip[..., 2] = 51
    mean, std = NORM_PRESETS["kinetics"]
    expected = [(1 - mean[0]) / std[0], (0 - mean[1]) / std[1], (0.2 - mean[2]) / std[2]]
    for value_scale in (1, 255):  # mean and std scale with the values: same result
        out = normalize("kinetics", value_scale)(clip)
        assert out.shape == (3, 2, 2, 2) and out.dtype == torch.float32
        for c in range(3):
            assert torch.allclose(out[c], torch.full((2, 2, 2), expected[c]), atol=1e-5)
    # no std division: values stay in the value scale, minus the scaled mean
    out = normalize("activitynet", 255, std_norm=False)(clip)
    assert out[0, 0, 0, 0].item() == pytest.approx(255 - 0.4477 * 255, abs=1e-3)
    out = normalize("0.5", 1, mean_norm=False)(clip)
    assert out[2, 0, 0, 0].item() == pytest.approx(0.2 / 0.5, abs=1e-6)
    out = Normalize()(clip)  # plain conversion to [0, 1]
    assert out[0].eq(1).all() and out[2].sub(0.2).abs().max() < 1e-6
    assert NORM_PRESETS["activitynet"] == ((0.4477, 0.4209, 0.3906), (0.2767, 0.2695, 0.2714))
    with pytest.raises(ValueError, match="unknown normalisation preset"):
        normalize("imagenet")


def test_output_layout_is_channels_time_height_width(gradient):
    out = Compose([])(gradient)
    assert out.shape == (3, T, H, W)
    assert out[0, 1, 7, 9].item() == pytest.approx(9 / 255)   # R = x
    assert out[1, 1, 7, 9].item() == pytest.approx(7 / 255)   # G = y
    assert out[2, 2, 0, 0].item() == pytest.approx(20 / 255)  # B = 10 t


def test_color_jitter_works():
    red = np.zeros((2, 4, 4, 3), np.uint8)
    red[..., 0] = 200
    hue = ColorJitter(hue=0.5).apply(torch.from_numpy(red), {"hue": 1 / 3})
    assert torch.allclose(hue[..., 1], torch.full((2, 4, 4), 200 / 255), atol=1e-5)
    assert hue[..., 0].abs().max() < 1e-5 and hue[..., 2].abs().max() < 1e-5
    gray = ColorJitter(saturation=1).apply(torch.from_numpy(red), {"saturation": 0.0})
    assert torch.allclose(gray[..., 0], gray[..., 1]) and torch.allclose(gray[..., 1],
                                                                         gray[..., 2])
    assert gray[0, 0, 0, 0].item() == pytest.approx(0.299 * 200 / 255, abs=1e-5)
    bright = ColorJitter(brightness=1).apply(torch.from_numpy(red), {"brightness": 1.5})
    assert bright[0, 0, 0, 0].item() == 1.0  # 1.5 x 200 clipped
    flat = ColorJitter(contrast=1).apply(torch.from_numpy(red), {"contrast": 0.0})
    assert torch.allclose(flat, flat[0, 0, 0].expand_as(flat))
    # drawn once per clip, within range, in a random order
    jitter = ColorJitter(0.4, 0.4, 0.4, 0.1)
    orders = set()
    rng = random.Random(0)
    for _ in range(50):
        p = jitter.params((4, 4), rng)
        orders.add(tuple(p))
        assert 0.6 <= p["brightness"] <= 1.4 and -0.1 <= p["hue"] <= 0.1
    assert len(orders) > 5
    with pytest.raises(ValueError):
        ColorJitter(hue=0.7)
    out = train_transform(4, color_jitter=(0.4, 0.4, 0.4, 0.1))(red, rng)
    assert out.shape == (3, 2, 4, 4) and torch.isfinite(out).all()


def test_pipeline_equals_a_per_frame_reference_pipeline(gradient):
    """Our whole-clip training pipeline against the reference's per-frame one (PIL crop and
    bilinear resize, flip, to tensor, normalise), for the same drawn parameters."""
    mean, std = NORM_PRESETS["kinetics"]
    ours = train_transform(112)
    rng = random.Random(7)
    for _ in range(6):
        plan = ours.plan((H, W), rng)
        out = ours.apply(gradient, plan)
        crop_p, flip = plan[0], plan[1]
        side = int(min(H, W) * crop_p["scale"])
        top, left, _, _ = ours.transforms[0].box((H, W), crop_p)
        ref = []
        for t in range(T):
            img = Image.fromarray(gradient[t]).crop((left, top, left + side, top + side))
            img = img.resize((112, 112), Image.BILINEAR)
            if flip:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255
            x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
            ref.append(x)
        ref = torch.stack(ref).permute(1, 0, 2, 3)
        assert (out - ref).abs().max() <= 1.01 / 255 / min(std)


def test_reduced_decode_plan_matches_full_decode():
    """Decoding at half size for a clip scaled down >= 2x gives nearly the full-decode result:
    the documented tolerance."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:240, 0:320]
    base = np.stack([x * 255 // 319, y * 255 // 239, (x + y) * 255 // 558], -1)
    frames = [simplejpeg.encode_jpeg(np.clip(base + rng.integers(-10, 10, base.shape), 0, 255)
                                     .astype(np.uint8), quality=90) for _ in range(4)]
    for transform in (eval_transform(112), train_transform(112)):
        plan = transform.plan((240, 320), Fixed(scale=1.0, position="tl"))
        factor = transform.decode_factor((240, 320), plan)
        assert factor == 2
        full = transform.apply(decode_clip(frames), plan)
        half = transform.apply(decode_clip(frames, factor), plan, full_hw=(240, 320))
        assert half.shape == full.shape
        diff = (half - full).abs() * 0.27 * 255  # back to grey levels
        assert diff.mean() < 3 and diff.max() < 40
    plan = train_transform(112).plan((240, 320), Fixed(scale=2 ** -0.25, position="c"))
    assert train_transform(112).decode_factor((240, 320), plan) == 1


def test_compose_rules():
    with pytest.raises(ValueError, match="last"):
        Compose([Normalize(), HorizontalFlip()])
    with pytest.raises(ValueError, match="unknown training crop"):
        train_transform(crop="diagonal")
    assert isinstance(train_transform(crop="random").transforms[0], RandomResizedCrop)
    assert [type(t) for t in train_transform(crop="center", hflip=False).transforms] == [
        Resize, CenterCrop, Normalize]
    assert [type(t) for t in eval_transform(crop="none").transforms] == [Resize, Normalize]
    assert "MultiScaleCornerCrop" in repr(train_transform())
