"""Inputs that do not line up are refused before any training: one `error:` line naming the file (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pseudo_kd_hf.cli import main


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in lines)
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:]
    return lines[-1]


def cpu_flags(model: Path, output_dir: Path, *extra: str | Path) -> list[str]:
    """The data is read before the model: an empty folder stands in for the student where the run stops earlier."""
    flags = ["--model_name_or_path", model, "--output_dir", output_dir, "--use_cpu", "--report_to", "none", *extra]
    return [str(flag) for flag in flags]


def test_ps_kd_names_the_file_and_the_repeated_idx(tmp_path: Path, capsys) -> None:
    labels = ("entailment", "not_entailment")
    rows = [f"{i if i != 5 else 2}\tA {i}\tB {i}\t{labels[i % 2]}" for i in range(8)]
    train = write_lines(tmp_path / "glue" / "RTE" / "train.tsv", ["index\tsentence1\tsentence2\tlabel", *rows])
    flags = ["--task_name", "rte", "--data_dir", tmp_path / "glue", "--do_train", "--regularization", "ps_kd"]
    assert main(cpu_flags(tmp_path, tmp_path / "run", *flags)) == 2
    err = one_line_error(capsys)
    assert f"{train}, lines 4 and 7, repeat idx 2" in err and err.startswith("error: --regularization ps_kd")


def test_ps_kd_names_the_own_file_and_its_lines(tmp_path: Path, capsys) -> None:
    train = write_lines(tmp_path / "train.csv", ["sentence,label,idx", "a,x,0", "b,y,1", "c,x,1"])
    flags = ["--train_file", train, "--do_train", "--regularization", "ps_kd"]
    assert main(cpu_flags(tmp_path, tmp_path / "run", *flags)) == 2
    assert f"--train_file {train}, line 3 and line 4, repeat idx 1" in one_line_error(capsys)


def write_stsb(data_dir: Path, bad_line: str | None = None) -> None:
    """STS-B in the original layout (text in fields 7 and 8, the score last); `bad_line` replaces dev's last row."""
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    rows = [f"{i}\tmain\tf\t2012\t{i}\ts\ts\tA {i}\tB {i}\t{i % 5}.0" for i in range(8)]
    write_lines(data_dir / "STS-B" / "train.tsv", [header, *rows])
    write_lines(data_dir / "STS-B" / "dev.tsv", [header, *rows[:3], *([bad_line] if bad_line else rows[3:4])])


@pytest.fixture(scope="module")
def two_label_student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    """A tiny fine-tuned checkpoint: its classifier head has two labels (CoLA's count, not STS-B's one)."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    from tests.helpers.glue_models import save_tiny_student

    folder = tmp_path_factory.mktemp("models")
    encoder = save_tiny_student(folder / "encoder", minilm_path)
    BertForSequenceClassification.from_pretrained(encoder, num_labels=2).save_pretrained(folder / "two_labels")
    AutoTokenizer.from_pretrained(encoder).save_pretrained(folder / "two_labels")
    return folder / "two_labels"


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        (None, "has a classifier head for 2 labels, stsb has 1: pass --ignore_mismatched_sizes"),
        ("3\tmain\tf\t2012\t3\ts\ts\tA\tB\t7.5", "dev.tsv, line 5: expected a float score in [0, 5]"),
    ],
    ids=["head", "file"],
)
def test_suite_checks_every_task_before_the_first_trains(
    two_label_student: Path, tmp_path: Path, capsys, bad_line: str | None, expected: str
) -> None:
    """CoLA comes first in the suite; STS-B's problem must stop it before CoLA trains."""
    from tests.test_cli import write_cola

    data_dir = tmp_path / "glue"
    write_cola(data_dir)
    write_stsb(data_dir, bad_line)
    flags = ["--task_name", "all", "--data_dir", data_dir, "--do_train", "--do_eval", "--max_steps", "1"]
    flags += ["--max_seq_length", "32", "--per_device_train_batch_size", "4"]
    assert main(cpu_flags(two_label_student, tmp_path / "suite", *flags)) == 2
    err = one_line_error(capsys)
    assert err.startswith("error: --task_name all: stsb, checked before any task trained:") and expected in err
    assert not (tmp_path / "suite" / "cola" / "all_results.json").exists()
    assert not list((tmp_path / "suite").glob("cola/checkpoint-*"))


def test_suite_checks_the_teachers_labels_for_every_task(tmp_path: Path, minilm_path: Path, capsys) -> None:
    from tests.helpers.glue_models import save_tiny_student, save_tiny_teacher
    from tests.test_cli import write_cola

    student = save_tiny_student(tmp_path / "student", minilm_path)  # no head: any task's fits
    teacher = save_tiny_teacher(tmp_path / "teacher", ["unacceptable", "acceptable"])  # CoLA's labels
    data_dir = tmp_path / "glue"
    write_cola(data_dir)
    write_stsb(data_dir)
    flags = ["--task_name", "all", "--data_dir", data_dir, "--do_train", "--max_steps", "1"]
    flags += ["--regularization", "kd", "--teacher_name_or_path", teacher]
    assert main(cpu_flags(student, tmp_path / "suite", *flags)) == 2
    err = one_line_error(capsys)
    assert err.startswith(
        f"error: --task_name all: stsb, checked before any task trained: --teacher_name_or_path {teacher}"
    )
    assert "The teacher has 2 labels but the student has 1" in err
    assert not (tmp_path / "suite" / "cola" / "all_results.json").exists()


def test_suite_refuses_other_settings_for_a_finished_task_before_any_task_trains(
    tmp_path: Path, minilm_path: Path, capsys
) -> None:
    """A finished task's results would be packaged as this command's: its recorded settings are checked too."""
    from tests.helpers.glue_models import save_tiny_student
    from tests.test_cli import write_cola

    student = save_tiny_student(tmp_path / "student", minilm_path)
    data_dir = tmp_path / "glue"
    write_cola(data_dir)
    flags = ["--task_name", "all", "--data_dir", data_dir, "--do_train", "--max_steps", "1"]
    flags += ["--max_seq_length", "32", "--per_device_train_batch_size", "4"]
    assert main(cpu_flags(student, tmp_path / "suite", *flags)) == 0
    assert main(cpu_flags(student, tmp_path / "suite", *flags)) == 0  # the same command: finished
    capsys.readouterr()
    assert main(cpu_flags(student, tmp_path / "suite", *flags, "--learning_rate", "1e-3")) == 2
    err = one_line_error(capsys)
    assert err.startswith("error: --task_name all: cola, checked before any task trained:")
    assert "--learning_rate 5e-05 recorded, 0.001 now" in err


def test_ps_kd_names_the_named_datasets_rows(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "dataset"
    write_lines(folder / "train.csv", ["sentence,label,idx", "a,x,0", "b,y,1", "c,x,1"])
    flags = ["--dataset_name", folder, "--do_train", "--regularization", "ps_kd"]
    assert main(cpu_flags(tmp_path, tmp_path / "run", *flags)) == 2
    assert f"--dataset_name {folder} (train split), rows 2 and 3, repeat idx 1" in one_line_error(capsys)
