"""Your own data instead of a GLUE task: `--train_file`, `--validation_file`, `--test_file`, or `--dataset_name`
(with `--dataset_config_name`), as in `run_glue.py`.

CSV or JSON lines files, or any dataset `datasets.load_dataset` opens. The text is `sentence1`/`sentence2` when both
columns exist, else `sentence`, else the first one or two columns that are not `label` (run_glue's rule). The `label`
column holds class names or ids, or floats for a regression task; classes are numbered in sorted order of the
training labels, as `run_glue.py` numbers them. An `idx` column (the row number) is added where the data lacks one:
KD's teacher-logit files and PS-KD key rows by it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, DownloadMode, Value, load_dataset
from datasets.exceptions import DatasetGenerationError

from .glue.data import rebuilt_if_damaged, split_rows
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


def text_columns_of(column_names: list[str], source: str = "--train_file") -> tuple[str, ...]:
    """run_glue's choice of input columns: sentence1/sentence2, else sentence, else the first one or two others."""
    if "sentence1" in column_names and "sentence2" in column_names:
        return "sentence1", "sentence2"
    if "sentence" in column_names:
        return ("sentence",)
    others = [name for name in column_names if name not in (LABEL_COLUMN, EXAMPLE_ID_COLUMN)]
    if not others:
        raise DataFileError(f"{source} has no text column besides {LABEL_COLUMN!r}: add a 'sentence' column")
    return tuple(others[:2])


def load_data_files(
    train_file: str | None,
    validation_file: str | None,
    test_file: str | None,
    cache_dir: str | None = None,
    overwrite_cache: bool = False,
) -> tuple[DatasetDict, CustomTask]:
    """Read the user's files into `train` / `validation` / `test` splits with numbered labels, and describe the task.

    Each file is read on its own (one `load_dataset` per file), so a file whose columns or labels differ from the
    training file's is named here instead of failing inside `datasets`' cast of one file to another's schema.
    A damaged cache entry is rebuilt (`rebuilt_if_damaged`); `overwrite_cache` rebuilds each file's.

    Raises:
        DataFileError: a file is missing, of another format than the others, cannot be parsed, lacks the columns or
            has others, has an empty label cell, or holds a label (or a kind of label) the training file does not.
    """
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    paths = {split: Path(file) for split, file in files.items() if file}
    if "train" not in paths:
        raise DataFileError("--train_file is needed with --validation_file / --test_file: it defines the labels")
    loaders = {split: _loader(FILE_FLAGS[split], path) for split, path in paths.items()}
    if len(set(loaders.values())) > 1:
        raise DataFileError("--train_file, --validation_file and --test_file must all be CSV or all JSON lines")
    raw = {split: _read_file(loaders[split], split, path, cache_dir, overwrite_cache) for split, path in paths.items()}
    if LABEL_COLUMN not in raw["train"].column_names:
        raise DataFileError(f"--train_file {paths['train']} has no {LABEL_COLUMN!r} column")
    text_columns = text_columns_of(raw["train"].column_names)
    for split, dataset in raw.items():
        _check_columns(dataset, split, paths, text_columns, raw["train"].column_names)
        _check_cells(dataset, split, paths[split], text_columns)
    _check_label_kinds(raw, paths)
    task = CustomTask(text_columns, _label_names(raw["train"]))
    sources = {split: f"{FILE_FLAGS[split]} {path}" for split, path in paths.items()}
    splits = {split: _prepare_split(dataset, split, sources[split], task) for split, dataset in raw.items()}
    return DatasetDict(splits), task


def load_named_dataset(
    name: str, config_name: str | None, splits: list[str], cache_dir: str | None = None, overwrite_cache: bool = False
) -> tuple[DatasetDict, CustomTask]:
    """--dataset_name (and --dataset_config_name): any dataset `datasets.load_dataset` opens, read as run_glue reads
    it, with its `train` split (which defines the labels) and the other `splits` the stages need.

    Raises:
        DataFileError: the dataset or its configuration cannot be found, or lacks a needed split or column.
    """
    flag = f"--dataset_name {name}" + ("" if config_name is None else f" --dataset_config_name {config_name}")

    def build(rebuild: bool) -> DatasetDict:
        mode = DownloadMode.FORCE_REDOWNLOAD if rebuild else None
        return load_dataset(name, config_name, cache_dir=cache_dir, download_mode=mode)

    def expected_rows(loaded: DatasetDict) -> dict[str, int] | None:  # each split's, as datasets recorded them
        recorded = {split: split_rows(dataset.info.splits, split) for split, dataset in loaded.items()}
        return None if None in recorded.values() else recorded

    try:
        raw = build(True) if overwrite_cache else rebuilt_if_damaged(build, expected_rows, f"{flag} data")
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
    task = CustomTask(text_columns_of(train.column_names, sources["train"]), _label_names(train))
    splits = {split: _prepare_split(raw[split], split, sources[split], task) for split in raw}
    return DatasetDict(splits), task


def _read_file(loader: str, split: str, path: Path, cache_dir: str | None, overwrite_cache: bool) -> Dataset:
    """One file as a `Dataset`; a file its parser refuses is named, with the line where it can be found."""
    # keep_default_na=False: pandas would read the text "NA", "null", "nan" or "None" (and an empty cell) as a
    # missing value; so text stays text and an empty cell is "", as the GLUE TSV reader keeps them.
    options = {"keep_default_na": False} if loader == "csv" else {}

    def build(rebuild: bool) -> Dataset:
        mode = DownloadMode.FORCE_REDOWNLOAD if rebuild else None
        files = {split: str(path)}
        return load_dataset(loader, data_files=files, split=split, cache_dir=cache_dir, download_mode=mode, **options)

    try:
        if overwrite_cache:
            return build(True)
        return rebuilt_if_damaged(build, lambda dataset: split_rows(dataset.info.splits, split), f"raw data ({path})")
    except DatasetGenerationError as error:
        reason = _bad_json_line(path) if loader == "json" else None
        format_name = "CSV" if loader == "csv" else "JSON lines"
        reason = reason or f"cannot be read as {format_name} ({' '.join(str(error.__cause__).split())})"
        raise DataFileError(f"{FILE_FLAGS[split]} {path}: {reason}") from None


def _bad_json_line(path: Path) -> str | None:
    """'line N is not valid JSON (...)' for the first such line of a JSON lines file; None when every line parses."""
    with open(path, encoding="utf-8", errors="replace") as file:
        for line_number, line in enumerate(file, start=1):
            try:
                if line.strip():
                    json.loads(line)
            except json.JSONDecodeError as error:
                return f"line {line_number} is not valid JSON ({error.msg} at column {error.colno}); fix or drop it"
    return None


def row_place(path: Path, num_rows: int, row: int) -> str:
    """'line N' where data row `row` starts (blank lines skipped; a quoted CSV field may span lines).

    A JSON file that is one document rather than JSON lines maps rows to no lines: its rows are named 'row N'.
    """
    with open(path, encoding="utf-8", errors="replace", newline="") as file:
        if LOADERS[path.suffix.lower()] == "csv":
            reader, starts, previous = csv.reader(file), [], 0
            for record in reader:
                if record:
                    starts.append(previous + 1)
                previous = reader.line_num
            starts = starts[1:]  # the header
        else:
            starts = [number for number, line in enumerate(file, start=1) if line.strip()]
    return f"line {starts[row]}" if len(starts) == num_rows else f"row {row + 1}"


def _check_columns(
    dataset: Dataset, split: str, paths: dict[str, Path], text_columns: tuple[str, ...], train_columns: list[str]
) -> None:
    """The text columns are there, a labelled split has labels, and no column is one the training file lacks."""
    where = f"{FILE_FLAGS[split]} {paths[split]}"
    missing = [column for column in text_columns if column not in dataset.column_names]
    if missing:
        raise DataFileError(f"{where} lacks the text column(s) {', '.join(missing)}")
    if split == "validation" and LABEL_COLUMN not in dataset.column_names:
        raise DataFileError(f"{where} has no {LABEL_COLUMN!r} column: the dev set is scored against its labels")
    extra = [column for column in dataset.column_names if column not in (*train_columns, EXAMPLE_ID_COLUMN)]
    if extra:
        raise DataFileError(
            f"{where} has column(s) {', '.join(extra)} that --train_file {paths['train']} lacks: use the training "
            "file's columns (a test file may leave out the label)"
        )


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_cells(dataset: Dataset, split: str, path: Path, text_columns: tuple[str, ...]) -> None:
    """No missing text (JSON null, or a key left out) and, outside the test file, no empty label cell."""
    problems = [(column, "no text in the", lambda value: value is None) for column in text_columns]
    if split != "test":
        problems.append((LABEL_COLUMN, "an empty", _is_empty))
    for column, problem, is_missing in problems:
        rows = [row for row, value in enumerate(dataset[column]) if is_missing(value)]
        if rows:
            place = row_place(path, len(dataset), rows[0])
            raise DataFileError(
                f"{FILE_FLAGS[split]} {path}, {place}: {problem} {column!r} cell ({len(rows)} such row(s)); fill "
                "it in or drop the row"
            )


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _check_label_kinds(raw: dict[str, Dataset], paths: dict[str, Path]) -> None:
    """Numbers in one file and names in another are two labellings, not one (a CSV column with an empty cell is read
    as text, so each label is judged, not the column's type)."""

    def kind(dataset: Dataset) -> str | None:
        labels = [label for label in dataset[LABEL_COLUMN] if not _is_empty(label) and label != -1]
        if not labels:
            return None  # a test file without labels
        return "numbers" if all(_is_number(label) for label in labels) else "names"

    train_kind = kind(raw["train"])
    for split, dataset in raw.items():
        split_kind = kind(dataset) if LABEL_COLUMN in dataset.column_names else None
        if split_kind is not None and split_kind != train_kind:
            raise DataFileError(
                f"{FILE_FLAGS[split]} {paths[split]} has labels that are {split_kind}, --train_file "
                f"{paths['train']} has {train_kind}: write the labels the same way in every file"
            )


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
    if split == "test" and LABEL_COLUMN in dataset.column_names and all(map(_is_empty, dataset[LABEL_COLUMN])):
        dataset = dataset.remove_columns(LABEL_COLUMN)  # a label column left empty: no labels
    if LABEL_COLUMN not in dataset.column_names:
        if split != "test":
            raise DataFileError(f"{source} has no {LABEL_COLUMN!r} column")
        filler = -1.0 if task.is_regression else -1  # the GLUE test splits' placeholder
        return dataset.add_column(LABEL_COLUMN, [filler] * len(dataset))
    if task.is_regression:
        labels = [-1.0 if _is_empty(label) else float(label) for label in dataset[LABEL_COLUMN]]
        if not all(math.isfinite(label) for label in labels):
            raise DataFileError(f"{source}: every {LABEL_COLUMN!r} must be a finite number")
        return (
            dataset.remove_columns(LABEL_COLUMN)
            .add_column(LABEL_COLUMN, labels)
            .cast_column(LABEL_COLUMN, Value("float32"))
        )
    label_ids = {name: label_id for label_id, name in enumerate(task.label_names)}
    unknown = sorted({str(label) for label in dataset[LABEL_COLUMN] if not _is_empty(label)} - set(label_ids) - {"-1"})
    if unknown:
        raise DataFileError(f"{source} has label(s) {', '.join(unknown[:5])} that --train_file lacks")
    ids = [label_ids.get(str(label), -1) for label in dataset[LABEL_COLUMN]]  # -1 (or empty, test): no label
    dataset = dataset.remove_columns(LABEL_COLUMN).add_column(LABEL_COLUMN, ids)
    return dataset.cast_column(LABEL_COLUMN, ClassLabel(names=list(task.label_names)))
