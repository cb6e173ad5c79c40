"""The `Regularizer` extension point: a method defined outside the package trains through `PseudoKDTrainer` and the
CLI; every built-in method ignores rows labelled -100 without corrupting its state."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pseudo_kd_hf import (
    REGULARIZATIONS,
    LossParts,
    PseudoKDTrainer,
    PseudoKDTrainingArguments,
    Regularizer,
    register_regularizer,
    registered_regularizers,
)
from pseudo_kd_hf.arguments import UsageError
from pseudo_kd_hf.cli import main
from pseudo_kd_hf.parsing import build_arguments
from pseudo_kd_hf.regularizers import CLASSIFICATION_ONLY, get_regularizer
from tests.helpers.glue_models import save_tiny_student
from tests.helpers.tiny import sgd_args, tiny_bert, tiny_dataset, trained_parameters
from tests.test_cli import assert_one_line_error, run_flags

ALPHA = 0.3


@register_regularizer("test_confidence_penalty")
class ConfidencePenalty(Regularizer):
    """The docs' example, with a `gather` that would fail on a -100 label if the trainer passed one through."""

    def per_example_loss(self, logits, labels, batch):
        log_p = F.log_softmax(logits.float(), dim=-1)
        gold = -log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        return gold + self.args.alpha * (log_p.exp() * log_p).sum(-1)


def _confidence_penalty(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    log_p = F.log_softmax(logits, dim=-1)
    return (F.nll_loss(log_p, labels, reduction="none") + ALPHA * (log_p.exp() * log_p).sum(-1)).mean()


def _tensors(dataset):
    inputs = {name: torch.tensor(dataset[name]) for name in ("input_ids", "attention_mask")}
    return inputs, torch.tensor(dataset["label"])


def test_builtin_methods_are_registered_in_order():
    assert REGULARIZATIONS == ("none", "ls", "kd", "pseudo_kd", "tf_reg", "ps_kd", "cs_kd", "beta_ls")
    assert tuple(registered_regularizers())[: len(REGULARIZATIONS)] == REGULARIZATIONS
    assert CLASSIFICATION_ONLY == ("ls", "pseudo_kd", "tf_reg", "ps_kd", "cs_kd", "beta_ls")


def test_a_regularizer_defined_outside_the_package_trains_exactly(tmp_path):
    """One SGD step over 4 micro-batches of 4 == the hand-computed step on the whole batch of 16."""
    student, dataset = tiny_bert(3), tiny_dataset(16, 3)
    model = copy.deepcopy(student).train()
    inputs, labels = _tensors(dataset)
    _confidence_penalty(model(**inputs).logits, labels).backward()
    with torch.no_grad():
        expected = torch.cat([(p - 0.5 * p.grad).reshape(-1) for p in model.parameters()])
    args = sgd_args(
        str(tmp_path),
        regularization="test_confidence_penalty",
        alpha=ALPHA,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=4,
    )
    trainer = PseudoKDTrainer(model=copy.deepcopy(student), args=args, train_dataset=dataset)
    torch.testing.assert_close(trained_parameters(trainer), expected, atol=1e-5, rtol=1e-4)
    log = next(entry for entry in trainer.state.log_history if "loss" in entry)
    assert log["loss"] == pytest.approx(log["ce_loss"] + log["regularizer_loss"], abs=1e-4)
    assert log["regularizer_loss"] < 0  # alpha * sum p log p: minus alpha times the entropy


def test_registering_another_class_under_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):

        @register_regularizer("pseudo_kd")
        class Other(Regularizer):
            pass

    with pytest.raises(TypeError, match="Regularizer subclasses"):
        register_regularizer("not_a_class")(object)
    assert get_regularizer("pseudo_kd").__name__ == "PseudoKD"


def test_an_unknown_method_lists_the_registered_ones(tmp_path):
    with pytest.raises(ValueError, match="regularization must be one of none, ls, .*--regularizer_module"):
        PseudoKDTrainingArguments(output_dir=str(tmp_path), regularization="confidence_penalty_typo")


REGULARIZER_FILE = """
import torch.nn.functional as F

from pseudo_kd_hf import Regularizer, register_regularizer


@register_regularizer("{name}")
class ConfidencePenalty(Regularizer):
    def per_example_loss(self, logits, labels, batch):
        log_p = F.log_softmax(logits.float(), dim=-1)
        return F.nll_loss(log_p, labels, reduction="none") + self.args.alpha * (log_p.exp() * log_p).sum(-1)
"""


def test_regularizer_module_by_dotted_name(tmp_path, monkeypatch):
    """The CLI imports --regularizer_module before it builds the arguments; building them imports nothing."""
    (tmp_path / "user_regularizers_dotted.py").write_text(REGULARIZER_FILE.format(name="dotted_penalty"))
    monkeypatch.syspath_prepend(str(tmp_path))
    values = {"task_name": "rte", "output_dir": str(tmp_path), "regularization": "dotted_penalty"}
    values_without_task = {name: value for name, value in values.items() if name != "task_name"}
    with pytest.raises(ValueError, match="regularization must be one of"):
        PseudoKDTrainingArguments(**values_without_task, regularizer_module="user_regularizers_dotted")
    _, _, args = build_arguments({**values, "regularizer_module": "user_regularizers_dotted"})
    assert args.regularization in registered_regularizers()
    with pytest.raises(UsageError, match="--regularizer_module no_such_module_here: no module named"):
        build_arguments({**values, "regularizer_module": "no_such_module_here"})
    sys.modules.pop("user_regularizers_dotted", None)


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("models") / "student", minilm_path)


def test_regularizer_module_file_through_the_cli(student, shared_glue_data, tmp_path, capsys):
    module = tmp_path / "my_regularizers.py"
    module.write_text(REGULARIZER_FILE.format(name="file_penalty"))
    output_dir = tmp_path / "run"
    flags = run_flags(student, output_dir, "rte", "--data_dir", shared_glue_data, "--do_train", "--do_eval")
    flags += ["--max_train_samples", "16", "--max_eval_samples", "8", "--alpha", "0.2", "--logging_steps", "1"]
    assert main([*flags, "--regularizer_module", str(module), "--regularization", "file_penalty"]) == 0
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["train_samples"] == 16 and torch.isfinite(torch.tensor(results["train_loss"]))
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    assert any("regularizer_loss" in entry for entry in history)
    missing = ["--regularizer_module", str(tmp_path / "nope.py"), "--regularization", "file_penalty"]
    assert_one_line_error(capsys, main([*flags, "--output_dir", str(tmp_path / "other"), *missing]), "nope.py")


# ---- rows labelled -100 ---------------------------------------------------------------------------------------

IGNORED = [1, 6, 7, 12]


def _with_ignored_rows(num_labels: int = 3, teacher_logits: bool = False):
    dataset = tiny_dataset(16, num_labels, teacher_logits=teacher_logits).add_column("idx", list(range(16)))
    marked = dataset.map(lambda row, i: {"label": -100 if i in IGNORED else row["label"]}, with_indices=True)
    kept = dataset.select([i for i in range(16) if i not in IGNORED])
    return marked, kept


@pytest.mark.parametrize(
    ("regularization", "num_labels"),
    [(name, 3) for name in ("none", "ls", "pseudo_kd", "kd", "tf_reg", "ps_kd", "test_confidence_penalty")]
    + [("none", 1), ("kd", 1)],
)
def test_ignored_rows_change_nothing(tmp_path, regularization, num_labels):
    """Training with 4 of 16 rows labelled -100 == training on the 12 other rows (the mean is over kept rows)."""
    marked, kept = _with_ignored_rows(num_labels, teacher_logits=regularization == "kd")
    student = tiny_bert(num_labels)
    updates = []
    for name, dataset, batch_size, accumulation in (("marked", marked, 4, 4), ("kept", kept, 12, 1)):
        args = sgd_args(
            str(tmp_path / name),
            regularization=regularization,
            alpha=ALPHA,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            train_sampling_strategy="sequential",
        )
        trainer = PseudoKDTrainer(model=copy.deepcopy(student), args=args, train_dataset=dataset)
        updates.append(trained_parameters(trainer))
        log = next(entry for entry in trainer.state.log_history if "loss" in entry)
        assert torch.isfinite(torch.tensor([log["loss"], log["ce_loss"], log["regularizer_loss"]])).all()
    initial = torch.cat([p.detach().reshape(-1) for p in student.parameters()])
    assert (updates[1] - initial).abs().max() > 1e-4
    torch.testing.assert_close(updates[0], updates[1], atol=1e-6, rtol=1e-5)


def test_ps_kd_never_writes_an_ignored_row_into_its_table(tmp_path):
    marked, _ = _with_ignored_rows()
    args = sgd_args(
        str(tmp_path), regularization="ps_kd", max_steps=-1, num_train_epochs=2, per_device_train_batch_size=8
    )
    trainer = PseudoKDTrainer(model=tiny_bert(3), args=args, train_dataset=marked)
    initial = trainer.regularizer.previous_predictions.probs.clone()
    trainer.train()
    table = trainer.regularizer.previous_predictions.probs
    kept = [i for i in range(16) if i not in IGNORED]
    torch.testing.assert_close(table[IGNORED], initial[IGNORED], atol=0, rtol=0)  # idx i is row i
    assert not torch.equal(table[kept], initial[kept])


@pytest.mark.parametrize("regularization", ["cs_kd", "beta_ls"])
def test_pair_and_rank_methods_train_on_ignored_rows(tmp_path, regularization):
    """CS-KD pairs -100 rows among themselves; Beta smoothing ranks them last. Both train finitely."""
    marked, _ = _with_ignored_rows()
    args = sgd_args(str(tmp_path), regularization=regularization, max_steps=2, per_device_train_batch_size=8)
    trainer = PseudoKDTrainer(model=tiny_bert(3), args=args, train_dataset=marked)
    if regularization == "cs_kd":
        for batch in trainer.get_train_dataloader():
            anchors = batch["labels"][:8]
            assert (batch["labels"][8:] == -100).all()
            label_of = dict(enumerate(marked["label"]))
            ids = {tuple(row): i for i, row in enumerate(marked["input_ids"])}
            partners = [label_of[ids[tuple(row)]] for row in batch["input_ids"][8:].tolist()]
            assert partners == anchors.tolist()  # a -100 anchor's partner is another -100 row
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logs)


def test_loss_parts_must_sum_to_the_loss():
    parts = LossParts(torch.tensor([1.0, 2.0]), torch.tensor([0.5, -0.5]), 0.5)
    torch.testing.assert_close(parts.total, torch.tensor([1.0, 0.5]))
    assert LossParts(torch.tensor(3.0), None, 1.0).total == 3.0
