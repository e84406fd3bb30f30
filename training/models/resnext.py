"""3D ResNeXt (Xie et al., CVPR 2017) as in the reference: Bottleneck blocks with a
grouped 3x3x3 convolution of `cardinality` groups, expansion 2, stage widths
128-256-512-1024 (and a 128-channel stem)."""
from typing import Optional

from torch import nn

from .layers import conv1x1x1, conv3x3x3
from .resnet import BOTTLENECK_LAYERS, Bottleneck, ResNet, layers_for

DEPTHS = tuple(sorted(BOTTLENECK_LAYERS))
BLOCK_INPLANES = (128, 256, 512, 1024)


class ResNeXtBottleneck(Bottleneck):
    """1x1x1 reduce to cardinality*planes/32, grouped 3x3x3, 1x1x1 expand (x2); the layer
    names and the forward pass are Bottleneck's."""
    expansion = 2

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, cardinality: int = 32):
        nn.Module.__init__(self)
        mid = cardinality * planes // 32
        self.conv1 = conv1x1x1(in_planes, mid)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = conv3x3x3(mid, mid, stride, groups=cardinality)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = conv1x1x1(mid, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride


class ResNeXt(ResNet):
    """ResNet of ResNeXtBottleneck blocks; every ResNet option plus `cardinality`."""

    def __init__(self, block, layers, block_inplanes=BLOCK_INPLANES, n_input_channels: int = 3,
                 conv1_t_size: int = 7, conv1_t_stride: int = 1, no_max_pool: bool = False,
                 shortcut_type: str = "B", cardinality: int = 32, n_classes: int = 400,
                 widen_factor: float = 1.0, stem_planes=None):
        if not isinstance(cardinality, int) or isinstance(cardinality, bool) or cardinality < 1:
            raise ValueError(f"resnext cardinality must be a positive integer, got {cardinality!r}")
        widths = [int(w * widen_factor) for w in block_inplanes]
        for w in widths:
            if (cardinality * w // 32) % cardinality:
                raise ValueError(f"resnext cardinality {cardinality} does not split the "
                                 f"{cardinality * w // 32} channels of a stage-width-{w} "
                                 f"block into equal groups")
        super().__init__(block, layers, block_inplanes, n_input_channels=n_input_channels,
                         conv1_t_size=conv1_t_size, conv1_t_stride=conv1_t_stride,
                         no_max_pool=no_max_pool, shortcut_type=shortcut_type,
                         widen_factor=widen_factor, n_classes=n_classes, stem_planes=stem_planes,
                         block_kwargs={"cardinality": cardinality})
        self.cardinality = cardinality


def generate_model(model_depth: int, **kwargs) -> ResNeXt:
    """A ResNeXt of depth 50, 101, 152 or 200 (cardinality 32 unless given)."""
    _, layers = layers_for(model_depth, "resnext", DEPTHS)
    return ResNeXt(ResNeXtBottleneck, layers, BLOCK_INPLANES, **kwargs)
