"""`--fast_step`: a cheaper GPU training step for `PseudoKDTrainer`, with the same numbers as the eager one.

Fine-tuning a small student on GLUE is launch-bound on a modern GPU: a batch of 32 x 128 tokens is about 1 TFLOP,
a few milliseconds of an H100, yet a `Trainer` step takes several times that in kernel launches and host work. The
fast step removes that overhead without touching the method:

- Static shapes (`StaticShapeCollator`): training batches are padded to a few bucketed lengths (multiples of 32 up
  to 128, then powers of two) and to the full per-device batch size with padding rows
  whose label is -100, so the last batch of an epoch has the shape of the others. Every loss ignores -100 rows and
  the Trainer's `num_items_in_batch` counts only kept rows, so the update is the unpadded one.
- CUDA graphs: the training model is compiled with `torch.compile(mode="reduce-overhead", dynamic=False)`, one graph
  per bucket (4 for `--max_seq_length 128`). Only training is compiled: evaluation and prediction run the eager
  model, whose outputs the evaluation loop may keep across batches (a CUDA graph overwrites its outputs).
- Gradients stay allocated (`keep_gradients_allocated`): CUDA-graph gradients live in the graph's memory pool and
  are overwritten by the next replay, so each `.grad` is a buffer of its own, zeroed in place (one fused kernel)
  instead of freed. Gradient accumulation then adds into it as in eager mode.
- No host synchronisation per step (`apply_fast_step_arguments`): `logging_nan_inf_filter` off (its
  `isnan(loss) or isinf(loss)` is a sync per micro-batch; a NaN loss is then logged as NaN instead of being
  replaced), and non-blocking host-to-device copies of pinned batches (a blocking copy waits for the GPU to drain).
  The FLOP count the Trainer adds up every step reuses the model's parameter count instead of recounting it.

The default optimizer is already fused AdamW (`adamw_torch_fused`) in transformers 5 with torch >= 2.8.
On CPU the fast step changes nothing but warns. There a step is compute-bound: MiniLM-L6, SST-2 batches of 32
(max_seq_length 64), one thread, median of 6 steps (a shared 2-core machine): 2.94 s eager with per-batch padding
(lengths 34-56), 4.51 s eager padded to the 64 bucket, 4.06 s compiled (inductor) at 64: compiling saved 10%,
padding to buckets cost 53%.
`regularization` ps_kd, cs_kd and beta_ls are refused: their batches are not static (CS-KD's pairs) or they key
state by every row of the batch (PS-KD's table, Beta smoothing's per-row draws).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers.utils import logging

from .losses import IGNORE_INDEX
from .regularizers.base import LABEL_COLUMNS

logger = logging.get_logger(__name__)

BUCKET_MULTIPLE = 32  # buckets: 32, 64, 96, 128, then powers of two (256, 512, ...)
LINEAR_BUCKETS_UP_TO = 128
SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask")
# Dynamo recompiles once per bucket shape; its default limit of 8 per function would send a run with many buckets
# (or a process that trains several models) back to eager mode silently.
RECOMPILE_LIMIT = 64
CPU_NOTE = (
    "--fast_step has no effect on CPU, where padding to static shapes cost a MiniLM step more than torch.compile "
    "saved: training runs the usual eager step."
)


def bucket_length(length: int, max_length: int | None = None) -> int:
    """The smallest bucket that holds `length` tokens: a multiple of 32 up to 128, then a power of two.

    Capped at `max_length` (the tokeniser's truncation length), which is then itself the last bucket, so a
    `--max_seq_length 128` run sees at most 4 shapes and a 512 one at most 6.
    """
    if length <= LINEAR_BUCKETS_UP_TO:
        bucket = max(BUCKET_MULTIPLE, -(-length // BUCKET_MULTIPLE) * BUCKET_MULTIPLE)
    else:
        bucket = 1 << (length - 1).bit_length()
    return bucket if max_length is None else max(length, min(bucket, max_length))


def pad_to_static_shape(
    batch: Mapping[str, Any], batch_size: int, pad_token_id: int = 0, max_length: int | None = None
) -> dict[str, Any]:
    """Pad a collated batch to its bucket length and to `batch_size` rows (label -100).

    Sequence columns (`SEQUENCE_KEYS`) are padded on the right with `pad_token_id` (input ids) or 0. A padding row
    holds pad tokens and attends to its first token only (a row that attends to nothing can give NaN in some
    attention kernels, and a NaN times a zero loss weight is still NaN in the backward pass); its label is -100 and
    every other column (e.g. cached teacher logits) is 0.

    Shape:
        batch["input_ids"]: (B, L) -> (batch_size, bucket_length(L, max_length)); B <= batch_size.
    """
    rows = len(batch["input_ids"])
    if rows > batch_size:
        raise ValueError(f"A batch of {rows} rows does not fit the static batch size {batch_size}.")
    length = batch["input_ids"].shape[1]
    target_length = bucket_length(length, max_length)
    padded = {}
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor):
            padded[key] = value
            continue
        if key in SEQUENCE_KEYS and target_length > length:
            fill = pad_token_id if key == "input_ids" else 0
            value = torch.nn.functional.pad(value, (0, target_length - length), value=fill)
        if rows < batch_size:
            value = torch.cat([value, _padding_rows(key, value, batch_size - rows, pad_token_id)])
        padded[key] = value
    return padded


def _padding_rows(key: str, value: torch.Tensor, count: int, pad_token_id: int) -> torch.Tensor:
    if key in LABEL_COLUMNS:  # a padding row: ignored by every loss and by `num_items_in_batch`
        return value.new_full((count, *value.shape[1:]), IGNORE_INDEX)
    if key == "input_ids":
        return value.new_full((count, *value.shape[1:]), pad_token_id)
    rows = value.new_zeros((count, *value.shape[1:]))
    if key == "attention_mask":
        rows[:, 0] = 1
    return rows


@dataclass
class StaticShapeCollator:
    """Wrap a collator (e.g. `DataCollatorWithPadding`) so its batches come out in a few static shapes.

    Args:
        collator: Builds the batch from a list of examples; its tensors must be padded already (to the longest).
        batch_size: Rows of every batch (the per-device training batch size).
        pad_token_id: Token id of the padding (the tokenizer's `pad_token_id`).
        max_length: The truncation length; the longest bucket.
    """

    collator: Callable[[list[dict[str, Any]]], Mapping[str, Any]]
    batch_size: int
    pad_token_id: int = 0
    max_length: int | None = None
    shapes_seen: set[tuple[int, int]] = field(default_factory=set, repr=False)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = pad_to_static_shape(self.collator(features), self.batch_size, self.pad_token_id, self.max_length)
        self.shapes_seen.add(tuple(batch["input_ids"].shape))
        return batch


@dataclass(frozen=True)
class FastStepPlan:
    """What the fast step does on a device: pad to static shapes, and compile the training model with these options.

    `compile_options` are `torch.compile`'s keyword arguments, or None for an eager step. Compiling keeps the
    gradients allocated (`keep_gradients_allocated`), which CUDA graphs need for gradient accumulation.
    """

    compile_options: dict[str, Any] | None = None


def fast_step_plan(device: torch.device) -> FastStepPlan | None:
    """The plan for a device: CUDA graphs on CUDA; None (the eager step) elsewhere, where nothing measured helped."""
    if device.type == "cuda":
        return FastStepPlan(compile_options={"mode": "reduce-overhead", "dynamic": False})
    return None


def apply_fast_step_arguments(args: Any) -> None:
    """The `TrainingArguments` side of `--fast_step`, set before the Trainer builds its accelerator.

    Turns off the per-micro-batch NaN/Inf check of the logged loss (a host sync) and makes the copies of pinned
    batches to the GPU non-blocking. Other settings stay the user's.
    """
    args.logging_nan_inf_filter = False
    args.accelerator_config.non_blocking = True


def keep_gradients_allocated(model: nn.Module) -> None:
    """Give every trainable parameter a zero `.grad` and make `model.zero_grad()` zero them in place.

    Under CUDA graphs the backward pass writes its gradients into the graph's memory pool, which the next replay
    overwrites; a `.grad` that exists before the backward pass is accumulated into instead, so gradient
    accumulation is right. Zeroing is one fused `_foreach_zero_` instead of a kernel per parameter. A parameter
    that gets no gradient then has a zero one (AdamW's weight decay still moves it; eager AdamW would skip it).
    """
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)

    def zero_grad(set_to_none: bool = True) -> None:  # the Trainer's call; gradients are zeroed, never freed
        gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
        if gradients:
            torch._foreach_zero_(gradients)

    object.__setattr__(model, "zero_grad", zero_grad)  # on this (possibly compiled) instance only


class FastStepMixin:
    """Trainer mixin for `--fast_step` (`args.fast_step`): static training shapes, a compiled training model,
    persistent gradients, and a cached FLOP count. Put it before `Trainer` in the bases.

    `fast_step_plan` is resolved from the training device when the trainer is built (`fast_step_plan()`); None means
    the eager step. Tests set it to exercise the fast path on CPU (e.g. `compile_options={"backend": "aot_eager"}`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_step_plan: FastStepPlan | None = None
        if not getattr(self.args, "fast_step", False):
            return
        if self.args.n_gpu > 1:
            raise ValueError(
                "--fast_step needs one GPU per process (DataParallel splits the padded batch): launch with "
                "torchrun or accelerate launch."
            )
        self.fast_step_plan = fast_step_plan(self.args.device)
        if self.fast_step_plan is None:
            logger.warning(CPU_NOTE)

    def get_train_dataloader(self) -> Any:
        """Training batches through `StaticShapeCollator`; evaluation and prediction keep the plain collator."""
        plan = self.fast_step_plan
        if plan is None:
            return super().get_train_dataloader()
        collator = self.data_collator
        self.data_collator = StaticShapeCollator(collator, self._train_batch_size, _pad_token_id(self))
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = collator

    def _prepare_for_training(self, max_steps: int, train_dataloader: Any, resume_from_checkpoint: Any) -> Any:
        """Compile the model the training loop runs (not `self.model`, which evaluation and saving use)."""
        model, train_dataloader = super()._prepare_for_training(max_steps, train_dataloader, resume_from_checkpoint)
        plan = self.fast_step_plan
        if plan is None or plan.compile_options is None:
            return model, train_dataloader
        if not isinstance(model, torch._dynamo.eval_frame.OptimizedModule):  # --torch_compile compiled it already
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, RECOMPILE_LIMIT)
            model = torch.compile(model, **plan.compile_options)
        keep_gradients_allocated(model)
        return model, train_dataloader

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """The Trainer's estimate (6 x tokens x non-embedding parameters), with the parameter count kept."""
        if self.fast_step_plan is None:
            return super().floating_point_ops(inputs)
        count = getattr(self, "_non_embedding_parameters", None)
        if count is None:
            count = self._non_embedding_parameters = _non_embedding_parameters(self.model)
        main_input = getattr(self.model, "main_input_name", "input_ids")
        return 6 * inputs[main_input].numel() * count if main_input in inputs and count else 0


def _non_embedding_parameters(model: nn.Module) -> int:
    count = getattr(model, "num_parameters", None)
    return count(exclude_embeddings=True) if callable(count) else 0


def _pad_token_id(trainer: Any) -> int:
    """The tokenizer's pad token id, else the model config's, else 0."""
    for source in (trainer.processing_class, getattr(trainer.model, "config", None)):
        pad_token_id = getattr(source, "pad_token_id", None)
        if pad_token_id is not None:
            return int(pad_token_id)
    return 0


__all__ = [
    "FastStepMixin",
    "FastStepPlan",
    "StaticShapeCollator",
    "apply_fast_step_arguments",
    "bucket_length",
    "fast_step_plan",
    "keep_gradients_allocated",
    "pad_to_static_shape",
]
