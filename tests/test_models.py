"""Architectures: parameter counts equal to the reference's, output shapes, state_dict
key names and shapes, the shortcut-A gradient, and the registry's errors."""
import pytest
import torch

from training.models import (MODEL_NAMES, ZeroPadShortcut, available_models, generate_model,
                             get_family, list_models, load_weights, parse_arch)
from training.models.resnet2p1d import mid_planes, stem_mid_planes

# (model, depth, options) -> parameter count of the reference implementation
# (torch 2.13, CPU, shortcut B, conv1_t_size 7, max-pool on, 400 classes unless given)
PARAM_COUNTS = [
    ("resnet", 10, {}, 14_604_624),
    ("resnet", 18, {}, 33_409_104),
    ("resnet", 34, {}, 63_718_736),
    ("resnet", 50, {}, 47_018_576),
    ("resnet", 101, {}, 86_064_720),
    ("resnet", 152, {}, 118_223_440),
    ("resnet", 200, {}, 127_423_056),
    ("resnet", 50, {"n_classes": 700}, 47_633_276),
    ("resnet2p1d", 18, {}, 33_421_164),
    ("resnet2p1d", 50, {}, 47_035_382),
    ("wideresnet", 50, {"k": 2}, 158_338_832),
    ("preresnet", 200, {}, 127_419_088),
    ("resnext", 101, {"cardinality": 32}, 48_431_376),
    ("densenet", 121, {}, 11_696_528),
    ("densenet", 201, {}, 26_143_120),
    ("resnet", 18, {"shortcut_type": "A"}, 33_235_280),
]
IDS = [f"{m}-{d}" + "".join(f"-{k}{v}" for k, v in o.items()) for m, d, o, _ in PARAM_COUNTS]
CLIP = (2, 3, 16, 112, 112)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def clip():
    return torch.randn(*CLIP, generator=torch.Generator().manual_seed(1))


# The 2 x 3 x 16 x 112 x 112 clip for the small networks; the 100M-parameter ones
# take one 16 x 64 x 64 clip (same code path: every stage runs, final maps 1 x 2 x 2),
# which keeps this file within its time budget on two cores.
BIG = {"resnet-101", "resnet-152", "resnet-200", "preresnet-200", "wideresnet-50-k2",
       "resnext-101-cardinality32", "densenet-201"}


@pytest.mark.parametrize("name,depth,options,expected", PARAM_COUNTS, ids=IDS)
def test_parameter_count_and_output_shape(name, depth, options, expected, clip, request):
    torch.manual_seed(0)
    m = generate_model(name, depth, **options).eval()
    assert n_params(m) == expected
    x = clip[:1, :, :, :64, :64] if request.node.callspec.id in BIG else clip
    with torch.no_grad():
        out = m(x)
    assert out.shape == (x.shape[0], options.get("n_classes", 400))
    assert torch.isfinite(out).all()


# no_max_pool with conv1_t_stride 2 keeps the temporal size but quadruples the spatial
# work; one model per family, the small ones on the full 2x3x16x112x112 clip, ResNeXt and
# Wide ResNet (k = 1) on one 16x64x64 clip that runs the same code (stem stride, skipped
# max-pool, every stage).
VARIANTS = [("resnet", 18, {}, CLIP), ("resnet2p1d", 18, {}, CLIP), ("preresnet", 18, {}, CLIP),
            ("resnet", 50, {}, CLIP), ("densenet", 121, {}, CLIP),
            ("resnext", 50, {}, (1, 3, 16, 64, 64)),
            ("wideresnet", 50, {"k": 1}, (1, 3, 16, 64, 64))]


@pytest.mark.parametrize("name,depth,options,shape", VARIANTS,
                         ids=[f"{n}-{d}" for n, d, _, _ in VARIANTS])
def test_no_max_pool_and_temporal_stride(name, depth, options, shape):
    m = generate_model(name, depth, n_classes=5, no_max_pool=True, conv1_t_stride=2,
                       **options).eval()
    stem = m.features.conv1 if name == "densenet" else getattr(m, "conv1_t", None) or m.conv1
    assert stem.stride[0] == 2
    with torch.no_grad():
        out = m(torch.randn(*shape))
    assert out.shape == (shape[0], 5)


def test_no_max_pool_changes_the_computation():
    torch.manual_seed(0)
    m = generate_model("resnet", 10, n_classes=3).eval()
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        pooled = m(x)
        m.no_max_pool = True
        unpooled = m(x)
    assert not torch.allclose(pooled, unpooled)


def test_flow_input_has_two_channels():
    m = generate_model("resnet", 10, n_classes=4, n_input_channels=2).eval()
    assert m.conv1.weight.shape == (64, 2, 7, 7, 7)
    with torch.no_grad():
        assert m(torch.randn(1, 2, 8, 32, 32)).shape == (1, 4)
        with pytest.raises(RuntimeError):
            m(torch.randn(1, 3, 8, 32, 32))


def test_conv1_t_size_sets_the_stem_kernel():
    m = generate_model("resnet2p1d", 10, conv1_t_size=3)
    assert m.conv1_t.weight.shape == (64, stem_mid_planes(64, 3), 3, 1, 1)
    assert m.conv1_t.padding == (1, 0, 0)


# ------------------------------------------------------------------ keys and shapes

def _shapes(m):
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def test_resnet_keys_match_the_reference():
    s = _shapes(generate_model("resnet", 18))
    assert s["conv1.weight"] == (64, 3, 7, 7, 7)
    for k in ("weight", "bias", "running_mean", "running_var"):
        assert s[f"bn1.{k}"] == (64,)
    assert s["bn1.num_batches_tracked"] == ()
    assert s["layer1.0.conv1.weight"] == (64, 64, 3, 3, 3)
    assert s["layer2.0.downsample.0.weight"] == (128, 64, 1, 1, 1)
    assert s["layer2.0.downsample.1.running_var"] == (128,)
    assert "layer1.0.downsample.0.weight" not in s
    assert s["layer4.1.bn2.weight"] == (512,)
    assert s["fc.weight"] == (400, 512) and s["fc.bias"] == (400,)
    # stem 6 + 8 blocks x 12 + 3 projections x 6 + fc 2
    assert len(s) == 122


def test_resnet50_bottleneck_keys():
    s = _shapes(generate_model("resnet", 50, n_classes=700))
    assert s["layer1.0.conv3.weight"] == (256, 64, 1, 1, 1)
    assert s["layer1.0.downsample.0.weight"] == (256, 64, 1, 1, 1)
    assert s["layer3.5.conv2.weight"] == (256, 256, 3, 3, 3)
    assert s["fc.weight"] == (700, 2048)


def test_shortcut_a_has_no_downsample_keys():
    s = _shapes(generate_model("resnet", 18, shortcut_type="A"))
    assert not [k for k in s if "downsample" in k]
    assert set(s) == {k for k in _shapes(generate_model("resnet", 18)) if "downsample" not in k}


def test_resnet2p1d_keys_and_middle_widths():
    s = _shapes(generate_model("resnet2p1d", 18))
    stem_mid = (3 * 64 * 7 * 49) // (3 * 49 + 7 * 64)
    assert stem_mid == stem_mid_planes(64, 7) == 110
    assert s["conv1_s.weight"] == (110, 3, 1, 7, 7)
    assert s["bn1_s.weight"] == (110,)
    assert s["conv1_t.weight"] == (64, 110, 7, 1, 1)
    assert s["bn1_t.running_mean"] == (64,)
    assert "conv1.weight" not in s
    assert mid_planes(64, 64) == (64 * 64 * 27) // (64 * 9 + 3 * 64) == 144
    assert s["layer1.0.conv1_s.weight"] == (144, 64, 1, 3, 3)
    assert s["layer1.0.conv1_t.weight"] == (64, 144, 3, 1, 1)
    assert mid_planes(64, 128) == (64 * 128 * 27) // (64 * 9 + 3 * 128) == 230
    assert s["layer2.0.conv1_s.weight"] == (230, 64, 1, 3, 3)
    assert s["layer2.0.bn2_t.weight"] == (128,)
    assert s["layer2.0.downsample.0.weight"] == (128, 64, 1, 1, 1)
    assert s["fc.weight"] == (400, 512)


def test_resnet2p1d_strides_split_between_space_and_time():
    m = generate_model("resnet2p1d", 18)
    block = m.layer2[0]
    assert block.conv1_s.stride == (1, 2, 2) and block.conv1_t.stride == (2, 1, 1)
    assert m.conv1_s.stride == (1, 2, 2) and m.conv1_t.stride == (1, 1, 1)


def test_preresnet_keys_put_batchnorm_before_convolutions():
    s = _shapes(generate_model("preresnet", 50))
    assert s["layer2.0.bn1.weight"] == (256,)      # normalises the block input
    assert s["layer2.0.conv1.weight"] == (128, 256, 1, 1, 1)
    assert s["layer2.0.bn3.weight"] == (128,)      # before conv3, not after it
    assert s["layer2.0.conv3.weight"] == (512, 128, 1, 1, 1)
    assert s["layer2.0.downsample.0.weight"] == (512, 256, 1, 1, 1)
    assert s["bn1.weight"] == (64,) and s["fc.weight"] == (400, 2048)


def test_preresnet_blocks_add_without_a_final_relu():
    torch.manual_seed(0)
    block = generate_model("preresnet", 18).layer1[0].eval()
    with torch.no_grad():
        out = block(torch.randn(1, 64, 4, 8, 8))
    assert (out < 0).any()


def test_wideresnet_keys():
    s = _shapes(generate_model("wideresnet", 50, k=2))
    assert s["conv1.weight"] == (128, 3, 7, 7, 7)
    assert s["layer1.0.conv1.weight"] == (128, 128, 1, 1, 1)
    assert s["layer1.0.conv3.weight"] == (256, 128, 1, 1, 1)
    assert s["layer4.2.conv3.weight"] == (2048, 1024, 1, 1, 1)
    assert s["fc.weight"] == (400, 2048)


def test_resnext_keys_have_grouped_convolutions():
    m = generate_model("resnext", 101, cardinality=32)
    s = _shapes(m)
    assert s["conv1.weight"] == (128, 3, 7, 7, 7)
    assert s["layer1.0.conv1.weight"] == (128, 128, 1, 1, 1)
    assert s["layer1.0.conv2.weight"] == (128, 4, 3, 3, 3)
    assert m.layer1[0].conv2.groups == 32
    assert s["layer1.0.conv3.weight"] == (256, 128, 1, 1, 1)
    assert s["layer3.22.conv2.weight"] == (512, 16, 3, 3, 3)
    assert s["fc.weight"] == (400, 2048)


def test_densenet_keys():
    s = _shapes(generate_model("densenet", 121))
    assert s["features.conv1.weight"] == (64, 3, 7, 7, 7)
    assert s["features.norm1.weight"] == (64,)
    assert s["features.denseblock1.denselayer1.norm1.weight"] == (64,)
    assert s["features.denseblock1.denselayer1.conv1.weight"] == (128, 64, 1, 1, 1)
    assert s["features.denseblock1.denselayer1.conv2.weight"] == (32, 128, 3, 3, 3)
    assert s["features.denseblock1.denselayer6.norm1.weight"] == (64 + 5 * 32,)
    assert s["features.transition1.conv.weight"] == (128, 256, 1, 1, 1)
    assert s["features.denseblock4.denselayer16.conv2.weight"] == (32, 128, 3, 3, 3)
    assert s["features.norm5.running_var"] == (1024,)
    assert s["classifier.weight"] == (400, 1024)
    assert "features.transition4.conv.weight" not in s


def test_densenet_too_small_input_names_the_minimum():
    m = generate_model("densenet", 121).eval()
    with pytest.raises(ValueError, match=r"8x64x64 .* at least 15x29x29"):
        m(torch.zeros(1, 3, 8, 64, 64))


# ------------------------------------------------------------------ state_dict round trip

# the smallest depth of each family; Wide ResNet and ResNeXt narrowed to keep the files small
SMALLEST = [("resnet", 10, {}), ("resnet2p1d", 10, {}), ("preresnet", 10, {}),
            ("wideresnet", 50, {"k": 1, "widen_factor": 0.5}),
            ("resnext", 50, {"widen_factor": 0.5, "cardinality": 16}), ("densenet", 121, {})]


@pytest.mark.parametrize("name,depth,options", SMALLEST, ids=[n for n, _, _ in SMALLEST])
def test_saved_state_dict_reloads_strictly(name, depth, options, tmp_path):
    torch.manual_seed(1)
    source = generate_model(name, depth, n_classes=6, **options).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so buffers must load too
        for mod in source.modules():
            if isinstance(mod, torch.nn.BatchNorm3d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)
    target = generate_model(name, depth, n_classes=6, **options).eval()
    head = "classifier.weight" if name == "densenet" else "fc.weight"
    assert not torch.equal(source.state_dict()[head], target.state_dict()[head])
    load_weights(target, path)
    x = torch.randn(1, 3, 16, 32, 32)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))
    result = target.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


# ------------------------------------------------------------------ shortcut A

def test_zero_pad_shortcut_values():
    x = torch.randn(2, 4, 5, 6, 7)
    y = ZeroPadShortcut(10, stride=2)(x)
    assert y.shape == (2, 10, 3, 3, 4)
    assert torch.equal(y[:, :4], x[:, :, ::2, ::2, ::2])
    assert torch.equal(y[:, 4:], torch.zeros(2, 6, 3, 3, 4))
    # the reference's avg_pool3d(kernel 1, stride 2) subsamples the same way
    assert torch.equal(y[:, :4], torch.nn.functional.avg_pool3d(x, kernel_size=1, stride=2))


def test_shortcut_a_gradient_reaches_the_block_input():
    torch.manual_seed(0)
    m = generate_model("resnet", 18, shortcut_type="A")
    block = m.layer2[0].train()
    assert isinstance(block.downsample, ZeroPadShortcut)
    with torch.no_grad():  # silence the residual branch: only the shortcut carries signal
        block.conv2.weight.zero_()
    x = torch.rand(2, 64, 4, 8, 8, requires_grad=True)
    out = block(x)
    assert out.shape == (2, 128, 2, 4, 4)
    out.sum().backward()
    expected = torch.zeros_like(x)
    expected[:, :, ::2, ::2, ::2] = 1.0  # relu'(x) = 1 as x > 0
    assert torch.equal(x.grad, expected)


def test_shortcut_a_model_trains_every_layer():
    torch.manual_seed(0)
    m = generate_model("resnet", 10, n_classes=3, shortcut_type="A").train()
    x = torch.randn(2, 3, 8, 32, 32)
    torch.nn.functional.cross_entropy(m(x), torch.tensor([0, 2])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


# ------------------------------------------------------------------ registry

def test_every_architecture_of_the_papers_is_listed():
    names = list_models()
    for arch in ("resnet-10", "resnet-18", "resnet-34", "resnet-50", "resnet-101", "resnet-152",
                 "resnet-200", "preresnet-200", "wideresnet-50", "resnext-101", "densenet-121",
                 "densenet-201", "resnet2p1d-18", "resnet2p1d-50", "resnet2p1d-200"):
        assert arch in names
    assert MODEL_NAMES == ("resnet", "resnet2p1d", "preresnet", "wideresnet", "resnext",
                           "densenet")
    assert available_models()["densenet"] == (121, 169, 201, 264)
    assert len(names) == sum(len(d) for d in available_models().values())
    assert get_family("densenet").depths == available_models()["densenet"]


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(ValueError) as e:
        generate_model("resnet3d", 18)
    for name in MODEL_NAMES:
        assert name in str(e.value)


def test_unknown_depth_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"resnext has no depth 18; valid depths: 50, 101, 152"):
        generate_model("resnext", 18)
    with pytest.raises(ValueError, match=r"densenet has no depth 50"):
        generate_model("densenet", 50)


def test_option_of_another_family_is_rejected():
    with pytest.raises(ValueError, match=r"densenet does not take option\(s\) shortcut_type"):
        generate_model("densenet", 121, shortcut_type="A")
    with pytest.raises(ValueError, match=r"cardinality"):
        generate_model("resnet", 18, cardinality=32)


@pytest.mark.parametrize("options,match", [
    ({"shortcut_type": "C"}, "shortcut_type must be one of A, B"),
    ({"n_input_channels": 0}, "n_input_channels must be a positive integer"),
    ({"conv1_t_stride": 1.5}, "conv1_t_stride must be a positive integer"),
    ({"widen_factor": 0}, "widen_factor must be positive"),
])
def test_bad_option_values(options, match):
    with pytest.raises(ValueError, match=match):
        generate_model("resnet", 10, **options)


def test_bad_family_specific_values():
    with pytest.raises(ValueError, match="cardinality 32 does not split the 38 channels"):
        generate_model("resnext", 50, cardinality=32, widen_factor=0.3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        generate_model("wideresnet", 50, k=0)
    with pytest.raises(ValueError, match="n_classes must be a positive integer"):
        generate_model("densenet", 121, n_classes=0)


def test_parse_arch():
    assert parse_arch("resnet2p1d-50") == ("resnet2p1d", 50)
    with pytest.raises(ValueError, match="valid models"):
        parse_arch("r3d-50")
    with pytest.raises(ValueError, match="form"):
        parse_arch("resnet")
