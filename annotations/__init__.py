"""Unified JSON annotations for action-recognition datasets: builders for UCF-101, HMDB-51,
Kinetics, ActivityNet, Moments in Time and new datasets, merged label spaces, subsets, stats and
store checks. The file format is described in docs/annotations.md."""
from storeformat.annotation import (FORMAT_NAME, FRAME_BASE, SCHEMA_VERSION, SUBSETS,
                                    AnnotationError, entry_labels, root_frame_base, validate)

from .check import check_stores
from .merge import merge_annotations
from .schema import read_annotation, write_annotation
from .stats import compute as compute_stats
from .store import StoreListing, StoreVideo
from .subset import make_subset

__all__ = [
    "FORMAT_NAME", "FRAME_BASE", "SCHEMA_VERSION", "SUBSETS", "AnnotationError",
    "entry_labels", "root_frame_base", "read_annotation", "validate", "write_annotation",
    "StoreListing", "StoreVideo", "check_stores", "merge_annotations", "make_subset",
    "compute_stats",
]
