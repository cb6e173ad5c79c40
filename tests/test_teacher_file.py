"""Teacher logits as a file: the format, the console script, and the refusals of a file made for other data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig

from pseudo_kd_hf import TEACHER_LOGITS_COLUMN
from pseudo_kd_hf.glue.data import load_glue_task
from pseudo_kd_hf.glue.tasks import get_task
from pseudo_kd_hf.teacher import add_teacher_logits, teacher_label_order
from pseudo_kd_hf.teacher_file import (
    TeacherLogitsFileError,
    attach_teacher_logits,
    main,
    read_teacher_logits_file,
    row_digests,
    texts_hash,
    write_teacher_logits_file,
)
from tests.helpers.glue_models import TEACHER_WORDS, save_tiny_student, save_tiny_teacher

RTE = get_task("rte")
TRAIN_ROWS = 20


def sentence(row: int, length: int) -> str:
    return " ".join(TEACHER_WORDS[(row * 7 + k * 3) % len(TEACHER_WORDS)] for k in range(length))


@pytest.fixture
def glue_dir(tmp_path: Path) -> Path:
    """RTE's training file in the original layout; sentences of varied length, so batches need padding."""
    rows = [
        f"{i}\t{sentence(i, 3 + i % 7)}\t{sentence(i + 1, 2 + i % 3)}\t{RTE.label_names[i % 2]}"
        for i in range(TRAIN_ROWS)
    ]
    folder = tmp_path / "glue_data" / "RTE"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("\n".join(["index\tsentence1\tsentence2\tlabel", *rows]) + "\n")
    return tmp_path / "glue_data"


@pytest.fixture
def teacher_dir(tmp_path: Path) -> Path:
    """A tiny teacher whose labels are RTE's in reverse order (its logit columns must be swapped), with weights
    scaled up so that its logits differ from example to example."""
    path = save_tiny_teacher(tmp_path / "teacher", list(reversed(RTE.label_names)))
    model = AutoModelForSequenceClassification.from_pretrained(path)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.5)
    model.save_pretrained(path)
    return path


def write_logits(glue_dir: Path, teacher_dir: Path, output_file: Path, *extra: str) -> int:
    flags = ["--task_name", "rte", "--data_dir", glue_dir, "--teacher_name_or_path", teacher_dir]
    flags += ["--output_file", output_file, "--max_seq_length", "16", "--per_device_eval_batch_size", "4", *extra]
    return main([str(flag) for flag in flags])


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one `error:` line, last on stderr (progress bars may come before it)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in lines)
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:]
    return lines[-1]


@pytest.fixture
def logits_file(glue_dir: Path, teacher_dir: Path, tmp_path: Path) -> Path:
    assert write_logits(glue_dir, teacher_dir, tmp_path / "out" / "rte.safetensors") == 0
    return tmp_path / "out" / "rte.safetensors"


@pytest.fixture
def train(glue_dir: Path) -> Dataset:
    return load_glue_task("rte", glue_dir)["train"]


def attach(dataset: Dataset, logits_file: Path, **overrides) -> Dataset:
    options = {"task_name": "rte", "label_names": RTE.label_names, "text_columns": RTE.text_columns, **overrides}
    return attach_teacher_logits(dataset, logits_file, **options)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_round_trip(tmp_path: Path) -> None:
    dataset = Dataset.from_dict({"sentence": ["a b", "c", "d e f"], "idx": [4, 7, 9]})
    digests = row_digests(dataset, ["sentence"])
    logits = torch.randn(3, 2)
    path = write_teacher_logits_file(
        tmp_path / "cola.safetensors",
        task_name="cola",
        split="train",
        idx=torch.tensor(dataset["idx"]),
        logits=logits,
        row_digests=digests,
        label_names=("unacceptable", "acceptable"),
        teacher_fingerprint="f" * 64,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["cola.safetensors"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # readable like any new file, not private
    file = read_teacher_logits_file(path)
    assert (file.task_name, file.split, file.num_rows, file.teacher_fingerprint) == ("cola", "train", 3, "f" * 64)
    assert file.label_names == ("unacceptable", "acceptable")
    assert (
        file.idx.tolist() == [4, 7, 9] and torch.equal(file.logits, logits) and torch.equal(file.row_digests, digests)
    )
    assert file.texts_hash == texts_hash(dataset, ["sentence"])
    assert texts_hash(dataset.select([1, 0, 2]), ["sentence"]) != file.texts_hash  # the order is part of the hash
    assert texts_hash(Dataset.from_dict({"s1": ["a"], "s2": ["b c"]}), ["s1", "s2"]) != texts_hash(
        Dataset.from_dict({"s1": ["a b"], "s2": ["c"]}), ["s1", "s2"]
    )


def test_attached_column_equals_the_in_memory_cache(logits_file: Path, train: Dataset, teacher_dir: Path) -> None:
    file = read_teacher_logits_file(logits_file)
    assert (file.task_name, file.split, file.num_rows, file.label_names) == (
        "rte",
        "train",
        TRAIN_ROWS,
        RTE.label_names,
    )
    assert file.texts_hash == texts_hash(train, RTE.text_columns)

    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    task_config = PretrainedConfig(id2label=dict(enumerate(RTE.label_names)))
    order = teacher_label_order(teacher.config, task_config)
    assert order == [1, 0]
    in_memory = add_teacher_logits(train, teacher, tokenizer, RTE.text_columns, max_length=16, label_order=order)
    attached = attach(train, logits_file)
    assert attached.features == in_memory.features
    torch.testing.assert_close(
        torch.tensor(attached[TEACHER_LOGITS_COLUMN]), torch.tensor(in_memory[TEACHER_LOGITS_COLUMN]), atol=1e-5, rtol=0
    )
    assert len({tuple(row) for row in attached[TEACHER_LOGITS_COLUMN]}) == TRAIN_ROWS  # rows tell examples apart

    by_idx = dict(zip(attached["idx"], attached[TEACHER_LOGITS_COLUMN], strict=True))
    shuffled = attach(train.shuffle(seed=0), logits_file)
    assert shuffled["idx"] != train["idx"]
    assert all(by_idx[i] == row for i, row in zip(shuffled["idx"], shuffled[TEACHER_LOGITS_COLUMN], strict=True))
    subset = attach(train.select([17, 3, 5]), logits_file, allow_subset=True)
    assert subset[TEACHER_LOGITS_COLUMN] == [by_idx[17], by_idx[3], by_idx[5]]


def same(train: Dataset) -> Dataset:
    return train


def first_ten_shifted(train: Dataset) -> Dataset:
    """Ten rows whose idx run past the file's last one (15..24 of a file holding 0..19)."""
    return train.select(range(10)).map(lambda row: {"idx": row["idx"] + 15})


def edited_from_idx_13(train: Dataset) -> Dataset:
    return train.map(lambda row: {"sentence2": row["sentence2"] + ("!" if row["idx"] >= 13 else "")})


@pytest.mark.parametrize(
    ("dataset", "options", "message"),
    [
        (same, {"task_name": "mrpc"}, "made for task rte (train split), not mrpc (train split): another task."),
        (same, {"label_names": tuple(reversed(RTE.label_names))}, "the student's are ['not_entailment', 'entailment']"),
        (
            lambda train: train.select(range(10)),
            {},
            "holds 20 training rows, the training set has 10: another row count",
        ),
        (first_ten_shifted, {"allow_subset": True}, "none for idx 20 (5 of the training set's 10 examples)"),
        (edited_from_idx_13, {}, "(7 rows, first idx 13; text hash): another data file."),
    ],
    ids=["task", "label_order", "row_count", "subset_beyond_the_file", "text_hash"],
)
def test_refuses_a_file_made_for_other_data(logits_file: Path, train: Dataset, dataset, options, message) -> None:
    with pytest.raises(TeacherLogitsFileError) as error:
        attach(dataset(train), logits_file, **options)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"--teacher_logits {logits_file}")
    assert message in str(error.value)


def test_refuses_a_file_in_another_format(tmp_path: Path) -> None:
    save_file({"logits": torch.zeros(2, 2)}, tmp_path / "plain.safetensors")
    (tmp_path / "text.safetensors").write_text("not safetensors")
    with pytest.raises(TeacherLogitsFileError, match="not written by pseudo-kd-glue-teacher-logits"):
        read_teacher_logits_file(tmp_path / "plain.safetensors")
    with pytest.raises(TeacherLogitsFileError, match="cannot be read"):
        read_teacher_logits_file(tmp_path / "text.safetensors")


def test_console_script_never_overwrites_silently(logits_file: Path, glue_dir: Path, teacher_dir: Path, capsys) -> None:
    before = logits_file.read_bytes()
    first = read_teacher_logits_file(logits_file)
    capsys.readouterr()
    assert write_logits(glue_dir, teacher_dir, logits_file) == 2
    err = one_line_error(capsys)
    assert f"--output_file {logits_file} exists" in err and "--overwrite" in err
    assert logits_file.read_bytes() == before
    logits_file.write_bytes(b"stale")
    assert write_logits(glue_dir, teacher_dir, logits_file, "--overwrite") == 0
    again = read_teacher_logits_file(logits_file)  # the same teacher and data give the same content
    assert torch.equal(again.logits, first.logits) and again.texts_hash == first.texts_hash
    assert again.teacher_fingerprint == first.teacher_fingerprint


def test_console_script_refuses_a_teacher_of_other_labels(glue_dir: Path, tmp_path: Path, capsys) -> None:
    teacher = save_tiny_teacher(tmp_path / "nli_teacher", ["entailment", "neutral", "contradiction"])
    assert write_logits(glue_dir, teacher, tmp_path / "rte.safetensors") == 2
    err = one_line_error(capsys)
    assert f"--teacher_name_or_path {teacher}" in err and "3 labels" in err
    assert not (tmp_path / "rte.safetensors").exists()


def test_console_script_reads_only_the_training_split_and_names_a_missing_teacher(
    glue_dir: Path, teacher_dir: Path, tmp_path: Path, capsys
) -> None:
    (glue_dir / "RTE" / "test.tsv").write_text("")  # an empty file the script does not need
    assert write_logits(glue_dir, teacher_dir, tmp_path / "rte.safetensors") == 0
    capsys.readouterr()
    assert write_logits(glue_dir, tmp_path / "runs" / "absent", tmp_path / "other.safetensors") == 2
    assert f"--teacher_name_or_path {tmp_path / 'runs' / 'absent'}: no such folder" in one_line_error(capsys)


def test_console_script_refuses_a_diverged_teacher(glue_dir: Path, teacher_dir: Path, tmp_path: Path, capsys) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("inf")  # inf * 0-centred features: NaN or inf on every row
    model.save_pretrained(teacher_dir)
    assert write_logits(glue_dir, teacher_dir, tmp_path / "rte.safetensors") == 1
    err = one_line_error(capsys)
    assert err.startswith(f"error: --teacher_name_or_path {teacher_dir}: the teacher's logits are not finite")
    assert f"for {TRAIN_ROWS} of {TRAIN_ROWS} training examples (idx 0, 1, 2, 3, 4, ...)" in err
    assert not (tmp_path / "rte.safetensors").exists()


def rewrite(logits_file: Path, path: Path, metadata: dict[str, str | None], **tensors: torch.Tensor) -> Path:
    """A copy of `logits_file` with header keys replaced (None: removed) and tensors replaced."""
    with safe_open(str(logits_file), framework="pt") as file:
        header = {**file.metadata(), **metadata}
        content = {name: file.get_tensor(name) for name in file.keys()}
    save_file({**content, **tensors}, path, metadata={key: value for key, value in header.items() if value is not None})
    return path


@pytest.mark.parametrize(
    ("metadata", "tensors", "message"),
    [
        ({"texts_hash": None}, {}, "the header lacks texts_hash"),
        ({"label_names": '["entailment", '}, {}, "the header's label_names is not JSON"),
        ({"label_names": '{"a": 1}'}, {}, "label_names is not a list of names"),
        ({"num_rows": "many"}, {}, "num_rows is not a count"),
        ({}, {"logits": torch.zeros(TRAIN_ROWS, 3)}, f"logits is shaped [{TRAIN_ROWS}, 3], the header"),
        ({}, {"logits": torch.zeros(TRAIN_ROWS - 1, 2)}, "logits is shaped"),
        ({}, {"idx": torch.zeros(TRAIN_ROWS, dtype=torch.int64)}, "an idx appears in more than one row"),
        ({}, {"row_digests": torch.zeros(TRAIN_ROWS, 8, dtype=torch.uint8)}, "do not match its texts_hash"),
        (
            {},
            {"logits": torch.zeros(TRAIN_ROWS, 2).index_fill_(0, torch.tensor([3, 7]), float("nan"))},
            "not finite (NaN or inf) for 2 of 20 training examples (idx 3, 7)",
        ),
    ],
    ids=["missing_key", "bad_json", "not_a_list", "num_rows", "more_columns", "fewer_rows", "idx", "digests", "nan"],
)
def test_refuses_a_damaged_file(logits_file: Path, tmp_path: Path, metadata, tensors, message) -> None:
    damaged = rewrite(logits_file, tmp_path / "damaged.safetensors", metadata, **tensors)
    with pytest.raises(TeacherLogitsFileError) as error:
        read_teacher_logits_file(damaged)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"--teacher_logits {damaged}: ")
    assert message in str(error.value)


def test_training_refuses_a_non_finite_file_before_it_trains(
    logits_file: Path, glue_dir: Path, minilm_path: Path, tmp_path: Path, capsys
) -> None:
    from pseudo_kd_hf.cli import main as glue_main

    student = save_tiny_student(tmp_path / "student", minilm_path)
    damaged = rewrite(logits_file, tmp_path / "nan.safetensors", {}, logits=torch.full((TRAIN_ROWS, 2), float("nan")))
    flags = ["--model_name_or_path", student, "--task_name", "rte", "--data_dir", glue_dir, "--do_train"]
    flags += ["--regularization", "kd", "--teacher_logits", damaged, "--output_dir", tmp_path / "run"]
    flags += ["--use_cpu", "--report_to", "none", "--max_steps", "1"]
    capsys.readouterr()
    assert glue_main([str(flag) for flag in flags]) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"error: --teacher_logits {damaged}: the teacher's logits are not finite")
    assert not list((tmp_path / "run").glob("checkpoint-*")) and not (tmp_path / "run" / "train_results.json").exists()
