"""Data registry: resolution order, checksums, parsers and their errors."""
import hashlib
import os
from pathlib import Path

import pytest

import labkit.data as data
from labkit.data import registry
from labkit.errors import DataError, DataUnavailableError, ParameterError

MIRROR = os.environ.get("LABKIT_DATA_MIRROR", "")
needs_mirror = pytest.mark.skipif(not any(Path(p, "mqp", "mqp.csv").is_file() for p in MIRROR.split(":") if p),
                                  reason="real data mirror not found (set LABKIT_DATA_MIRROR)")


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


@pytest.mark.parametrize("content, message", [
    ("", "file is empty"),
    ("1,What is flu?,Is flu bad?\n", "row 1 has 3 fields, expected 4"),
    ("1,What is flu?,Is flu bad?,2\n", "row 1, field 'label' must be 0 or 1, got '2'"),
    ("1,What is flu?,,1\n", "row 1, field 'question_2' is empty"),
    ("x,What is flu?,Is flu bad?,1\n", "row 1, field 'dr_id' must be an integer"),
    ("question_1,label\nWhat?,1\n", "header lacks column\\(s\\) question_2"),
    ("question_1,question_2,label\n", "no data rows"),
])
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
    with pytest.raises(DataError, match="row 3, field 'C' must be a positive number"):
        registry.get("chinchilla").parser(path)


def test_qmsum_meeting_errors(tmp_path):
    root = tmp_path / "qmsum"
    (root / "test").mkdir(parents=True)
    (root / "train").mkdir()
    (root / "val").mkdir()
    for split in ("train", "val"):
        (root / split / "A.json").write_text('{"meeting_transcripts": [{"speaker": "a", "content": "hi"}],'
                                             '"general_query_list": [], "specific_query_list": []}')
    (root / "test" / "B.json").write_text('{"meeting_transcripts": [], "general_query_list": [],'
                                          '"specific_query_list": []}')
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
    (folder / "test.jsonl").write_text('{"sentence1": "a", "sentence2": "b", "score": 2.5}\n'
                                       '{"sentence1": "c", "sentence2": "d", "score": 0.5}\n')
    monkeypatch.setenv("LABKIT_DATA_MIRROR", str(isolated / "m"))
    frame = data.load("biosses")
    assert list(frame.score) == [2.5, 0.5]
    assert data.USED["biosses"].origin == "mirror"
