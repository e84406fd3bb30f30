"""Unified JSON annotations for action-recognition datasets: builders for UCF-101, HMDB-51,
Kinetics, ActivityNet, Moments in Time and new datasets, merged label spaces, subsets, stats and
store checks. The file format is described in docs/annotations.md."""
from .check import check_stores
from .merge import merge_annotations
from .schema import (FORMAT_NAME, FRAME_BASE, SCHEMA_VERSION, SUBSETS, AnnotationError,
                     annotation_classes, frame_base, read_annotation, validate, write_annotation)
from .stats import compute as compute_stats
from .store import StoreListing, StoreVideo
from .subset import make_subset

__all__ = [
    "FORMAT_NAME", "FRAME_BASE", "SCHEMA_VERSION", "SUBSETS", "AnnotationError",
    "annotation_classes", "frame_base", "read_annotation", "validate", "write_annotation",
    "StoreListing", "StoreVideo", "check_stores", "merge_annotations", "make_subset",
    "compute_stats",
]
