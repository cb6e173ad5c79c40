"""`cs_kd`: class-wise self-knowledge distillation, trained on batches of anchors followed by same-class partners."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Sampler
from transformers.trainer_utils import seed_worker

from ..losses import IGNORE_INDEX, LossParts, cs_kd_loss
from .base import NON_NEGATIVE, POSITIVE, Regularizer, register_regularizer, training_labels

if TYPE_CHECKING:
    from ..config import PseudoKDTrainingArguments
    from ..trainer import PseudoKDTrainer

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
    Examples labelled -100 (ignored by the loss) are paired among themselves, never with a real class.
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
        ignored = labels == IGNORE_INDEX
        if labels.dtype.is_floating_point or bool((labels[~ignored] < 0).any()):
            raise ValueError("CS-KD pairs examples by class: labels must be class ids >= 0 (or -100), not scores.")
        group_of_ignored = max(int(labels.max()), -1) + 1 if labels.numel() else 0
        labels = labels.long().masked_fill(ignored, group_of_ignored)  # -100: a group of its own
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


class AnchorLabelsOnly:
    """Collate a pair batch, then label the partners (its second half) -100: the Trainer counts only the anchors."""

    def __init__(self, collate_fn: Callable[[list[Any]], dict[str, Any]]) -> None:
        self.collate_fn = collate_fn

    def __call__(self, examples: list[Any]) -> dict[str, Any]:
        batch = self.collate_fn(examples)
        labels = batch["labels"].clone()
        labels[len(examples) // 2 :] = IGNORE_INDEX
        batch["labels"] = labels
        return batch


@register_regularizer("cs_kd")
class ClassWiseSelfKD(Regularizer):
    """CE plus ``lambda * T^2 * KL`` to a same-class partner's prediction (`losses.cs_kd_loss`).

    Costs time and activation memory: each step runs forward and backward on 2B examples (the B partners, drawn by
    `ClassPairBatchSampler`, share the anchors' forward pass; their logits are detached, their labels -100).
    """

    supports_fast_step = False  # it builds its own batches of class pairs

    bounds = {"cs_kd_lambda": NON_NEGATIVE, "cs_kd_temperature": POSITIVE}

    @classmethod
    def check_arguments(cls, args: PseudoKDTrainingArguments) -> None:
        if args.train_sampling_strategy == "batch_rebalance":
            raise ValueError(
                "regularization='cs_kd' builds its own batches of same-class pairs: use train_sampling_strategy "
                "'random', 'sequential' or 'group_by_length' instead of 'batch_rebalance'."
            )

    def setup(self, trainer: PseudoKDTrainer) -> None:
        super().setup(trainer)
        dataset = trainer.train_dataset
        self.pair_labels = None if dataset is None else training_labels(dataset, self.name)

    def train_dataloader(self, trainer: PseudoKDTrainer) -> DataLoader | None:
        """Batches of anchors followed by their same-class partners, with the Trainer's own DataLoader settings."""
        if self.pair_labels is None:
            return None
        args = trainer.args
        dataset = trainer._remove_unused_columns(trainer.train_dataset, description="Training")
        batch_sampler = ClassPairBatchSampler(
            trainer._get_train_sampler(dataset),
            self.pair_labels,
            trainer._train_batch_size,
            drop_last=args.dataloader_drop_last,
            seed=args.data_seed if args.data_seed is not None else args.seed,
        )
        dataloader = DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            collate_fn=AnchorLabelsOnly(trainer.data_collator),
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers,
            multiprocessing_context=args.dataloader_multiprocessing_context,
            prefetch_factor=args.dataloader_prefetch_factor,
            in_order=args.dataloader_in_order,
            worker_init_fn=partial(seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index),
        )
        return trainer.accelerator.prepare(dataloader)

    def per_example_loss(self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, Any]) -> LossParts:
        """The anchors' losses, then zeros for the partners (whose labels are -100)."""
        anchors, partners = logits.chunk(2)
        args = self.args
        parts = cs_kd_loss(
            anchors,
            labels[: len(anchors)],
            partners,
            lambda_=args.cs_kd_lambda,
            temperature=args.cs_kd_temperature,
            reduction="none",
            return_parts=True,
        )
        padding = parts.gold.new_zeros(len(partners))
        return LossParts(torch.cat([parts.gold, padding]), torch.cat([parts.regularizer, padding]), parts.gold_weight)
