"""What `PseudoKDTrainer` adds to the Trainer's checkpoints and results, and how the runner stops on a signal.

- Every result file is written whole or not at all (`write_json`): a full disk or a crash mid-write leaves the
  previous file or none, never a cut-short `all_results.json` that a rerun would take for a finished run.
- Every checkpoint carries a manifest of its files with sizes and hashes, written after its last file
  (`run_dir.write_manifest`), so resuming can tell a damaged checkpoint from an intact one.
- `WholeRunLoss`: each checkpoint records the training loss summed over every step so far, so the `train_loss` of
  a run resumed from it covers the whole run. The Trainer's averages only the steps of its own `train()` call.
- `StopOnSignal` (the runner's): SIGTERM or SIGINT stops training at the next step boundary with a checkpoint.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.utils import logging

from .glue.submission import write_atomically
from .run_dir import CHECKPOINT_RECORD

logger = logging.get_logger(__name__)


def write_json(path: str | Path, value: Any, indent: int) -> None:
    """The Trainer's JSON result files (`{split}_results.json`, `trainer_state.json`), in its format, atomically."""
    write_atomically(Path(path), (json.dumps(value, indent=indent, sort_keys=True) + "\n").encode("utf-8"))


class WholeRunLoss(TrainerCallback):
    """The training loss summed over every step of the run, across resumes.

    `add` takes each training step's loss (the value the Trainer adds to its own running loss), on the device
    without a host sync. A checkpoint records `total` in its trainer state (`record`); resuming reads it back
    (`on_train_begin`). A checkpoint saved before this record existed leaves the sum before it unknown: `train_loss`
    then covers the steps after the resume only, as the Trainer's does, with a warning.
    """

    def __init__(self) -> None:
        self.loss_before: float | None = 0.0  # summed over the steps before this train() call
        self.steps_before = 0
        self._since: torch.Tensor | None = None  # summed on the device over this call's steps

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        record = state.stateful_callbacks.get(CHECKPOINT_RECORD, {})
        self.steps_before, self._since = state.global_step, None
        self.loss_before = record.get("attributes", {}).get("train_loss_sum") if state.global_step else 0.0
        if self.loss_before is None:
            logger.warning(
                f"The checkpoint resumed from (step {state.global_step}) records no training loss sum: train_loss "
                f"will cover the steps after step {state.global_step} only."
            )

    def add(self, loss: torch.Tensor) -> None:
        if self._since is None:  # a buffer of its own: the step's loss may live in one that the next step reuses
            self._since = torch.zeros((), device=loss.device)  # float32, as the Trainer's own sum
        self._since += loss.detach()

    def total(self, reduce_mean: Any) -> float | None:
        """The loss summed over every step so far (`reduce_mean`: the mean over processes); None when unknown.

        A collective under DDP: every process calls it.
        """
        since = 0.0 if self._since is None else reduce_mean(self._since).item()
        return None if self.loss_before is None else self.loss_before + since

    def record(self, state: TrainerState, reduce_mean: Any) -> None:
        """Write the sum so far into the trainer state a checkpoint saves, with the manifest it carries."""
        attributes = {"train_loss_sum": self.total(reduce_mean), "manifest": True}
        state.stateful_callbacks[CHECKPOINT_RECORD] = {"args": {}, "attributes": attributes}

    def train_loss(self, global_step: int, reduce_mean: Any) -> float | None:
        """The mean loss over the whole run; None for a run that did not resume (the Trainer's is exact then)."""
        total = self.total(reduce_mean)
        return None if not self.steps_before or total is None else total / max(global_step, 1)


class TrainingStopped(Exception):
    """Training stopped on a signal after saving a checkpoint; exit with `exit_code` (128 + the signal's number)."""

    def __init__(self, signum: int, step: int) -> None:
        self.exit_code = 128 + signum
        super().__init__(
            f"{signal.Signals(signum).name} received: training stopped at step {step} after saving checkpoint-{step}; "
            "run the same command again to resume from it."
        )


class StopOnSignal(TrainerCallback):
    """SIGTERM (what schedulers and spot instances send before a kill) or SIGINT during training: finish the step,
    save a checkpoint, then `train()` raises `TrainingStopped`. A second signal acts as usual (it kills the run).

    transformers' own `enable_jit_checkpoint` does not fit: it handles SIGTERM only, saves after a 3-second timer
    from inside a step, and then `train()` returns as if training had finished, so the runner would go on to write
    the results of a run cut short. A signal after the last step lets the run finish, with a warning.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self.saved_step: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        self._restore()  # a second signal: the usual handler

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.received, self.saved_step = None, None
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.received is not None and self.saved_step is None:
            logger.warning(f"{signal.Signals(self.received).name} received: saving a checkpoint, then stopping.")
            control.should_save = True
            control.should_training_stop = True

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.received is not None:
            self.saved_step = state.global_step

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """The Trainer ends the epoch it stopped in: no epoch-end evaluation or save of a part-epoch, which an
        uninterrupted run never makes (with `load_best_model_at_end` it could become the run's best model)."""
        if self.saved_step is not None:
            control.should_evaluate = control.should_save = False

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._restore()
        if self.received is None:
            return
        if self.saved_step is None:
            name = signal.Signals(self.received).name
            logger.warning(f"{name} received after the last training step: the run goes on to its results.")
            return
        raise TrainingStopped(self.received, self.saved_step)
