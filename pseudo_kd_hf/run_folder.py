"""The CLI's output folder: one run at a time, a finished run left alone, the checkpoint to resume from.

What each case does for the user is in docs/crashes.md; the mechanisms (the lock file, what
makes a checkpoint complete, removing checkpoints) are in `run_dir.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .arguments import DataTrainingArguments
from .config import PseudoKDTrainingArguments
from .errors import UsageError
from .regularizers import get_regularizer
from .run_dir import (
    LOCK_FILE_NAME,
    TRAINING_STATE_NAMES,
    OutputDirBusy,
    checkpoint_folders,
    checkpoint_problems,
    last_complete_checkpoint,
    output_dir_lock,
)
from .suite import ALL_RESULTS, finished_results
from .task_data import Task
from .trainer import REGULARIZER_STATE_NAME

logger = logging.getLogger(__name__)


@contextmanager
def output_dir_held(training_args: PseudoKDTrainingArguments) -> Iterator[None]:
    """One run per output folder: the main process holds a lock file in --output_dir while the block runs.

    A folder held by a live run, or that cannot be written, is refused at once (`UsageError`); a lock left by a
    killed run is taken over with a warning.
    """
    output_dir = Path(training_args.output_dir)
    with ExitStack() as stack:
        if training_args.process_index == 0:  # under DDP the other processes write nothing the lock guards
            try:
                stack.enter_context(output_dir_lock(output_dir))
            except OutputDirBusy as error:
                raise UsageError(f"--output_dir {output_dir}: {error}.") from None
            except OSError as error:
                raise UsageError(
                    f"--output_dir {output_dir} cannot be written ({error.strerror or error}): choose another folder."
                ) from None
        yield


def finished_run(data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments) -> bool:
    """A --do_train run whose folder already holds its results is finished: say so rather than train over them.

    Results cut short (a full disk, a crash while writing them) do not count: the run resumes from its checkpoint.
    """
    if not training_args.do_train or data_args.overwrite_output_dir:
        return False
    if finished_results(Path(training_args.output_dir), trained=True) is None:
        return False
    logger.warning(
        f"{training_args.output_dir} holds a finished run ({ALL_RESULTS}): nothing trained. Pass "
        "--overwrite_output_dir to train it again, or drop --do_train to evaluate or predict with its model."
    )
    return True


def checkpoint_files(task: Task | None, training_args: PseudoKDTrainingArguments) -> tuple[str, ...]:
    """What a checkpoint of this run holds besides weights and trainer state: the method's state where it keeps one
    (a regression head trains on the MSE, without it). `task` None: own data files not read yet (as classification)."""
    regression = task is not None and task.is_regression
    keeps_state = get_regularizer(training_args.regularization).keeps_state and not regression
    return TRAINING_STATE_NAMES + ((REGULARIZER_STATE_NAME,) if keeps_state else ())


def check_output_dir(
    task: Task | None, data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> None:
    """run_glue's rule: --do_train into a non-empty folder resumes its newest complete checkpoint, else is refused.

    A folder holding only partial checkpoints (a crash during the first save) and a lock trains from the start; one
    holding a finished run is left to `finished_run`.
    """
    output_dir = Path(training_args.output_dir)
    if not training_args.do_train or data_args.overwrite_output_dir or not output_dir.is_dir():
        return
    checkpoints = checkpoint_folders(output_dir)
    required = checkpoint_files(task, training_args)
    if (output_dir / ALL_RESULTS).is_file() or any(not checkpoint_problems(c, required) for c in checkpoints):
        return
    ours = {LOCK_FILE_NAME, *(folder.name for folder in checkpoints)}
    if any(path.name not in ours for path in output_dir.iterdir()):
        raise UsageError(
            f"--output_dir {output_dir} is not empty and holds no checkpoint to resume: "
            "pass --overwrite_output_dir to train over it, or choose another --output_dir."
        )


def last_checkpoint(
    training_args: PseudoKDTrainingArguments,
    overwrite_output_dir: bool,
    required: tuple[str, ...] = TRAINING_STATE_NAMES,
) -> str | None:
    """The newest intact checkpoint in output_dir to resume from; partial or damaged newer ones are passed over, each
    with a warning naming it and its file."""
    output_dir = Path(training_args.output_dir)
    if not training_args.do_train or overwrite_output_dir or not output_dir.is_dir():
        return None
    checkpoint = last_complete_checkpoint(output_dir, required)
    if checkpoint is not None and training_args.resume_from_checkpoint is None:
        logger.info(f"Resuming from {checkpoint}; pass --overwrite_output_dir to train from scratch instead.")
    return checkpoint
