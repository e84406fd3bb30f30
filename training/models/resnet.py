"""3D ResNet (Hara et al., CVPR 2018): BasicBlock and Bottleneck networks of depth
10 to 200 whose state_dict keys and shapes equal the reference implementation's."""
from typing import Optional, Sequence, Type

import torch
from torch import nn

from .layers import (check_shortcut_type, check_stem_options, conv1x1x1, conv3x3x3,
                     init_weights, make_shortcut)

BLOCK_INPLANES = (64, 128, 256, 512)
BASIC_LAYERS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
BOTTLENECK_LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3),
                     200: (3, 24, 36, 3)}
DEPTHS = tuple(sorted({**BASIC_LAYERS, **BOTTLENECK_LAYERS}))


class BasicBlock(nn.Module):
    """Two 3x3x3 convolutions with a residual connection."""
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = conv3x3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += residual
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1x1 reduce, 3x3x3, 1x1x1 expand (x4) with a residual connection."""
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = conv1x1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += residual
        return self.relu(out)


class ResNet(nn.Module):
    """Stem (conv1 t x 7 x 7, stride t_stride x 2 x 2; max-pool), four stages of
    `block`, global average pooling and `fc`.

    Shared by the ResNet, pre-activation ResNet, Wide ResNet and ResNeXt families; the
    stage widths are `block_inplanes` times `widen_factor` and the stem has as many
    channels as the first stage unless `stem_planes` says otherwise (64 in the reference's
    2018 Wide ResNet and ResNeXt checkpoints). `block_kwargs` are passed to every block
    (ResNeXt's cardinality).
    """

    def __init__(self, block: Type[nn.Module], layers: Sequence[int],
                 block_inplanes: Sequence[int] = BLOCK_INPLANES, n_input_channels: int = 3,
                 conv1_t_size: int = 7, conv1_t_stride: int = 1, no_max_pool: bool = False,
                 shortcut_type: str = "B", widen_factor: float = 1.0, n_classes: int = 400,
                 *, stem_planes: Optional[int] = None, block_kwargs: Optional[dict] = None):
        super().__init__()
        check_shortcut_type(shortcut_type)
        if len(layers) != 4 or len(block_inplanes) != 4:
            raise ValueError(f"a ResNet has 4 stages, got layers={list(layers)} and "
                             f"block_inplanes={list(block_inplanes)}")
        if widen_factor <= 0:
            raise ValueError(f"widen_factor must be positive, got {widen_factor!r}")
        widths = [int(w * widen_factor) for w in block_inplanes]
        if stem_planes is None:
            stem_planes = widths[0]
        check_stem_options(n_input_channels, conv1_t_size, conv1_t_stride, n_classes,
                           stem_planes=stem_planes)
        self.no_max_pool = no_max_pool
        self._block = block
        self._block_kwargs = dict(block_kwargs or {})

        self._build_stem(n_input_channels, stem_planes, conv1_t_size, conv1_t_stride)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        in_planes = stem_planes
        self.layer1, in_planes = self._make_layer(in_planes, widths[0], layers[0], shortcut_type, 1)
        self.layer2, in_planes = self._make_layer(in_planes, widths[1], layers[1], shortcut_type, 2)
        self.layer3, in_planes = self._make_layer(in_planes, widths[2], layers[2], shortcut_type, 2)
        self.layer4, in_planes = self._make_layer(in_planes, widths[3], layers[3], shortcut_type, 2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(in_planes, n_classes)
        init_weights(self)

    def _build_stem(self, n_input_channels: int, planes: int, t_size: int, t_stride: int):
        self.conv1 = nn.Conv3d(n_input_channels, planes, kernel_size=(t_size, 7, 7),
                               stride=(t_stride, 2, 2), padding=(t_size // 2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)

    def _forward_stem(self, x):
        return self.relu(self.bn1(self.conv1(x)))

    def _make_layer(self, in_planes: int, planes: int, blocks: int, shortcut_type: str,
                    stride: int):
        out_planes = planes * self._block.expansion
        downsample = make_shortcut(shortcut_type, in_planes, out_planes, stride)
        layers = [self._block(in_planes, planes, stride, downsample, **self._block_kwargs)]
        layers += [self._block(out_planes, planes, **self._block_kwargs) for _ in range(1, blocks)]
        return nn.Sequential(*layers), out_planes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier, shape (N, fc.in_features)."""
        x = self._forward_stem(x)
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def layers_for(depth: int, family: str = "resnet", depths: Sequence[int] = DEPTHS):
    """(block kind, blocks per stage) of a depth, or ValueError naming the valid depths."""
    if depth not in depths:
        raise ValueError(f"{family} has no depth {depth!r}; valid depths: "
                         f"{', '.join(map(str, depths))}")
    if depth in BASIC_LAYERS:
        return "basic", BASIC_LAYERS[depth]
    return "bottleneck", BOTTLENECK_LAYERS[depth]


def generate_model(model_depth: int, **kwargs) -> ResNet:
    """A 3D ResNet of depth 10, 18, 34, 50, 101, 152 or 200; kwargs go to ResNet."""
    kind, layers = layers_for(model_depth)
    block = BasicBlock if kind == "basic" else Bottleneck
    return ResNet(block, layers, BLOCK_INPLANES, **kwargs)
