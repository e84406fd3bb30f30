"""Building blocks shared by the 3D CNN families: convolutions, the shortcut-A
zero-padding identity, option checks and the reference's weight initialisation."""
from typing import Optional

import torch.nn.functional as F
from torch import nn

SHORTCUT_TYPES = ("A", "B")


def conv3x3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv3d:
    """3x3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv3d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                     groups=groups, bias=False)


def conv1x1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    """Pointwise convolution without bias."""
    return nn.Conv3d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Shortcut A: subsample by `stride` and append zero channels up to `out_planes`.

    Parameter-free, so it adds no state_dict keys (as in the reference). Unlike the
    reference, which concatenated `x.data`, the input keeps its gradient path.
    """

    def __init__(self, out_planes: int, stride: int = 1):
        super().__init__()
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x):
        if self.stride != 1:
            # avg_pool3d with a 1x1x1 kernel, as in the reference, is plain subsampling
            x = x[:, :, ::self.stride, ::self.stride, ::self.stride]
        extra = self.out_planes - x.size(1)
        if extra < 0:
            raise ValueError(f"shortcut A cannot reduce {x.size(1)} channels to {self.out_planes}")
        if extra:
            # F.pad order: (W, W, H, H, T, T, C, C); zeros are appended after the channels
            x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, extra))
        return x

    def extra_repr(self) -> str:
        return f"out_planes={self.out_planes}, stride={self.stride}"


def make_shortcut(shortcut_type: str, in_planes: int, out_planes: int,
                  stride: int) -> Optional[nn.Module]:
    """The residual branch's projection, or None where identity fits.

    B is conv1x1x1 + BatchNorm (keys `downsample.0.*`, `downsample.1.*`); A is the
    parameter-free zero-padding identity.
    """
    if stride == 1 and in_planes == out_planes:
        return None
    if shortcut_type == "A":
        return ZeroPadShortcut(out_planes, stride)
    return nn.Sequential(conv1x1x1(in_planes, out_planes, stride), nn.BatchNorm3d(out_planes))


def check_stem_options(n_input_channels: int, conv1_t_size: int, conv1_t_stride: int,
                       n_classes: int, **more: int) -> None:
    """Reject options that would build a broken network, naming the bad value."""
    for name, value in (("n_input_channels", n_input_channels), ("conv1_t_size", conv1_t_size),
                        ("conv1_t_stride", conv1_t_stride), ("n_classes", n_classes),
                        *more.items()):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_shortcut_type(shortcut_type: str) -> None:
    if shortcut_type not in SHORTCUT_TYPES:
        raise ValueError(f"shortcut_type must be one of {', '.join(SHORTCUT_TYPES)}, "
                         f"got {shortcut_type!r}")


def init_weights(model: nn.Module) -> None:
    """The reference's initialisation: Kaiming-normal (fan_out) convolutions,
    BatchNorm weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
