"""One verdict on one annotation file, whichever command reads it (issue 19, cases 8 and 9):
r3d-annotate's commands (whole-file reader), r3d-train (streaming reader), r3d-predict and
r3d-eval (shape-checked reader) refuse the same files, with the same reason, and accept the
same files."""
import io
import json

import pytest

from annotations.cli import main as annotate
from storeformat.annotation import AnnotationError, load_annotation, stream_annotation
from storeformat.jsonstream import read_object_streaming
from training.job.evaluation import EvaluationError, evaluate


def _doc():
    return {"labels": ["run", "walk"], "database": {
        "v1": {"subset": "training", "annotations": {"label": "run", "segment": [1, 5]}},
        "v2": {"subset": "validation", "annotations": {"label": "walk", "segment": [1, 9]}}}}


def _verdicts(path, tmp_path, capsys):
    """{reader: None (accepted) or its error message}."""
    out = {}
    other = tmp_path / "other.json"
    other.write_text(json.dumps(_doc()), encoding="utf-8")
    for name in ("stats", "subset", "merge"):
        argv = {"stats": ["stats", str(path)],
                "subset": ["subset", str(path), "-o", str(tmp_path / "s.json"), "--instances",
                           "1", "--subsets", "training", "validation"],
                "merge": ["merge", str(path), str(other), "--names", "a", "b", "-o",
                          str(tmp_path / "m.json")]}[name]
        rc = annotate(argv + ["-q"])
        err = capsys.readouterr().err
        out[f"r3d-annotate {name}"] = None if rc == 0 else err.strip().splitlines()[-1]
    for name, read in (("r3d-train", lambda: stream_annotation(path, lambda h: lambda v, e: 0)),
                       ("r3d-predict", lambda: load_annotation(path, full=False))):
        try:
            read()
            out[name] = None
        except AnnotationError as e:
            out[name] = str(e)
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"results": {"v2": [{"label": "walk", "score": 1.0}]}}))
    try:
        evaluate(path, results, ks=[1])
        out["r3d-eval"] = None
    except EvaluationError as e:
        out["r3d-eval"] = str(e)
    return out


def _write(tmp_path, text):
    path = tmp_path / "ann.json"
    path.write_text(text, encoding="utf-8")
    return path


def _refused_by_all(verdicts, reason):
    wrong = {k: v for k, v in verdicts.items() if v is None or reason not in v}
    assert not wrong, f"expected every reader to refuse with {reason!r}: {wrong}"


def _text(doc):
    return json.dumps(doc)


CASES = {
    "database given twice": (
        lambda: _text(_doc())[:-1] + ', "database": {}}', "key 'database' appears twice"),
    "a key twice in an entry": (
        lambda: _text(_doc()).replace('"subset": "training"',
                                      '"subset": "training", "subset": "validation"'),
        "key 'subset' appears twice"),
    "a video id twice": (
        lambda: _text(_doc()).replace('"v2":', '"v1":'), "'v1'"),
    "a label twice": (
        lambda: _text(dict(_doc(), labels=["run", "walk", "run"])), "label 'run' is given twice"),
    "multi_label as a string": (
        lambda: _text(dict(_doc(), multi_label="no")), "'multi_label' is 'no'"),
    "a subset as a number": (
        lambda: _text(_doc()).replace('"subset": "training"', '"subset": 7'),
        "subset 7 is not one of"),
    "a subset not written exactly": (
        lambda: _text(_doc()).replace('"subset": "training"', '"subset": "Training"'),
        "write 'training'"),
    "a reversed segment": (
        lambda: _text(_doc()).replace("[1, 5]", "[29, 1]"), "segment [29, 1] is empty or reversed"),
    "a float segment": (
        lambda: _text(_doc()).replace("[1, 5]", "[1.0, 5.5]"), "two integers"),
    "a segment of three numbers": (
        lambda: _text(_doc()).replace("[1, 5]", "[1, 5, 9]"), "two integers"),
    "a segment past any frame count": (
        lambda: _text(_doc()).replace("[1, 5]", "[1, 1e400]"), "two integers"),
    "a segment past 2**31 - 1": (
        lambda: _text(_doc()).replace("[1, 5]", "[1, 4294967326]"), "largest frame number"),
    "nesting 100,000 levels deep": (
        lambda: _text(_doc())[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_reader_refuses_with_one_reason(case, tmp_path, capsys):
    make, reason = CASES[case]
    _refused_by_all(_verdicts(_write(tmp_path, make()), tmp_path, capsys), reason)


def test_a_byte_order_mark_is_accepted_by_every_reader(tmp_path, capsys):
    verdicts = _verdicts(_write(tmp_path, "\ufeff" + _text(_doc())), tmp_path, capsys)
    assert verdicts == dict.fromkeys(verdicts), verdicts


def test_a_long_string_is_parsed_in_a_few_reads_not_one_per_chunk():
    """A value longer than the reader's window is read again with the window doubled, so its
    cost grows with its length, not with its length squared (200 MB took 12.9 s)."""
    value = "x" * 1_000_000
    text = json.dumps({"labels": ["a"], "database": {"v": {"subset": "training",
                                                           "note": value}}})

    class Counting(io.StringIO):
        reads = 0

        def read(self, n=-1):
            Counting.reads += 1
            return super().read(n)

    got = {}
    read_object_streaming(Counting(text), "database", lambda h: got.__setitem__, chunk=1024)
    assert got["v"]["note"] == value
    assert Counting.reads < 40  # one read per 1,024-character chunk would be about 1,000
