"""Tiny BERT classifiers and token datasets built from configs, shared by the trainer tests and the DDP script."""

from __future__ import annotations

import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification

from pseudo_kd_hf import TEACHER_LOGITS_COLUMN, PseudoKDTrainer, PseudoKDTrainingArguments

SEQ_LEN = 8
VOCAB = 64


def tiny_bert(
    num_labels: int = 3, seed: int = 0, hidden_size: int = 16, **config_kwargs
) -> BertForSequenceClassification:
    """A 2-layer BERT without dropout, so a training step is deterministic."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=num_labels,
        **config_kwargs,
    )
    return BertForSequenceClassification(config)


def tiny_dataset(num_examples: int = 16, num_labels: int = 3, teacher_logits: bool = False, seed: int = 1) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    columns = {
        "input_ids": torch.randint(1, VOCAB, (num_examples, SEQ_LEN), generator=generator).tolist(),
        "attention_mask": [[1] * SEQ_LEN for _ in range(num_examples)],
    }
    if num_labels == 1:
        columns["label"] = (torch.rand(num_examples, generator=generator) * 5).tolist()
    else:
        columns["label"] = torch.randint(0, num_labels, (num_examples,), generator=generator).tolist()
    if teacher_logits:
        columns[TEACHER_LOGITS_COLUMN] = (torch.randn(num_examples, num_labels, generator=generator) * 2).tolist()
    return Dataset.from_dict(columns)


def sgd_args(output_dir: str, **overrides) -> PseudoKDTrainingArguments:
    """One plain SGD step at a constant rate: the update is proportional to the gradient, so scaling bugs show."""
    settings = dict(
        output_dir=output_dir,
        optim="sgd",
        learning_rate=0.5,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        weight_decay=0.0,
        max_steps=1,
        per_device_train_batch_size=16,
        gradient_accumulation_steps=1,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=7,
        data_seed=7,
    )
    settings.update(overrides)
    return PseudoKDTrainingArguments(**settings)


def trained_parameters(trainer: PseudoKDTrainer) -> torch.Tensor:
    trainer.train()
    return torch.cat([p.detach().reshape(-1).cpu() for p in trainer.model.parameters()])
