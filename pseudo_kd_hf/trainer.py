"""`PseudoKDTrainer`: a Hugging Face `Trainer` whose loss is a registered label regulariser.

Follows TRL's pattern: the settings live in a `TrainingArguments` subclass (`config.py`), the method in a
`Regularizer` object (`regularizers/`), the math in pure functions (`losses/`). The trainer does what every method
shares: it masks the rows labelled -100, reduces the per-example loss over the accumulated batch, logs the loss
parts, keeps the method's columns, and saves the method's state in checkpoints. It has no branch on a method's name.
"""

from __future__ import annotations

import math
import os
from typing import Any

import datasets
import torch
from torch import nn
from torch.utils.data import DataLoader
from transformers import EvalPrediction, PreTrainedModel, Trainer
from transformers.trainer_utils import EvalLoopOutput
from transformers.utils import logging

from .config import PseudoKDTrainingArguments
from .fast_step import FastStepMixin
from .length_order import LengthSortedSampler, in_dataset_order
from .losses import LossParts, gold_loss, reduce_kept, split_ignored
from .regularizers import Regularizer, get_regularizer
from .teacher import TEACHER_LOGITS_COLUMN, prepare_teacher

logger = logging.get_logger(__name__)

# Written into every checkpoint of a method that keeps state (PS-KD's table, Beta smoothing's EMA model).
REGULARIZER_STATE_NAME = "regularizer_state.pt"

__all__ = [
    "REGULARIZER_STATE_NAME",
    "TEACHER_LOGITS_COLUMN",
    "PseudoKDTrainer",
    "TrainingDivergedError",
    "UnsupportedHeadError",
]


class TrainingDivergedError(RuntimeError):
    """The training loss turned NaN or infinite: the model diverged, and no result may come from it."""


class UnsupportedHeadError(ValueError):
    """The model's head is neither single-label classification nor regression: no method's loss applies to it."""


def check_supported_head(model: nn.Module) -> None:
    """Refuse a multi-label head (`config.problem_type`) or one with a logit row per token.

    Per-token logits are recognised by the class (or a base class) being named like every class of transformers'
    `AutoModelForTokenClassification` mapping, `...ForTokenClassification` (remote-code models follow the same
    convention): known before any forward pass, for no cost. Their logits are (batch, tokens, labels), which the
    per-example losses would misread, silently when the padded length equals the number of labels.
    """
    config = getattr(model, "config", None)
    token_classes = [cls.__name__ for cls in type(model).__mro__ if cls.__name__.endswith("ForTokenClassification")]
    if getattr(config, "problem_type", None) == "multi_label_classification":
        head = "a multi-label head (config.problem_type='multi_label_classification')"
    elif token_classes:
        head = f"a token-classification head ({token_classes[0]}: one prediction per token)"
    else:
        return
    raise UnsupportedHeadError(
        f"PseudoKDTrainer does not train {head}: it supports single-label classification and regression "
        "(a sequence-classification head, e.g. AutoModelForSequenceClassification, with problem_type "
        "'single_label_classification', 'regression' or unset)."
    )


class PseudoKDTrainer(FastStepMixin, Trainer):
    """A `Trainer` for sequence classifiers with Pseudo-KD, label smoothing, KD, a teacher-free baseline, or a
    method of your own (`register_regularizer`), chosen by `args.regularization`.

    Per example, ``loss = w * ce_loss + regularizer_loss``: ``ce_loss`` is the cross-entropy to the gold label (MSE
    for regression), ``regularizer_loss`` the method's term, and ``w`` the gold label's weight in the target:
    ``1 - alpha`` for ls, kd, pseudo_kd and tf_reg (``1 - alpha_t`` for ps_kd, ``1 - beta_ls_alpha`` for beta_ls),
    1 for none and cs_kd. Training logs both parts beside ``loss`` at every logging step, and once more at the end for
    the steps since the last log (so a run shorter than ``logging_steps`` logs them too).

    `teacher_model` (a model, or a name/path for `AutoModelForSequenceClassification`) is for methods that run a
    teacher (kd); it is frozen, kept in eval mode outside DDP and never run during evaluation. Instead of a teacher,
    the training set may carry a `teacher_logits` column of precomputed logits. Evaluation reports the gold-label loss
    (cross-entropy, or MSE for regression) so runs compare across methods. On a regression head (num_labels=1), a
    method that reshapes a classification target trains on the MSE instead, with a warning.
    The method is `trainer.regularizer`; what each one costs per step is in its class's docstring.
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
        check_supported_head(self.accelerator.unwrap_model(self.model))  # also one built by model_init
        # compute_loss normalises by `num_items_in_batch` itself; this makes the Trainer count it for every model.
        self.model_accepts_loss_kwargs = True
        method = get_regularizer(args.regularization)
        if teacher_model is not None and not method.uses_teacher:
            raise ValueError(
                f"teacher_model is used only by a method that runs a teacher (kd); regularization="
                f"{args.regularization!r} runs none: drop teacher_model."
            )
        self.teacher_model, self.teacher_label_order = None, None
        if teacher_model is not None:
            self.teacher_model, self.teacher_label_order = prepare_teacher(teacher_model, self)
        if self.accelerator.unwrap_model(self.model).config.num_labels == 1 and not method.supports_regression:
            logger.warning(
                f"regularization={args.regularization!r} does not apply to a regression head (num_labels=1): "
                "training on the MSE to the gold score."
            )
            method = get_regularizer("none")
        self.regularizer: Regularizer = method(args)
        self.regularizer.setup(self)
        self._part_totals: torch.Tensor | None = None  # on device: [gold loss sum, regulariser part sum, kept rows]

    # ---- data -------------------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> DataLoader:
        """The method's own batches when it builds them (CS-KD's pairs), else the Trainer's."""
        return self.regularizer.train_dataloader(self) or super().get_train_dataloader()

    def _get_eval_sampler(self, eval_dataset: Any) -> torch.utils.data.Sampler | None:
        """Evaluation and prediction run longest rows first (`LengthSortedSampler`); outputs come back in dataset
        order (`evaluation_loop`). Left to the Trainer where order could not be restored: several processes,
        dropped last batches, per-batch metrics, unconcatenated outputs, or a set without token ids."""
        args, name = self.args, self._model_input_name()
        if (
            args.world_size > 1
            or args.dataloader_drop_last
            or args.batch_eval_metrics
            or not args.eval_do_concat_batches
            or not isinstance(eval_dataset, datasets.Dataset)
            or name not in eval_dataset.column_names
        ):
            return super()._get_eval_sampler(eval_dataset)
        if args.length_column_name in eval_dataset.column_names:
            lengths = eval_dataset[args.length_column_name]
        else:
            lengths = [len(ids) for ids in eval_dataset[name]]
        self._length_sorted = LengthSortedSampler(lengths)
        return self._length_sorted

    def _model_input_name(self) -> str:
        names = getattr(self.processing_class, "model_input_names", None)
        return names[0] if names else "input_ids"

    def get_eval_dataloader(self, eval_dataset: Any = None) -> DataLoader:
        return self._with_dataset_order(super().get_eval_dataloader(eval_dataset))

    def get_test_dataloader(self, test_dataset: Any) -> DataLoader:
        return self._with_dataset_order(super().get_test_dataloader(test_dataset))

    def _with_dataset_order(self, dataloader: DataLoader) -> DataLoader:
        """Tag the loader with its rows' dataset indices when `_get_eval_sampler` just sorted them."""
        sampler, self._length_sorted = getattr(self, "_length_sorted", None), None
        if sampler is not None:
            dataloader.dataset_order = sampler.order
        return dataloader

    def evaluation_loop(self, dataloader: DataLoader, *args: Any, **kwargs: Any) -> EvalLoopOutput:
        """The Trainer's loop; on a length-sorted loader, metrics see and outputs return rows in dataset order."""
        order = getattr(dataloader, "dataset_order", None)
        if order is None:
            return super().evaluation_loop(dataloader, *args, **kwargs)
        compute_metrics = self.compute_metrics
        if compute_metrics is not None:

            def compute_metrics_in_dataset_order(prediction: EvalPrediction) -> dict[str, float]:
                fields = ("predictions", "label_ids", "inputs", "losses")
                return compute_metrics(
                    EvalPrediction(**{f: in_dataset_order(getattr(prediction, f), order) for f in fields})
                )

            self.compute_metrics = compute_metrics_in_dataset_order
        try:
            output = super().evaluation_loop(dataloader, *args, **kwargs)
        finally:
            self.compute_metrics = compute_metrics
        return output._replace(
            predictions=in_dataset_order(output.predictions, order),
            label_ids=in_dataset_order(output.label_ids, order),
        )

    def _set_signature_columns_if_needed(self) -> None:
        """Keep the method's columns (cached teacher logits, example ids) through `remove_unused_columns`."""
        super()._set_signature_columns_if_needed()
        self._signature_columns += [name for name in self.regularizer.columns if name not in self._signature_columns]

    def _remove_unused_columns(self, dataset: datasets.Dataset, description: str | None = None) -> datasets.Dataset:
        """Only the training set keeps the method's columns; evaluation and test sets lose them as usual."""
        if description == "Training":
            return super()._remove_unused_columns(dataset, description)
        columns = self.regularizer.columns
        kept = super()._remove_unused_columns(dataset, description)
        dropped = [name for name in columns if name in getattr(kept, "column_names", ())]
        return kept.remove_columns(dropped) if dropped else kept

    # ---- loss -------------------------------------------------------------------------------------------------

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Apply the method; in evaluation, the gold-label loss (no teacher or EMA model is run).

        Rows labelled -100 are ignored. The sum over the kept rows is divided by `num_items_in_batch` when the
        Trainer gives it (the kept rows of the whole accumulated batch), so gradient accumulation and data
        parallelism leave the update unchanged.
        """
        inputs = dict(inputs)
        labels = inputs.pop("labels")  # read before the forward pass: the model computes no loss of its own
        extra = {name: inputs.pop(name) for name in self.regularizer.columns if name in inputs}
        outputs = model(**inputs)
        logits = outputs.logits
        keep, safe_labels = split_ignored(labels)
        if model.training:
            batch = {**inputs, **extra}
            parts = self._loss_parts(logits, safe_labels, batch)
            self._record_loss_parts(parts, keep)
            per_example = parts.total
            self.regularizer.update_state(logits.detach(), keep, batch)
        else:
            per_example = gold_loss(logits, safe_labels, reduction="none")
        loss = self._normalize(per_example, keep, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _loss_parts(self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, Any]) -> LossParts:
        """The method's per-example `LossParts`; a plain per-example loss is split against the gold loss."""
        result = self.regularizer.per_example_loss(logits, labels, batch)
        if isinstance(result, LossParts):
            return result
        with torch.no_grad():
            gold = gold_loss(logits, labels, reduction="none")
        return LossParts(gold, result - gold, 1.0)  # total: the method's own loss, exactly

    def _normalize(
        self, per_example: torch.Tensor, keep: torch.Tensor, num_items_in_batch: torch.Tensor | int | None
    ) -> torch.Tensor:
        """Mean over the kept rows of the accumulated (and gathered) batch; tells the Trainer it is GA-scaled."""
        if num_items_in_batch is None or self.args.n_gpu > 1:  # DataParallel gathers the whole batch here
            self.loss_is_scaled_for_ga = False
            return reduce_kept(per_example, keep, "sum") / keep.sum().clamp_min(1)
        self.loss_is_scaled_for_ga = True
        loss = reduce_kept(per_example, keep, "sum") / num_items_in_batch
        if self.args.average_tokens_across_devices:  # the count is global; DDP averages the processes' gradients
            loss = loss * self.accelerator.num_processes
        return loss

    # ---- logging ----------------------------------------------------------------------------------------------

    def _record_loss_parts(self, parts: LossParts, keep: torch.Tensor) -> None:
        """Accumulate on the device (no host sync) the kept rows' gold loss, regulariser part and count."""
        gold = reduce_kept(parts.gold.detach(), keep, "sum")
        regularizer = gold.new_zeros(()) if parts.regularizer is None else parts.regularizer.detach()
        totals = torch.stack([gold, reduce_kept(regularizer, keep, "sum"), keep.sum().to(gold.dtype)])
        self._part_totals = totals if self._part_totals is None else self._part_totals + totals

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add `ce_loss` (gold-label CE, or MSE for regression) and `regularizer_loss` to each training log, and to
        the end-of-training log when steps ran since the last one: ``loss = w * ce_loss + regularizer_loss``.
        A non-finite logged loss stops training."""
        self._check_finite_loss(logs)
        if ("loss" in logs or "train_runtime" in logs) and self._part_totals is not None:  # a step, or the end
            gold_sum, regularizer_sum, count = self.accelerator.reduce(self._part_totals, reduction="sum").tolist()
            count = max(count, 1.0)
            logs = {**logs, "ce_loss": gold_sum / count, "regularizer_loss": regularizer_sum / count}
            self._part_totals = None
        super().log(logs, start_time)

    def _check_finite_loss(self, logs: dict[str, float]) -> None:
        """Raise `TrainingDivergedError` when a logged training loss is NaN or infinite, naming its step window.

        Free of host syncs: the Trainer already moved the window's loss to the host to log it. A NaN at any step
        of the window makes the window's mean NaN (`logging_nan_inf_filter` is off by default so that it does),
        and `train_loss` at the end covers the steps after the last log.
        """
        for key in ("loss", "train_loss"):
            value = logs.get(key)
            if value is None or math.isfinite(value):
                continue
            logged = [entry["step"] for entry in self.state.log_history if "loss" in entry]
            first = (logged[-1] if logged else 0) + 1
            raise TrainingDivergedError(
                f"The training loss is {value} in steps {first}-{self.state.global_step}: the model diverged, so no "
                "result was written; lower --learning_rate (or raise --warmup_steps) and train again."
            )

    # ---- checkpoints ------------------------------------------------------------------------------------------

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        """Checkpoints also hold the method's state (identical on every process), saved beside the optimizer's."""
        super()._save_optimizer_and_scheduler(output_dir)
        state = self.regularizer.state_dict()
        if state and self.args.should_save:
            torch.save(state, os.path.join(output_dir, REGULARIZER_STATE_NAME))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """Resuming restores the method's state with the optimizer's (every backend calls this when resuming)."""
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or not self.regularizer.state_dict():
            return
        path = os.path.join(checkpoint, REGULARIZER_STATE_NAME)
        if not os.path.isfile(path):
            logger.warning(
                f"{path} not found: regularization={self.args.regularization!r} starts its state afresh "
                f"({type(self.regularizer).__name__}.restart_state)."
            )
            self.regularizer.restart_state(self.accelerator.unwrap_model(self.model))
            return
        self.regularizer.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
