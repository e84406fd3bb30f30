"""3D DenseNet-BC (Huang et al., CVPR 2017) as in the reference: keys under
`features.` (conv1, norm1, denseblockN.denselayerM.{norm1,conv1,norm2,conv2},
transitionN.{norm,conv}, norm5) and a `classifier`."""
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import check_stem_options, init_weights

BLOCK_CONFIGS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32),
                 264: (6, 12, 64, 48)}
DEPTHS = tuple(sorted(BLOCK_CONFIGS))


class _DenseLayer(nn.Sequential):
    """BN-ReLU-conv1x1x1 (bn_size*growth) then BN-ReLU-conv3x3x3 (growth), whose
    output is concatenated to its input."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int,
                 drop_rate: float):
        super().__init__()
        self.add_module("norm1", nn.BatchNorm3d(num_input_features))
        self.add_module("relu1", nn.ReLU(inplace=True))
        self.add_module("conv1", nn.Conv3d(num_input_features, bn_size * growth_rate,
                                           kernel_size=1, bias=False))
        self.add_module("norm2", nn.BatchNorm3d(bn_size * growth_rate))
        self.add_module("relu2", nn.ReLU(inplace=True))
        self.add_module("conv2", nn.Conv3d(bn_size * growth_rate, growth_rate, kernel_size=3,
                                           padding=1, bias=False))
        self.drop_rate = drop_rate

    def forward(self, x):
        # norm1 is not in-place, so relu1 never overwrites x, which is concatenated below
        new_features = super().forward(x)
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return torch.cat([x, new_features], 1)


class _DenseBlock(nn.Sequential):
    def __init__(self, num_layers: int, num_input_features: int, bn_size: int,
                 growth_rate: int, drop_rate: float):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            _DenseLayer(num_input_features + i * growth_rate, growth_rate,
                                        bn_size, drop_rate))


class _Transition(nn.Sequential):
    """BN-ReLU-conv1x1x1 halving the channels, then 2x2x2 average pooling."""

    def __init__(self, num_input_features: int, num_output_features: int):
        super().__init__()
        self.add_module("norm", nn.BatchNorm3d(num_input_features))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv3d(num_input_features, num_output_features,
                                          kernel_size=1, bias=False))
        self.add_module("pool", nn.AvgPool3d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    """DenseNet-BC with the common stem options; `growth_rate` channels per layer,
    `block_config` layers per dense block, `bn_size` x growth bottleneck width."""

    def __init__(self, n_input_channels: int = 3, conv1_t_size: int = 7,
                 conv1_t_stride: int = 1, no_max_pool: bool = False, growth_rate: int = 32,
                 block_config: Sequence[int] = BLOCK_CONFIGS[121], num_init_features: int = 64,
                 bn_size: int = 4, drop_rate: float = 0.0, n_classes: int = 400):
        super().__init__()
        check_stem_options(n_input_channels, conv1_t_size, conv1_t_stride, n_classes)
        stem = [("conv1", nn.Conv3d(n_input_channels, num_init_features,
                                    kernel_size=(conv1_t_size, 7, 7),
                                    stride=(conv1_t_stride, 2, 2),
                                    padding=(conv1_t_size // 2, 3, 3), bias=False)),
                ("norm1", nn.BatchNorm3d(num_init_features)),
                ("relu1", nn.ReLU(inplace=True))]
        if not no_max_pool:
            stem.append(("pool1", nn.MaxPool3d(kernel_size=3, stride=2, padding=1)))
        self.features = nn.Sequential(OrderedDict(stem))

        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}",
                                     _DenseBlock(num_layers, num_features, bn_size,
                                                 growth_rate, drop_rate))
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}",
                                         _Transition(num_features, num_features // 2))
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm3d(num_features))
        self.classifier = nn.Linear(num_features, n_classes)
        self._strides = (conv1_t_stride, 2, 2)
        self._n_transitions = len(block_config) - 1
        self._max_pool = not no_max_pool
        init_weights(self)
        nn.init.constant_(self.classifier.bias, 0)

    def _fits(self, size: int, stride: int) -> bool:
        """Whether one input dimension survives the stem and every 2x2x2 transition pool."""
        size = -(-size // stride)
        if self._max_pool:
            size = -(-size // 2)
        for _ in range(self._n_transitions):
            if size < 2:
                return False
            size //= 2
        return True

    def _check_input(self, x: torch.Tensor) -> None:
        dims = tuple(x.shape[2:])
        if len(dims) == 3 and all(self._fits(d, s) for d, s in zip(dims, self._strides)):
            return
        if len(dims) != 3:
            raise ValueError(f"densenet expects N x C x T x H x W input, got shape "
                             f"{tuple(x.shape)}")
        need = [next(n for n in range(1, 1 << 12) if self._fits(n, s)) for s in self._strides]
        raise ValueError(f"densenet input of {dims[0]}x{dims[1]}x{dims[2]} (frames x height x "
                         f"width) is too small for its {self._n_transitions} transition poolings; "
                         f"it needs at least {need[0]}x{need[1]}x{need[2]}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier, shape (N, classifier.in_features)."""
        self._check_input(x)
        out = F.relu(self.features(x), inplace=True)
        return torch.flatten(F.adaptive_avg_pool3d(out, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def generate_model(model_depth: int, **kwargs) -> DenseNet:
    """A DenseNet of depth 121, 169, 201 or 264 (growth rate 32, 64 initial features)."""
    if model_depth not in BLOCK_CONFIGS:
        raise ValueError(f"densenet has no depth {model_depth!r}; valid depths: "
                         f"{', '.join(map(str, DEPTHS))}")
    kwargs.setdefault("growth_rate", 32)
    kwargs.setdefault("num_init_features", 64)
    return DenseNet(block_config=BLOCK_CONFIGS[model_depth], **kwargs)
