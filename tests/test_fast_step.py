"""`--fast_step` (pseudo_kd_hf/fast_step.py): static shapes, the compiled step, persistent gradients, the flag.

CUDA graphs need a GPU; here the compiled path runs with the `aot_eager` backend (dynamo + AOT autograd, no
kernels generated), which exercises the same wrapping, recompiles and gradient handling.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding

from benchmarks import gpu_step
from pseudo_kd_hf import PseudoKDTrainer
from pseudo_kd_hf.cli import UsageError, build_arguments
from pseudo_kd_hf.fast_step import (
    IGNORE_INDEX,
    FastStepPlan,
    StaticShapeCollator,
    bucket_length,
    fast_step_plan,
    keep_gradients_allocated,
    pad_to_static_shape,
)
from tests.helpers.glue_models import word_level_tokenizer
from tests.helpers.tiny import VOCAB, sgd_args, tiny_bert

EAGER_STATIC = FastStepPlan(compile_options=None)
COMPILED_STATIC = FastStepPlan(compile_options={"backend": "aot_eager", "dynamic": False})


def ragged_dataset(num_examples: int, num_labels: int = 3, teacher_logits: bool = False, seed: int = 1) -> Dataset:
    """Examples of 3 to 12 tokens (so batches pad to different lengths), random labels."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 13, (num_examples,), generator=generator).tolist()
    columns = {
        "input_ids": [torch.randint(1, VOCAB, (length,), generator=generator).tolist() for length in lengths],
        "label": torch.randint(0, num_labels, (num_examples,), generator=generator).tolist(),
    }
    columns["attention_mask"] = [[1] * length for length in lengths]
    if teacher_logits:
        columns["teacher_logits"] = (torch.randn(num_examples, num_labels, generator=generator) * 2).tolist()
    return Dataset.from_dict(columns)


def train(
    tmp_path,
    plan: FastStepPlan | None,
    *,
    num_examples: int = 10,
    model_seed: int = 0,
    trainer_class: type[PseudoKDTrainer] = PseudoKDTrainer,
    **overrides,
) -> tuple[torch.Tensor, list[float], PseudoKDTrainer]:
    """Train a tiny BERT (no dropout) with SGD (`none` unless overridden); return parameters, losses, trainer."""
    settings = {"max_steps": 3, "per_device_train_batch_size": 4, "regularization": "none", **overrides}
    args = sgd_args(str(tmp_path / "run"), fast_step=plan is not None, **settings)
    dataset = ragged_dataset(num_examples, teacher_logits=args.regularization == "kd")
    trainer = trainer_class(
        model=tiny_bert(seed=model_seed),
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(word_level_tokenizer()),
    )
    trainer.fast_step_plan = plan  # on CPU the flag alone gives the eager step
    trainer.train(resume_from_checkpoint=overrides.get("resume_from_checkpoint"))
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    parameters = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
    return parameters, losses, trainer


# ---- shapes ----------------------------------------------------------------------------------------------------------


def test_bucket_lengths_are_few_and_hold_every_length():
    def buckets(max_length: int) -> list[int]:  # every bucket a run truncated to max_length can produce
        return sorted({bucket_length(length, max_length) for length in range(1, max_length + 1)})

    assert buckets(128) == [32, 64, 96, 128]
    assert buckets(512) == [32, 64, 96, 128, 256, 512]
    assert buckets(200) == [32, 64, 96, 128, 200]
    assert buckets(20) == [20]
    assert [bucket_length(n) for n in (1, 32, 33, 128, 129, 300)] == [32, 32, 64, 128, 256, 512]
    assert all(bucket_length(n, 200) >= n for n in range(1, 201))


def test_pad_to_static_shape_pads_length_and_rows():
    batch = {
        "input_ids": torch.tensor([[5, 6, 7], [8, 9, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
        "token_type_ids": torch.zeros(2, 3, dtype=torch.long),
        "labels": torch.tensor([2, 0]),
        "teacher_logits": torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, 1.0]]),
    }
    padded = pad_to_static_shape(batch, batch_size=4, pad_token_id=9)
    assert padded["input_ids"].shape == padded["attention_mask"].shape == padded["token_type_ids"].shape == (4, 32)
    assert padded["input_ids"][:2, :3].tolist() == batch["input_ids"].tolist()
    assert (padded["input_ids"][:, 3:] == 9).all() and (padded["input_ids"][2:] == 9).all()
    assert padded["attention_mask"][:2].sum().item() == 5  # real tokens only
    assert padded["attention_mask"][2:].tolist() == [[1] + [0] * 31] * 2  # a padding row attends to one token
    assert padded["labels"].tolist() == [2, 0, IGNORE_INDEX, IGNORE_INDEX]
    assert padded["teacher_logits"].shape == (4, 3) and not padded["teacher_logits"][2:].any()
    assert padded["input_ids"].dtype == torch.long and padded["labels"].dtype == batch["labels"].dtype
    with pytest.raises(ValueError, match="static batch size 1"):
        pad_to_static_shape(batch, batch_size=1)


def test_static_shape_collator_gives_one_shape_per_bucket():
    dataset = ragged_dataset(10)
    collator = StaticShapeCollator(DataCollatorWithPadding(word_level_tokenizer()), batch_size=4, max_length=12)
    batches = [collator([dataset[i] for i in range(start, min(start + 4, 10))]) for start in (0, 4, 8)]
    assert {tuple(batch["input_ids"].shape) for batch in batches} == {(4, 12)} == collator.shapes_seen
    assert (batches[-1]["labels"][2:] == IGNORE_INDEX).all() and (batches[0]["labels"] != IGNORE_INDEX).all()


# ---- the same numbers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "regularization",
    [
        "none",
        "pseudo_kd",
        "ls",
        "kd",
    ],
)
def test_static_shapes_train_like_dynamic_padding(tmp_path, regularization):
    """Padding to buckets and padding rows (label -100) leave losses and updates as they were (last batch: 2 rows)."""
    reference, reference_losses, _ = train(tmp_path / "eager", None, regularization=regularization)
    parameters, losses, trainer = train(tmp_path / "static", EAGER_STATIC, regularization=regularization)
    torch.testing.assert_close(parameters, reference, rtol=1e-5, atol=1e-6)
    assert losses == pytest.approx(reference_losses, rel=1e-5)
    assert len(reference_losses) == 3


@pytest.mark.slow
def test_compiled_step_trains_like_eager(tmp_path):
    """The compiled training model (aot_eager here) gives the eager losses and parameters, step by step."""
    reference, reference_losses, _ = train(tmp_path / "eager", None, max_steps=5)
    torch._dynamo.reset()
    parameters, losses, trainer = train(tmp_path / "compiled", COMPILED_STATIC, max_steps=5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # the step really was compiled
    torch.testing.assert_close(parameters, reference, rtol=1e-5, atol=1e-6)
    assert losses == pytest.approx(reference_losses, rel=1e-5)
    assert all(p.grad is not None for p in trainer.model.parameters())  # kept allocated, zeroed in place
    assert trainer.evaluate(ragged_dataset(6))["eval_loss"] > 0  # evaluation runs the eager model


@pytest.mark.parametrize("regularization", ["pseudo_kd", "kd"])
def test_compiled_loss_trains_like_the_eager_loss(tmp_path, regularization):
    """The GPU step benchmark's compiled-loss variant compiles the method's per-example loss too; losses and
    parameters stay the eager ones."""
    settings = {"max_steps": 4, "regularization": regularization, "alpha": 0.3}
    reference, reference_losses, _ = train(tmp_path / "eager", None, **settings)
    torch._dynamo.reset()
    trainer_class = gpu_step.CompiledLossPseudoKDTrainer
    parameters, losses, trainer = train(tmp_path / "compiled", COMPILED_STATIC, trainer_class=trainer_class, **settings)
    assert hasattr(trainer.regularizer.per_example_loss, "_torchdynamo_orig_callable")  # really compiled
    torch.testing.assert_close(parameters, reference, rtol=1e-5, atol=1e-6)
    assert losses == pytest.approx(reference_losses, rel=1e-5)


@pytest.mark.slow
def test_gradient_accumulation_with_fast_step(tmp_path):
    """Two micro-batches of 4 accumulate into the same update as one batch of 8 (14 examples: last step pads)."""
    reference, _, _ = train(tmp_path / "eager", None, num_examples=14, max_steps=2, per_device_train_batch_size=8)
    parameters, _, _ = train(
        tmp_path / "accumulated",
        COMPILED_STATIC,
        num_examples=14,
        max_steps=2,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
    )
    torch.testing.assert_close(parameters, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_resume_with_fast_step_continues_exactly(tmp_path):
    """A run stopped after 2 of 4 steps and resumed ends where the uninterrupted run ends (AdamW state included)."""
    settings = {"max_steps": 4, "optim": "adamw_torch", "learning_rate": 0.05, "save_strategy": "steps"}
    whole, _, _ = train(tmp_path / "whole", COMPILED_STATIC, save_steps=100, **settings)
    train(tmp_path / "resumed", COMPILED_STATIC, save_steps=2, **settings)
    checkpoint = tmp_path / "resumed" / "run" / "checkpoint-2"
    assert checkpoint.is_dir()
    resumed, _, _ = train(
        tmp_path / "resumed", COMPILED_STATIC, save_steps=100, resume_from_checkpoint=str(checkpoint), **settings
    )
    torch.testing.assert_close(resumed, whole, rtol=1e-5, atol=1e-6)


# ---- gradients, FLOPs, the flag ------------------------------------------------------------------------------------


def test_keep_gradients_allocated_zeroes_in_place():
    model = tiny_bert()
    keep_gradients_allocated(model)
    gradients = [p.grad for p in model.parameters()]
    assert all(g is not None and not g.any() for g in gradients)
    model(input_ids=torch.randint(1, VOCAB, (2, 5))).logits.sum().backward()
    assert any(g.any() for g in gradients)
    assert all(p.grad is g for p, g in zip(model.parameters(), gradients, strict=True))
    model.zero_grad()  # the Trainer's call: zeroed, not freed
    assert all(p.grad is g and not g.any() for p, g in zip(model.parameters(), gradients, strict=True))


def test_flop_count_is_the_trainers(tmp_path):
    _, _, trainer = train(tmp_path, EAGER_STATIC, max_steps=1)
    inputs = {"input_ids": torch.ones(4, 32, dtype=torch.long)}
    assert trainer.floating_point_ops(inputs) == 6 * 4 * 32 * trainer.model.num_parameters(exclude_embeddings=True)


def test_flag_sets_arguments_and_is_eager_on_cpu(tmp_path):
    args = sgd_args(str(tmp_path), fast_step=True)
    assert sgd_args(str(tmp_path)).logging_nan_inf_filter is False  # off by default: a NaN loss stops training
    trainer = PseudoKDTrainer(model=tiny_bert(), args=args, train_dataset=ragged_dataset(4))
    assert args.logging_nan_inf_filter is False and args.accelerator_config.non_blocking is True  # set by the trainer
    assert trainer.accelerator.dataloader_config.non_blocking is True
    assert trainer.fast_step_plan is None  # CPU: the eager step
    assert fast_step_plan(torch.device("cuda")).compile_options == {"mode": "reduce-overhead", "dynamic": False}
    assert fast_step_plan(torch.device("cpu")) is None


@pytest.mark.parametrize("regularization", ["ps_kd", "cs_kd", "beta_ls"])
def test_flag_refuses_methods_with_per_row_state(tmp_path, regularization):
    with pytest.raises(ValueError, match=f"fast_step does not support regularization='{regularization}'"):
        sgd_args(str(tmp_path), fast_step=True, regularization=regularization)
    with pytest.raises(UsageError, match="fast_step"):
        build_arguments(
            {"task_name": "rte", "output_dir": str(tmp_path), "fast_step": True, "regularization": regularization}
        )


@pytest.mark.slow
def test_two_processes_with_fast_step_equal_one_eager_process(tmp_path):
    """torchrun 2 processes (gloo, CPU) x batch 4, compiled fast step == one eager process x batch 8."""
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    single, distributed = tmp_path / "single.pt", tmp_path / "ddp.pt"
    eager_script, fast_script = (
        root / "tests" / "helpers" / "ddp_step.py",
        root / "tests" / "helpers" / "ddp_fast_step.py",
    )
    subprocess.run(
        [sys.executable, str(eager_script), "pseudo_kd", "8", str(single), str(tmp_path / "run1")],
        check=True,
        env=env,
        capture_output=True,
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(fast_script), "pseudo_kd", "4", str(distributed), str(tmp_path / "run2")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    torch.testing.assert_close(torch.load(distributed), torch.load(single), atol=1e-5, rtol=1e-4)
