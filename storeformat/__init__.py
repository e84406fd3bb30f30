"""The on-disk layout of r3d frame stores, shared by preprocess (writer) and training (reader).

See docs/preprocess.md for the byte-level description.
"""
from .layout import (FAILURES_NAME, FRAME_TEMPLATE, INDEX_NAME, LOCK_NAME, SETTINGS_NAME,
                     VIDEO_EXTENSIONS, frame_name, frame_path, video_id_from_path)
from .index import IndexWriter, read_index, read_settings, write_settings
from .hdf5 import (HDF5_LAYOUT, read_video_meta, read_frame_bytes, video_key, write_video)

__all__ = [
    "FAILURES_NAME", "FRAME_TEMPLATE", "INDEX_NAME", "LOCK_NAME", "SETTINGS_NAME",
    "VIDEO_EXTENSIONS", "frame_name",
    "frame_path", "video_id_from_path", "IndexWriter", "read_index", "read_settings",
    "write_settings",
    "HDF5_LAYOUT", "read_video_meta", "read_frame_bytes", "video_key", "write_video",
]
