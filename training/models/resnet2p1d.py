"""R(2+1)D ResNets (Tran et al., CVPR 2018) as in the reference: each t x k x k
convolution becomes a 1 x k x k spatial and a t x 1 x 1 temporal one, with the middle
width chosen so both have about as many parameters as the 3D convolution."""
from typing import Optional

from torch import nn

from .layers import conv1x1x1
from .resnet import BLOCK_INPLANES, DEPTHS, ResNet, layers_for


def mid_planes(in_planes: int, out_planes: int) -> int:
    """Middle width of a split 3x3x3 conv: floor(in*out*27 / (in*9 + 3*out))."""
    return (in_planes * out_planes * 27) // (in_planes * 9 + 3 * out_planes)


def stem_mid_planes(planes: int, t_size: int) -> int:
    """Middle width of the split stem: floor(3*planes*t*49 / (3*49 + t*planes)).

    The reference counts 3 input channels here even for 2-channel flow input; kept so
    that its checkpoints load.
    """
    return (3 * planes * t_size * 49) // (3 * 49 + t_size * planes)


def conv1x3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    """Spatial half: 1x3x3, subsampling height and width by `stride`."""
    return nn.Conv3d(in_planes, out_planes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                     padding=(0, 1, 1), bias=False)


def conv3x1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    """Temporal half: 3x1x1, subsampling time by `stride`."""
    return nn.Conv3d(in_planes, out_planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1),
                     padding=(1, 0, 0), bias=False)


class BasicBlock(nn.Module):
    """Two (2+1)D convolutions (`conv1_s`/`conv1_t`, `conv2_s`/`conv2_t`) with a residual."""
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        mid1 = mid_planes(in_planes, planes)
        self.conv1_s = conv1x3x3(in_planes, mid1, stride)
        self.bn1_s = nn.BatchNorm3d(mid1)
        self.conv1_t = conv3x1x1(mid1, planes, stride)
        self.bn1_t = nn.BatchNorm3d(planes)
        mid2 = mid_planes(planes, planes)
        self.conv2_s = conv1x3x3(planes, mid2)
        self.bn2_s = nn.BatchNorm3d(mid2)
        self.conv2_t = conv3x1x1(mid2, planes)
        self.bn2_t = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1_s(self.conv1_s(x)))
        out = self.relu(self.bn1_t(self.conv1_t(out)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.bn2_t(self.conv2_t(out))
        out += residual
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1x1 reduce, (2+1)D middle convolution (`conv2_s`/`conv2_t`), 1x1x1 expand (x4)."""
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        mid = mid_planes(planes, planes)
        self.conv2_s = conv1x3x3(planes, mid, stride)
        self.bn2_s = nn.BatchNorm3d(mid)
        self.conv2_t = conv3x1x1(mid, planes, stride)
        self.bn2_t = nn.BatchNorm3d(planes)
        self.conv3 = conv1x1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.relu(self.bn2_t(self.conv2_t(out)))
        out = self.bn3(self.conv3(out))
        out += residual
        return self.relu(out)


class ResNet2p1d(ResNet):
    """ResNet whose stem is split into `conv1_s` (1x7x7, stride 1x2x2) and `conv1_t`
    (t x 1 x 1, stride t_stride); options as for ResNet."""

    def _build_stem(self, n_input_channels: int, planes: int, t_size: int, t_stride: int):
        mid = stem_mid_planes(planes, t_size)
        self.conv1_s = nn.Conv3d(n_input_channels, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2),
                                 padding=(0, 3, 3), bias=False)
        self.bn1_s = nn.BatchNorm3d(mid)
        self.conv1_t = nn.Conv3d(mid, planes, kernel_size=(t_size, 1, 1), stride=(t_stride, 1, 1),
                                 padding=(t_size // 2, 0, 0), bias=False)
        self.bn1_t = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)

    def _forward_stem(self, x):
        x = self.relu(self.bn1_s(self.conv1_s(x)))
        return self.relu(self.bn1_t(self.conv1_t(x)))


def generate_model(model_depth: int, **kwargs) -> ResNet2p1d:
    """An R(2+1)D ResNet of depth 10, 18, 34, 50, 101, 152 or 200."""
    kind, layers = layers_for(model_depth, "resnet2p1d", DEPTHS)
    block = BasicBlock if kind == "basic" else Bottleneck
    return ResNet2p1d(block, layers, BLOCK_INPLANES, **kwargs)
