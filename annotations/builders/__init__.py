"""One builder per dataset: each reads the official files unchanged and returns Outputs."""
from . import activitynet, custom, hmdb51, kinetics, mit, ucf101
from .common import BuildOptions, Output

__all__ = ["BuildOptions", "Output", "activitynet", "custom", "hmdb51", "kinetics", "mit",
           "ucf101"]
