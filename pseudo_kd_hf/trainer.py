"""`PseudoKDTrainer`: a Hugging Face `Trainer` whose loss is a registered label regulariser.

Follows TRL's pattern: the settings live in a `TrainingArguments` subclass (`config.py`), the method in a
`Regularizer` object (`regularizers/`), the math in pure functions (`losses/`). The trainer does what every method
shares: it masks the rows labelled -100, reduces the per-example loss over the accumulated batch, logs the loss
parts, keeps the method's columns, and saves the method's state in checkpoints. It has no branch on a method's name.
Every checkpoint also carries a manifest of its files, result files are written atomically, and a resumed run's
`train_loss` covers the whole run (`checkpointing.py`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import datasets
import torch
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from .checkpointing import WholeRunLoss, write_json
from .config import DEFAULT_BETA, PseudoKDTrainingArguments
from .fast_step import FastStepMixin, apply_fast_step_arguments
from .length_order import LengthOrderedEvaluationMixin
from .losses import LossParts, gold_loss, reduce_kept, split_ignored
from .regularizers import Regularizer, get_regularizer
from .regularizers.base import student_num_labels
from .run_dir import TRAINER_STATE_NAME, write_manifest
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


class PseudoKDTrainer(FastStepMixin, LengthOrderedEvaluationMixin, Trainer):
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
        _adapt_arguments(args)
        super().__init__(model, args, *trainer_args, **kwargs)
        check_supported_head(self.accelerator.unwrap_model(self.model))  # also one built by model_init
        # compute_loss normalises by `num_items_in_batch` itself; this makes the Trainer count it for every model.
        self.model_accepts_loss_kwargs = True
        if teacher_model is not None:
            _check_runs_teacher(args.regularization)
        self.teacher_model, self.teacher_label_order = None, None
        if teacher_model is not None:
            self.teacher_model, self.teacher_label_order = prepare_teacher(teacher_model, self)
        self._search_base: dict[str, Any] | None = None  # the settings before the first trial (hyperparameter_search)
        self._regularizer_callbacks: list[TrainerCallback] = []
        self._whole_run_loss = WholeRunLoss()  # reset at every train() call, so one serves every trial
        self.add_callback(self._whole_run_loss)
        self._build_regularizer()

    def _build_regularizer(self) -> None:
        """`self.regularizer` from `self.args`, set up afresh on the current model; drops a previous one's callbacks.

        On a regression head (num_labels=1), a method that reshapes a classification target trains on the MSE.
        """
        for callback in self._regularizer_callbacks:
            self.remove_callback(callback)
        method = get_regularizer(self.args.regularization)
        if self.teacher_model is not None:
            _check_runs_teacher(self.args.regularization)
        if student_num_labels(self) == 1 and not method.supports_regression:
            logger.warning(
                f"regularization={self.args.regularization!r} does not apply to a regression head (num_labels=1): "
                "training on the MSE to the gold score."
            )
            method = get_regularizer("none")
        callbacks = list(self.callback_handler.callbacks)
        self.regularizer: Regularizer = method(self.args)
        self.regularizer.setup(self)
        self._regularizer_callbacks = [item for item in self.callback_handler.callbacks if item not in callbacks]
        self._part_totals: torch.Tensor | None = None  # on device: [gold loss sum, regulariser part sum, kept rows]

    # ---- hyperparameter search --------------------------------------------------------------------------------

    def _hp_search_setup(self, trial: Any) -> None:
        """A trial of `hyperparameter_search` is a fresh run with its settings: the Trainer sets the trial's values on
        `args` (in place, after `model_init`); this first restores the settings every trial starts from, then checks
        the result as building the arguments would (`check_settings`, so a searched `pseudo_kd_temperature` sets
        `beta` and an out-of-range value is refused before the first step), and rebuilds the method from it, with
        fresh state (PS-KD's table, Beta smoothing's EMA model of the new model)."""
        searching = self.hp_search_backend is not None and trial is not None
        if searching:
            self._restore_search_base()
        super()._hp_search_setup(trial)
        if searching:
            self.args.check_settings()
            self._build_regularizer()

    def _restore_search_base(self) -> None:
        """Put back the settings as they were before the first trial (a trial's values do not leak into the next)."""
        names = [setting.name for setting in dataclasses.fields(self.args) if setting.init]
        if self._search_base is None:
            self._search_base = {name: getattr(self.args, name) for name in names}
        for name, value in self._search_base.items():
            setattr(self.args, name, value)
        if self.args.pseudo_kd_temperature is not None:  # beta was derived from it: derive it again for the trial
            self.args.beta = DEFAULT_BETA

    # ---- data -------------------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> DataLoader:
        """The method's own batches when it builds them (CS-KD's pairs), else the Trainer's."""
        return self.regularizer.train_dataloader(self) or super().get_train_dataloader()

    def get_batch_samples(self, *args: Any, **kwargs: Any) -> tuple[list[Any], Any]:
        """No batch once `max_steps` are done. Resuming from a checkpoint at `max_steps` in mid-epoch, transformers
        (5.24) would train one step more: the loop checks for the end only after a step."""
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return [], None
        return super().get_batch_samples(*args, **kwargs)

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

    def training_step(self, model: nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """The Trainer's step; its loss also adds to the whole run's sum (`WholeRunLoss`)."""
        loss = super().training_step(model, inputs, *args, **kwargs)
        self._whole_run_loss.add(loss)
        return loss

    def _record_loss_parts(self, parts: LossParts, keep: torch.Tensor) -> None:
        """Accumulate on the device (no host sync) the kept rows' gold loss, regulariser part and count."""
        gold = reduce_kept(parts.gold.detach(), keep, "sum")
        regularizer = gold.new_zeros(()) if parts.regularizer is None else parts.regularizer.detach()
        totals = torch.stack([gold, reduce_kept(regularizer, keep, "sum"), keep.sum().to(gold.dtype)])
        self._part_totals = totals if self._part_totals is None else self._part_totals + totals

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add `ce_loss` (gold-label CE, or MSE for regression) and `regularizer_loss` to each training log, and to
        the end-of-training log when steps ran since the last one: ``loss = w * ce_loss + regularizer_loss``.
        A non-finite logged loss stops training. The parts are logged from a copy, so they never join the caller's
        dict (the end-of-training metrics); what the Trainer adds to the logs (`epoch`) is copied back to it. A resumed
        run's `train_loss` covers the whole run (`WholeRunLoss`); it is corrected in `logs` itself, the metrics
        `train()` returns."""
        if "train_loss" in logs:
            whole_run = self._whole_run_loss.train_loss(self.state.global_step, self._mean_over_processes)
            logs["train_loss"] = logs["train_loss"] if whole_run is None else whole_run
        self._check_finite_loss(logs)
        if ("loss" in logs or "train_runtime" in logs) and self._part_totals is not None:  # a step, or the end
            gold_sum, regularizer_sum, count = self.accelerator.reduce(self._part_totals, reduction="sum").tolist()
            count = max(count, 1.0)
            parts = {"ce_loss": gold_sum / count, "regularizer_loss": regularizer_sum / count}
            self._part_totals = None
            logged = {**logs, **parts}
            super().log(logged, start_time)
            logs.update({key: value for key, value in logged.items() if key not in parts})
            return
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

    def _mean_over_processes(self, value: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(value, reduction="mean")

    # ---- checkpoints and results ------------------------------------------------------------------------------

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """The Trainer's checkpoint, recording the run's loss sum in its trainer state, then its manifest.

        The manifest is written once `Trainer._save_checkpoint` has returned: every file is written then (weights,
        optimizer, scheduler, RNG states, trainer state) and older checkpoints rotated. Not in `on_save`: the
        JIT-checkpoint path saves without that event.
        """
        self._whole_run_loss.record(self.state, self._mean_over_processes)  # every process: a collective
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save:
            write_manifest(folder)

    def save_metrics(self, split: str, metrics: dict[str, Any], combined: bool = True) -> None:
        """The Trainer's `{split}_results.json` (and `all_results.json` when `combined`), each written atomically."""
        if not self.is_world_process_zero():
            return
        output_dir = Path(self.args.output_dir)
        write_json(output_dir / f"{split}_results.json", metrics, indent=4)
        if combined:
            path = output_dir / "all_results.json"
            try:
                earlier = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # none yet, or one cut short by an older version: nothing to keep
                earlier = {}
            write_json(path, {**earlier, **metrics}, indent=4)

    def save_state(self) -> None:
        """The Trainer's `trainer_state.json` in output_dir, written atomically."""
        if self.is_world_process_zero():
            write_json(Path(self.args.output_dir) / TRAINER_STATE_NAME, dataclasses.asdict(self.state), indent=2)

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


def _check_runs_teacher(regularization: str) -> None:
    if not get_regularizer(regularization).uses_teacher:
        raise ValueError(
            f"teacher_model is used only by a method that runs a teacher (kd); regularization={regularization!r} "
            "runs none: drop teacher_model."
        )


def _adapt_arguments(args: PseudoKDTrainingArguments) -> None:
    """What the arguments say, applied where it acts, before the Trainer builds its accelerator and DataLoaders:
    no `pin_memory` without an accelerator (torch would warn at every DataLoader), and `--fast_step`'s settings."""
    if args.use_cpu or not _has_accelerator():
        args.dataloader_pin_memory = False
    if args.fast_step:
        apply_fast_step_arguments(args)


def _has_accelerator() -> bool:
    """What torch's DataLoader checks before it warns that `pin_memory` has nothing to pin for."""
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
