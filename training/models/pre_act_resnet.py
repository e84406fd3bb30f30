"""Pre-activation 3D ResNet (He et al., ECCV 2016) as in the reference: BatchNorm and
ReLU come before each convolution inside the blocks; stem, pooling and `fc` are the
ResNet's (there is no final BatchNorm, so the reference's checkpoints load)."""
from typing import Optional

from torch import nn

from .layers import conv1x1x1, conv3x3x3
from .resnet import BLOCK_INPLANES, DEPTHS, ResNet, layers_for


class PreActivationBasicBlock(nn.Module):
    """BN-ReLU-conv3x3x3 twice, plus the shortcut; no ReLU after the addition."""
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.bn1 = nn.BatchNorm3d(in_planes)
        self.conv1 = conv3x3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        # the shortcut sees the raw input: the in-place ReLUs below never touch x
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + residual


class PreActivationBottleneck(nn.Module):
    """BN-ReLU before the 1x1x1 reduce, 3x3x3 and 1x1x1 expand (x4) convolutions."""
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.bn1 = nn.BatchNorm3d(in_planes)
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm3d(planes)
        self.conv3 = conv1x1x1(planes, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + residual


def generate_model(model_depth: int, **kwargs) -> ResNet:
    """A pre-activation ResNet of depth 10, 18, 34, 50, 101, 152 or 200."""
    kind, layers = layers_for(model_depth, "preresnet", DEPTHS)
    block = PreActivationBasicBlock if kind == "basic" else PreActivationBottleneck
    return ResNet(block, layers, BLOCK_INPLANES, **kwargs)
