"""PseudoKDTrainer: exact losses, gradient accumulation, teachers, cached logits, regression, logging, DDP."""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.utils import logging as hf_logging

from pseudo_kd_hf import (
    TEACHER_LOGITS_COLUMN,
    PseudoKDTrainer,
    kd_loss,
    label_smoothing_loss,
    pseudo_kd_loss,
    regression_kd_loss,
)
from tests.helpers.tiny import sgd_args, tiny_bert, tiny_dataset, trained_parameters

ALPHA, BETA, TEMPERATURE = 0.3, 1.5, 2.0
# (regularization, teacher source) pairs: KD is tested with cached logits and with an online teacher.
METHODS = [("none", None), ("ls", None), ("pseudo_kd", None), ("kd", "cached"), ("kd", "online")]


def _loss_function(regularization: str, num_labels: int):
    """The pure loss the trainer must apply, as (logits, labels, teacher_logits) -> mean loss."""
    if num_labels == 1:
        if regularization == "kd":
            return lambda z, y, t: regression_kd_loss(z, y, t, alpha=ALPHA)
        return lambda z, y, t: F.mse_loss(z.reshape(-1), y.float())
    return {
        "none": lambda z, y, t: F.cross_entropy(z, y),
        "ls": lambda z, y, t: label_smoothing_loss(z, y, alpha=ALPHA),
        "pseudo_kd": lambda z, y, t: pseudo_kd_loss(z, y, alpha=ALPHA, beta=BETA),
        "kd": lambda z, y, t: kd_loss(z, y, t, alpha=ALPHA, temperature=TEMPERATURE),
    }[regularization]


def _reference_step(student, dataset, regularization, teacher, lr=0.5):
    """One SGD step on the whole dataset as one batch, computed by hand."""
    model = copy.deepcopy(student).train()
    inputs = {
        "input_ids": torch.tensor(dataset["input_ids"]),
        "attention_mask": torch.tensor(dataset["attention_mask"]),
    }
    labels = torch.tensor(dataset["label"])
    if TEACHER_LOGITS_COLUMN in dataset.column_names:
        teacher_logits = torch.tensor(dataset[TEACHER_LOGITS_COLUMN])
    elif teacher is not None:
        with torch.no_grad():
            teacher_logits = teacher.eval()(**inputs).logits
    else:
        teacher_logits = None
    num_labels = student.config.num_labels
    loss = _loss_function(regularization, num_labels)(model(**inputs).logits, labels, teacher_logits)
    loss.backward()
    with torch.no_grad():
        return torch.cat([(p - lr * p.grad).reshape(-1) for p in model.parameters()])


def _trainer(tmp_path, student, dataset, regularization, teacher=None, **overrides):
    args = sgd_args(
        str(tmp_path), regularization=regularization, alpha=ALPHA, beta=BETA, temperature=TEMPERATURE, **overrides
    )
    return PseudoKDTrainer(model=copy.deepcopy(student), args=args, train_dataset=dataset, teacher_model=teacher)


@pytest.mark.parametrize("num_labels", [3, 1], ids=["classification", "regression"])
@pytest.mark.parametrize(("regularization", "teacher_source"), METHODS, ids=[f"{m}-{t}" for m, t in METHODS])
def test_gradient_accumulation_never_changes_the_update(tmp_path, regularization, teacher_source, num_labels):
    if num_labels == 1 and regularization in ("ls", "pseudo_kd"):
        pytest.skip("LS and Pseudo-KD train on plain MSE for regression; covered by the 'none' case")
    student = tiny_bert(num_labels, seed=0)
    teacher = tiny_bert(num_labels, seed=1, hidden_size=24) if teacher_source == "online" else None
    dataset = tiny_dataset(16, num_labels, teacher_logits=teacher_source == "cached").add_column("idx", list(range(16)))
    expected = _reference_step(student, dataset, regularization, teacher)

    one_batch = _trainer(tmp_path / "a", student, dataset, regularization, teacher)
    accumulated = _trainer(
        tmp_path / "b",
        student,
        dataset,
        regularization,
        teacher,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=4,
    )
    after_one_batch = trained_parameters(one_batch)
    after_accumulation = trained_parameters(accumulated)
    initial = torch.cat([p.detach().reshape(-1) for p in student.parameters()])
    assert (after_one_batch - initial).abs().max() > 1e-4  # the step moved the weights
    torch.testing.assert_close(after_one_batch, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(after_accumulation, expected, atol=1e-5, rtol=1e-4)


def test_compute_loss_returns_exactly_the_method_loss(tmp_path):
    student = tiny_bert(3)
    dataset = tiny_dataset(8, 3)
    trainer = _trainer(tmp_path, student, dataset, "pseudo_kd")
    inputs = {
        "input_ids": torch.tensor(dataset["input_ids"]),
        "attention_mask": torch.tensor(dataset["attention_mask"]),
        "labels": torch.tensor(dataset["label"]),
    }
    model = trainer.model.train()
    loss = trainer.compute_loss(model, inputs)
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    torch.testing.assert_close(loss.detach(), pseudo_kd_loss(logits, inputs["labels"], alpha=ALPHA, beta=BETA))
    assert "labels" in inputs  # the caller's batch is left untouched


def test_trainer_requires_its_own_arguments(tmp_path):
    from transformers import TrainingArguments

    with pytest.raises(TypeError, match="PseudoKDTrainingArguments"):
        PseudoKDTrainer(model=tiny_bert(), args=TrainingArguments(output_dir=str(tmp_path)))


def test_kd_without_teacher_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="teacher_model=.*teacher_logits"):
        _trainer(tmp_path, tiny_bert(3), tiny_dataset(8, 3), "kd")


def test_teacher_is_frozen_in_eval_mode_unwrapped_and_not_run_in_evaluation(tmp_path):
    teacher = tiny_bert(3, seed=1)
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))
    trainer = _trainer(tmp_path, tiny_bert(3), tiny_dataset(16, 3), "kd", teacher, per_device_eval_batch_size=8)
    assert isinstance(trainer.teacher_model, PreTrainedModel)  # not wrapped in DDP / DataParallel
    assert not trainer.teacher_model.training
    assert not any(p.requires_grad for p in trainer.teacher_model.parameters())
    trainer.train()
    assert len(calls) == 1  # one training step, one teacher pass
    assert not trainer.teacher_model.training
    metrics = trainer.evaluate(tiny_dataset(16, 3, seed=5))
    assert len(calls) == 1  # evaluation never runs the teacher
    assert "eval_loss" in metrics


def test_teacher_with_other_label_count_is_refused(tmp_path):
    with pytest.raises(ValueError, match="teacher has 2 labels but the student has 3"):
        _trainer(tmp_path, tiny_bert(3), tiny_dataset(8, 3), "kd", tiny_bert(2))


def test_teacher_with_other_label_names_is_refused(tmp_path):
    student = tiny_bert(2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    teacher = tiny_bert(2, id2label={0: "entailment", 1: "not_entailment"})
    with pytest.raises(ValueError, match="teacher's labels"):
        _trainer(tmp_path, student, tiny_dataset(8, 2), "kd", teacher)


def test_teacher_with_reordered_labels_is_remapped(tmp_path, caplog):
    names = ["entailment", "neutral", "contradiction"]
    student = tiny_bert(3, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    reordered = [names[2], names[0], names[1]]
    teacher = tiny_bert(3, seed=4, id2label=dict(enumerate(reordered)))
    dataset = tiny_dataset(16, 3)
    with torch.no_grad():
        raw = teacher(input_ids=torch.tensor(dataset["input_ids"])).logits
    # The student's label j is the teacher's label reordered.index(names[j]).
    cached = raw[:, [reordered.index(name) for name in names]]
    hf_logging.enable_propagation()
    try:
        with caplog.at_level(logging.INFO, logger="pseudo_kd_hf"):
            online = _trainer(tmp_path / "online", student, dataset, "kd", teacher)
    finally:
        hf_logging.disable_propagation()
    assert "reordered" in caplog.text
    with_cache = _trainer(
        tmp_path / "cached", student, dataset.add_column(TEACHER_LOGITS_COLUMN, cached.tolist()), "kd"
    )
    torch.testing.assert_close(trained_parameters(online), trained_parameters(with_cache), atol=1e-6, rtol=1e-5)


def test_cached_logits_column_survives_remove_unused_columns(tmp_path):
    trainer = _trainer(tmp_path, tiny_bert(3), tiny_dataset(8, 3, teacher_logits=True).add_column("idx", [0] * 8), "kd")
    assert trainer.args.remove_unused_columns
    batch = next(iter(trainer.get_train_dataloader()))
    assert TEACHER_LOGITS_COLUMN in batch and "idx" not in batch
    assert batch[TEACHER_LOGITS_COLUMN].shape == (8, 3)


@pytest.mark.parametrize("regularization", ["ls", "pseudo_kd"])
def test_regression_warns_once_that_smoothing_does_not_apply(tmp_path, caplog, regularization):
    hf_logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf"):
            trainer = _trainer(tmp_path, tiny_bert(1), tiny_dataset(8, 1), regularization, max_steps=3)
            trainer.train()
    finally:
        hf_logging.disable_propagation()
    assert caplog.text.count("does not apply to a regression head") == 1


def test_kd_on_a_regression_head_describes_the_loss_it_trains_with(tmp_path):
    """The model card's line: a regression head's KD uses no temperature and no one-hot target."""
    regression = _trainer(tmp_path, tiny_bert(1), tiny_dataset(8, 1, teacher_logits=True), "kd")
    assert (
        regression.regularizer.describe()
        == f"KD: alpha {ALPHA:g} (regression: MSE to the gold score + {ALPHA:g} MSE to the teacher's)"
    )
    classification = _trainer(tmp_path, tiny_bert(3), tiny_dataset(8, 3, teacher_logits=True), "kd")
    assert f"temperature {TEMPERATURE:g} (target" in classification.regularizer.describe()


@pytest.mark.parametrize("regularization", ["none", "ls", "pseudo_kd"])
def test_loss_parts_are_logged(tmp_path, regularization):
    trainer = _trainer(tmp_path, tiny_bert(3), tiny_dataset(16, 3), regularization, max_steps=2)
    trainer.train()
    step_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(step_logs) == 2
    gold_weight = 1.0 if regularization == "none" else 1.0 - ALPHA
    for entry in step_logs:
        assert entry["ce_loss"] > 0
        assert entry["loss"] == pytest.approx(gold_weight * entry["ce_loss"] + entry["regularizer_loss"], abs=2e-3)
        if regularization == "none":
            assert entry["regularizer_loss"] == pytest.approx(0.0, abs=1e-6)
        else:
            assert entry["regularizer_loss"] != pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("regularization", ["pseudo_kd", "kd"])
def test_bf16_mixed_precision_trains(tmp_path, regularization):
    trainer = _trainer(
        tmp_path, tiny_bert(3), tiny_dataset(16, 3, teacher_logits=True), regularization, bf16=True, max_steps=2
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


DDP_SCRIPT = Path(__file__).parent / "helpers" / "ddp_step.py"


def _run_with_retries(command: list[str], env: dict[str, str], attempts: int = 3) -> subprocess.CompletedProcess:
    """Run torchrun; on an overloaded 2-core machine its gloo rendezvous has hung at random, so a hang is retried.

    Only a hang (timeout) is retried: a failing exit code or a wrong result fails the test at once.
    """
    for _ in range(attempts - 1):
        try:
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            continue
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("regularization", ["none", "ls", "pseudo_kd", "kd"])
def test_two_processes_equal_one_process_with_the_whole_batch(tmp_path, regularization):
    """torchrun --nproc_per_node 2 (gloo, CPU) x batch 4 == one process x batch 8, KD with an online teacher."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single.pt"
    distributed = tmp_path / "ddp.pt"
    subprocess.run(
        [sys.executable, str(DDP_SCRIPT), regularization, "8", str(single), str(tmp_path / "run1")],
        check=True,
        env=env,
        capture_output=True,
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(DDP_SCRIPT), regularization, "4", str(distributed), str(tmp_path / "run2")]
    result = _run_with_retries(command, env)
    assert result.returncode == 0, result.stderr[-3000:]
    torch.testing.assert_close(torch.load(distributed), torch.load(single), atol=1e-5, rtol=1e-4)
