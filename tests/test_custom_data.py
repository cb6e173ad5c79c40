"""custom_data: run_glue-style --train_file / --validation_file / --test_file, CSV or JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pseudo_kd_hf.custom_data import DataFileError, load_data_files, text_columns_of


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_class_names_are_numbered_in_sorted_order_and_idx_is_added(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", "sentence,label", ["good film,pos", "bad film,neg", "fine,pos"])
    dev = write_csv(tmp_path / "dev.csv", "sentence,label", ["awful,neg"])
    test = write_csv(tmp_path / "test.csv", "sentence", ["what a film"])
    data, task = load_data_files(str(train), str(dev), str(test))
    assert task.label_names == ("neg", "pos") and task.text_columns == ("sentence",) and task.num_labels == 2
    assert data["train"]["label"] == [1, 0, 1] and data["validation"]["label"] == [0]
    assert data["train"]["idx"] == [0, 1, 2] and data["test"]["label"] == [-1]


def test_json_lines_pairs_and_regression(tmp_path: Path) -> None:
    rows = [{"sentence1": "a", "sentence2": "b", "label": 0.5}, {"sentence1": "c", "sentence2": "d", "label": 4.0}]
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    data, task = load_data_files(str(train), None, None)
    assert task.is_regression and task.num_labels == 1 and task.text_columns == ("sentence1", "sentence2")
    assert data["train"]["label"] == [0.5, 4.0]


def test_integer_ids_keep_their_order(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", "premise,hypothesis,label", ["a,b,10", "c,d,2", "e,f,2"])
    data, task = load_data_files(str(train), None, None)
    assert task.label_names == ("2", "10") and task.text_columns == ("premise", "hypothesis")
    assert data["train"]["label"] == [1, 0, 0]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"train_file": "absent.csv"}, "--train_file .*absent.csv: no such file"),
        ({"train_file": "train.csv", "validation_file": "dev.jsonl"}, "all be CSV or all JSON lines"),
        ({"train_file": "train.txt"}, "--train_file .*use a .csv"),
        ({"validation_file": "dev.csv"}, "--train_file is needed"),
        ({"train_file": "train.csv", "validation_file": "unknown.csv"}, "--validation_file .* label\\(s\\) maybe"),
        ({"train_file": "nolabel.csv"}, "no 'label' column"),
    ],
)
def test_bad_files_name_the_flag(tmp_path: Path, files: dict[str, str], message: str) -> None:
    write_csv(tmp_path / "train.csv", "sentence,label", ["x,yes", "y,no"])
    write_csv(tmp_path / "dev.csv", "sentence,label", ["x,yes"])
    write_csv(tmp_path / "unknown.csv", "sentence,label", ["x,maybe"])
    write_csv(tmp_path / "nolabel.csv", "sentence", ["x"])
    (tmp_path / "dev.jsonl").write_text('{"sentence": "x", "label": "yes"}\n')
    (tmp_path / "train.txt").write_text("x\n")
    arguments = {"train_file": None, "validation_file": None, "test_file": None}
    arguments.update({flag: str(tmp_path / name) for flag, name in files.items()})
    with pytest.raises(DataFileError, match=message):
        load_data_files(**arguments)


def test_text_columns_rule() -> None:
    assert text_columns_of(["label", "text"]) == ("text",)
    assert text_columns_of(["question", "passage", "label", "extra"]) == ("question", "passage")
    with pytest.raises(DataFileError, match="no text column"):
        text_columns_of(["label", "idx"])
