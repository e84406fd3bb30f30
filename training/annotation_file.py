"""Reading an annotation file for the datasets: storeformat.annotation's reader, which
annotations/ and r3d-eval share (training does not import the annotations package).

Only the file's shape is checked here; the datasets check each entry against its store and
report or skip the bad ones.
"""
from storeformat.annotation import entry_frame_base, load_annotation


def read_annotation_file(path) -> dict:
    """Load an annotation file, raising ValueError (naming the file) when it is not one; a
    missing file's error is also a FileNotFoundError."""
    return load_annotation(path, full=False)


def root_frame_base(doc, root_name):
    """First frame number the file's segments use for videos of root `root_name`, or None when
    the file does not say (reference files: the store's own numbering is assumed)."""
    return entry_frame_base(doc, root_name)
