"""Data registry: resolution order, checksums, parsers and their errors."""

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

import labkit.data as data
from labkit.data import parsers, registry
from labkit.errors import DataError, DataUnavailableError, ParameterError

MIRROR = os.environ.get("LABKIT_DATA_MIRROR", "")
needs_mirror = pytest.mark.skipif(
    not any(Path(p, "mqp", "mqp.csv").is_file() for p in MIRROR.split(":") if p),
    reason="real data mirror not found (set LABKIT_DATA_MIRROR)",
)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty cache, no mirror: nothing resolves unless a test puts it there."""
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LABKIT_DATA_MIRROR", "")
    return tmp_path


def fake_mqp_entry(monkeypatch, content: bytes, url="http://127.0.0.1:9/mqp.csv"):
    """Point the mqp entry at given bytes (hash of those bytes) and an unreachable URL."""
    entry = registry.get("mqp")
    file = registry.DataFile("mqp.csv", url, hashlib.sha256(content).hexdigest())
    monkeypatch.setitem(registry._REGISTRY, "mqp", registry.Dataset(**{**entry.__dict__, "files": (file,)}))


@needs_mirror
def test_real_datasets_parse_with_expected_shapes():
    pairs = data.load("mqp")
    assert len(pairs) == 3048 and pairs.label.sum() == 1524 and pairs.dr_id.nunique() == 11
    assert set(pairs.columns) == {"dr_id", "question_1", "question_2", "label"}
    points = data.load("chinchilla")
    assert len(points) == 245 and (points.D > 0).all()
    assert points.D.iloc[0] == pytest.approx(points.C.iloc[0] / (6 * points.N.iloc[0]))
    meetings = data.load("qmsum")
    assert [len(meetings[s]) for s in ("train", "val", "test")] == [162, 35, 35]
    assert all(m.general_queries for m in meetings["test"])
    assert data.USED["qmsum"].verified and data.USED["qmsum"].origin == "mirror"


@needs_mirror
def test_verify_checks_every_file_and_the_qmsum_listing():
    resolved = data.verify("qmsum")
    assert len(resolved.sha256) == 233


def test_unknown_key_suggests_the_closest(isolated):
    with pytest.raises(ParameterError, match="did you mean 'qmsum'"):
        data.load("qmsun")


def test_no_network_no_mirror_names_key_places_and_remedies(isolated):
    with pytest.raises(DataUnavailableError) as info:
        data.load("chinchilla")
    message = str(info.value)
    assert "'chinchilla'" in message and str(isolated / "cache") in message
    assert "LABKIT_DATA_MIRROR" in message and "labkit data fetch chinchilla" in message


def test_mirror_is_used_in_order_after_cache(isolated, monkeypatch):
    content = b"1,a,b,1\n1,a,c,0\n"
    fake_mqp_entry(monkeypatch, content)
    first, second = isolated / "m1", isolated / "m2"
    (second / "mqp").mkdir(parents=True)
    (second / "mqp" / "mqp.csv").write_bytes(content)
    monkeypatch.setenv("LABKIT_DATA_MIRROR", f"{first}:{second}")
    assert data.resolve("mqp").root == second / "mqp"
    (isolated / "cache" / "mqp").mkdir(parents=True)
    (isolated / "cache" / "mqp" / "mqp.csv").write_bytes(content)
    assert data.resolve("mqp").origin == "cache"


def test_wrong_sha256_in_mirror_is_a_clear_error(isolated, monkeypatch):
    fake_mqp_entry(monkeypatch, b"1,a,b,1\n")
    (isolated / "m" / "mqp").mkdir(parents=True)
    (isolated / "m" / "mqp" / "mqp.csv").write_bytes(b"1,a,b,0\n")
    monkeypatch.setenv("LABKIT_DATA_MIRROR", str(isolated / "m"))
    with pytest.raises(DataError, match=r"mqp\.csv: sha256 mismatch"):
        data.load("mqp")


def test_failed_download_leaves_no_partial_file(isolated, monkeypatch):
    fake_mqp_entry(monkeypatch, b"x")
    with pytest.raises(DataUnavailableError):
        data.load("mqp")
    leftovers = list((isolated / "cache").rglob("*")) if (isolated / "cache").exists() else []
    assert not [p for p in leftovers if p.is_file()]


def test_explicit_path_is_parsed_validated_and_recorded(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("question_1,question_2,label\nIs it flu?,Do I have the flu?,1\n")
    frame = data.load("mqp", path=path)
    assert frame.iloc[0].label == 1 and frame.iloc[0].dr_id == 2
    assert data.USED["mqp"].origin == "path" and not data.USED["mqp"].verified


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "file is empty"),
        ("1,What is flu?,Is flu bad?\n", "line 1 has 3 fields, expected 4"),
        ("1,What is flu?,Is flu bad?,2\n", "line 1, field 'label' must be 0 or 1, got '2'"),
        ("1,What is flu?,,1\n", "line 1, field 'question_2' is empty"),
        ("x,What is flu?,Is flu bad?,1\n", "line 1, field 'dr_id' must be an integer"),
        # file lines, not data rows: a blank line and a two-line quoted field come first
        (
            '1,a,b,1\n\n1,"two\nlines",c,0\n1,a,c,7\n',
            "line 5, field 'label' must be 0 or 1, got '7'",
        ),
        ("question_1,label\nWhat?,1\n", "header lacks column\\(s\\) question_2"),
        ("question_1,question_2,label\n", "no data rows"),
    ],
)
def test_bad_pair_csvs_name_the_row_and_field(tmp_path, content, message):
    path = tmp_path / "pairs.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        data.parse_pairs_csv(path)
    assert str(path) in str(info.value)


def test_chinchilla_parser_rejects_missing_columns_and_non_positive_values(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("Model Size,loss\n1e9,2.0\n")
    with pytest.raises(DataError, match="missing column\\(s\\) Training FLOP"):
        registry.get("chinchilla").parser(path)
    path.write_text("Model Size,Training FLOP,loss\n1e9,1e20,2.0\n1e9,-1,2.0\n")
    with pytest.raises(DataError, match="line 3, field 'Training FLOP' must be a positive finite number, got '-1'"):
        registry.get("chinchilla").parser(path)


@pytest.mark.parametrize(
    "value, why",
    [
        ("inf", "must be a positive finite number, got 'inf'"),
        ("-inf", "must be a positive finite number, got '-inf'"),
        ("nan", "must be a positive finite number, got 'nan'"),
        ("two", "is not a number, got 'two'"),
        ("", "is missing, got ''"),
    ],
)
def test_chinchilla_parser_names_the_file_line_and_prints_plain_values(tmp_path, value, why):
    path = tmp_path / "points.csv"
    # line 4 of the file is the third data row, after a blank line
    path.write_text(f"Model Size,Training FLOP,loss\n1e9,1e20,2.0\n\n1e9,2e20,{value}\n")
    with pytest.raises(DataError) as info:
        registry.get("chinchilla").parser(path)
    message = str(info.value)
    assert message == f"{path}: line 4, field 'loss' {why}"
    assert "np.float64" not in message


def write_meeting(path: Path, **fields) -> Path:
    meeting = {
        "meeting_transcripts": [{"speaker": "A", "content": "hello there"}],
        "general_query_list": [{"query": "Summarize.", "answer": "They met."}],
        "specific_query_list": [],
        "topic_list": [{"topic": "t"}],
    }
    meeting.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meeting, indent=2))
    return path


def test_qmsum_non_utf8_bytes_name_the_file_and_line(tmp_path):
    path = write_meeting(tmp_path / "q" / "test" / "M1.json")
    lines = path.read_bytes().splitlines()
    line = 1 + next(i for i, text in enumerate(lines) if b"hello" in text)
    column = 1 + lines[line - 1].index(b"hello") + 1  # the byte after "h"
    path.write_bytes(path.read_bytes().replace(b"hello", b"h\xe9llo"))
    with pytest.raises(DataError) as info:
        data.load("qmsum", path=tmp_path / "q", splits=("test",))
    assert str(info.value).startswith(f"{path}: line {line}, column {column}: ")
    assert "not UTF-8" in str(info.value) and "0xe9" in str(info.value)


def test_qmsum_item_that_is_not_an_object_names_file_and_line(tmp_path):
    path = write_meeting(
        tmp_path / "q" / "test" / "M1.json",
        general_query_list=[{"query": "Summarize.", "answer": "They met."}, "just a string"],
    )
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines()) if "just a string" in text)
    with pytest.raises(DataError) as info:
        data.load("qmsum", path=tmp_path / "q", splits=("test",))
    assert str(info.value) == (
        f"{path}: line {line}: general_query_list[1] must be an object with 'query' and 'answer', got a string"
    )


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"specific_query_list": [{"query": "q", "answer": "a", "relevant_text_span": [["x", "2"]]}]},
            "specific_query_list[0].relevant_text_span[0] must be a pair of turn numbers",
        ),
        (
            {"meeting_transcripts": [{"speaker": "A", "content": 3}]},
            "meeting_transcripts[0] field 'content' must be a string, got a number",
        ),
        ({"general_query_list": [{"query": "q"}]}, "general_query_list[0] lacks 'answer'"),
        (
            {"general_query_list": {"query": "q"}},
            "general_query_list must be a list, got an object",
        ),
    ],
)
def test_qmsum_fields_are_checked_with_lines(tmp_path, fields, message):
    path = write_meeting(tmp_path / "M2.json", **fields)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        parsers.parse_qmsum_meeting(path, "test")
    assert re.match(re.escape(str(path)) + r": line \d+: ", str(info.value))


def test_qmsum_syntax_error_names_line_and_column(tmp_path):
    path = tmp_path / "M3.json"
    path.write_text('{\n  "meeting_transcripts": [\n    {"speaker": "A" "content": "x"}\n  ]\n}\n')
    with pytest.raises(DataError, match=r"M3.json: line 3, column 21: not valid JSON \(Expecting .,. delimiter\)"):
        parsers.parse_qmsum_meeting(path, "test")


def test_users_own_qmsum_folder_loads_with_each_file_validated(tmp_path, isolated):
    root = tmp_path / "mine"
    for split, names in {"train": ["T1", "T2"], "val": ["V1"], "test": ["Bro001"]}.items():
        for name in names:
            write_meeting(root / split / f"{name}.json")
    meetings = data.load("qmsum", path=root)
    assert {k: [m.meeting_id for m in v] for k, v in meetings.items()} == {
        "train": ["T1", "T2"],
        "val": ["V1"],
        "test": ["Bro001"],
    }
    assert meetings["test"][0].domain == "Academic" and meetings["test"][0].general_queries
    used = data.USED["qmsum"]
    assert (
        used.origin == "path"
        and not used.verified
        and sorted(used.sha256) == ["test/Bro001.json", "train/T1.json", "train/T2.json", "val/V1.json"]
    )
    only_test = data.load("qmsum", path=root, splits=("test",))
    assert list(only_test) == ["test"]
    write_meeting(root / "val" / "V2.json", meeting_transcripts=[])
    with pytest.raises(DataError, match="V2.json: transcript is empty"):
        data.load("qmsum", path=root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"holds no files matching '\*/\*.json'"):
        data.load("qmsum", path=empty)


def test_qmsum_meeting_errors(tmp_path):
    root = tmp_path / "qmsum"
    (root / "test").mkdir(parents=True)
    (root / "train").mkdir()
    (root / "val").mkdir()
    for split in ("train", "val"):
        (root / split / "A.json").write_text(
            '{"meeting_transcripts": [{"speaker": "a", "content": "hi"}],'
            '"general_query_list": [], "specific_query_list": []}'
        )
    (root / "test" / "B.json").write_text(
        '{"meeting_transcripts": [], "general_query_list": [],"specific_query_list": []}'
    )
    with pytest.raises(DataError, match="B.json: transcript is empty"):
        registry.get("qmsum").parser(root)
    (root / "test" / "B.json").write_text('{"general_query_list": []}')
    with pytest.raises(DataError, match="B.json: missing field 'meeting_transcripts'"):
        registry.get("qmsum").parser(root)


def test_hf_dataset_offline_is_one_clear_error(isolated, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match="'boolq' not available.*LABKIT_DATA_MIRROR/boolq"):
        data.load("boolq")


def test_hf_dataset_from_a_mirror_folder(isolated, monkeypatch):
    folder = isolated / "m" / "biosses"
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text(
        '{"sentence1": "a", "sentence2": "b", "score": 2.5}\n{"sentence1": "c", "sentence2": "d", "score": 0.5}\n'
    )
    monkeypatch.setenv("LABKIT_DATA_MIRROR", str(isolated / "m"))
    frame = data.load("biosses")
    assert list(frame.score) == [2.5, 0.5]
    assert data.USED["biosses"].origin == "mirror"
