"""Reading an annotation file entry by entry (what r3d-train does, to keep a million videos in
columns rather than dicts): the same entries, header and errors as json.load, whatever the
chunk boundaries; the same samples as from the parsed document."""
import io
import json

import numpy as np
import pytest

from storeformat.annotation import (AnnotationError, AnnotationFileMissing, load_annotation,
                                    stream_annotation)
from storeformat.jsonstream import NotAnObject, RepeatedKey, StreamError, read_object_streaming
from training.data import datasets, samples
from training_data import build_stores

DOCS = [
    {"format": "x", "labels": ["a", "b"],
     "database": {"v1": {"subset": "training", "annotations": {"label": "a",
                                                               "segment": [1, 123456789]}},
                  'q"uote\\d': {"v": [1.5e10, True, None, -0.25, "é\u2028\ud7ff"]},
                  "ré/é": {}, "": {"n": 12345678901234567890}},
     "tail": 123456},
    {"database": {}},
    {},
    {"database": [1, 2], "labels": []},
    {"a": {"database": {"inner": 1}}, "database": {"k": 1}, "z": "database"},
]


def _stream(text, chunk):
    got = []

    def start(header):
        return lambda k, v: got.append((k, v))

    header, streamed = read_object_streaming(io.StringIO(text), "database", start, chunk=chunk)
    return header, streamed, got


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 1])
def test_streamed_members_equal_json_load_at_any_chunk_boundary(chunk, indent):
    for doc in DOCS:
        for ascii_only in (True, False):
            text = json.dumps(doc, indent=indent, ensure_ascii=ascii_only)
            header, streamed, got = _stream(text, chunk)
            expected = json.loads(text)
            if streamed:
                assert [k for k, _ in got] == list(expected["database"])
                assert dict(header, database=dict(got)) == expected
            else:
                assert header == expected and not got


@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
def test_malformed_text_is_named_by_line_and_column(chunk):
    cases = {
        '{"database": {"a": 1,}}': "line 1 column 22",
        '{"database": {"a": 1}': "the end of the file",
        '{"a": 1} x': "extra data",
        '{"database": {"a": {"b": 1}\n,\n "c": nope}}': "line 3 column 7",
        '{"database": {"a\nb": 1}}': "line 1 column 17",
        "": "Expecting value",
    }
    for text, where in cases.items():
        with pytest.raises(StreamError, match=where):
            _stream(text, chunk)
    for text in ('{"database": {"a": {"b": 1}\n,\n "c": nope}}', '{"database": {"a\nb": 1}}'):
        with pytest.raises(json.JSONDecodeError) as plain:
            json.loads(text)
        with pytest.raises(StreamError, match=f"line {plain.value.lineno} column "
                                              f"{plain.value.colno} "):
            _stream(text, chunk)
    for text in ('{"database": {"a": 1}, "database": {}}', '{"x": 1, "x": 2, "database": {}}',
                 '{"database": {"a": {"b": 1, "b": 2}}}'):
        with pytest.raises(RepeatedKey, match="appears twice"):
            _stream(text, chunk)
    with pytest.raises(NotAnObject) as info:
        _stream("[1, 2]", chunk)
    assert info.value.value == [1, 2]


def _doc(**database):
    return {"format": "r3d-annotations", "version": 1, "labels": ["a", "b"], "sources": {},
            "roots": {}, "database": database}


def _entry(label="a", subset="training"):
    return {"subset": subset, "annotations": {"label": label}}


def _read(path):
    header_seen, entries = [], []

    def start(header):
        header_seen.append(dict(header))
        entries.clear()
        return lambda vid, entry: entries.append((vid, entry))

    header = stream_annotation(path, start)
    return header, header_seen, entries


def test_stream_annotation_gives_each_entry_in_file_order(tmp_path):
    doc = _doc(v3=_entry(), v1=_entry("b"), v2=_entry(subset="validation"))
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    header, seen, entries = _read(path)
    assert entries == list(doc["database"].items())
    assert header == {k: v for k, v in doc.items() if k != "database"} == seen[0]


def test_a_header_after_the_database_is_read_again_with_the_whole_header(tmp_path):
    doc = _doc(v1=_entry())
    text = json.dumps({"database": doc["database"],
                       **{k: v for k, v in doc.items() if k != "database"}})
    path = tmp_path / "a.json"
    path.write_text(text)
    header, seen, entries = _read(path)
    assert len(seen) == 1 and seen[0]["labels"] == ["a", "b"]  # only the whole header starts
    assert entries == [("v1", _entry())]
    # roots given after the entries: the entries are handed over again, under them
    text = json.dumps({k: v for k, v in doc.items() if k != "roots"} | {"roots": {}})
    path.write_text(text)
    header, seen, entries = _read(path)
    assert len(seen) == 2 and "roots" in seen[1] and entries == [("v1", _entry())]


def test_stream_annotation_errors_match_the_whole_file_reader(tmp_path):
    path = tmp_path / "a.json"
    bad = _doc(v1=_entry(), v2={"annotations": {}}, v3={"subset": "training",
                                                          "annotations": "x"})
    path.write_text(json.dumps(bad))
    with pytest.raises(AnnotationError) as whole:
        load_annotation(path, full=False)
    with pytest.raises(AnnotationError) as streamed:
        _read(path)
    assert str(streamed.value) == str(whole.value)
    assert "'v2': entry without 'subset'" in str(streamed.value)
    path.write_text(json.dumps({"format": "r3d-annotations", "version": 9, "labels": [],
                                "database": {}}))
    with pytest.raises(AnnotationError, match="newer than this reader"):
        _read(path)
    path.write_text('{"labels": [], "database": {"v1": {"subset": "training", "annot')
    with pytest.raises(AnnotationError, match="not valid JSON"):
        _read(path)
    path.write_text("[]")
    with pytest.raises(AnnotationError, match="top level is a list"):
        _read(path)
    with pytest.raises(AnnotationFileMissing):
        _read(tmp_path / "missing.json")


def test_a_video_id_given_twice_is_refused(tmp_path):
    """json.load would keep the last entry silently; the streamed reader names the id."""
    path = tmp_path / "a.json"
    text = json.dumps(_doc(v1=_entry(), v2=_entry()))
    path.write_text(text.replace('"v2"', '"v1"'))
    with pytest.raises(AnnotationError, match="video id 'v1' appears 2 times"):
        _read(path)


def test_samples_of_a_streamed_file_equal_those_of_the_document(tmp_path_factory, monkeypatch):
    """r3d-annotate's file read from disk in small chunks and in small lookup batches gives
    the samples and problems of the parsed document, in every subset and segment mode."""
    from annotations.cli import main as annotate

    stores = build_stores(tmp_path_factory)
    out = tmp_path_factory.mktemp("ann") / "ann.json"
    assert annotate(["folder", str(stores["src"]), "--out", str(out), "--index",
                     str(stores["hdf5"]), "--val-fraction", "0.5", "-q"]) == 0
    doc = json.loads(out.read_text())
    first = next(iter(doc["database"].values()))
    doc["database"]["v_gone"] = dict(first, store_id="walk/v_gone")
    doc["database"]["v_parts"] = dict(first, annotations={"segments": [
        {"label": "walk", "segment": [1, 3]}, {"label": "jump", "segment": [2, 99]}]})
    out.write_text(json.dumps(doc))
    monkeypatch.setattr("storeformat.jsonstream.CHUNK_CHARS", 97)
    monkeypatch.setattr(samples, "BATCH", 3)
    streamed = samples.read_samples(out, datasets.StoreSet(stores["hdf5"], doc))
    parsed = samples.read_samples(doc, datasets.StoreSet(stores["hdf5"], doc))
    assert streamed.present_subsets == parsed.present_subsets == {"training", "validation"}
    for subset in (None, "training", "validation"):
        for mode in ("each", "video"):
            (a, pa), (b, pb) = streamed.select(subset, mode), parsed.select(subset, mode)
            assert pa == pb
            for name in ("rows", "starts", "stops", "labels", "shifts", "label_ptr",
                         "label_values", "id_ptr", "id_bytes"):
                assert np.array_equal(getattr(a, name), getattr(b, name)), name
    table, problems = streamed.select(None, "each")
    ids = [table.video_id(i) for i in range(len(table))]
    # a segment past the video's end: no sample in mode 'each', the whole video in 'video'
    assert "v_parts" not in ids and [v for v, _ in problems] == ["v_gone", "v_parts"]
    whole, problems = streamed.select(None, "video")
    assert len(whole) == len(table) + 1 and whole.video_id(len(table)) == "v_parts"
    assert [v for v, _ in problems] == ["v_gone"]
