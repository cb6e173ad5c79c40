"""A rerun or resume with other training settings is refused; paths, logging and evaluation settings stay free."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import pytest

from pseudo_kd_hf.arguments import ARGUMENT_CLASSES
from pseudo_kd_hf.cli import main
from pseudo_kd_hf.parsing import build_arguments
from pseudo_kd_hf.run_folder import FREE_SETTINGS, SETTINGS_FILE_NAME, training_settings
from tests.helpers.glue_models import save_tiny_student
from tests.test_cli import assert_one_line_error, run_flags


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("models") / "student", minilm_path)


def train_flags(student: Path, output_dir: Path, glue: Path, *extra: str | Path) -> list[str]:
    flags = ("--data_dir", glue, "--max_train_samples", "16", "--do_train", "--save_steps", "1", *extra)
    return run_flags(student, output_dir, "rte", *flags)


def interrupt(output_dir: Path) -> None:
    """What a run killed after its last checkpoint leaves: checkpoints, no results."""
    for name in ("all_results.json", "train_results.json"):
        (output_dir / name).unlink()


def test_a_finished_run_refuses_other_settings_and_names_both_values(
    student: Path, shared_glue_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    output_dir = tmp_path / "rte"
    flags = train_flags(student, output_dir, shared_glue_data)
    assert main(flags) == 0
    recorded = json.loads((output_dir / SETTINGS_FILE_NAME).read_text())
    assert recorded["learning_rate"] == 5e-05 and "output_dir" not in recorded
    code = main([*flags, "--learning_rate", "1e-3", "--seed", "3"])
    assert_one_line_error(capsys, code, "--learning_rate 5e-05 recorded, 0.001 now; --seed 42 recorded, 3 now")
    assert main([*flags, "--learning_rate", "1e-3"]) == 2
    error = capsys.readouterr().err
    assert f"--output_dir {output_dir} holds a run with other settings" in error
    assert "--overwrite_output_dir" in error and "another --output_dir" in error
    # The same command, and one with other paths, logging or evaluation settings, is the finished run.
    moved = tmp_path / "moved_student"
    shutil.copytree(student, moved)
    free = ["--logging_steps", "7", "--per_device_eval_batch_size", "3", "--dataloader_num_workers", "1"]
    free += [
        "--do_eval",
        "--max_eval_samples",
        "4",
        "--eval_sort_by_length",
        "false",
        "--model_name_or_path",
        str(moved),
    ]
    for command in (flags, [*flags, *free]):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert main(command) == 0
        assert "holds a finished run" in caplog.text
    assert main([*flags, "--learning_rate", "1e-3", "--overwrite_output_dir"]) == 0
    assert json.loads((output_dir / SETTINGS_FILE_NAME).read_text())["learning_rate"] == 1e-3


def test_an_interrupted_run_resumes_with_its_settings_and_refuses_others(
    student: Path, shared_glue_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    output_dir = tmp_path / "rte"
    flags = train_flags(student, output_dir, shared_glue_data, "--keep_checkpoints", "--max_steps", "1")
    assert main(flags) == 0
    interrupt(output_dir)
    assert_one_line_error(capsys, main([*flags, "--max_steps", "2"]), "--max_steps 1 recorded, 2 now")
    assert json.loads((output_dir / "checkpoint-1" / "trainer_state.json").read_text())["global_step"] == 1
    with caplog.at_level(logging.INFO):
        assert main([*flags, "--logging_steps", "1"]) == 0
    assert f"Resuming from {output_dir / 'checkpoint-1'}" in caplog.text


def test_a_folder_from_before_the_record_resumes_and_records_its_settings(
    student: Path, shared_glue_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output_dir = tmp_path / "rte"
    flags = train_flags(student, output_dir, shared_glue_data, "--keep_checkpoints", "--max_steps", "1")
    assert main(flags) == 0
    (output_dir / SETTINGS_FILE_NAME).unlink()
    assert main([*flags, "--learning_rate", "1e-3"]) == 0  # finished, no record: left alone as before
    interrupt(output_dir)
    with caplog.at_level(logging.INFO):
        assert main([*flags, "--learning_rate", "1e-3"]) == 0
    assert f"Resuming from {output_dir / 'checkpoint-1'}" in caplog.text
    assert json.loads((output_dir / SETTINGS_FILE_NAME).read_text())["learning_rate"] == 1e-3


def test_another_model_at_the_same_path_is_another_run(minilm_path: Path, tmp_path: Path) -> None:
    model = save_tiny_student(tmp_path / "student", minilm_path)
    settings = {"task_name": "rte", "output_dir": str(tmp_path / "out"), "do_train": True}
    before = training_settings(*build_arguments({**settings, "model_name_or_path": str(model)}))
    (model / "config.json").write_text((model / "config.json").read_text().replace("32", "33", 1))
    after = training_settings(*build_arguments({**settings, "model_name_or_path": str(model)}))
    assert before["model_name_or_path"] != after["model_name_or_path"]
    hub = training_settings(*build_arguments({**settings, "model_name_or_path": "org/model"}))
    assert hub["model_name_or_path"] == "org/model"


def test_free_settings_are_settings() -> None:
    """Every name in FREE_SETTINGS is a flag (a typo would leave the intended setting recorded)."""
    names = {f.name for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls)}
    assert FREE_SETTINGS <= names, sorted(FREE_SETTINGS - names)


def test_a_fast_step_run_is_the_same_run_when_rerun_and_when_resumed(
    student: Path, shared_glue_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Building the trainer adapts `--fast_step`'s arguments (non-blocking copies); the record is made before it, as
    a rerun's check is, so the same command is the same run."""
    output_dir = tmp_path / "rte"
    flags = train_flags(student, output_dir, shared_glue_data, "--fast_step", "--keep_checkpoints", "--max_steps", "1")
    assert main(flags) == 0
    with caplog.at_level(logging.WARNING):
        assert main(flags) == 0
    assert "holds a finished run" in caplog.text
    interrupt(output_dir)
    assert main(flags) == 0
    assert (output_dir / "all_results.json").is_file()


def test_use_fast_tokenizer_is_free(student: Path, shared_glue_data: Path, tmp_path: Path) -> None:
    """An ignored flag is no setting of the run."""
    flags = train_flags(student, tmp_path / "rte", shared_glue_data, "--max_steps", "1")
    assert main([*flags, "--use_fast_tokenizer", "false"]) == 0
    assert main(flags) == 0
