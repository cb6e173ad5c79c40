"""`PseudoKDTrainer`: a Hugging Face `Trainer` whose loss is Pseudo-KD, label smoothing or knowledge distillation.

Follows TRL's pattern: the method's settings live in a `TrainingArguments` subclass, the trainer overrides only
`compute_loss` (plus the hooks that keep a cached-logits column and log the loss parts), and the math lives in
`pseudo_kd_hf.losses`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
)
from transformers.utils import logging

from .losses import kd_loss, label_smoothing_loss, pseudo_kd_loss, regression_kd_loss

logger = logging.get_logger(__name__)

REGULARIZATIONS = ("none", "ls", "kd", "pseudo_kd")
# A training-set column of precomputed teacher logits (one list of K floats per example): KD then needs no teacher.
TEACHER_LOGITS_COLUMN = "teacher_logits"


@dataclass
class PseudoKDTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the label regulariser's settings (so `HfArgumentParser` exposes them as flags)."""

    regularization: str = field(
        default="pseudo_kd",
        metadata={
            "help": "Label regulariser: none (cross-entropy), ls (uniform label smoothing), kd (knowledge "
            "distillation from a teacher), pseudo_kd (the paper's optimal instance-specific smoothing).",
            "choices": list(REGULARIZATIONS),
        },
    )
    alpha: float = field(
        default=0.1, metadata={"help": "Weight of the smoothing distribution / teacher in the target, in [0, 1]."}
    )
    beta: float = field(
        default=2.0, metadata={"help": "Pseudo-KD's KL weight (> 0): P* = softmax((alpha / beta) * logits)."}
    )
    temperature: float = field(default=1.0, metadata={"help": "KD softmax temperature T (> 0); the loss uses T^2."})

    def __post_init__(self) -> None:
        if self.regularization not in REGULARIZATIONS:
            raise ValueError(
                f"regularization must be one of {', '.join(REGULARIZATIONS)}, got {self.regularization!r}."
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}.")
        if not self.beta > 0.0:
            raise ValueError(f"beta must be > 0, got {self.beta}.")
        if not self.temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}.")
        if self.label_smoothing_factor:
            raise ValueError(
                "label_smoothing_factor would smooth on top of the regulariser: use "
                f"regularization='ls' with alpha={self.label_smoothing_factor} instead."
            )
        super().__post_init__()


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


class PseudoKDTrainer(Trainer):
    """A `Trainer` that trains a sequence classifier with Pseudo-KD, label smoothing or knowledge distillation.

    `teacher_model` (a model, or a name/path for `AutoModelForSequenceClassification`) is used by
    `regularization="kd"` only; it is frozen, kept in eval mode outside DDP and never run during evaluation.
    Instead of a teacher, the training set may carry a `teacher_logits` column of precomputed logits.
    Evaluation reports the gold-label loss (cross-entropy, or MSE for regression) so runs compare across methods.
    """

    args: PseudoKDTrainingArguments

    def __init__(
        self,
        model: PreTrainedModel | nn.Module | None = None,
        args: PseudoKDTrainingArguments | None = None,
        *trainer_args: Any,
        teacher_model: PreTrainedModel | nn.Module | str | None = None,
        **kwargs: Any,
    ) -> None:
        if args is None:
            args = PseudoKDTrainingArguments(output_dir="trainer_output")
        if not isinstance(args, PseudoKDTrainingArguments):
            raise TypeError(
                f"PseudoKDTrainer needs PseudoKDTrainingArguments, got {type(args).__name__}: "
                "build the arguments with pseudo_kd_hf.PseudoKDTrainingArguments."
            )
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("PseudoKDTrainer computes its own loss: drop compute_loss_func.")
        super().__init__(model, args, *trainer_args, **kwargs)
        # compute_loss normalises by `num_items_in_batch` itself; this makes the Trainer count it for every model.
        self.model_accepts_loss_kwargs = True
        student_config = self.accelerator.unwrap_model(self.model).config
        self._is_regression = student_config.num_labels == 1
        self._teacher_order: list[int] | None = None
        self.teacher_model = self._prepare_teacher(teacher_model, student_config)
        self._check_kd_has_teacher()
        if self._is_regression and args.regularization in ("ls", "pseudo_kd"):
            logger.warning(
                f"regularization={args.regularization!r} does not apply to a regression head (num_labels=1): "
                "training on the MSE to the gold score."
            )
        self._part_totals: torch.Tensor | None = None  # [sum of gold loss, sum of regulariser part, examples]

    # ---- teacher ----------------------------------------------------------------------------------------------

    def _prepare_teacher(
        self, teacher: PreTrainedModel | nn.Module | str | None, student_config: PretrainedConfig
    ) -> nn.Module | None:
        if teacher is None:
            return None
        if self.args.regularization != "kd":
            logger.warning(f"teacher_model is ignored: regularization={self.args.regularization!r} uses no teacher.")
            return None
        if isinstance(teacher, str):
            student_dtype = getattr(self.accelerator.unwrap_model(self.model), "dtype", None)
            teacher = AutoModelForSequenceClassification.from_pretrained(teacher, dtype=student_dtype)
        teacher_config = getattr(teacher, "config", None)
        if teacher_config is not None:
            self._teacher_order = teacher_label_order(teacher_config, student_config)
        teacher.eval()
        teacher.requires_grad_(False)
        if self.is_deepspeed_enabled:
            teacher = self._deepspeed_inference_engine(teacher)
        else:  # on the student's device and mixed-precision policy, never wrapped in DDP
            teacher = self.accelerator.prepare_model(teacher, evaluation_mode=True)
        return teacher

    def _deepspeed_inference_engine(self, teacher: nn.Module) -> nn.Module:
        """Shard the teacher like the student under ZeRO-3 (no optimizer); other stages keep it whole (stage 0)."""
        import deepspeed

        config = copy.deepcopy(self.accelerator.state.deepspeed_plugin.deepspeed_config)
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

    def _check_kd_has_teacher(self) -> None:
        """KD without a teacher or cached logits fails here, before any training step."""
        if self.args.regularization != "kd" or self.teacher_model is not None or self.train_dataset is None:
            return
        columns = getattr(self.train_dataset, "column_names", None)
        if columns is not None and TEACHER_LOGITS_COLUMN not in columns:
            raise ValueError(_NO_TEACHER_MESSAGE)

    @torch.no_grad()
    def _teacher_logits(self, inputs: dict[str, Any]) -> torch.Tensor:
        if self.teacher_model is None:
            raise ValueError(_NO_TEACHER_MESSAGE)
        logits = self.teacher_model(**inputs).logits
        return logits if self._teacher_order is None else logits[:, self._teacher_order]

    # ---- loss -------------------------------------------------------------------------------------------------

    def _gold_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-example cross-entropy to the gold class, or squared error to the gold score for regression."""
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        if self._is_regression:
            return F.mse_loss(logits.reshape(-1), labels.to(logits.dtype).reshape(-1), reduction="none")
        return F.cross_entropy(logits, labels.long(), reduction="none")

    def _training_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Per-example loss of the configured method, the per-example gold loss, and the gold loss's weight in it."""
        args = self.args
        gold = self._gold_loss(logits, labels)
        if args.regularization == "kd" and self._is_regression:
            return regression_kd_loss(logits, teacher_logits, labels, args.alpha, reduction="none"), gold, 1.0
        if args.regularization == "none" or self._is_regression:
            return gold, gold, 1.0
        if args.regularization == "ls":
            loss = label_smoothing_loss(logits, labels, args.alpha, reduction="none")
        elif args.regularization == "pseudo_kd":
            loss = pseudo_kd_loss(logits, labels, args.alpha, args.beta, reduction="none")
        else:
            loss = kd_loss(logits, teacher_logits, labels, args.alpha, args.temperature, reduction="none")
        return loss, gold, 1.0 - args.alpha

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Apply the configured regulariser; in evaluation, the gold-label loss (no teacher is run).

        The sum over the batch is divided by `num_items_in_batch` when the Trainer gives it (the examples of the
        whole accumulated batch), so gradient accumulation and data parallelism leave the update unchanged.
        """
        inputs = dict(inputs)
        labels = inputs.pop("labels")  # read before the forward pass: the model computes no loss of its own
        cached_teacher_logits = inputs.pop(TEACHER_LOGITS_COLUMN, None)
        outputs = model(**inputs)
        logits = outputs.logits
        if not model.training:
            per_example = self._gold_loss(logits, labels)
        else:
            teacher_logits = None
            if self.args.regularization == "kd":
                teacher_logits = (
                    cached_teacher_logits if cached_teacher_logits is not None else self._teacher_logits(inputs)
                )
            per_example, gold, gold_weight = self._training_loss(logits, labels, teacher_logits)
            self._record_loss_parts(per_example.detach(), gold.detach(), gold_weight)
        loss = self._normalize(per_example, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _normalize(self, per_example: torch.Tensor, num_items_in_batch: torch.Tensor | int | None) -> torch.Tensor:
        """Mean over the accumulated (and, across processes, gathered) batch; tells the Trainer it is GA-scaled."""
        if num_items_in_batch is None or self.args.n_gpu > 1:  # DataParallel gathers the whole batch here
            self.loss_is_scaled_for_ga = False
            return per_example.mean()
        self.loss_is_scaled_for_ga = True
        loss = per_example.sum() / num_items_in_batch
        if self.args.average_tokens_across_devices:  # the count is global; DDP averages the processes' gradients
            loss = loss * self.accelerator.num_processes
        return loss

    # ---- logging ----------------------------------------------------------------------------------------------

    def _record_loss_parts(self, per_example: torch.Tensor, gold: torch.Tensor, gold_weight: float) -> None:
        """Accumulate (on device, no sync) the gold loss and the regulariser's share: loss = w * gold + reg."""
        parts = torch.stack(
            [gold.sum(), (per_example - gold_weight * gold).sum(), gold.new_tensor(float(gold.numel()))]
        )
        self._part_totals = parts if self._part_totals is None else self._part_totals + parts

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add `ce_loss` (gold-label CE, or MSE for regression) and `regularizer_loss` to each training log."""
        if "loss" in logs and self._part_totals is not None:
            gold_sum, regularizer_sum, count = self.accelerator.reduce(self._part_totals, reduction="sum").tolist()
            logs = {**logs, "ce_loss": gold_sum / count, "regularizer_loss": regularizer_sum / count}
            self._part_totals = None
        super().log(logs, start_time)

    def _set_signature_columns_if_needed(self) -> None:
        """Keep the cached teacher-logits column through `remove_unused_columns`."""
        super()._set_signature_columns_if_needed()
        if TEACHER_LOGITS_COLUMN not in self._signature_columns:
            self._signature_columns.append(TEACHER_LOGITS_COLUMN)


_NO_TEACHER_MESSAGE = (
    "regularization='kd' needs a teacher: pass teacher_model= (a model or a name/path) to PseudoKDTrainer, "
    f"or give the training set a {TEACHER_LOGITS_COLUMN!r} column (CLI: --teacher_name_or_path)."
)
