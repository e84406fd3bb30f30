"""Class lists and label order.

By default a built file's labels are in the reference implementation's order for its dataset
(so a checkpoint trained with the reference names the right classes); ``sorted`` orders them by
name, and a class list file fixes any other order (for instance a published checkpoint's
output layer).
"""
import re
from pathlib import Path

from storeformat.annotation import AnnotationError
from storeformat.jsonstream import json_errors, load_json


#: Header words a one-column CSV class list may start with (mmaction's action_name.csv: "action").
_HEADER_WORDS = {"action", "actions", "label", "labels", "name", "class", "class_name",
                 "category", "categories"}


def read_text_lines(path):
    """Lines of a text file without line endings (CRLF or LF) and without blank lines, with
    their 1-based line numbers."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text ({e})") from None
    return [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), 1)
            if line.strip()]


#: The label orders a builder can produce (``official`` is an older name of ``reference``).
LABEL_ORDERS = ("reference", "sorted")


def read_class_list(path, *, by_index=True):
    """Class names in index order from any of the usual class-list files:

    * one name per line (``category_momentsv1.txt``, ``label_map_k700.txt``);
    * ``name,idx`` lines (``moments_categories.txt``) or ``idx name`` lines (UCF ``classInd.txt``),
      ordered by the index, which may start at 0 or 1 (in file order with `by_index` False, as
      the reference's scripts read them);
    * a one-column CSV with a header (``action_name.csv``);
    * an annotation JSON file (its ``labels``).
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        with json_errors(path, AnnotationError, what="class list"), \
                open(path, encoding="utf-8") as f:
            doc = load_json(f)
        if not isinstance(doc, dict) or not isinstance(doc.get("labels"), list):
            raise AnnotationError(f"{path}: a JSON class list needs a top-level 'labels' list")
        names = doc["labels"]
    else:
        lines = read_text_lines(path)
        if lines and path.suffix.lower() == ".csv" and lines[0][1].strip().lower() in _HEADER_WORDS:
            lines = lines[1:]
        names = _parse_class_lines(path, lines, by_index)
    if not names:
        raise AnnotationError(f"{path}: the class list is empty")
    seen = set()
    for name in names:
        if name in seen:
            raise AnnotationError(f"{path}: class {name!r} is listed twice")
        seen.add(name)
    return names


def _parse_class_lines(path, lines, by_index=True):
    name_idx = re.compile(r"^(.*\S)\s*,\s*(\d+)$")
    idx_name = re.compile(r"^(\d+)\s+(\S.*)$")
    stripped = [(n, s.strip()) for n, s in lines]
    for pattern, name_group, idx_group in ((name_idx, 1, 2), (idx_name, 2, 1)):
        matches = [pattern.match(s) for _, s in stripped]
        if matches and all(matches):
            pairs = [(int(m.group(idx_group)), m.group(name_group).strip()) for m in matches]
            indices = sorted(i for i, _ in pairs)
            start = indices[0]
            if indices != list(range(start, start + len(indices))) or start not in (0, 1):
                raise AnnotationError(f"{path}: class indices are not 0..n-1 or 1..n")
            return [name for _, name in (sorted(pairs) if by_index else pairs)]
    return [s for _, s in stripped]


def order_labels(found, *, order="reference", reference=None, labels_from=None):
    """The label list of a built file.

    `found`: the class names the data uses. `order`: "reference" (default: `reference`, the
    order the reference implementation's script gives the dataset, then any class it lacks in
    order of appearance; sorted names when the dataset has no reference script) or "sorted".
    `labels_from`: a class-list file whose order wins; it may hold classes the data lacks (kept,
    so the label space matches a checkpoint) but must hold every class the data uses."""
    found = list(dict.fromkeys(found))
    if labels_from is not None:
        names = read_class_list(labels_from)
        missing = sorted(set(found) - set(names))
        if missing:
            raise AnnotationError(f"{labels_from}: the class list lacks {len(missing)} class(es) "
                                  f"the data uses, e.g. {missing[:5]}")
        return names
    if order == "official":
        order = "reference"
    if order == "sorted" or (order == "reference" and reference is None):
        return sorted(found)
    if order == "reference":
        known = set(reference)
        return list(reference) + [x for x in found if x not in known]
    raise ValueError(f"unknown label order {order!r} ({' or '.join(LABEL_ORDERS)})")
