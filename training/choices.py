"""The model family names r3d-train, r3d-predict and r3d-features offer as choices, kept free
of torch so that their --help and argument errors answer before torch loads (the
normalisation presets: training.data.presets)."""

#: Model family names, in the registry's order (training.models.registry checks they match).
MODEL_NAMES = ("resnet", "resnet2p1d", "preresnet", "wideresnet", "resnext", "densenet")
