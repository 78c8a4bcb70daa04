"""Readers and the bad-input errors: each names the file, the line and the field, in one line."""

from __future__ import annotations

import json

import pytest

from lmtransfer.config.schema import DataConfig
from lmtransfer.core.errors import DataError
from lmtransfer.data.tables import load_classification, read_bbc_demo, read_hf, read_table
from tests.conftest import write_csv


def test_csv_tsv_jsonl_with_column_mapping(tmp_path):
    write_csv(tmp_path / "a.csv", [("good film", "pos"), ('a "quoted",\nmultiline text', "neg")], ("review", "y"))
    (tmp_path / "a.tsv").write_text('sentence\tlabel\ngood film\t1\nit \'s "fine"\t0\n', encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"t": "good film", "l": 1}\n\n{"t": "bad", "l": 0}\n', encoding="utf-8")
    csv_split = read_table(tmp_path / "a.csv", "review", "y")
    assert csv_split.texts[1] == 'a "quoted",\nmultiline text' and csv_split.labels == ["pos", "neg"]
    assert csv_split.lines == [2, 3]
    tsv_split = read_table(tmp_path / "a.tsv", "sentence", "label")
    assert tsv_split.texts == ["good film", 'it \'s "fine"'] and tsv_split.labels == ["1", "0"]
    jsonl_split = read_table(tmp_path / "a.jsonl", "t", "l")
    assert jsonl_split.labels == ["1", "0"] and jsonl_split.lines == [1, 3]


def test_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbfsentence\tlabel\r\ngood\t1\r\nbad\t0\r\n")
    split = read_table(path, "sentence", "label")
    assert split.texts == ["good", "bad"] and split.labels == ["1", "0"]


def error_of(func, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_column(tmp_path):
    path = write_csv(tmp_path / "train.csv", [("good", "pos")], ("sentence", "label"))
    message = error_of(read_table, path, "text", "label")
    assert message == f"{path}: line 2: field 'text': missing (columns: sentence, label)"


def test_empty_text(tmp_path):
    path = write_csv(tmp_path / "train.csv", [("good", "pos"), ("   ", "neg")])
    assert error_of(read_table, path) == f"{path}: line 3: field 'text': empty text"


def test_not_utf8(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"text,label\ngood,pos\ncaf\xe9 au lait,neg\n")
    assert error_of(read_table, path) == f"{path}: line 3: bytes that are not UTF-8 (0xe9 at column 4)"


def test_ragged_row_and_bad_json(tmp_path):
    ragged = tmp_path / "r.csv"
    ragged.write_text("text,label\ngood,pos\nbad,neg,extra\n", encoding="utf-8")
    assert error_of(read_table, ragged) == f"{ragged}: line 3: 3 fields, but the header has 2"
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"text": "a", "label": 1}\n{"text": "b", "label"\n', encoding="utf-8")
    assert error_of(read_table, broken).startswith(f"{broken}: line 2: not valid JSON")
    empty = tmp_path / "e.csv"
    empty.write_text("", encoding="utf-8")
    assert "empty file" in error_of(read_table, empty)


def test_dev_label_never_seen_in_training(tmp_path):
    train = write_csv(tmp_path / "train.csv", [("good", "pos"), ("bad", "neg")] * 3)
    dev = write_csv(tmp_path / "dev.csv", [("fine", "pos"), ("meh", "neutral")])
    test = write_csv(tmp_path / "test.csv", [("fine", "pos")])
    config = DataConfig(train=str(train), dev=str(dev), test=str(test))
    message = error_of(load_classification, config)
    assert (
        message
        == f"{dev}: line 3: field 'label': label 'neutral' never appears in the training data (labels: neg, pos)"
    )


def test_split_off_dev_and_test_is_reproducible(tmp_path):
    rows = [(f"text number {i}", "ab"[i % 2]) for i in range(100)]
    config = DataConfig(train=str(write_csv(tmp_path / "t.csv", rows)), split_seed=3)
    one, two = load_classification(config), load_classification(config)
    assert (len(one.train), len(one.dev), len(one.test)) == (80, 10, 10)
    assert one.dev.texts == two.dev.texts and one.test.texts == two.test.texts
    assert not set(one.dev.texts) & set(one.train.texts)
    assert one.labels == ["a", "b"]


def test_hf_dataset_from_disk(tmp_path):
    import datasets

    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"sentence": ["good", "bad", "fine"], "label": [1, 0, 1]}, features),
            "validation": datasets.Dataset.from_dict({"sentence": ["great"], "label": [1]}, features),
        }
    )
    splits.save_to_disk(str(tmp_path / "ds"))
    split = read_hf(str(tmp_path / "ds"), None, "train", "sentence", "label")
    assert split.texts == ["good", "bad", "fine"] and split.labels == ["pos", "neg", "pos"]
    with pytest.raises(DataError, match="field 'text': missing"):
        read_hf(str(tmp_path / "ds"), None, "train", "text", "label")


@pytest.mark.slow
def test_bbc_demo():
    split = read_bbc_demo()
    assert len(split) == 2225
    assert sorted(set(split.labels)) == ["business", "entertainment", "politics", "sports", "tech"]
    data = load_classification(DataConfig())
    assert len(data.train) + len(data.dev) + len(data.test) == 2225
    assert json.dumps(data.dev.texts[:3]) == json.dumps(load_classification(DataConfig()).dev.texts[:3])


def test_hf_dataset_from_local_data_files(tmp_path):
    import datasets

    folder = tmp_path / "repo"
    folder.mkdir()
    train = {"text": [f"text {i}" for i in range(10)], "label": ["pos", "neg"] * 5}
    datasets.Dataset.from_dict(train).to_parquet(folder / "train.parquet")
    datasets.Dataset.from_dict({"text": ["fine"], "label": ["pos"]}).to_parquet(folder / "validation.parquet")
    assert read_hf(str(folder), None, "validation", "text", "label").texts == ["fine"]
    data = load_classification(DataConfig(hf=str(folder), test_fraction=0.2))
    assert data.dev.labels == ["pos"] and (len(data.train), len(data.test)) == (8, 2)
