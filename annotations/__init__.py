"""Unified JSON annotations for action-recognition datasets: builders for UCF-101, HMDB-51,
Kinetics, ActivityNet, Moments in Time and new datasets, merged label spaces, subsets, stats and
store checks. The file format is described in docs/annotations.md."""
from .check import check
from .merge import merge
from .schema import (FORMAT_NAME, SCHEMA_VERSION, SUBSETS, AnnotationError, annotation_classes,
                     frame_base, read_annotation, validate, write_annotation)
from .stats import compute as compute_stats
from .store import StoreCatalog, StoreVideo
from .subset import subset

__all__ = [
    "FORMAT_NAME", "SCHEMA_VERSION", "SUBSETS", "AnnotationError", "annotation_classes",
    "frame_base", "read_annotation", "validate", "write_annotation", "StoreCatalog",
    "StoreVideo", "check", "merge", "subset", "compute_stats",
]
