"""`ps_kd`: progressive self-knowledge distillation from the model's own predictions of the previous epoch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..losses import LossParts, ps_kd_alpha, ps_kd_loss, split_ignored
from .base import UNIT, Regularizer, register_regularizer, student_num_labels, training_labels

if TYPE_CHECKING:
    from ..trainer import PseudoKDTrainer

# The training-set column PS-KD keys its table of previous predictions by (GLUE's datasets carry it).
EXAMPLE_ID_COLUMN = "idx"


class PreviousPredictions:
    """PS-KD's table of every training example's latest predicted distribution, keyed by the dataset's `idx`.

    N x K float32 on the CPU: N * K * 4 bytes (plus 8 per key), e.g. 4.7 MB for MNLI's 392,702 examples x 3 classes,
    held whole by every process. Rows start one-hot at the gold label, the target before any prediction (an example
    labelled -100 keeps a row that no loss reads and no update touches).
    """

    def __init__(self, example_ids: Sequence[int], labels: Sequence[int], num_classes: int) -> None:
        self.keys, order = torch.as_tensor(example_ids, dtype=torch.long).sort()
        repeated = self.keys[1:][self.keys[1:] == self.keys[:-1]]
        if len(self.keys) > 0 and (self.keys[0] < 0 or len(repeated) > 0):
            problem = f"idx {int(repeated[0])} appears twice" if len(repeated) else f"idx {int(self.keys[0])} is < 0"
            raise ValueError(
                f"regularization='ps_kd' keys its table by the {EXAMPLE_ID_COLUMN!r} column, which must hold distinct "
                f"integers >= 0 ({problem}): renumber it, e.g. dataset.map(lambda _, i: {{'idx': i}}, "
                "with_indices=True)."
            )
        _, labels = split_ignored(torch.as_tensor(labels, dtype=torch.long))
        self.probs = F.one_hot(labels[order], num_classes).float()

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


@register_regularizer("ps_kd")
class ProgressiveSelfKD(Regularizer):
    """Cross-entropy to ``(1 - alpha_t) * onehot(y) + alpha_t * p_prev(x)`` (`losses.ps_kd_loss`).

    Costs memory, not time: the `PreviousPredictions` table, a B x K copy to and from the CPU per micro-batch, and
    under DDP an all-gather of B x (K + 1) numbers, so every process holds every process's rows.
    """

    supports_fast_step = False  # its table is keyed by every row of a batch
    keeps_state = True  # the previous epoch's predictions

    bounds = {"ps_kd_alpha_T": UNIT}
    columns = (EXAMPLE_ID_COLUMN,)

    def setup(self, trainer: PseudoKDTrainer) -> None:
        super().setup(trainer)
        self.accelerator = trainer.accelerator
        self.previous_predictions: PreviousPredictions | None = None
        dataset = trainer.train_dataset
        if dataset is None:
            return
        labels = training_labels(dataset, self.name)
        if EXAMPLE_ID_COLUMN not in dataset.column_names:
            raise ValueError(
                f"regularization='ps_kd' keys its table of previous predictions by an {EXAMPLE_ID_COLUMN!r} "
                "column: add one, e.g. dataset.map(lambda _, i: {'idx': i}, with_indices=True)."
            )
        self.previous_predictions = PreviousPredictions(dataset[EXAMPLE_ID_COLUMN], labels, student_num_labels(trainer))

    def alpha_t(self) -> float:
        """``alpha_t`` for the current epoch (counted from 0) of the Trainer's `num_train_epochs` epochs."""
        state = self.trainer.state
        num_epochs = max(int(state.num_train_epochs), 1)
        return ps_kd_alpha(self.args.ps_kd_alpha_T, min(math.floor(state.epoch or 0.0), num_epochs - 1), num_epochs)

    def _example_ids(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.previous_predictions is None or EXAMPLE_ID_COLUMN not in batch:
            raise ValueError(f"regularization='ps_kd' needs the {EXAMPLE_ID_COLUMN!r} column in every batch.")
        return batch[EXAMPLE_ID_COLUMN]

    def per_example_loss(self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, Any]) -> LossParts:
        previous = self.previous_predictions[self._example_ids(batch)].to(logits.device)
        return ps_kd_loss(logits, labels, previous, alpha_t=self.alpha_t(), reduction="none", return_parts=True)

    def update_state(self, logits: torch.Tensor, keep: torch.Tensor, batch: dict[str, Any]) -> None:
        """Store the kept rows' predictions for the next epoch; under DDP every process gets every process's rows."""
        example_ids = torch.where(keep, self._example_ids(batch).long(), -1)  # -1: a row the table skips
        probs = logits.float().softmax(dim=-1)
        if self.accelerator.num_processes > 1:
            example_ids = self.accelerator.pad_across_processes(example_ids, pad_index=-1)
            probs = self.accelerator.pad_across_processes(probs)
            example_ids, probs = self.accelerator.gather((example_ids, probs))
        example_ids, probs = example_ids.cpu(), probs.cpu()
        kept = example_ids >= 0
        self.previous_predictions.update(example_ids[kept], probs[kept])

    def state_dict(self) -> dict[str, Any]:
        if self.previous_predictions is None:
            return {}
        return {"previous_predictions": self.previous_predictions.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.previous_predictions.load_state_dict(state["previous_predictions"])
