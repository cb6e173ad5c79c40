"""Precompute a KD teacher's logits over a training set once, and keep them in the `datasets` cache.

A teacher such as RoBERTa-Large costs far more per step than a DistilRoBERTa student; running it once per training
example instead of once per epoch and per run saves most of KD's cost. The logits come from the teacher's own
tokenizer, so teacher and student need not share a vocabulary. The cache entry is keyed by the teacher's content
(weights, config, tokenizer) and the dataset's fingerprint, so a retrained teacher or edited data is recomputed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from datasets import Dataset
from datasets.fingerprint import Hasher
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging

from .trainer import TEACHER_LOGITS_COLUMN

logger = logging.get_logger(__name__)


def fingerprint_teacher(teacher_model: PreTrainedModel, teacher_tokenizer: PreTrainedTokenizerBase) -> str:
    """A hex digest of the teacher's weights, config and tokenizer vocabulary.

    Hashing the weights (about a second for RoBERTa-Large) rather than the path means a teacher retrained into the
    same folder never serves stale logits.
    """
    digest = hashlib.sha256()
    for name, tensor in teacher_model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy())
    digest.update(teacher_model.config.to_json_string(use_diff=False).encode())
    digest.update(Hasher.hash(sorted(teacher_tokenizer.get_vocab().items())).encode())
    return digest.hexdigest()


def add_teacher_logits(
    dataset: Dataset,
    teacher_model: PreTrainedModel,
    teacher_tokenizer: PreTrainedTokenizerBase,
    text_columns: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int | None = None,
    label_order: Sequence[int] | None = None,
    teacher_fingerprint: str | None = None,
    device: torch.device | str | None = None,
) -> Dataset:
    """Return `dataset` with a `teacher_logits` column: one list of the teacher's logits per example.

    The texts in `text_columns` are tokenised with `teacher_tokenizer` (truncated to `max_length`). `label_order`
    permutes the teacher's logit columns onto the student's labels (see `trainer.teacher_label_order`).
    `datasets.map` stores the result in the dataset's cache folder under a fingerprint of the teacher, the data,
    `max_length` and `label_order`, and serves a later call from there without running the teacher; a dataset
    held only in memory (no cache files) is recomputed each time. The teacher runs in eval mode without gradients,
    on `device` (default: where it already is).
    """
    missing = [column for column in text_columns if column not in dataset.column_names]
    if missing:
        raise ValueError(f"dataset has no column {', '.join(missing)}: pass the raw split with its text columns.")
    if teacher_fingerprint is None:
        teacher_fingerprint = fingerprint_teacher(teacher_model, teacher_tokenizer)
    order = None if label_order is None else list(label_order)
    new_fingerprint = Hasher.hash([teacher_fingerprint, dataset._fingerprint, max_length, order])
    if not dataset.cache_files:
        logger.warning("The dataset lives only in memory: teacher logits are computed but not cached on disk.")
    if device is not None:
        teacher_model.to(device)
    teacher_model.eval()
    model_device = next(teacher_model.parameters()).device

    @torch.no_grad()
    def teacher_logits(batch: dict[str, list]) -> dict[str, list[list[float]]]:
        encoded = teacher_tokenizer(
            *(batch[column] for column in text_columns),
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        ).to(model_device)
        logits = teacher_model(**encoded).logits.float()
        if order is not None:
            logits = logits[:, order]
        return {TEACHER_LOGITS_COLUMN: logits.cpu().tolist()}

    return dataset.map(
        teacher_logits,
        batched=True,
        batch_size=batch_size,
        new_fingerprint=new_fingerprint,
        desc="Computing teacher logits",
    )
