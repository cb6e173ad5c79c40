"""Evaluation and prediction in batches of similar length, with every output put back in dataset order.

Each batch is padded to its longest row, so batches of rows of similar length pad (and compute) far less than
batches in file order. transformers' `LengthGroupedSampler` (what `train_sampling_strategy="group_by_length"` uses
for evaluation too) draws random mega-batches and returns the outputs in that shuffled order; this sorts the whole
set by length instead, deterministically, and the trainer restores dataset order from the permutation it records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler


class LengthSortedSampler(Sampler[int]):
    """Every index once, longest rows first (a stable sort: rows of one length keep dataset order).

    Longest first, as `LengthGroupedSampler` does: a batch too large for memory fails at the first step.
    `order[k]` is the dataset index of the k-th row yielded.
    """

    def __init__(self, lengths: Sequence[int]) -> None:
        self.order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order.tolist())


def in_dataset_order(outputs: Any, order: np.ndarray) -> Any:
    """`outputs` (arrays whose rows follow `order`, or tuples, lists and dicts of them) in dataset order."""
    if outputs is None:
        return None
    if isinstance(outputs, dict):
        return type(outputs)({key: in_dataset_order(value, order) for key, value in outputs.items()})
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(in_dataset_order(value, order) for value in outputs)
    restored = np.empty_like(outputs)
    restored[order] = outputs
    return restored
