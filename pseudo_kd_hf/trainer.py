"""`PseudoKDTrainer`: a Hugging Face `Trainer` whose loss is Pseudo-KD, label smoothing, knowledge distillation, or
one of the paper's teacher-free baselines (TF-reg, PS-KD, CS-KD, Beta smoothing).

Follows TRL's pattern: the method's settings live in a `TrainingArguments` subclass, the trainer overrides only
`compute_loss` (plus the hooks that keep extra columns, log the loss parts, draw CS-KD's pairs and checkpoint the
baselines' state), and the math lives in `pseudo_kd_hf.losses`.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler
from transformers import (
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import seed_worker
from transformers.utils import logging

from .fast_step import FastStepMixin, apply_fast_step_arguments  # FAST_STEP HOOK
from .losses import (
    beta_smoothing_loss,
    cs_kd_loss,
    kd_loss,
    label_smoothing_loss,
    ps_kd_alpha,
    ps_kd_loss,
    pseudo_kd_loss,
    regression_kd_loss,
    tf_reg_loss,
)

logger = logging.get_logger(__name__)

TEACHER_FREE_BASELINES = ("tf_reg", "ps_kd", "cs_kd", "beta_ls")
REGULARIZATIONS = ("none", "ls", "kd", "pseudo_kd", *TEACHER_FREE_BASELINES)
# Methods that reshape a classification target: on a regression head they fall back to the MSE to the gold score.
CLASSIFICATION_ONLY = ("ls", "pseudo_kd", *TEACHER_FREE_BASELINES)
# A training-set column of precomputed teacher logits (one list of K floats per example): KD then needs no teacher.
TEACHER_LOGITS_COLUMN = "teacher_logits"
# The training-set column PS-KD keys its table of previous predictions by (GLUE's datasets carry it).
EXAMPLE_ID_COLUMN = "idx"
# Written into every checkpoint by PS-KD (its table) and Beta smoothing (its EMA model); read when resuming.
REGULARIZER_STATE_NAME = "regularizer_state.pt"
LABEL_COLUMNS = ("labels", "label", "label_ids")


@dataclass
class PseudoKDTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the label regulariser's settings (so `HfArgumentParser` exposes them as flags).

    Which fields each method reads (defaults in brackets):
    ls: alpha [0.1]; kd: alpha [0.1], temperature [1]; pseudo_kd: alpha [0.1], beta [2];
    tf_reg: alpha [0.1] (as in KD, the soft term's weight; also the official ResNet18 setting), tf_reg_temperature
    [20], tf_reg_teacher_prob [0.99]; ps_kd: ps_kd_alpha_T [0.8]; cs_kd: cs_kd_lambda [1], cs_kd_temperature [4];
    beta_ls: beta_ls_alpha [0.6], beta_ls_beta [3], beta_ls_ema_decay [0.999].
    A baseline whose authors' default differs from `alpha`/`beta`/`temperature`'s gets its own field, so its default
    holds and `--preset paper` (which fills the paper's alpha and beta) leaves it alone.
    """

    regularization: str = field(
        default="pseudo_kd",
        metadata={
            "help": "Label regulariser: none (cross-entropy), ls (uniform label smoothing), kd (knowledge "
            "distillation from a teacher), pseudo_kd (the paper's optimal instance-specific smoothing); the paper's "
            "teacher-free baselines: tf_reg (a manually designed teacher), ps_kd (the model's own predictions of "
            "the previous epoch), cs_kd (a same-class example's prediction), beta_ls (Beta smoothing ranked by an "
            "EMA of the model).",
            "choices": list(REGULARIZATIONS),
        },
    )
    alpha: float = field(
        default=0.1,
        metadata={
            "help": "Weight of the smoothing distribution / teacher in the target, in [0, 1] (ls, kd, "
            "pseudo_kd, tf_reg)."
        },
    )
    beta: float = field(
        default=2.0, metadata={"help": "Pseudo-KD's KL weight (> 0): P* = softmax((alpha / beta) * logits)."}
    )
    temperature: float = field(
        default=1.0, metadata={"help": "KD softmax temperature T (> 0); the loss uses T^2 (kd only)."}
    )
    tf_reg_temperature: float = field(
        default=20.0,
        metadata={
            "help": "TF-reg: temperature T (> 0) of the virtual teacher and the student; the loss uses T^2. "
            "Default: the official ResNet18 setting."
        },
    )
    tf_reg_teacher_prob: float = field(
        default=0.99,
        metadata={
            "help": "TF-reg: probability a in (0, 1) the virtual teacher puts on the gold class; it spreads "
            "1 - a evenly over the others."
        },
    )
    ps_kd_alpha_T: float = field(
        default=0.8,
        metadata={
            "help": "PS-KD: final weight alpha_T in [0, 1] of the previous epoch's predictions; epoch t "
            "(from 0) of E uses alpha_T * (t + 1) / E."
        },
    )
    cs_kd_lambda: float = field(
        default=1.0, metadata={"help": "CS-KD: weight lambda (>= 0) of the KL to a same-class example's prediction."}
    )
    cs_kd_temperature: float = field(
        default=4.0, metadata={"help": "CS-KD: softmax temperature T (> 0); the loss uses T^2."}
    )
    beta_ls_alpha: float = field(
        default=0.6, metadata={"help": "Beta smoothing: weight in [0, 1] of the Beta-smoothed target."}
    )
    beta_ls_beta: float = field(
        default=3.0, metadata={"help": "Beta smoothing: shape a (> 0) of the Beta(a, 1) gold-class probabilities."}
    )
    beta_ls_ema_decay: float = field(
        default=0.999,
        metadata={"help": "Beta smoothing: cap in [0, 1) of the EMA model's decay min(1 - 1 / (step + 1), cap)."},
    )
    fast_step: bool = field(  # FAST_STEP HOOK (pseudo_kd_hf/fast_step.py)
        default=False,
        metadata={
            "help": "A faster GPU training step with the same numbers: batches padded to a few static shapes, CUDA "
            "graphs (torch.compile reduce-overhead, training only), no host sync per step. No effect on CPU. "
            "Not for ps_kd, cs_kd, beta_ls."
        },
    )

    def __post_init__(self) -> None:
        if self.regularization not in REGULARIZATIONS:
            raise ValueError(
                f"regularization must be one of {', '.join(REGULARIZATIONS)}, got {self.regularization!r}."
            )
        bounds = {
            "alpha": (0.0 <= self.alpha <= 1.0, "in [0, 1]"),
            "beta": (self.beta > 0.0, "> 0"),
            "temperature": (self.temperature > 0.0, "> 0"),
            "tf_reg_temperature": (self.tf_reg_temperature > 0.0, "> 0"),
            "tf_reg_teacher_prob": (0.0 < self.tf_reg_teacher_prob < 1.0, "in (0, 1)"),
            "ps_kd_alpha_T": (0.0 <= self.ps_kd_alpha_T <= 1.0, "in [0, 1]"),
            "cs_kd_lambda": (self.cs_kd_lambda >= 0.0, ">= 0"),
            "cs_kd_temperature": (self.cs_kd_temperature > 0.0, "> 0"),
            "beta_ls_alpha": (0.0 <= self.beta_ls_alpha <= 1.0, "in [0, 1]"),
            "beta_ls_beta": (self.beta_ls_beta > 0.0, "> 0"),
            "beta_ls_ema_decay": (0.0 <= self.beta_ls_ema_decay < 1.0, "in [0, 1)"),
        }
        for name, (valid, bound) in bounds.items():
            if not valid:
                raise ValueError(f"{name} must be {bound}, got {getattr(self, name)}.")
        if self.regularization == "cs_kd" and self.train_sampling_strategy == "batch_rebalance":
            raise ValueError(
                "regularization='cs_kd' builds its own batches of same-class pairs: use train_sampling_strategy "
                "'random', 'sequential' or 'group_by_length' instead of 'batch_rebalance'."
            )
        if self.label_smoothing_factor:
            raise ValueError(
                "label_smoothing_factor would smooth on top of the regulariser: use "
                f"regularization='ls' with alpha={self.label_smoothing_factor} instead."
            )
        super().__post_init__()
        if self.fast_step:  # FAST_STEP HOOK: after super(), which builds accelerator_config
            apply_fast_step_arguments(self)


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


# ---- the teacher-free baselines' machinery ------------------------------------------------------------------------

_PAIR_SEED_OFFSET = 0x9E3779B9  # keeps CS-KD's partner draws apart from a sampler seeded with the same seed


class ClassPairBatchSampler(Sampler[list[int]]):
    """CS-KD's batches: `batch_size` anchors from `sampler`, then one partner per anchor, another example of its class.

    Wraps any index sampler (the Trainer's RandomSampler, the DistributedSampler of a plain DDP loop, ...) and, like
    torch's `BatchSampler`, exposes it as `.sampler`, so accelerate can swap in its seedable sampler and shard the
    batches across processes. `batch_size` is None because a batch holds twice the anchors: accelerate then never
    splits a batch, and when it repeats batches to even out the processes it repeats whole ones, keeping every
    anchor with its partner. Partners are drawn once per epoch for every example, from `seed` and the epoch (the same
    on every process), so they depend neither on the batch size nor on the order or number of processes.
    The official sampler (alinlab/cs-kd) may pick the anchor itself; here it does only for a class of one example.
    """

    def __init__(
        self,
        sampler: Sampler[int] | Sequence[int],
        labels: Sequence[int] | torch.Tensor,
        batch_size: int,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        labels = torch.as_tensor(labels)
        if labels.dtype.is_floating_point or (labels.numel() > 0 and labels.min() < 0):
            raise ValueError("CS-KD pairs examples by class: labels must be class ids >= 0, not scores or -1.")
        labels = labels.long()
        self.sampler = sampler
        self.anchors_per_batch = batch_size
        self.batch_size = None
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self._by_class = labels.argsort(stable=True)  # example ids grouped by class
        counts = torch.bincount(labels)
        starts = counts.cumsum(0) - counts
        self._class_start, self._class_size = starts[labels], counts[labels]
        self._rank_in_class = torch.empty_like(labels)
        self._rank_in_class[self._by_class] = torch.arange(len(labels)) - starts[labels[self._by_class]]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def partners(self) -> torch.Tensor:
        """This epoch's partner of every example: uniform over the other examples of its class."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch + _PAIR_SEED_OFFSET)
        others = (self._class_size - 1).clamp_min(1)
        draw = (torch.rand(len(others), generator=generator, dtype=torch.float64) * others).long()
        draw = torch.minimum(draw, others - 1)
        draw += (draw >= self._rank_in_class) & (self._class_size > 1)  # step over the anchor itself
        return self._by_class[self._class_start + draw]

    def __iter__(self) -> Iterator[list[int]]:
        partners = self.partners().tolist()
        anchors: list[int] = []
        for index in self.sampler:
            anchors.append(int(index))
            if len(anchors) == self.anchors_per_batch:
                yield anchors + [partners[i] for i in anchors]
                anchors = []
        if anchors and not self.drop_last:
            yield anchors + [partners[i] for i in anchors]
        self.epoch += 1  # like accelerate's SeedableRandomSampler; the Trainer also calls set_epoch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.anchors_per_batch
        return math.ceil(len(self.sampler) / self.anchors_per_batch)


class PreviousPredictions:
    """PS-KD's table of every training example's latest predicted distribution, keyed by the dataset's `idx`.

    N x K float32 on the CPU: N * K * 4 bytes (plus 8 per key), e.g. 4.7 MB for MNLI's 392,702 examples x 3 classes,
    held whole by every process. Rows start one-hot at the gold label, the target before any prediction.
    """

    def __init__(self, example_ids: Sequence[int], labels: Sequence[int], num_classes: int) -> None:
        self.keys, order = torch.as_tensor(example_ids, dtype=torch.long).sort()
        if len(self.keys) > 0 and (self.keys[0] < 0 or bool((self.keys[1:] == self.keys[:-1]).any())):
            raise ValueError(
                f"regularization='ps_kd' keys its table by the {EXAMPLE_ID_COLUMN!r} column, which must hold distinct "
                "integers >= 0: renumber it, e.g. dataset.map(lambda _, i: {'idx': i}, with_indices=True)."
            )
        self.probs = F.one_hot(torch.as_tensor(labels, dtype=torch.long)[order], num_classes).float()

    def _rows(self, example_ids: torch.Tensor) -> torch.Tensor:
        example_ids = example_ids.detach().cpu().long()
        rows = torch.searchsorted(self.keys, example_ids).clamp_max(len(self.keys) - 1)
        if not torch.equal(self.keys[rows], example_ids):
            raise ValueError(f"ps_kd: a batch holds an {EXAMPLE_ID_COLUMN!r} that is not in the training set.")
        return rows

    def __getitem__(self, example_ids: torch.Tensor) -> torch.Tensor:
        return self.probs[self._rows(example_ids)]

    def update(self, example_ids: torch.Tensor, probs: torch.Tensor) -> None:
        self.probs[self._rows(example_ids)] = probs.detach().float().cpu()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"keys": self.keys, "probs": self.probs}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if not torch.equal(state["keys"], self.keys):
            raise ValueError(
                "The checkpoint's PS-KD table was built for another training set: resume with the same one."
            )
        self.probs.copy_(state["probs"])


class _EMAUpdate(TrainerCallback):
    """Beta smoothing's EMA model, moved toward the student after every optimizer step (not every micro-batch).

    After the t-th step: ``ema <- d * ema + (1 - d) * student``, ``d = min(1 - 1 / (t + 1), max_decay)``, over the
    parameters, as in the official code (whose EMA model starts from a fresh initialisation; ours from the student).
    """

    def __init__(self, ema_model: nn.Module, max_decay: float) -> None:
        self.ema_model = ema_model
        self.max_decay = max_decay

    @torch.no_grad()
    def on_step_end(
        self, args: TrainingArguments, state: Any, control: Any, model: nn.Module | None = None, **kwargs
    ) -> None:
        decay = min(1.0 - 1.0 / (state.global_step + 1), self.max_decay)
        for ema_parameter, parameter in zip(self.ema_model.parameters(), model.parameters(), strict=True):
            ema_parameter.lerp_(parameter.detach().to(ema_parameter.device), 1.0 - decay)


def _label_column(dataset: Any, regularization: str) -> list:
    """The training labels, read once at construction by the methods that need them before any batch."""
    columns = getattr(dataset, "column_names", None) or []
    name = next((name for name in LABEL_COLUMNS if name in columns), None)
    if name is None:
        raise ValueError(
            f"regularization={regularization!r} reads the training labels up front: pass train_dataset as a "
            "datasets.Dataset with a 'label' column."
        )
    return list(dataset[name])


class PseudoKDTrainer(FastStepMixin, Trainer):  # FAST_STEP HOOK: FastStepMixin
    """A `Trainer` for sequence classifiers with Pseudo-KD, label smoothing, KD, or a teacher-free baseline.

    `teacher_model` (a model, or a name/path for `AutoModelForSequenceClassification`) is used by
    `regularization="kd"` only; it is frozen, kept in eval mode outside DDP and never run during evaluation.
    Instead of a teacher, the training set may carry a `teacher_logits` column of precomputed logits.
    Evaluation reports the gold-label loss (cross-entropy, or MSE for regression) so runs compare across methods.

    What the baselines cost per step, beyond cross-entropy: tf_reg nothing (a K-column target). ps_kd memory, not
    time: the `PreviousPredictions` table (N * K * 4 bytes of CPU memory per process; needs an `idx` column), a
    B x K copy to and from the CPU, and under DDP an all-gather of B x (K + 1) numbers. cs_kd time and activation
    memory: each step runs forward and backward on 2B examples (the B partners, drawn by `ClassPairBatchSampler`,
    share the anchors' forward pass; their logits are detached). beta_ls both: an EMA copy of the model (its
    parameters again, without gradients or optimizer state), one extra no-grad forward per micro-batch, and an EMA
    update per optimizer step. Checkpoints hold PS-KD's table (`previous_predictions`) and Beta smoothing's EMA model
    (`ema_model`) in `regularizer_state.pt`; resuming restores them.
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
        if self._is_regression and args.regularization in CLASSIFICATION_ONLY:
            logger.warning(
                f"regularization={args.regularization!r} does not apply to a regression head (num_labels=1): "
                "training on the MSE to the gold score."
            )
        self._part_totals: torch.Tensor | None = None  # [sum of gold loss, sum of regulariser part, examples]
        # The baselines' state; None where the method is off, or on a regression head where it does not apply.
        self.previous_predictions: PreviousPredictions | None = None  # ps_kd
        self._pair_labels: list[int] | None = None  # cs_kd: the class of every training example
        self.ema_model: nn.Module | None = None  # beta_ls
        if not self._is_regression:
            self._setup_baseline(student_config.num_labels)

    # ---- teacher-free baselines ---------------------------------------------------------------------------------

    def _setup_baseline(self, num_labels: int) -> None:
        method = self.args.regularization
        if method in ("ps_kd", "cs_kd") and self.train_dataset is not None:
            labels = _label_column(self.train_dataset, method)
            if method == "cs_kd":
                self._pair_labels = labels
            elif EXAMPLE_ID_COLUMN not in self.train_dataset.column_names:
                raise ValueError(
                    f"regularization='ps_kd' keys its table of previous predictions by an {EXAMPLE_ID_COLUMN!r} "
                    "column: add one, e.g. dataset.map(lambda _, i: {'idx': i}, with_indices=True)."
                )
            else:
                self.previous_predictions = PreviousPredictions(
                    self.train_dataset[EXAMPLE_ID_COLUMN], labels, num_labels
                )
        elif method == "beta_ls":
            zero_3 = self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3
            if self.is_fsdp_enabled or zero_3:
                raise ValueError(
                    "regularization='beta_ls' keeps a whole EMA copy of the model: it does not support FSDP or "
                    "DeepSpeed ZeRO-3; use DDP or ZeRO-1/2."
                )
            self.ema_model = copy.deepcopy(self.accelerator.unwrap_model(self.model)).requires_grad_(False)
            self.ema_model.train()  # as in the official code: the EMA model runs with dropout, like the student
            self._beta_generator = torch.Generator()
            self._beta_generator_step = -1  # the optimizer step the generator was last seeded for
            self.add_callback(_EMAUpdate(self.ema_model, self.args.beta_ls_ema_decay))

    def get_train_dataloader(self) -> DataLoader:
        """CS-KD trains on batches of anchors followed by their same-class partners (`ClassPairBatchSampler`)."""
        if self._pair_labels is None:
            return super().get_train_dataloader()
        args = self.args
        dataset = self._remove_unused_columns(self.train_dataset, description="Training")
        batch_sampler = ClassPairBatchSampler(
            self._get_train_sampler(dataset),
            self._pair_labels,
            self._train_batch_size,
            drop_last=args.dataloader_drop_last,
            seed=args.data_seed if args.data_seed is not None else args.seed,
        )
        dataloader = DataLoader(  # the Trainer's own DataLoader settings, with a batch sampler
            dataset,
            batch_sampler=batch_sampler,
            collate_fn=self.data_collator,
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers,
            multiprocessing_context=args.dataloader_multiprocessing_context,
            prefetch_factor=args.dataloader_prefetch_factor,
            in_order=args.dataloader_in_order,
            worker_init_fn=partial(seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index),
        )
        return self.accelerator.prepare(dataloader)

    def _ps_kd_alpha_t(self) -> float:
        """``alpha_t`` for the current epoch (counted from 0) of the Trainer's `num_train_epochs` epochs."""
        num_epochs = max(int(self.state.num_train_epochs), 1)
        return ps_kd_alpha(
            self.args.ps_kd_alpha_T, min(math.floor(self.state.epoch or 0.0), num_epochs - 1), num_epochs
        )

    def _update_previous_predictions(self, example_ids: torch.Tensor, logits: torch.Tensor) -> None:
        """Store this batch's predictions for the next epoch; under DDP every process gets every process's rows."""
        probs = logits.detach().float().softmax(dim=-1)
        if self.accelerator.num_processes > 1:
            example_ids = self.accelerator.pad_across_processes(example_ids.long(), pad_index=-1)
            probs = self.accelerator.pad_across_processes(probs)
            example_ids, probs = self.accelerator.gather((example_ids, probs))
            probs, example_ids = probs[example_ids >= 0], example_ids[example_ids >= 0]
        self.previous_predictions.update(example_ids, probs)

    def _beta_draws_generator(self) -> torch.Generator:
        """Beta smoothing's generator, seeded with ``hash((seed, process_index, t))`` after t optimizer steps.

        The micro-batches of a step draw from it in turn; the draws differ across processes and replay exactly
        after resuming from a checkpoint.
        """
        step = self.state.global_step
        if step != self._beta_generator_step:
            self._beta_generator.manual_seed(hash((self.args.seed, self.args.process_index, step)) % 2**63)
            self._beta_generator_step = step
        return self._beta_generator

    @torch.no_grad()
    def _ema_logits(self, inputs: dict[str, Any], device: torch.device) -> torch.Tensor:
        return self.ema_model.to(device)(**inputs).logits  # `to` is a no-op once there (DeepSpeed moves late)

    def _regularizer_state(self) -> dict[str, Any]:
        state = {}
        if self.previous_predictions is not None:
            state["previous_predictions"] = self.previous_predictions.state_dict()
        if self.ema_model is not None:
            state["ema_model"] = self.ema_model.state_dict()
        return state

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        """Checkpoints also hold the baselines' state (identical on every process), saved beside the optimizer's."""
        super()._save_optimizer_and_scheduler(output_dir)
        state = self._regularizer_state()
        if state and self.args.should_save:
            torch.save(state, os.path.join(output_dir, REGULARIZER_STATE_NAME))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """Resuming restores the baselines' state with the optimizer's (every backend calls this when resuming)."""
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or not self._regularizer_state():
            return
        path = os.path.join(checkpoint, REGULARIZER_STATE_NAME)
        if not os.path.isfile(path):
            logger.warning(
                f"{path} not found: regularization={self.args.regularization!r} starts its state afresh "
                "(PS-KD from one-hot targets, Beta smoothing from the resumed model)."
            )
            if self.ema_model is not None:
                self.ema_model.load_state_dict(self.accelerator.unwrap_model(self.model).state_dict())
            return
        state = torch.load(path, map_location="cpu", weights_only=True)
        if self.previous_predictions is not None:
            self.previous_predictions.load_state_dict(state["previous_predictions"])
        if self.ema_model is not None:
            self.ema_model.load_state_dict(state["ema_model"])

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
        self, logits: torch.Tensor, labels: torch.Tensor, reference: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Per-example loss of the configured method, the per-example gold loss, and the gold loss's weight in it.

        `reference` is what the method compares the logits with: the teacher's logits (kd), the partners' logits
        (cs_kd), the EMA model's logits (beta_ls) or the previous epoch's predictions (ps_kd); otherwise None.
        """
        args = self.args
        method = args.regularization
        gold = self._gold_loss(logits, labels)
        if method == "kd" and self._is_regression:
            return regression_kd_loss(logits, reference, labels, args.alpha, reduction="none"), gold, 1.0
        if method == "none" or self._is_regression:
            return gold, gold, 1.0
        gold_weight = 1.0 - args.alpha
        if method == "ls":
            loss = label_smoothing_loss(logits, labels, args.alpha, reduction="none")
        elif method == "pseudo_kd":
            loss = pseudo_kd_loss(logits, labels, args.alpha, args.beta, reduction="none")
        elif method == "kd":
            loss = kd_loss(logits, reference, labels, args.alpha, args.temperature, reduction="none")
        elif method == "tf_reg":
            loss = tf_reg_loss(
                logits, labels, args.alpha, args.tf_reg_temperature, args.tf_reg_teacher_prob, reduction="none"
            )
        elif method == "ps_kd":
            alpha_t = self._ps_kd_alpha_t()
            loss, gold_weight = ps_kd_loss(logits, labels, reference, alpha_t, reduction="none"), 1.0 - alpha_t
        elif method == "cs_kd":
            loss = cs_kd_loss(logits, reference, labels, args.cs_kd_lambda, args.cs_kd_temperature, reduction="none")
            gold_weight = 1.0
        else:
            loss = beta_smoothing_loss(
                logits,
                labels,
                reference,
                args.beta_ls_alpha,
                args.beta_ls_beta,
                generator=self._beta_draws_generator(),
                reduction="none",
            )
            gold_weight = 1.0 - args.beta_ls_alpha
        return loss, gold, gold_weight

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Apply the configured regulariser; in evaluation, the gold-label loss (no teacher or EMA model is run).

        The sum over the batch is divided by `num_items_in_batch` when the Trainer gives it (the examples of the
        whole accumulated batch), so gradient accumulation and data parallelism leave the update unchanged.
        """
        inputs = dict(inputs)
        labels = inputs.pop("labels")  # read before the forward pass: the model computes no loss of its own
        cached_teacher_logits = inputs.pop(TEACHER_LOGITS_COLUMN, None)
        example_ids = inputs.pop(EXAMPLE_ID_COLUMN, None) if self.previous_predictions is not None else None
        outputs = model(**inputs)
        logits = outputs.logits
        if not model.training:
            per_example = self._gold_loss(logits, labels)
        else:
            reference = None
            if self._pair_labels is not None:  # CS-KD: the second half of the batch holds the anchors' partners
                logits, reference = logits.split(logits.shape[0] // 2)
                labels = labels[: logits.shape[0]]
                if num_items_in_batch is not None:  # the Trainer counted the partners' labels too
                    num_items_in_batch = num_items_in_batch / 2
            elif self.args.regularization == "kd":
                reference = cached_teacher_logits if cached_teacher_logits is not None else self._teacher_logits(inputs)
            elif self.ema_model is not None:
                reference = self._ema_logits(inputs, logits.device)
            elif self.previous_predictions is not None:
                if example_ids is None:
                    raise ValueError(f"regularization='ps_kd' needs the {EXAMPLE_ID_COLUMN!r} column in every batch.")
                reference = self.previous_predictions[example_ids].to(logits.device)
            per_example, gold, gold_weight = self._training_loss(logits, labels, reference)
            self._record_loss_parts(per_example.detach(), gold.detach(), gold_weight)
            if self.previous_predictions is not None:
                self._update_previous_predictions(example_ids, logits)
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

    def _remove_unused_columns(self, dataset: datasets.Dataset, description: str | None = None) -> datasets.Dataset:
        """PS-KD keeps the training set's `idx` (its table's key); evaluation and test sets lose it as usual."""
        kept = super()._remove_unused_columns(dataset, description)
        if (
            description == "Training"
            and self.previous_predictions is not None
            and EXAMPLE_ID_COLUMN not in kept.column_names
        ):
            kept = dataset.select_columns([*kept.column_names, EXAMPLE_ID_COLUMN])
        return kept


_NO_TEACHER_MESSAGE = (
    "regularization='kd' needs a teacher: pass teacher_model= (a model or a name/path) to PseudoKDTrainer, "
    f"or give the training set a {TEACHER_LOGITS_COLUMN!r} column (CLI: --teacher_name_or_path)."
)
