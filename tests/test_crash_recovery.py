"""A full disk, a damaged checkpoint and a signal: the rerun recovers, and its final weights are an uninterrupted
run's, bit for bit."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from pseudo_kd_hf import PseudoKDTrainer, PseudoKDTrainingArguments, checkpointing, checks, cli
from pseudo_kd_hf.cli import main
from pseudo_kd_hf.suite import run_suite
from tests.helpers.glue_models import save_tiny_student
from tests.helpers.tiny import sgd_args, tiny_bert, tiny_dataset
from tests.test_cli import assert_one_line_error, run_flags

REPO = Path(__file__).resolve().parents[1]
STEPS = 3


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("models") / "student", minilm_path)


def train_flags(student: Path, output_dir: Path, glue: Path, steps: int = STEPS) -> list[str]:
    """RTE, a few steps of a tiny student with dropout (so resuming must restore the RNG), a checkpoint every step."""
    return run_flags(
        student,
        output_dir,
        "rte",
        *("--data_dir", glue, "--do_train", "--max_train_samples", "16", "--max_steps", steps),
        *("--save_steps", "1", "--keep_checkpoints", "--logging_steps", "2"),
    )


@pytest.fixture(scope="module")
def reference(student: Path, shared_glue_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run, kept with its checkpoints."""
    output_dir = tmp_path_factory.mktemp("reference") / "rte"
    assert main(train_flags(student, output_dir, shared_glue_data)) == 0
    return output_dir


def weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "model.safetensors")


def assert_same_weights(output_dir: Path, reference: Path) -> None:
    ours, theirs = weights(output_dir), weights(reference)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)


def train_loss(output_dir: Path) -> float:
    return json.loads((output_dir / "all_results.json").read_text())["train_loss"]


def interrupted_copy(reference: Path, tmp_path: Path) -> Path:
    """The reference run as a crash before its results left it: checkpoints, no final model or results."""
    output_dir = tmp_path / "rte"
    shutil.copytree(reference, output_dir)
    for name in ("model.safetensors", "all_results.json", "train_results.json", "trainer_state.json"):
        (output_dir / name).unlink()
    return output_dir


# ---- a results file cut short ----------------------------------------------------------------------------------


def test_a_full_disk_while_results_are_written_leaves_the_previous_files(tmp_path: Path) -> None:
    """Writes fail past 4 KiB (RLIMIT_FSIZE, as on a full disk): each file stays the previous one, never half new."""
    (tmp_path / "all_results.json").write_text('{"train_loss": 0.5}')
    (tmp_path / "trainer_state.json").write_text('{"global_step": 1}')
    script = textwrap.dedent(
        f"""
        import resource, signal
        from types import SimpleNamespace
        from transformers import TrainerState
        from pseudo_kd_hf import PseudoKDTrainer
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        metrics = {{f"eval_metric_{{i}}": 0.123456789 for i in range(1000)}}
        trainer = SimpleNamespace(
            is_world_process_zero=lambda: True,
            args=SimpleNamespace(output_dir={str(tmp_path)!r}),
            state=TrainerState(log_history=[metrics]),
        )
        for save in (PseudoKDTrainer.save_state, lambda trainer: PseudoKDTrainer.save_metrics(trainer, "all", metrics)):
            try:
                save(trainer)
            except OSError as error:
                print("failed:", error)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert "failed:" in result.stdout, result.stderr
    assert result.stdout.count("failed:") == 2
    assert json.loads((tmp_path / "all_results.json").read_text()) == {"train_loss": 0.5}
    assert json.loads((tmp_path / "trainer_state.json").read_text()) == {"global_step": 1}
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("cut_short", [b"", b'{"train_loss": 0.6'])
def test_a_run_whose_results_were_cut_short_resumes_and_finishes(
    cut_short: bytes, reference: Path, shared_glue_data: Path, student: Path, tmp_path: Path, caplog
) -> None:
    output_dir = tmp_path / "rte"
    shutil.copytree(reference, output_dir)
    (output_dir / "all_results.json").write_bytes(cut_short)  # the disk filled while it was written
    with caplog.at_level(logging.INFO):
        assert main(train_flags(student, output_dir, shared_glue_data)) == 0
    assert "holds a finished run" not in caplog.text and "cut short" in caplog.text
    assert f"Resuming from {output_dir / f'checkpoint-{STEPS}'}" in caplog.text
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == STEPS  # no step more
    assert train_loss(output_dir) == pytest.approx(train_loss(reference), rel=1e-6)
    assert_same_weights(output_dir, reference)


def test_the_suite_reruns_a_task_whose_results_were_cut_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = []
    monkeypatch.setattr(checks, "check_suite_tasks", lambda values, tasks, pending, root: checked.extend(pending))
    (tmp_path / "cola").mkdir()
    (tmp_path / "cola" / "all_results.json").write_bytes(b"")
    ran = []

    def run_one(values: dict) -> None:
        ran.append(values["task_name"])
        Path(values["output_dir"]).mkdir(exist_ok=True)
        (Path(values["output_dir"]) / "all_results.json").write_text(
            '{"train_loss": 0.5, "eval_matthews_correlation": 0.5}'
        )

    args = PseudoKDTrainingArguments(output_dir=str(tmp_path), do_train=True, do_eval=True, report_to="none")
    run_suite({}, args, None, run_one=run_one)
    assert "cola" in ran and "cola" in [task.name for task in checked]  # unfinished: checked first, then run
    assert "| cola | matthews_correlation | 50.00 |" in (tmp_path / "results.md").read_text()


# ---- damaged checkpoints ---------------------------------------------------------------------------------------


def zero_weights(path: Path) -> None:
    """Zero a safetensors file's tensor bytes at full length: its header (and size) stay intact."""
    data = bytearray(path.read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    data[header_end:] = bytes(len(data) - header_end)
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "model.safetensors truncated": ("model.safetensors", truncate),
    "model.safetensors zeroed": ("model.safetensors", zero_weights),
    "optimizer.pt empty": ("optimizer.pt", lambda path: path.write_bytes(b"")),
    "scheduler.pt truncated": ("scheduler.pt", truncate),
    "rng_state.pth empty": ("rng_state.pth", lambda path: path.write_bytes(b"")),
}
SLOW_DAMAGE = ("optimizer.pt empty", "scheduler.pt truncated", "rng_state.pth empty")  # the same path as the others


@pytest.mark.parametrize(
    "damage", [pytest.param(name, marks=[pytest.mark.slow] if name in SLOW_DAMAGE else []) for name in DAMAGE]
)
def test_resume_passes_over_a_damaged_checkpoint_to_an_intact_one(
    damage: str, reference: Path, shared_glue_data: Path, student: Path, tmp_path: Path, caplog, capsys
) -> None:
    output_dir = interrupted_copy(reference, tmp_path)
    name, damage_file = DAMAGE[damage]
    newest = output_dir / f"checkpoint-{STEPS}"
    damage_file(newest / name)
    flags = train_flags(student, output_dir, shared_glue_data)
    assert_one_line_error(capsys, main([*flags, "--resume_from_checkpoint", str(newest)]), f"({name} damaged (")
    with caplog.at_level(logging.INFO):
        assert main(flags) == 0
    assert f"Passing over checkpoint {newest} ({name} damaged (" in caplog.text
    assert f"Resuming from {output_dir / f'checkpoint-{STEPS - 1}'}" in caplog.text
    assert_same_weights(output_dir, reference)
    assert json.loads((newest / "checkpoint_manifest.json").read_text())["files"]  # saved again, with its manifest


# ---- signals -----------------------------------------------------------------------------------------------------


class SignalAtStep(TrainerCallback):
    """Send this process a signal during a training step, as a scheduler would."""

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        if state.global_step == self.step - 1:
            signal.raise_signal(self.signum)


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)]
)
def test_a_signal_saves_a_checkpoint_stops_and_the_rerun_matches_an_uninterrupted_run(
    signum: int,
    code: int,
    reference: Path,
    shared_glue_data: Path,
    student: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
    caplog,
) -> None:
    build_trainer = cli.build_trainer

    def build_signalled_trainer(*args, **kwargs) -> PseudoKDTrainer:
        trainer = build_trainer(*args, **kwargs)
        trainer.add_callback(SignalAtStep(signum, step=2))
        return trainer

    monkeypatch.setattr(cli, "build_trainer", build_signalled_trainer)
    handler = signal.getsignal(signum)
    output_dir = tmp_path / "rte"
    flags = train_flags(student, output_dir, shared_glue_data)
    flags[flags.index("--save_steps") + 1] = "100"  # no checkpoint but the one the signal asks for
    assert main(flags) == code
    assert "training stopped at step 2 after saving checkpoint-2" in capsys.readouterr().err
    assert [path.name for path in output_dir.glob("checkpoint-*")] == ["checkpoint-2"]
    assert not (output_dir / "all_results.json").exists()
    assert signal.getsignal(signum) == handler  # restored

    monkeypatch.setattr(cli, "build_trainer", build_trainer)
    with caplog.at_level(logging.INFO):
        assert main(flags) == 0
    assert f"Resuming from {output_dir / 'checkpoint-2'}" in caplog.text
    assert_same_weights(output_dir, reference)
    assert train_loss(output_dir) == pytest.approx(train_loss(reference), rel=1e-6)


def test_a_signal_mid_epoch_adds_no_evaluation_to_the_best_model_choice(tmp_path: Path) -> None:
    """Epoch-wise evaluation choosing the best model: the stop in the middle of epoch 1 neither evaluates the part
    epoch nor records a best metric, so the resumed run chooses among the epochs an uninterrupted run evaluates."""

    def trainer(*callbacks: TrainerCallback) -> PseudoKDTrainer:
        epochs = dict(num_train_epochs=2, max_steps=-1, eval_strategy="epoch", save_strategy="epoch")
        args = sgd_args(str(tmp_path), per_device_train_batch_size=4, load_best_model_at_end=True, **epochs)
        return PseudoKDTrainer(
            model=tiny_bert(),
            args=args,
            train_dataset=tiny_dataset(16),
            eval_dataset=tiny_dataset(8, seed=2),
            callbacks=list(callbacks),
        )

    class CountEvaluations(TrainerCallback):
        steps: list[int] = []

        def on_evaluate(self, args, state, control, **kwargs) -> None:
            self.steps.append(state.global_step)

    with pytest.raises(checkpointing.TrainingStopped):
        trainer(checkpointing.StopOnSignal(), SignalAtStep(signal.SIGTERM, step=2), CountEvaluations()).train()
    assert CountEvaluations.steps == []
    state = json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["best_metric"] is None and not [row for row in state["log_history"] if "eval_loss" in row]
    trainer(CountEvaluations()).train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert CountEvaluations.steps == [4, 8]  # the end of each epoch, as uninterrupted


def test_train_loss_of_a_resumed_run_covers_the_whole_run(tmp_path: Path) -> None:
    """Resumed at step 2 of 4 (logged every 3 steps, so the checkpoint falls inside a logging window)."""

    def trainer(output_dir: Path) -> PseudoKDTrainer:
        args = sgd_args(str(output_dir), max_steps=4, per_device_train_batch_size=4, save_strategy="steps")
        args.save_steps, args.logging_steps = 2, 3
        return PseudoKDTrainer(model=tiny_bert(), args=args, train_dataset=tiny_dataset(16))

    whole = trainer(tmp_path / "whole").train().metrics["train_loss"]
    resumed = trainer(tmp_path / "whole").train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-2"))
    assert resumed.metrics["train_loss"] == pytest.approx(whole, rel=1e-6)
