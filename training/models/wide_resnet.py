"""Wide 3D ResNet (Zagoruyko and Komodakis, 2016) as in the reference: Bottleneck
blocks with expansion 2 and every stage (and the stem) k times wider."""
from .resnet import BLOCK_INPLANES, BOTTLENECK_LAYERS, Bottleneck, ResNet, layers_for

DEPTHS = tuple(sorted(BOTTLENECK_LAYERS))


class WideBottleneck(Bottleneck):
    """Bottleneck whose last 1x1x1 convolution expands by 2 instead of 4."""
    expansion = 2


def generate_model(model_depth: int, k: int = 2, **kwargs) -> ResNet:
    """A Wide ResNet of depth 50, 101, 152 or 200 and widening factor `k`."""
    _, layers = layers_for(model_depth, "wideresnet", DEPTHS)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"wideresnet k must be a positive integer, got {k!r}")
    return ResNet(WideBottleneck, layers, [w * k for w in BLOCK_INPLANES], **kwargs)
