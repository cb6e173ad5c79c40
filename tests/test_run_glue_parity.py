"""What run_glue.py writes and accepts, from the runner too: result keys, the model card, --dataset_name."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from pseudo_kd_hf.cli import main
from tests.helpers.glue_models import TEACHER_WORDS, save_tiny_student, save_tiny_teacher

LABELS = ("happy", "sad", "angry")


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("models") / "student", minilm_path)


def _rows(count: int, offset: int = 0, labelled: bool = True) -> list[dict]:
    def sentence(row: int) -> str:
        return " ".join(TEACHER_WORDS[(row * 7 + k * 3) % len(TEACHER_WORDS)] for k in range(5))

    return [
        {"premise": sentence(i + offset), "hypothesis": sentence(i), **({"label": LABELS[i % 3]} if labelled else {})}
        for i in range(count)
    ]


def _write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _flags(student: Path, output_dir: Path, *extra: str | Path) -> list[str]:
    flags = [
        *("--model_name_or_path", student, "--output_dir", output_dir, "--use_cpu", "--report_to", "none"),
        *("--max_seq_length", "32", "--per_device_train_batch_size", "8", "--disable_tqdm", "true"),
        *extra,
    ]
    return [str(flag) for flag in flags]


def _own_files(folder: Path) -> list[str]:
    train = _write_csv(folder / "train.csv", _rows(24))
    dev = _write_csv(folder / "dev.csv", _rows(9, 1))
    return ["--train_file", str(train), "--validation_file", str(dev)]


@pytest.mark.parametrize("logging_steps", ["2", "500"], ids=["ends-on-a-logging-step", "ends-between-logging-steps"])
def test_train_results_keep_total_flos_and_epoch(student: Path, tmp_path: Path, logging_steps: str) -> None:
    """The printer under --disable_tqdm must not pop total_flos, and the end log must not lose the Trainer's epoch."""
    output_dir = tmp_path / "run"
    flags = _flags(student, output_dir, *_own_files(tmp_path / "data"), "--max_steps", "2")
    assert main([*flags, "--logging_steps", logging_steps, "--do_train", "--do_eval"]) == 0
    for name in ("train_results.json", "all_results.json"):
        results = json.loads((output_dir / name).read_text())
        assert {"total_flos", "epoch", "train_loss", "train_runtime", "train_samples"} <= set(results), name
        assert results["total_flos"] > 0 and results["epoch"] > 0
    assert "ce_loss" not in json.loads((output_dir / "train_results.json").read_text())  # logged, not a result


def test_a_training_run_writes_run_glues_model_card_naming_the_method(
    student: Path, shared_glue_data: Path, tmp_path: Path
) -> None:
    output_dir = tmp_path / "run"
    task = ("--task_name", "rte", "--data_dir", shared_glue_data, "--max_train_samples", "16")
    task += ("--max_eval_samples", "8")
    method = ("--regularization", "pseudo_kd", "--alpha", "0.1", "--beta", "0.2")
    flags = _flags(student, output_dir, *task, "--max_steps", "2", *method)
    assert main([*flags, "--do_train", "--do_eval"]) == 0
    card = (output_dir / "README.md").read_text(encoding="utf-8")
    metadata = card.split("---")[1]
    assert f"base_model: {student}" in metadata and "datasets:\n- glue" in metadata and "language:\n- en" in metadata
    assert "type: text-classification" in metadata and "args: rte" in metadata
    assert "on the GLUE RTE dataset." in card and "\n- Accuracy: " in card  # the dev results
    assert "## Model description\n\nFine-tuned with the label regulariser Pseudo-KD: alpha 0.1, beta 0.2" in card
    assert "Teacher" not in card
    assert "- learning_rate: 5e-05" in card  # the Trainer's hyperparameter list is kept


def test_a_kd_model_card_names_the_teacher(student: Path, tmp_path: Path) -> None:
    teacher = save_tiny_teacher(tmp_path / "teacher", list(LABELS))
    output_dir = tmp_path / "run"
    flags = _flags(student, output_dir, *_own_files(tmp_path / "data"), "--max_steps", "1", "--do_train")
    assert main([*flags, "--regularization", "kd", "--teacher_name_or_path", str(teacher)]) == 0
    card = (output_dir / "README.md").read_text(encoding="utf-8")
    assert "Fine-tuned with the label regulariser KD: alpha" in card and f"Teacher: {teacher}." in card


def _dataset_folder(folder: Path) -> Path:
    """A local dataset repository with two configurations, as `datasets.load_dataset` reads a Hub one."""
    for config, count in (("small", 12), ("large", 24)):
        _write_csv(folder / config / "train.csv", _rows(count))
        _write_csv(folder / config / "validation.csv", _rows(9, 1))
        _write_csv(folder / config / "test.csv", _rows(5, 2, labelled=False))
    configs = "".join(
        f"- config_name: {config}\n  data_files:\n"
        + "".join(f"  - split: {split}\n    path: {config}/{split}.csv\n" for split in ("train", "validation", "test"))
        for config in ("small", "large")
    )
    (folder / "README.md").write_text(f"---\nconfigs:\n{configs}---\n", encoding="utf-8")
    return folder


def test_dataset_name_and_config_read_any_dataset_as_run_glue(student: Path, tmp_path: Path) -> None:
    dataset = _dataset_folder(tmp_path / "my_dataset")
    output_dir = tmp_path / "run"
    flags = _flags(student, output_dir, "--dataset_name", dataset, "--dataset_config_name", "large", "--max_steps", "1")
    assert main([*flags, "--do_train", "--do_eval", "--do_predict"]) == 0
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["train_samples"] == 24 and results["eval_samples"] == 9  # the "large" configuration
    assert {"eval_accuracy", "eval_macro_f1"} <= set(results)
    config = json.loads((output_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "angry", "1": "happy", "2": "sad"}  # sorted, as run_glue numbers them
    predictions = (output_dir / "predict_results_custom.txt").read_text().splitlines()
    assert predictions[0] == "index\tprediction" and len(predictions) == 6
    assert "on the " + str(dataset) + " dataset" in (output_dir / "README.md").read_text(encoding="utf-8")


def test_dataset_name_takes_a_plain_folder_and_use_fast_tokenizer_is_ignored(
    student: Path, tmp_path: Path, caplog
) -> None:
    folder = tmp_path / "folder"
    _write_csv(folder / "train.csv", _rows(12))
    flags = _flags(student, tmp_path / "run", "--dataset_name", folder, "--max_steps", "1", "--do_train")
    with caplog.at_level(logging.INFO, logger="pseudo_kd_hf"):
        assert main([*flags, "--use_fast_tokenizer", "false"]) == 0
    assert json.loads((tmp_path / "run" / "train_results.json").read_text())["train_samples"] == 12
    assert "--use_fast_tokenizer false is ignored: transformers 5 always loads a fast tokenizer." in caplog.text


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--do_eval"], "has no validation split (it has train): name the splits train, validation"),
        (["--do_train", "--dataset_config_name", "nope"], "--dataset_config_name nope: "),
        (["--do_train", "--train_file", "x.csv"], "pass a dataset or files"),
        (["--do_train", "--task_name", "rte"], "pass a GLUE task or your own files"),
    ],
)
def test_dataset_name_bad_input_is_one_line(
    student: Path, extra: list[str], match: str, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "folder"
    _write_csv(folder / "train.csv", _rows(6))
    code = main(_flags(student, tmp_path / "out", "--dataset_name", folder, *extra))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and match in err.splitlines()[-1]


def test_dataset_config_name_needs_dataset_name(tmp_path: Path, capsys) -> None:
    code = main(["--dataset_config_name", "large", "--do_train", "--output_dir", str(tmp_path / "out")])
    assert code == 2 and "--dataset_config_name large needs --dataset_name" in capsys.readouterr().err
