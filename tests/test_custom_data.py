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


def test_na_like_text_stays_text(tmp_path: Path) -> None:
    """pandas would read these as missing values (then a tokenizer traceback); the GLUE TSV reader keeps them."""
    train = write_csv(tmp_path / "train.csv", "sentence,label", ["NA,pos", "null,neg", "nan,pos", "None,neg", ",pos"])
    data, task = load_data_files(str(train), None, None, cache_dir=str(tmp_path / "cache"))
    assert data["train"]["sentence"] == ["NA", "null", "nan", "None", ""]
    label_file = write_csv(tmp_path / "na_labels.csv", "sentence,label", ["a,NA", "b,None"])
    _, task = load_data_files(str(label_file), None, None, cache_dir=str(tmp_path / "cache"))
    assert task.label_names == ("NA", "None")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"train_file": ("train.jsonl", '{"sentence": "a", "label": "x"}\n\n{"sentence": "b", "label": \n')},
            "--train_file .*train.jsonl: line 3 is not valid JSON",
        ),
        (
            {"train_file": ("train.csv", "sentence,label\na,pos\nb,\n")},
            "--train_file .*train.csv, line 3: an empty 'label'",
        ),
        ({"train_file": ("train.csv", 'sentence,label\na,1\n\n"b\nc",\nd,0\n')}, "train.csv, line 4: an empty 'label'"),
        (
            {"train_file": ("train.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b", "label": null}\n')},
            "train.jsonl, line 2: an empty 'label' cell",
        ),
        (
            {"train_file": ("train.jsonl", '{"sentence": "a", "label": 1}\n{"label": 0}\n')},
            "train.jsonl, line 2: no text in the 'sentence' cell",
        ),
        (
            {
                "train_file": ("train.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b", "label": 0}\n'),
                "validation_file": ("dev.jsonl", '{"sentence": "a", "label": "pos"}\n'),
            },
            "--validation_file .*dev.jsonl has labels that are names, --train_file .*train.jsonl has numbers",
        ),
        (
            {
                "train_file": ("train.csv", "sentence,label\na,1\nb,0\n"),
                "test_file": ("test.csv", "sentence,label\nc,x\n"),
            },
            "--test_file .*test.csv has labels that are names",
        ),
        (
            {
                "train_file": ("train.csv", "sentence,label\na,1\nb,0\n"),
                "validation_file": ("dev.csv", "sentence\na\n"),
            },
            "--validation_file .*dev.csv has no 'label' column",
        ),
        (
            {"train_file": ("train.csv", "sentence,label\na,1\n"), "test_file": ("test.csv", "sentence,extra\na,1\n")},
            "--test_file .*test.csv has column\\(s\\) extra that --train_file .*train.csv lacks",
        ),
        ({"train_file": ("train.csv", "sentence,label\na,1\nb,0,2\n")}, "train.csv: cannot be read as CSV .*line 3"),
    ],
)
def test_broken_files_are_named_with_the_line(tmp_path: Path, files: dict[str, tuple[str, str]], message: str) -> None:
    arguments = {"train_file": None, "validation_file": None, "test_file": None}
    for flag, (name, text) in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        arguments[flag] = str(tmp_path / name)
    with pytest.raises(DataFileError, match=message):
        load_data_files(**arguments, cache_dir=str(tmp_path / "cache"))


def test_test_file_labels_may_be_left_empty(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", "sentence,label", ["a,1", "b,0"])
    test = write_csv(tmp_path / "test.csv", "sentence,label", ["c,", "d,1"])
    data, _ = load_data_files(str(train), None, str(test), cache_dir=str(tmp_path / "cache"))
    assert data["test"]["label"] == [-1, 1]


def test_cli_refuses_a_broken_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pseudo_kd_hf.cli import main

    train = write_csv(tmp_path / "train.csv", "sentence,label", ["a,pos", "b,"])
    flags = ["--model_name_or_path", str(tmp_path), "--train_file", str(train), "--do_train"]
    assert main([*flags, "--output_dir", str(tmp_path / "run"), "--use_cpu", "--report_to", "none"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: --train_file {train}, line 3: an empty 'label' cell")
