"""A KD teacher: loading it, matching its labels to the student's, running it beside the student, caching its logits.

The CLI and `PseudoKDTrainer` load a teacher with `load_teacher_model` and check its labels with
`teacher_label_order`; the trainer freezes it and places it with `prepare_teacher` (a DeepSpeed inference engine under
DeepSpeed). `add_teacher_logits` precomputes its logits over a training set once and keeps them in the `datasets`
cache: a teacher such as RoBERTa-Large costs far more per step than a DistilRoBERTa student, so running it once per
training example instead of once per epoch and per run saves most of KD's cost. The logits come from the teacher's
own tokenizer, so teacher and student need not share a vocabulary. The cache entry is keyed by the teacher's content
(weights, config, tokenizer) and the dataset's fingerprint, so a retrained teacher or edited data is recomputed.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from datasets import Dataset
from datasets.fingerprint import Hasher
from torch import nn
from transformers import AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging

from .glue.finite import NonFinitePredictionsError

if TYPE_CHECKING:
    from transformers import Trainer

logger = logging.get_logger(__name__)

# A training-set column of precomputed teacher logits (one list of K floats per example): KD then needs no teacher.
TEACHER_LOGITS_COLUMN = "teacher_logits"


class NonFiniteTeacherLogitsError(NonFinitePredictionsError):
    """The teacher's logits hold NaN or infinity: it diverged, and KD would train the student on them."""


def check_finite_teacher_logits(logits: torch.Tensor, example_ids: Sequence[int]) -> None:
    """Raise `NonFiniteTeacherLogitsError` naming the rows (their `example_ids`) whose logits are not all finite."""
    bad = (~torch.isfinite(logits).reshape(len(logits), -1).all(dim=1)).nonzero().flatten().tolist()
    if bad:
        named = sorted(int(example_ids[row]) for row in bad)
        first = ", ".join(map(str, named[:5])) + (", ..." if len(bad) > 5 else "")
        raise NonFiniteTeacherLogitsError(
            f"the teacher's logits are not finite (NaN or inf) for {len(bad)} of {len(logits)} training examples "
            f"(idx {first}): the teacher diverged, and KD would train on them; use a teacher that trained (check "
            "its eval results)."
        )


def load_teacher_model(name_or_path: str, *, dtype: torch.dtype | None = None, **hub_kwargs: Any) -> PreTrainedModel:
    """`AutoModelForSequenceClassification.from_pretrained`, in the student's `dtype` when given."""
    return AutoModelForSequenceClassification.from_pretrained(name_or_path, dtype=dtype, **hub_kwargs)


def _named_labels(config: PretrainedConfig) -> list[str] | None:
    """The config's label names in id order, or None when they are the meaningless defaults LABEL_0, LABEL_1..."""
    names = [str(config.id2label[i]) for i in range(config.num_labels)]
    return None if names == [f"LABEL_{i}" for i in range(config.num_labels)] else names


def teacher_label_order(teacher_config: PretrainedConfig, student_config: PretrainedConfig) -> list[int] | None:
    """Column order that maps the teacher's logits onto the student's labels; None when they already agree.

    Raises `ValueError` when the label counts differ, or when both configs name their labels and the names differ.
    """
    if teacher_config.num_labels != student_config.num_labels:
        raise ValueError(
            f"The teacher has {teacher_config.num_labels} labels but the student has {student_config.num_labels}: "
            "use a teacher fine-tuned on the same task."
        )
    teacher_names, student_names = _named_labels(teacher_config), _named_labels(student_config)
    if teacher_names is None or student_names is None or teacher_names == student_names:
        return None
    if sorted(teacher_names) != sorted(student_names):
        raise ValueError(
            f"The teacher's labels {teacher_names} differ from the student's {student_names}: "
            "use a teacher fine-tuned on the same task."
        )
    order = [teacher_names.index(name) for name in student_names]
    logger.info(f"Teacher labels {teacher_names} are reordered to the student's {student_names}.")
    return order


def prepare_teacher(teacher: PreTrainedModel | nn.Module | str, trainer: Trainer) -> tuple[nn.Module, list[int] | None]:
    """Load (a name/path, in the student's dtype), check the labels, freeze and place a teacher beside the student.

    Returns the teacher, on the student's device and mixed-precision policy and never wrapped in DDP (a DeepSpeed
    inference engine under DeepSpeed), and the column order mapping its logits onto the student's labels.
    """
    student = trainer.accelerator.unwrap_model(trainer.model)
    if isinstance(teacher, str):
        teacher = load_teacher_model(teacher, dtype=getattr(student, "dtype", None))
    teacher_config = getattr(teacher, "config", None)
    order = None if teacher_config is None else teacher_label_order(teacher_config, student.config)
    teacher.eval()
    teacher.requires_grad_(False)
    if trainer.is_deepspeed_enabled:
        return deepspeed_inference_engine(teacher, trainer.accelerator.state.deepspeed_plugin.deepspeed_config), order
    return trainer.accelerator.prepare_model(teacher, evaluation_mode=True), order


def deepspeed_inference_engine(teacher: nn.Module, deepspeed_config: dict[str, Any]) -> nn.Module:
    """Shard the teacher like the student under ZeRO-3 (no optimizer); other stages keep it whole (stage 0)."""
    import deepspeed

    config = copy.deepcopy(deepspeed_config)
    zero = config.setdefault("zero_optimization", {})
    if zero.get("stage") == 3:
        hidden_size = getattr(getattr(teacher, "config", None), "hidden_size", None)
        if hidden_size is not None:
            zero.update(
                {
                    key: value
                    for key, value in {
                        "reduce_bucket_size": hidden_size * hidden_size,
                        "stage3_param_persistence_threshold": 10 * hidden_size,
                        "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
                    }.items()
                    if zero.get(key, "auto") == "auto"
                }
            )
    else:
        zero["stage"] = 0
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    engine, *_ = deepspeed.initialize(model=teacher, config=config)
    engine.eval()
    return engine


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
    permutes the teacher's logit columns onto the student's labels (see `teacher_label_order`).
    `datasets.map` stores the result in the dataset's cache folder under a fingerprint of the teacher, the data,
    `max_length` and `label_order`, and serves a later call from there without running the teacher; a dataset
    held only in memory (no cache files) is recomputed each time. The teacher runs in eval mode without gradients,
    on `device` (default: where it already is). Logits that are not finite (a diverged teacher, computed now or
    served from the cache) raise `NonFiniteTeacherLogitsError` instead of reaching the student.
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
    computed = []  # the batches the teacher ran on: none when the cache served the logits

    @torch.no_grad()
    def teacher_logits(batch: dict[str, list]) -> dict[str, list[list[float]]]:
        computed.append(len(batch[text_columns[0]]))
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

    result = dataset.map(
        teacher_logits,
        batched=True,
        batch_size=batch_size,
        new_fingerprint=new_fingerprint,
        desc="Computing teacher logits",
    )
    example_ids = list(result["idx"]) if "idx" in result.column_names else range(len(result))
    check_finite_teacher_logits(torch.tensor(list(result[TEACHER_LOGITS_COLUMN])), example_ids)
    where = result.cache_files[0]["filename"] if result.cache_files else "memory only"
    how = f"computed by the teacher for {sum(computed)} examples" if computed else "served from the cache"
    logger.info(f"Teacher logits {how}: {where}")
    return result
