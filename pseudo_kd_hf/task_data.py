"""The runner's data: a GLUE task's splits or your own files, a held-out part for selection, tokenisation.

`load_splits` reads only the splits the requested stages use; with `--heldout_fraction` it carves the held-out part
out of the training split, which evaluation then uses instead of the dev set.
"""

from __future__ import annotations

import logging
from pathlib import Path

from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

from .arguments import DataTrainingArguments
from .config import PseudoKDTrainingArguments
from .custom_data import EXAMPLE_ID_COLUMN, CustomTask, load_data_files, load_named_dataset, row_place
from .errors import UsageError
from .glue.data import HELDOUT_SPLIT, heldout_split, load_glue_task, rebuilt_if_damaged, required_splits
from .glue.tasks import GlueTask, get_task
from .regularizers import get_regularizer

logger = logging.getLogger(__name__)

Task = GlueTask | CustomTask  # a GLUE task, or one read from --train_file


def needed_splits(
    task: GlueTask, data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> list[str]:
    """The splits the stages read; with --heldout_fraction, evaluation reads the training split, never dev."""
    heldout = data_args.heldout_fraction is not None
    return required_splits(
        task.name,
        do_train=training_args.do_train or heldout,
        do_eval=training_args.do_eval and not heldout,
        do_predict=training_args.do_predict,
    )


def load_splits(
    data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments, cache_dir: str | None = None
) -> tuple[Task, DatasetDict]:
    """The task and its splits (a GLUE task, or your own files), checking that the requested stages have their data."""
    if data_args.task_name is None:
        task, raw_datasets = load_own_files(data_args, training_args, cache_dir)
    else:
        task, raw_datasets = load_glue_splits(data_args, training_args)
    if "train" in raw_datasets and EXAMPLE_ID_COLUMN in get_regularizer(training_args.regularization).columns:
        check_distinct_ids(raw_datasets["train"], task, data_args, training_args.regularization)
    if data_args.heldout_fraction is not None:
        raw_datasets["train"], raw_datasets[HELDOUT_SPLIT] = heldout_split(
            raw_datasets["train"], data_args.heldout_fraction, data_args.heldout_seed, task.is_regression
        )
    return task, raw_datasets


def load_glue_splits(
    data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> tuple[GlueTask, DatasetDict]:
    """The splits the requested stages read, and only those (a broken file the run does not use stops nothing)."""
    task = get_task(data_args.task_name)
    try:
        splits = needed_splits(task, data_args, training_args)
        return task, load_glue_task(
            task.name, data_args.data_dir, splits=splits, overwrite_cache=data_args.overwrite_cache
        )
    except ConnectionError as error:
        if data_args.data_dir is not None:
            raise
        raise UsageError(
            f"--task_name {task.name}: GLUE could not be loaded from the Hub ({str(error).splitlines()[0]}); pass "
            "--data_dir with the original glue_data/ folder to run offline."
        ) from None


def load_own_files(
    data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments, cache_dir: str | None
) -> tuple[CustomTask, DatasetDict]:
    """--train_file / --validation_file / --test_file, or --dataset_name, as run_glue reads them (`custom_data`)."""
    if data_args.dataset_name is not None:
        heldout = data_args.heldout_fraction is not None
        splits = ["validation"] * (training_args.do_eval and not heldout) + ["test"] * training_args.do_predict
        raw_datasets, task = load_named_dataset(
            data_args.dataset_name, data_args.dataset_config_name, splits, cache_dir, data_args.overwrite_cache
        )
    else:
        files = data_args.train_file, data_args.validation_file, data_args.test_file
        raw_datasets, task = load_data_files(*files, cache_dir=cache_dir, overwrite_cache=data_args.overwrite_cache)
    logger.info(
        f"Own data: text columns {', '.join(task.text_columns)}; "
        + ("regression (float labels)" if task.is_regression else f"labels {', '.join(task.label_names)}")
    )
    return task, raw_datasets


def check_distinct_ids(train: Dataset, task: Task, data_args: DataTrainingArguments, method: str) -> None:
    """A method that keys its state by `idx` (PS-KD's table) needs one row per idx: a repeat names the file and lines.

    `PreviousPredictions` refuses the repeat too, but inside the Trainer and without the file.
    """
    first_row: dict[int, int] = {}
    for row, example_id in enumerate(train[EXAMPLE_ID_COLUMN]):
        if example_id in first_row:
            where = _training_rows(task, data_args, train, (first_row[example_id], row))
            raise UsageError(
                f"--regularization {method} keys its table of predictions by the training examples' idx, and "
                f"{where} repeat idx {example_id}: give each training example its own index."
            )
        first_row[example_id] = row


def _training_rows(task: Task, data_args: DataTrainingArguments, train: Dataset, rows: tuple[int, int]) -> str:
    """'FILE, lines A and B': where two training rows are (rows counted from 0 among the data rows)."""
    if isinstance(task, CustomTask) and data_args.dataset_name is not None:
        return f"--dataset_name {data_args.dataset_name} (train split), rows {rows[0] + 1} and {rows[1] + 1},"
    if isinstance(task, CustomTask):
        places = [row_place(Path(data_args.train_file), len(train), row) for row in rows]
        return f"--train_file {data_args.train_file}, {' and '.join(places)},"
    if data_args.data_dir is None:
        return f"the Hub's {task.name} training split, rows {rows[0] + 1} and {rows[1] + 1},"
    first_line = 2 if task.layout_for("train").has_header else 1
    path = Path(data_args.data_dir) / task.folder / task.files["train"]
    return f"{path}, lines {rows[0] + first_line} and {rows[1] + first_line},"


def eval_split_names(task: Task, data_args: DataTrainingArguments) -> tuple[str, ...]:
    """The dev set(s), or with --heldout_fraction the held-out part of the training set (selection never sees dev)."""
    return (HELDOUT_SPLIT,) if data_args.heldout_fraction is not None else task.validation_splits


def tokenize_split(
    dataset: Dataset,
    task: Task,
    tokenizer: PreTrainedTokenizerBase,
    data_args: DataTrainingArguments,
    training_args: PseudoKDTrainingArguments,
    max_seq_length: int,
) -> Dataset:
    """Tokenise the task's text columns (cached by `datasets`), truncated to `max_seq_length`.

    `datasets` keys the cache on the function and what it captures: `encode` captures only the tokenizer and the
    tokenising settings, so changing another flag (e.g. --max_train_samples) reuses the dev and test sets' cache.
    A damaged cache file is rebuilt (`rebuilt_if_damaged`: one row out per row in).
    """
    text_columns, padding = task.text_columns, "max_length" if data_args.pad_to_max_length else False

    def encode(examples: dict[str, list]) -> dict[str, list]:
        return tokenizer(
            *(examples[column] for column in text_columns),
            padding=padding,
            max_length=max_seq_length,
            truncation=True,
        )

    def tokenised(rebuild: bool) -> Dataset:
        return dataset.map(
            encode,
            batched=True,
            num_proc=data_args.preprocessing_num_workers,
            load_from_cache_file=not rebuild,
            desc="Running tokenizer on dataset",
        )

    with training_args.main_process_first(desc="dataset map pre-processing"):
        if data_args.overwrite_cache:
            return tokenised(True)
        return rebuilt_if_damaged(tokenised, lambda _: len(dataset), "tokenised data")


def first_examples(dataset: Dataset, max_samples: int | None) -> Dataset:
    return dataset if max_samples is None else dataset.select(range(min(max_samples, len(dataset))))
