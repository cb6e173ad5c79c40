"""What a crash, a rerun, a second run into one folder, a diverged model and bad input do, and the disk they use."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pseudo_kd_hf import PseudoKDTrainer, cli, run_folder
from pseudo_kd_hf.cli import main
from pseudo_kd_hf.glue.submission import write_leaderboard_file
from pseudo_kd_hf.glue.tasks import get_task
from pseudo_kd_hf.parsing import build_arguments, read_arguments
from pseudo_kd_hf.run_dir import LOCK_FILE_NAME
from pseudo_kd_hf.submit import main as submit_main
from pseudo_kd_hf.trainer import REGULARIZER_STATE_NAME, TrainingDivergedError
from tests.helpers.glue_models import save_tiny_student
from tests.helpers.tiny import sgd_args, tiny_bert, tiny_dataset
from tests.test_cli import assert_one_line_error, leaderboard_rows, run_flags, write_cola, write_wnli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("models") / "student", minilm_path)


def rte_flags(student: Path, output_dir: Path, glue: Path, *extra: str | Path) -> list[str]:
    return run_flags(student, output_dir, "rte", "--data_dir", glue, "--max_train_samples", "16", *extra)


def nan_logits(monkeypatch: pytest.MonkeyPatch, in_training: bool) -> None:
    """The student's logits turn NaN in training (a diverged model) or in evaluation and prediction only."""
    load_student = cli.load_student

    def load_diverging_student(*args):
        model, tokenizer = load_student(*args)

        def poison(module, inputs, output):
            if module.training == in_training:
                output.logits = output.logits * float("nan")
            return output

        model.register_forward_hook(poison)
        return model, tokenizer

    monkeypatch.setattr(cli, "load_student", load_diverging_student)


# ---- a diverged model never produces a result file -----------------------------------------------------------


def test_nan_training_loss_stops_the_run_naming_the_steps(
    student: Path, shared_glue_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    nan_logits(monkeypatch, in_training=True)
    output_dir = tmp_path / "rte"
    flags = rte_flags(student, output_dir, shared_glue_data, "--do_train", "--do_eval", "--logging_steps", "1")
    assert main(flags) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: The training loss is nan in steps 1-1") and "--learning_rate" in error
    assert not list(output_dir.glob("*results.json"))


def test_nan_loss_after_the_last_log_stops_training() -> None:
    """Logged every 500 steps: the end-of-training mean (train_loss) catches it, without a per-step host sync."""
    model = tiny_bert()
    model.register_forward_hook(lambda module, inputs, output: setattr(output, "logits", output.logits * torch.nan))
    args = sgd_args("unused", max_steps=2, logging_steps=500)
    assert args.logging_nan_inf_filter is False
    trainer = PseudoKDTrainer(model=model, args=args, train_dataset=tiny_dataset(32))
    with pytest.raises(TrainingDivergedError, match="nan in steps 1-2"):
        trainer.train()


def test_nan_predictions_are_not_scored_or_written(
    student: Path, shared_glue_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    nan_logits(monkeypatch, in_training=False)
    for stage, written in (("--do_eval", "eval_results.json"), ("--do_predict", "RTE.tsv")):
        output_dir = tmp_path / stage
        assert main(rte_flags(student, output_dir, shared_glue_data, stage, "--max_eval_samples", "8")) == 1
        assert "not finite" in capsys.readouterr().err.strip().splitlines()[-1]
        assert not (output_dir / written).exists() and not (output_dir / "all_results.json").exists()


# ---- crash-cut checkpoints, reruns, disk -----------------------------------------------------------------------


def test_resume_passes_over_a_checkpoint_cut_by_a_crash(
    student: Path, shared_glue_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    output_dir = tmp_path / "rte"
    flags = rte_flags(student, output_dir, shared_glue_data, "--do_train", "--save_steps", "1", "--keep_checkpoints")
    assert main(flags) == 0
    # A kill -9 while checkpoint-2 was saved: trainer_state.json (written last) is missing, the run unfinished.
    (output_dir / "checkpoint-2" / "trainer_state.json").unlink()
    (output_dir / "all_results.json").unlink()
    with caplog.at_level(logging.INFO):
        assert main(flags) == 0
    assert f"Passing over checkpoint {output_dir / 'checkpoint-2'} (no trainer_state.json" in caplog.text
    assert f"Resuming from {output_dir / 'checkpoint-1'}" in caplog.text
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 2

    partial = output_dir / "checkpoint-2"
    (partial / "trainer_state.json").unlink()
    assert_one_line_error(
        capsys, main([*flags, "--resume_from_checkpoint", str(partial)]), "is not a complete checkpoint (no trainer"
    )


def test_a_stateful_method_needs_its_state_in_a_complete_checkpoint(tmp_path: Path) -> None:
    settings = {"task_name": "rte", "output_dir": str(tmp_path), "do_train": True}
    _, _, ps_kd = build_arguments({**settings, "regularization": "ps_kd"})
    assert REGULARIZER_STATE_NAME in run_folder.checkpoint_files(get_task("rte"), ps_kd)
    assert REGULARIZER_STATE_NAME not in run_folder.checkpoint_files(get_task("stsb"), ps_kd)  # regression: plain MSE
    _, _, pseudo_kd = build_arguments(settings)
    assert REGULARIZER_STATE_NAME not in run_folder.checkpoint_files(get_task("rte"), pseudo_kd)
    # A crash during the first save leaves only a partial checkpoint: the rerun trains from the start, unrefused.
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / LOCK_FILE_NAME).write_text("{}")
    _, data_args, args = build_arguments(settings)
    run_folder.check_output_dir(get_task("rte"), data_args, args)
    assert run_folder.last_checkpoint(args, overwrite_output_dir=False) is None


def test_a_finished_run_is_not_trained_again_and_leaves_no_checkpoints(
    student: Path, shared_glue_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output_dir = tmp_path / "rte"
    flags = rte_flags(student, output_dir, shared_glue_data, "--do_train", "--do_eval", "--max_eval_samples", "8")
    assert main(flags) == 0
    assert not list(output_dir.glob("checkpoint-*")) and (output_dir / "model.safetensors").is_file()
    assert not (output_dir / LOCK_FILE_NAME).exists()
    results = {name: (output_dir / name).read_bytes() for name in ("train_results.json", "all_results.json")}
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(flags) == 0
    assert "holds a finished run" in caplog.text and "--overwrite_output_dir" in caplog.text
    assert {name: (output_dir / name).read_bytes() for name in results} == results

    kept = tmp_path / "kept"
    assert main(rte_flags(student, kept, shared_glue_data, "--do_train", "--keep_checkpoints")) == 0
    assert [path.name for path in kept.glob("checkpoint-*")] == ["checkpoint-2"]


# ---- one run per folder ----------------------------------------------------------------------------------------


def test_a_second_run_into_a_live_runs_folder_is_refused(
    student: Path, shared_glue_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    output_dir = tmp_path / "rte"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pseudo_kd_hf.run_dir import output_dir_lock\n"
            "with output_dir_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n",
            str(output_dir),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        flags = rte_flags(student, output_dir, shared_glue_data, "--do_eval", "--max_eval_samples", "8")
        assert_one_line_error(capsys, main(flags), f"--output_dir {output_dir}: {output_dir} is in use by another run")
        assert capsys.readouterr().out == ""  # refused before any log line
    finally:
        holder.send_signal(signal.SIGKILL)  # as a killed run: its lock file stays behind
        holder.wait()
    assert (output_dir / LOCK_FILE_NAME).is_file()
    with caplog.at_level(logging.WARNING):
        assert main(flags) == 0
    assert f"the run that left it (pid {holder.pid}) is gone" in caplog.text
    assert (output_dir / "eval_results.json").is_file() and not (output_dir / LOCK_FILE_NAME).exists()


# ---- usage errors are one line naming the flag; bugs keep their traceback --------------------------------------


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--max_train_samples", "0"], "--max_train_samples must be a positive number of examples, got 0"),
        (["--max_eval_samples", "-3"], "--max_eval_samples must be a positive number of examples, got -3"),
        (["--fast_step", "--regularization", "ps_kd"], "--fast_step does not support --regularization 'ps_kd'"),
        (["--label_smoothing_factor", "0.1"], "use --regularization 'ls' with --alpha 0.1"),
    ],
)
def test_bad_values_name_the_flag(flags: list[str], match: str, tmp_path: Path, capsys) -> None:
    code = main(["--task_name", "rte", "--do_train", "--output_dir", str(tmp_path), *flags])
    assert_one_line_error(capsys, code, match)
    assert capsys.readouterr().out == ""


def test_a_string_boolean_in_a_config_file_is_refused(tmp_path: Path, capsys) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"task_name": "rte", "do_train": "false", "output_dir": str(tmp_path / "out")}))
    assert_one_line_error(capsys, main([str(config)]), "do_train must be true or false (no quotes), got 'false'")
    config = tmp_path / "run.yaml"
    config.write_text("task_name: rte\ndo_eval: false\nlearning_rate: 3e-5\n")  # a real YAML boolean is fine
    assert read_arguments([str(config)])["do_eval"] is False


def test_an_output_dir_that_cannot_be_written_is_refused_before_any_work(
    student: Path, shared_glue_data: Path, tmp_path: Path, capsys
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    flags = rte_flags(student, blocker / "out", shared_glue_data, "--do_train")
    assert_one_line_error(capsys, main(flags), f"--output_dir {blocker / 'out'} cannot be written")


def test_a_bug_keeps_its_traceback(
    student: Path, shared_glue_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_tokenize(*args, **kwargs):
        raise ValueError("a bug inside the tokenizer")

    monkeypatch.setattr(cli, "tokenize_split", broken_tokenize)
    with pytest.raises(ValueError, match="a bug inside the tokenizer"):
        main(rte_flags(student, tmp_path / "rte", shared_glue_data, "--do_train"))


def test_model_names_that_look_like_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    base = ["--task_name", "rte", "--do_eval", "--output_dir", str(tmp_path / "out")]
    for flag, name in (("--model_name_or_path", "runs/rte-teacher"), ("--tokenizer_name", "models/a/b")):
        flags = [*base, "--model_name_or_path", "runs", flag, name]  # runs/ exists: the named path does not
        assert_one_line_error(capsys, main(flags), f"{flag} {name}: no such folder;")
    # A Hub id while the Hub is offline (the tests' HF_HUB_OFFLINE=1) and absent from the cache: both said.
    assert_one_line_error(capsys, main([*base, "--model_name_or_path", "org/name"]), "the Hub is offline")


def test_a_hub_dataset_that_cannot_load_says_to_pass_data_dir(student: Path, tmp_path: Path, capsys) -> None:
    flags = run_flags(student, tmp_path / "out", "rte", "--do_eval")
    assert_one_line_error(capsys, main(flags), "pass --data_dir")


def test_submit_names_its_flags(tmp_path: Path, capsys) -> None:
    rte_run = write_leaderboard_file("rte", [0, 1] * 1500, tmp_path / "runs" / "rte").parent
    assert_one_line_error(capsys, submit_main([str(rte_run), "--output_dir", str(tmp_path / "s")]), "--fill_missing")
    assert_one_line_error(
        capsys, submit_main([str(rte_run), "--output_dir", str(rte_run), "--fill_missing"]), "--output_dir"
    )
    assert_one_line_error(capsys, submit_main([str(tmp_path / "nowhere"), "--output_dir", str(tmp_path)]), "nowhere")


# ---- splits: only what the stages read ---------------------------------------------------------------------------


def test_an_empty_test_file_does_not_stop_training_and_evaluation(student: Path, tmp_path: Path) -> None:
    write_wnli(tmp_path / "glue")
    (tmp_path / "glue" / "WNLI" / "test.tsv").write_text("")
    output_dir = tmp_path / "wnli"
    assert main(run_flags(student, output_dir, "wnli", "--data_dir", tmp_path / "glue", "--do_train", "--do_eval")) == 0
    assert (output_dir / "all_results.json").is_file()


@pytest.mark.slow
def test_suite_passes_over_a_task_missing_a_split(
    student: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "glue"
    write_cola(data_dir)
    (data_dir / "CoLA" / "test.tsv").unlink()
    write_wnli(data_dir)
    root = tmp_path / "suite"
    flags = run_flags(student, root, "all", "--data_dir", data_dir, "--do_train", "--do_predict")
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf.suite"):
        assert main(flags) == 0
    assert f"cola skipped: test.tsv not found in {data_dir / 'CoLA'}" in caplog.text
    assert len(leaderboard_rows(root / "wnli" / "WNLI.tsv")) == 146
    assert "CoLA.tsv" in (root / "submission" / "FILLED.txt").read_text()
    assert not (root / LOCK_FILE_NAME).exists()
