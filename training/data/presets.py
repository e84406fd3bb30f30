"""Normalisation presets by name, kept free of torch so that the commands' --help and argument
errors answer before torch loads."""

#: Mean and standard deviation of the RGB values in [0, 1], as the reference defines them.
NORM_PRESETS = {
    "kinetics": ((0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737)),
    "activitynet": ((0.4477, 0.4209, 0.3906), (0.2767, 0.2695, 0.2714)),
    "0.5": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
