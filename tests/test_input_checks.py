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
