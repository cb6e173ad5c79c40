"""Your own data instead of a GLUE task: `--train_file`, `--validation_file`, `--test_file`, or `--dataset_name`
(with `--dataset_config_name`), as in `run_glue.py`.

CSV or JSON lines files, or any dataset `datasets.load_dataset` opens. The text is `sentence1`/`sentence2` when both
columns exist, else `sentence`, else the first one or two columns that are not `label` (run_glue's rule). The `label`
column holds class names or ids, or floats for a regression task; classes are numbered in sorted order of the
training labels, as `run_glue.py` numbers them. An `idx` column (the row number) is added where the data lacks one:
KD's teacher-logit files and PS-KD key rows by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Value, load_dataset

from .glue.tasks import LabelledTask

LABEL_COLUMN = "label"
EXAMPLE_ID_COLUMN = "idx"
FILE_FLAGS = {"train": "--train_file", "validation": "--validation_file", "test": "--test_file"}
LOADERS = {".csv": "csv", ".json": "json", ".jsonl": "json"}


class DataFileError(ValueError):
    """A data file the user named cannot be used as given; the message names the flag."""


@dataclass(frozen=True)
class CustomTask(LabelledTask):
    """What the runner needs to know about a task read from the user's files (a GLUE task's counterpart)."""

    text_columns: tuple[str, ...]
    label_names: tuple[str, ...]  # () for regression
    name: str = "custom"

    @property
    def validation_splits(self) -> tuple[str, ...]:
        return ("validation",)

    @property
    def test_splits(self) -> tuple[str, ...]:
        return ("test",)

    @property
    def submission_keys(self) -> dict[str, str]:
        """No leaderboard files: the test split's predictions go to `predict_results_<name>.txt` only."""
        return {}


def _loader(flag: str, path: Path) -> str:
    if not path.is_file():
        raise DataFileError(f"{flag} {path}: no such file")
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise DataFileError(f"{flag} {path}: use a .csv, .json or .jsonl file (JSON lines), not {path.suffix!r}")
    return loader


def text_columns_of(column_names: list[str]) -> tuple[str, ...]:
    """run_glue's choice of input columns: sentence1/sentence2, else sentence, else the first one or two others."""
    if "sentence1" in column_names and "sentence2" in column_names:
        return "sentence1", "sentence2"
    if "sentence" in column_names:
        return ("sentence",)
    others = [name for name in column_names if name not in (LABEL_COLUMN, EXAMPLE_ID_COLUMN)]
    if not others:
        raise DataFileError(f"--train_file has no text column besides {LABEL_COLUMN!r}: add a 'sentence' column")
    return tuple(others[:2])


def load_data_files(
    train_file: str | None, validation_file: str | None, test_file: str | None, cache_dir: str | None = None
) -> tuple[DatasetDict, CustomTask]:
    """Read the user's files into `train` / `validation` / `test` splits with numbered labels, and describe the task.

    Raises:
        DataFileError: a file is missing, of another format than the others, lacks the columns, or holds a label the
            training file does not.
    """
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    paths = {split: Path(file) for split, file in files.items() if file}
    if "train" not in paths:
        raise DataFileError("--train_file is needed with --validation_file / --test_file: it defines the labels")
    loaders = {split: _loader(FILE_FLAGS[split], path) for split, path in paths.items()}
    if len(set(loaders.values())) > 1:
        raise DataFileError("--train_file, --validation_file and --test_file must all be CSV or all JSON lines")
    raw = load_dataset(
        loaders["train"], data_files={split: str(path) for split, path in paths.items()}, cache_dir=cache_dir
    )
    return _own_task(raw, {split: f"{FILE_FLAGS[split]} {path}" for split, path in paths.items()})


def load_named_dataset(
    name: str, config_name: str | None, splits: list[str], cache_dir: str | None = None
) -> tuple[DatasetDict, CustomTask]:
    """--dataset_name (and --dataset_config_name): any dataset `datasets.load_dataset` opens, read as run_glue reads
    it, with its `train` split (which defines the labels) and the other `splits` the stages need.

    Raises:
        DataFileError: the dataset or its configuration cannot be found, or lacks a needed split or column.
    """
    flag = f"--dataset_name {name}" + ("" if config_name is None else f" --dataset_config_name {config_name}")
    try:
        raw = load_dataset(name, config_name, cache_dir=cache_dir)
    except (FileNotFoundError, ValueError) as error:  # no such dataset or configuration: datasets says which
        raise DataFileError(f"{flag}: {str(error).splitlines()[0]}") from None
    missing = [split for split in ("train", *splits) if split not in raw]
    if missing:
        raise DataFileError(
            f"{flag} has no {', '.join(dict.fromkeys(missing))} split (it has {', '.join(raw)}): name the splits "
            "train, validation (--do_eval) and test (--do_predict), or drop the stage."
        )
    raw = DatasetDict({split: raw[split] for split in dict.fromkeys(("train", *splits))})
    return _own_task(raw, {split: f"{flag} ({split} split)" for split in raw})


def _own_task(raw: DatasetDict, sources: dict[str, str]) -> tuple[DatasetDict, CustomTask]:
    """Number the labels and pick the text columns from the training split; `sources` names each split's origin."""
    train = raw["train"]
    if LABEL_COLUMN not in train.column_names:
        raise DataFileError(f"{sources['train']} has no {LABEL_COLUMN!r} column")
    task = CustomTask(text_columns_of(train.column_names), _label_names(train))
    splits = {split: _prepare_split(raw[split], split, sources[split], task) for split in raw}
    return DatasetDict(splits), task


def _label_names(train: Dataset) -> tuple[str, ...]:
    """Sorted class names, or () when the labels are floats (regression), as run_glue decides."""
    if train.features[LABEL_COLUMN].dtype in ("float32", "float64"):
        return ()
    return tuple(str(label) for label in sorted(set(train[LABEL_COLUMN])))


def _prepare_split(dataset: Dataset, split: str, source: str, task: CustomTask) -> Dataset:
    missing = [column for column in task.text_columns if column not in dataset.column_names]
    if missing:
        raise DataFileError(f"{source} lacks the text column(s) {', '.join(missing)}")
    if EXAMPLE_ID_COLUMN not in dataset.column_names:
        dataset = dataset.add_column(EXAMPLE_ID_COLUMN, list(range(len(dataset))))
    if split == "test" and LABEL_COLUMN in dataset.column_names and set(dataset[LABEL_COLUMN]) <= {None}:
        dataset = dataset.remove_columns(LABEL_COLUMN)  # read beside labelled files, a label-less test file gets Nones
    if LABEL_COLUMN not in dataset.column_names:
        if split != "test":
            raise DataFileError(f"{source} has no {LABEL_COLUMN!r} column")
        filler = -1.0 if task.is_regression else -1  # the GLUE test splits' placeholder
        return dataset.add_column(LABEL_COLUMN, [filler] * len(dataset))
    if task.is_regression:
        labels = [float(label) for label in dataset[LABEL_COLUMN]]
        if not all(math.isfinite(label) for label in labels):
            raise DataFileError(f"{source}: every {LABEL_COLUMN!r} must be a finite number")
        return dataset.cast_column(LABEL_COLUMN, Value("float32"))
    label_ids = {name: label_id for label_id, name in enumerate(task.label_names)}
    unknown = sorted({str(label) for label in dataset[LABEL_COLUMN]} - set(label_ids) - {"-1"})
    if unknown:
        raise DataFileError(f"{source} has label(s) {', '.join(unknown[:5])} that --train_file lacks")
    ids = [label_ids.get(str(label), -1) for label in dataset[LABEL_COLUMN]]
    dataset = dataset.remove_columns(LABEL_COLUMN).add_column(LABEL_COLUMN, ids)
    return dataset.cast_column(LABEL_COLUMN, ClassLabel(names=list(task.label_names)))  # -1: no label (test)
