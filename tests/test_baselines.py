"""The teacher-free baselines (TF-reg, PS-KD, CS-KD, Beta smoothing) in the trainer: pairs, updates, checkpoints."""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import DistributedSampler, SequentialSampler
from transformers.utils import logging as hf_logging

from pseudo_kd_hf import PseudoKDTrainer
from pseudo_kd_hf.cli import main
from pseudo_kd_hf.glue.tasks import get_task
from pseudo_kd_hf.losses import (
    beta_smoothing_targets,
    cs_kd_loss,
    ps_kd_loss,
    soft_target_loss,
    tf_reg_loss,
)
from pseudo_kd_hf.parsing import apply_preset, build_arguments
from pseudo_kd_hf.regularizers import ClassPairBatchSampler
from pseudo_kd_hf.trainer import REGULARIZER_STATE_NAME
from tests.helpers.glue_models import save_tiny_student
from tests.helpers.tiny import sgd_args, tiny_bert, tiny_dataset, trained_parameters
from tests.test_cli import run_flags

K = 5
torch.manual_seed(0)
LOGITS = torch.randn(7, K, dtype=torch.float64) * 3
LABELS = torch.tensor([0, 1, 2, 3, 4, 0, 2])
ONE_HOT = F.one_hot(LABELS, K).to(torch.float64)
SIMPLEX = torch.distributions.Dirichlet(torch.ones(K, dtype=torch.float64)).sample((7,))

# ---- CS-KD's pair sampler -------------------------------------------------------------------------------------

PAIR_LABELS = [0, 1, 0, 2, 1, 0, 1, 1, 0, 3]  # classes 2 and 3 have one example each


def _batches(sampler: ClassPairBatchSampler) -> list[tuple[list[int], list[int]]]:
    return [(batch[: len(batch) // 2], batch[len(batch) // 2 :]) for batch in sampler]


def test_partners_are_other_examples_of_the_same_class():
    sampler = ClassPairBatchSampler(range(10), PAIR_LABELS, batch_size=4, seed=1)
    seen = set()
    for epoch in range(40):
        sampler.set_epoch(epoch)
        partners = sampler.partners().tolist()
        for anchor, partner in enumerate(partners):
            assert PAIR_LABELS[partner] == PAIR_LABELS[anchor]
            assert partner != anchor or anchor in (3, 9)  # only a class of one pairs an example with itself
            seen.add((anchor, partner))
    assert len(seen) == sum(max(PAIR_LABELS.count(c) * (PAIR_LABELS.count(c) - 1), 1) for c in range(4))


def test_batches_are_anchors_then_partners_independent_of_the_batch_size():
    small = ClassPairBatchSampler(SequentialSampler(range(10)), PAIR_LABELS, batch_size=4, seed=2)
    whole = ClassPairBatchSampler(SequentialSampler(range(10)), PAIR_LABELS, batch_size=16, seed=2)
    assert len(small) == 3 and len(whole) == 1
    small_batches, whole_batches = _batches(small), _batches(whole)
    assert [anchor for anchors, _ in small_batches for anchor in anchors] == list(range(10))
    pairs = {a: p for anchors, partners in small_batches for a, p in zip(anchors, partners, strict=True)}
    assert pairs == dict(zip(*whole_batches[0], strict=True))
    assert [len(anchors) for anchors, _ in _batches(ClassPairBatchSampler(range(10), PAIR_LABELS, 4, True))] == [4, 4]
    assert small.epoch == 1  # the next pass draws new partners
    assert _batches(small) != small_batches


def test_ranks_of_a_distributed_sampler_get_disjoint_anchors_and_agree_on_partners():
    ranks = [
        ClassPairBatchSampler(DistributedSampler(range(10), num_replicas=2, rank=rank, seed=3), PAIR_LABELS, 2, seed=3)
        for rank in (0, 1)
    ]
    anchors = [{a for batch_anchors, _ in _batches(sampler) for a in batch_anchors} for sampler in ranks]
    assert anchors[0].isdisjoint(anchors[1]) and anchors[0] | anchors[1] == set(range(10))
    assert torch.equal(ranks[0].partners(), ranks[1].partners())


def test_accelerate_shards_whole_batches_and_keeps_each_anchor_with_its_partner():
    """The Trainer's path: accelerate wraps the batch sampler in BatchSamplerShard (here 2 processes, 10 / 4)."""
    shards = [
        list(BatchSamplerShard(ClassPairBatchSampler(range(10), PAIR_LABELS, 4, seed=4), 2, rank)) for rank in (0, 1)
    ]
    partners = ClassPairBatchSampler(range(10), PAIR_LABELS, 4, seed=4).partners().tolist()
    assert len(shards[0]) == len(shards[1]) == 2  # even_batches: rank 1 repeats a whole batch
    for batch in shards[0] + shards[1]:
        anchors, pair = batch[: len(batch) // 2], batch[len(batch) // 2 :]
        assert pair == [partners[a] for a in anchors]
    assert set(shards[0][0][:4]) | set(shards[1][0][:4]) | set(shards[0][1][:2]) == set(range(10))


# ---- the trainer ------------------------------------------------------------------------------------------------

ALPHA, TF_REG_T, TF_REG_A, PS_KD_ALPHA_T, CS_KD_LAMBDA, CS_KD_T = 0.3, 5.0, 0.9, 0.7, 0.6, 3.0
BETA_LS_ALPHA, BETA_LS_BETA = 0.5, 2.0
SETTINGS = dict(
    alpha=ALPHA,
    tf_reg_temperature=TF_REG_T,
    tf_reg_teacher_prob=TF_REG_A,
    ps_kd_alpha_T=PS_KD_ALPHA_T,
    cs_kd_lambda=CS_KD_LAMBDA,
    cs_kd_temperature=CS_KD_T,
    beta_ls_alpha=BETA_LS_ALPHA,
    beta_ls_beta=BETA_LS_BETA,
)
IDS = [(7 * i + 3) % 16 for i in range(16)]  # a shuffled idx column: the table is keyed by idx, not by position


def _trainer(output_dir, regularization, dataset, student=None, **overrides) -> PseudoKDTrainer:
    args = sgd_args(str(output_dir), regularization=regularization, **{**SETTINGS, **overrides})
    return PseudoKDTrainer(model=copy.deepcopy(student or tiny_bert(3)), args=args, train_dataset=dataset)


def _tensors(dataset, rows=slice(None)) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    inputs = {name: torch.tensor(dataset[name][rows]) for name in ("input_ids", "attention_mask")}
    return inputs, torch.tensor(dataset["label"][rows])


def _sgd(model, loss, lr=0.5) -> torch.Tensor:
    loss.backward()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= lr * parameter.grad
            parameter.grad = None
    return _flat(model)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("regularization", ["tf_reg", "ps_kd", "cs_kd"])
def test_gradient_accumulation_never_changes_the_update(tmp_path, regularization):
    student, dataset = tiny_bert(3), tiny_dataset(16, 3).add_column("idx", IDS)
    previous = torch.distributions.Dirichlet(torch.ones(3)).sample((16,))  # a PS-KD table "from an earlier epoch"
    model = copy.deepcopy(student).train()
    inputs, labels = _tensors(dataset)
    logits = model(**inputs).logits
    if regularization == "tf_reg":
        loss = tf_reg_loss(logits, labels, alpha=ALPHA, temperature=TF_REG_T, teacher_prob=TF_REG_A)
    elif regularization == "ps_kd":  # one epoch in all: alpha_t = alpha_T
        loss = ps_kd_loss(logits, labels, previous[IDS], alpha_t=PS_KD_ALPHA_T)
    else:
        partners = ClassPairBatchSampler(range(16), dataset["label"], 16, seed=7).partners()  # sgd_args' data_seed
        loss = cs_kd_loss(logits, labels, logits[partners], lambda_=CS_KD_LAMBDA, temperature=CS_KD_T)
    expected = _sgd(model, loss)

    updates = []
    for batch_size, accumulation in ((16, 1), (4, 4)):
        trainer = _trainer(
            tmp_path / str(batch_size),
            regularization,
            dataset,
            student,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
        )
        if regularization == "ps_kd":
            trainer.regularizer.previous_predictions.probs.copy_(previous)  # rows in key order: key k is row k
        updates.append(trained_parameters(trainer))
        log = next(entry for entry in trainer.state.log_history if "loss" in entry)
        gold_weight = {"tf_reg": 1 - ALPHA, "ps_kd": 1 - PS_KD_ALPHA_T, "cs_kd": 1.0}[regularization]
        assert log["loss"] == pytest.approx(gold_weight * log["ce_loss"] + log["regularizer_loss"], abs=1e-4)
    assert (updates[0] - _flat(student)).abs().max() > 1e-4
    torch.testing.assert_close(updates[0], expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(updates[1], expected, atol=1e-5, rtol=1e-4)


def test_ps_kd_trains_on_cross_entropy_first_then_on_last_epoch_predictions(tmp_path):
    student, dataset = tiny_bert(3), tiny_dataset(16, 3).add_column("idx", IDS)
    trainer = _trainer(tmp_path, "ps_kd", dataset, student, max_steps=-1, num_train_epochs=2)
    trained = trained_parameters(trainer)

    model = copy.deepcopy(student).train()
    inputs, labels = _tensors(dataset)
    logits = model(**inputs).logits  # epoch 0: alpha_t = 0.7 / 2 on one-hot rows, i.e. cross-entropy
    stored = logits.detach().softmax(-1)
    _sgd(model, F.cross_entropy(logits, labels))
    logits = model(**inputs).logits  # epoch 1: alpha_t = 0.7 on epoch 0's predictions
    expected = _sgd(model, ps_kd_loss(logits, labels, stored, alpha_t=PS_KD_ALPHA_T))
    torch.testing.assert_close(trained, expected, atol=1e-5, rtol=1e-4)
    rows = torch.tensor(IDS)  # example i is keyed by IDS[i]
    torch.testing.assert_close(trainer.regularizer.previous_predictions.probs[rows], logits.detach().softmax(-1))


def test_beta_ls_updates_its_ema_once_per_optimizer_step(tmp_path):
    """2 steps x 2 micro-batches of 8, in order; the draws of step t come from hash((seed, rank, t))."""
    student, dataset = tiny_bert(3), tiny_dataset(32, 3)
    trainer = _trainer(
        tmp_path,
        "beta_ls",
        dataset,
        student,
        max_steps=2,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        train_sampling_strategy="sequential",
    )
    trained = trained_parameters(trainer)

    model, ema = copy.deepcopy(student).train(), copy.deepcopy(student).train()
    for step in range(2):
        generator = torch.Generator().manual_seed(hash((7, 0, step)) % 2**63)  # sgd_args' seed, process 0
        loss = 0.0
        for start in (16 * step, 16 * step + 8):
            inputs, labels = _tensors(dataset, slice(start, start + 8))
            with torch.no_grad():
                targets = beta_smoothing_targets(ema(**inputs).logits, labels, beta=BETA_LS_BETA, generator=generator)
            loss = (
                loss
                + soft_target_loss(model(**inputs).logits, labels, targets, alpha=BETA_LS_ALPHA, reduction="sum") / 16
            )
        expected = _sgd(model, loss)
        decay = min(1 - 1 / (step + 2), 0.999)  # after step t + 1: 1/2, then 2/3
        with torch.no_grad():
            for ema_parameter, parameter in zip(ema.parameters(), model.parameters(), strict=True):
                ema_parameter.copy_(decay * ema_parameter + (1 - decay) * parameter)
    torch.testing.assert_close(trained, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_flat(trainer.regularizer.ema_model), _flat(ema), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("regularization", ["ps_kd", "beta_ls"])
def test_resuming_from_a_checkpoint_restores_the_baseline_state(tmp_path, regularization):
    student, dataset = tiny_bert(3), tiny_dataset(16, 3).add_column("idx", IDS)
    settings = dict(max_steps=-1, num_train_epochs=2, per_device_train_batch_size=8, save_strategy="steps")
    uninterrupted = _trainer(tmp_path / "run", regularization, dataset, student, save_steps=2, **settings)
    final = trained_parameters(uninterrupted)
    checkpoint = tmp_path / "run" / "checkpoint-2"  # the end of epoch 0
    state = torch.load(checkpoint / REGULARIZER_STATE_NAME, weights_only=True)
    if regularization == "ps_kd":  # the state matters: epoch 0 replaced the one-hot rows
        assert not torch.equal(
            state["previous_predictions"]["probs"], F.one_hot(torch.tensor(dataset["label"])).float()
        )
    else:
        resumed_weights = uninterrupted.model.state_dict()
        assert any(not torch.equal(state["ema_model"][name], resumed_weights[name]) for name in state["ema_model"])

    resumed = _trainer(tmp_path / "resumed", regularization, dataset, student, save_steps=10, **settings)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    torch.testing.assert_close(_flat(resumed.model), final, atol=1e-6, rtol=1e-5)


def test_ps_kd_keeps_idx_for_training_only(tmp_path):
    dataset = tiny_dataset(8, 3).add_column("idx", list(range(8)))
    trainer = _trainer(tmp_path, "ps_kd", dataset, per_device_eval_batch_size=8)
    assert "idx" in next(iter(trainer.get_train_dataloader()))
    assert "idx" not in next(iter(trainer.get_eval_dataloader(dataset)))
    assert "eval_loss" in trainer.evaluate(dataset)
    with pytest.raises(ValueError, match="'idx' column"):
        _trainer(tmp_path, "ps_kd", tiny_dataset(8, 3))
    with pytest.raises(ValueError, match="distinct"):
        _trainer(tmp_path, "ps_kd", tiny_dataset(8, 3).add_column("idx", [0, 1, 2, 3, 4, 5, 6, 6]))


def test_cs_kd_batches_carry_each_anchor_and_its_partner(tmp_path):
    trainer = _trainer(tmp_path, "cs_kd", tiny_dataset(16, 3), per_device_train_batch_size=4)
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 8
    # The partners (second half) share their anchor's class; their labels are -100, so only anchors are counted.
    label_of = {
        tuple(ids): label
        for ids, label in zip(trainer.train_dataset["input_ids"], trainer.train_dataset["label"], strict=True)
    }
    partner_classes = [label_of[tuple(ids)] for ids in batch["input_ids"][4:].tolist()]
    assert partner_classes == batch["labels"][:4].tolist()
    assert (batch["labels"][4:] == -100).all()


@pytest.mark.parametrize("regularization", ["tf_reg", "ps_kd", "cs_kd", "beta_ls"])
def test_regression_warns_once_and_trains_on_the_mse(tmp_path, caplog, regularization):
    dataset = tiny_dataset(8, 1).add_column("idx", list(range(8)))
    hf_logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf"):
            trainer = _trainer(tmp_path / "method", regularization, dataset, tiny_bert(1), max_steps=2)
            trainer.train()
    finally:
        hf_logging.disable_propagation()
    assert caplog.text.count("does not apply to a regression head") == 1
    assert trainer.regularizer.name == "none"  # no PS-KD table, EMA model or pairs
    log = next(entry for entry in trainer.state.log_history if "loss" in entry)
    assert log["regularizer_loss"] == pytest.approx(0.0, abs=1e-6)


DDP_SCRIPT = Path(__file__).parent / "helpers" / "ddp_baselines.py"


@pytest.mark.slow
@pytest.mark.parametrize("regularization", ["tf_reg", "ps_kd", "cs_kd"])
def test_two_processes_equal_one_process_with_the_whole_batch(tmp_path, regularization):
    """torchrun x 2 (gloo, CPU) x batch 4 == 1 x batch 8: the update, and PS-KD's table gathered from both ranks."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:  # a free port for torchrun's static rendezvous
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    single, distributed = tmp_path / "single.pt", tmp_path / "ddp.pt"
    command = [str(DDP_SCRIPT), regularization]
    subprocess.run(
        [sys.executable, *command, "8", str(single), str(tmp_path / "one")], check=True, env=env, capture_output=True
    )
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port, *command]
        + ["4", str(distributed), str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name, value in torch.load(single).items():
        torch.testing.assert_close(torch.load(distributed)[name], value, atol=1e-5, rtol=1e-4)


# ---- the CLI ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("models") / "student", minilm_path)


@pytest.mark.parametrize(
    ("regularization", "flag"),
    [
        ("tf_reg", ("--tf_reg_temperature", "10")),
        ("ps_kd", ("--ps_kd_alpha_T", "0.5")),
        ("cs_kd", ("--cs_kd_lambda", "0.5")),
        ("beta_ls", ("--beta_ls_beta", "2")),
    ],
)
def test_cli_trains_and_evaluates_rte(tiny_student, shared_glue_data, tmp_path, regularization, flag):
    output_dir = tmp_path / regularization
    flags = run_flags(
        tiny_student, output_dir, "rte", "--data_dir", shared_glue_data, "--regularization", regularization
    )
    flags += ["--do_train", "--do_eval", "--max_train_samples", "32", "--max_eval_samples", "16", *flag]
    if regularization == "ps_kd":  # its idx column stays out of evaluation and prediction
        flags += ["--do_predict", "--max_predict_samples", "8"]
    assert main(flags) == 0
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["train_samples"] == 32 and results["eval_samples"] == 16
    assert torch.isfinite(torch.tensor(results["train_loss"]))


def test_preset_paper_leaves_the_baselines_own_defaults(tmp_path):
    values = {"task_name": "rte", "output_dir": str(tmp_path), "do_train": True, "regularization": "beta_ls"}
    _, _, args = build_arguments(apply_preset(values, get_task("rte")))
    # the paper's, for Pseudo-KD (Appendix C's beta 2 read as the temperature: beta = 0.1 * 2)
    assert (args.alpha, args.beta, args.per_device_train_batch_size) == (0.1, pytest.approx(0.2), 16)
    assert (args.beta_ls_alpha, args.beta_ls_beta, args.tf_reg_temperature, args.cs_kd_temperature) == (
        0.6,
        3.0,
        20.0,
        4.0,
    )
