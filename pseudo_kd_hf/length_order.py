"""Evaluation and prediction in batches of similar length, with every output put back in dataset order.

Each batch is padded to its longest row, so batches of rows of similar length pad (and compute) far less than
batches in file order. transformers' `LengthGroupedSampler` (what `train_sampling_strategy="group_by_length"` uses
for evaluation too) draws random mega-batches and returns the outputs in that shuffled order; this sorts the whole
set by length instead, deterministically, and the trainer restores dataset order from the permutation it records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import EvalPrediction
from transformers.trainer_utils import EvalLoopOutput


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


class LengthOrderedEvaluationMixin:
    """Trainer mixin: evaluation and prediction batches of similar length (`LengthSortedSampler`), every output, and
    what `compute_metrics` sees, in dataset order, unless `args.eval_sort_by_length` is off. Put it before `Trainer`
    in the bases."""

    def _get_eval_sampler(self, eval_dataset: Any) -> torch.utils.data.Sampler | None:
        """Evaluation and prediction run longest rows first (`LengthSortedSampler`); outputs come back in dataset
        order (`evaluation_loop`). Left to the Trainer when `eval_sort_by_length` is off, and where order could not
        be restored: several processes, dropped last batches, per-batch metrics, unconcatenated outputs, or a set
        without token ids."""
        args, name = self.args, self._model_input_name()
        if (
            not args.eval_sort_by_length
            or args.world_size > 1
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
