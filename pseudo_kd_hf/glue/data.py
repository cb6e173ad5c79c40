"""Load a GLUE task as the Hub's ``DatasetDict``: from the Hub, or offline from an original ``glue_data/`` folder.

Both sources give the same split names, columns and features, so training, evaluation and submission code never
needs to know where the data came from. The offline reader reads raw TSV (tab-split, no quote handling) because a
CSV reader would choke on GLUE's unbalanced quotes and turn the text "NA" or "null" into missing values.

Every problem with the files raises :class:`GlueDataError`, one line naming the file (and line) and what to do.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    DownloadMode,
    Features,
    NamedSplit,
    SplitDict,
    Value,
    load_dataset,
)
from datasets.exceptions import DatasetGenerationError
from datasets.packaged_modules.generator.generator import Generator

from .tasks import HUB_DATASET, STSB_RANGE, FileLayout, GlueTask, get_task

logger = logging.getLogger(__name__)


class GlueDataError(ValueError):
    """A GLUE data folder or file that cannot be read as the task's layout: bad input, not a bug."""


class ShortCacheError(ValueError):
    """A cache file that reads, but with fewer rows than were written (cut at a record batch boundary)."""


# What pyarrow raises for a cut-short or overwritten Arrow file: ArrowInvalid, or OSError ("Expected to read ...").
DAMAGED_CACHE_ERRORS = (OSError, pa.ArrowException, ShortCacheError)


def rebuilt_if_damaged(
    build: Callable[[bool], Any], expected_rows: Callable[[Any], int | dict[str, int] | None], what: str
) -> Any:
    """`build(False)` (from the `datasets` cache where it can), or `build(True)` (rebuilt) when that cache is damaged.

    `datasets` trusts its Arrow cache files: a truncated one raises a pyarrow error on every later load, and one cut
    at a record batch boundary loads short, silently. Here either is rebuilt, with one warning naming the cache;
    a rebuild that fails keeps its traceback. `expected_rows(dataset)`: the row count it must have (None: unknown),
    for a `DatasetDict` the count of each split, as its `num_rows` gives them.
    """
    try:
        dataset = build(False)
        expected = expected_rows(dataset)
        if expected is not None and dataset.num_rows != expected:
            raise ShortCacheError(f"{dataset.num_rows} rows of {expected}")
        return dataset
    except DAMAGED_CACHE_ERRORS as error:
        dataset = build(True)
        files = dataset.cache_files
        files = next(iter(files.values()), []) if isinstance(files, dict) else files  # a DatasetDict's, by split
        where = os.path.dirname(files[0]["filename"]) if files else "memory"
        logger.warning(f"The {what} cache in {where} was damaged ({' '.join(str(error).split())}); rebuilt it.")
        return dataset


def split_rows(splits: SplitDict | None, split: str) -> int | None:
    """The row count `datasets` recorded for a split when it wrote the cache (None where it recorded none)."""
    return splits[split].num_examples if splits and split in splits else None


def load_glue_task(
    task_name: str,
    data_dir: str | os.PathLike | None = None,
    splits: Iterable[str] | None = None,
    overwrite_cache: bool = False,
) -> DatasetDict:
    """Load the splits of a GLUE task with the Hub's schema.

    Without ``data_dir`` the task comes from the Hub (``nyu-mll/glue``). With it, the files are read from
    ``data_dir/<task folder>/`` in the original ``glue_data`` layout, without network. ``splits`` (Hub split names)
    chooses what to load: each must be there, and no other file is read, so a broken file the run does not use stops
    nothing. Without ``splits`` every split whose file is present is loaded. Each split is written to the
    ``datasets`` Arrow cache keyed on the file's content, so a second load and later ``.map()`` calls are served
    from disk, and an edited file is read again. A damaged cache entry is rebuilt (`rebuilt_if_damaged`);
    ``overwrite_cache`` rebuilds every split's entry.
    """
    task = get_task(task_name)
    wanted = _check_split_names(task, splits)
    if data_dir is None:
        mode = DownloadMode.FORCE_REDOWNLOAD if overwrite_cache else None
        hub = load_dataset(HUB_DATASET, task.name, download_mode=mode)
        return hub if wanted is None else DatasetDict({split: hub[split] for split in wanted})
    folder = Path(data_dir) / task.folder
    if not folder.is_dir():
        raise GlueDataError(f"GLUE folder {folder} not found: pass the glue_data/ folder that holds {task.folder}/.")
    if wanted is None:
        wanted = [split for split, file_name in task.files.items() if (folder / file_name).is_file()]
        if not wanted:
            raise GlueDataError(
                f"No {task.folder} files in {folder}: expected any of {', '.join(task.files.values())}."
            )
    missing = missing_splits(task.name, data_dir, wanted)
    if missing:
        absent = ", ".join(task.files[split] for split in missing)
        raise GlueDataError(
            f"{task.name} has no {', '.join(missing)} split: {absent} not found in {folder}; add the file, or run "
            "without the stage that reads it."
        )
    features = _hub_features(task)
    return DatasetDict(
        {
            split: _load_split(task, split, (folder / task.files[split]).resolve(), features, overwrite_cache)
            for split in wanted
        }
    )


def required_splits(task_name: str, *, do_train: bool, do_eval: bool, do_predict: bool) -> list[str]:
    """The Hub splits a run's stages read: train; every dev set (MNLI has two); every test set."""
    task = get_task(task_name)
    wanted = {"train": do_train, **dict.fromkeys(task.validation_splits, do_eval)}
    wanted.update(dict.fromkeys(task.test_splits, do_predict))
    return [split for split in task.files if wanted.get(split)]


def missing_splits(task_name: str, data_dir: str | os.PathLike | None, splits: Iterable[str]) -> list[str]:
    """Which of ``splits`` have no file in ``data_dir/<task folder>/`` (all of them when the folder is absent).

    The Hub has every split, so without ``data_dir`` nothing is missing. A run (or a suite) calls this before
    loading to pass over, or refuse, a task it cannot run.
    """
    task = get_task(task_name)
    wanted = _check_split_names(task, splits) or []
    if data_dir is None:
        return []
    folder = Path(data_dir) / task.folder
    return [split for split in wanted if not (folder / task.files[split]).is_file()]


def _check_split_names(task: GlueTask, splits: Iterable[str] | None) -> list[str] | None:
    if splits is None:
        return None
    splits = list(dict.fromkeys([splits] if isinstance(splits, str) else splits))
    unknown = [split for split in splits if split not in task.files]
    if unknown:
        raise ValueError(f"{task.name} has no split {', '.join(unknown)}: choose from {', '.join(task.files)}.")
    return splits


def _hub_features(task: GlueTask) -> Features:
    label = Value("float32") if task.is_regression else ClassLabel(names=list(task.label_names))
    text = {column: Value("string") for column in task.text_columns}
    return Features({**text, "label": label, "idx": Value("int32")})


def _load_split(task: GlueTask, split: str, path: Path, features: Features, overwrite_cache: bool) -> Dataset:
    # gen_kwargs are hashed into the cache key: the content's digest makes an edited file a new dataset, whatever
    # its size and modification time. The builder `Dataset.from_generator` makes, built here to pass download_mode.
    gen_kwargs = {"path": str(path), "sha256": _sha256(path), "task": task, "split": split}
    builder = Generator(features=features, generator=_read_rows, gen_kwargs=gen_kwargs, split=NamedSplit(split))

    def build(rebuild: bool) -> Dataset:
        builder.download_and_prepare(download_mode=DownloadMode.FORCE_REDOWNLOAD if rebuild else None)
        return builder.as_dataset(split=split)

    try:
        if overwrite_cache:
            return build(True)
        return rebuilt_if_damaged(build, lambda _: split_rows(builder.info.splits, split), f"raw data ({path})")
    except DatasetGenerationError as error:
        # `datasets` wraps whatever the generator raises; surface our one-line message about the file instead.
        if isinstance(error.__cause__, GlueDataError):
            raise error.__cause__ from None
        raise


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _read_rows(path: str, sha256: str, task: GlueTask, split: str) -> Iterator[dict]:
    """Yield one split's rows in the Hub's schema; ``sha256`` is the content the cache entry is keyed on."""
    layout = task.layout_for(split)
    lines = _text_lines(path, sha256)
    if not lines:
        raise GlueDataError(
            f"{path}: the file is empty; restore the {task.folder} {split} file from the GLUE download."
        )
    num_fields = layout.num_fields
    first_row = 0
    if layout.has_header:
        header = _fields(lines[0])
        _check_header(path, task, layout, header)
        num_fields = num_fields or len(header)
        first_row = 1
        if len(lines) == 1:
            raise GlueDataError(f"{path}: only a header line, no examples; restore the file from the GLUE download.")
    min_fields = _min_fields(layout)
    numbered_in_file_order = split in task.submission_keys  # a leaderboard test file: row i is example i
    for row_number, line in enumerate(lines[first_row:]):
        fields = _fields(line)
        where = f"{path}, line {first_row + row_number + 1}"
        if num_fields is not None and len(fields) != num_fields:
            if (
                layout.num_fields is None
                and len(fields) >= min_fields
                and _all_rows_have(lines[first_row:], len(fields))
            ):
                raise GlueDataError(
                    f"{path}, line 1: the header has {num_fields} tab-separated fields but every row has "
                    f"{len(fields)}; fix the header line."
                )
            raise GlueDataError(f"{where}: expected {num_fields} tab-separated fields, found {len(fields)}.")
        if len(fields) < min_fields:
            raise GlueDataError(f"{where}: expected at least {min_fields} tab-separated fields, found {len(fields)}.")
        row = {column: fields[field] for column, field in zip(task.text_columns, layout.text_fields, strict=True)}
        row["label"] = -1 if layout.label_field is None else _parse_label(task, fields[layout.label_field], where)
        row["idx"] = row_number if layout.index_field is None else _parse_index(fields[layout.index_field], where)
        if numbered_in_file_order and row["idx"] != row_number:
            raise GlueDataError(
                f"{where}: index {row['idx']}, expected {row_number}: the leaderboard file numbers the test rows "
                "0..n-1 in file order, so this file's predictions would be misnumbered; restore the file from the "
                "GLUE download."
            )
        yield row


def _min_fields(layout: FileLayout) -> int:
    """How many fields a row needs for every position the layout reads (negative positions count from the end)."""
    used = [*layout.text_fields, *(f for f in (layout.label_field, layout.index_field) if f is not None)]
    return max(f + 1 if f >= 0 else -f for f in used)


def _check_header(path: str, task: GlueTask, layout: FileLayout, header: list[str]) -> None:
    """Line 1 of a file with a header must be one: the layout's field count, and no index or label where data has one.

    A file that lost its header would otherwise be read one example short, its first example taken for the header.
    """
    where = f"{path}, line 1"
    expected = layout.num_fields or _min_fields(layout)
    if len(header) < expected or (layout.num_fields is not None and len(header) != layout.num_fields):
        count = f"{expected}" if layout.num_fields is not None else f"at least {expected}"
        raise GlueDataError(
            f"{where}: the header has {len(header)} tab-separated fields, expected {count} for the {task.folder} "
            "layout; restore the file's header line."
        )
    looks_like_data = (layout.index_field is not None and _is_integer(header[layout.index_field])) or (
        layout.label_field is not None and _is_label(task, header[layout.label_field])
    )
    if looks_like_data:
        raise GlueDataError(
            f"{where}: expected the header line, found an example ({header[layout.text_fields[0]][:40]!r}...); "
            "the file has lost its header: restore it from the GLUE download."
        )


def _all_rows_have(lines: list[str], num_fields: int) -> bool:
    return all(line.count("\t") + 1 == num_fields for line in lines)


def _text_lines(path: str, sha256: str) -> list[str]:
    """The lines of a raw TSV file: UTF-8, an optional byte-order mark, no quoting, no final empty line."""
    data = Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:  # it changed since the cache key was computed
        raise GlueDataError(f"{path}: the file changed while it was being loaded; load it again.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_number = data.count(b"\n", 0, error.start) + 1
        raise GlueDataError(f"{path}, line {line_number}: expected UTF-8 text ({error.reason}).") from None
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":  # the final newline ends the last row; it does not start an empty one
        lines.pop()
    return lines


def _fields(line: str) -> list[str]:
    # A Windows line ending is not part of the last field (the Hub's reader used universal newlines too).
    return line.removesuffix("\r").split("\t")


def _is_integer(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def _is_label(task: GlueTask, value: str) -> bool:
    try:
        _parse_label(task, value, "")
    except GlueDataError:
        return False
    return True


def _parse_label(task: GlueTask, value: str, where: str) -> int | float:
    if task.is_regression:
        low, high = STSB_RANGE
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not low <= score <= high:  # also refuses nan
            raise GlueDataError(f"{where}: expected a float score in [{low:g}, {high:g}], found {value!r}.")
        return score
    if value not in task.file_labels:
        raise GlueDataError(f"{where}: expected a label in {', '.join(task.file_labels)}, found {value!r}.")
    return task.file_labels.index(value)


def _parse_index(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise GlueDataError(f"{where}: expected an integer index, found {value!r}.") from None


# ---- held-out selection split -------------------------------------------------------------------------------------

HELDOUT_SPLIT = "heldout"  # the split name `--heldout_fraction` evaluates on instead of the dev set(s)
REGRESSION_BINS = 5  # STS-B scores (0 to 5) are stratified by their integer part, 4 <= score <= 5 in the last bin


def heldout_split(dataset: Dataset, fraction: float, seed: int, is_regression: bool) -> tuple[Dataset, Dataset]:
    """Carve a stratified, seeded held-out part out of a training split: ``(rest, heldout)``, both in file order.

    Hyper-parameters chosen on the dev set and then reported on it are optimistic; choosing them on a part of the
    training data keeps the dev set for the report. Every stratum (a class, or for regression one of
    ``REGRESSION_BINS`` score bins) gives its share: ``round(fraction * len(dataset))`` rows in all (at least one,
    and at least one left to train on), spread over the strata by largest remainder, each stratum's rows drawn with
    ``numpy.random.default_rng(seed)``. The split depends only on the data, ``fraction`` and ``seed``: the runner
    passes ``--heldout_seed`` (not the training ``--seed``), so every trial of a sweep, whatever its training seed,
    is scored on the same examples.

    Args:
        dataset: the training split, with a ``label`` column (class ids, or float scores when ``is_regression``).
        fraction: share of the rows held out, in (0, 1).
        seed: seed of the draw.
        is_regression: stratify by score bins instead of by class.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--heldout_fraction must be in (0, 1), got {fraction}.")
    if len(dataset) < 2:
        raise ValueError(f"--heldout_fraction needs at least 2 training examples, found {len(dataset)}.")
    labels = np.asarray(dataset["label"])
    strata = np.clip(np.floor(labels), 0, REGRESSION_BINS - 1).astype(int) if is_regression else labels
    total = min(max(round(fraction * len(dataset)), 1), len(dataset) - 1)
    groups = [np.flatnonzero(strata == stratum) for stratum in np.unique(strata)]
    shares = np.array([fraction * len(group) for group in groups])
    counts = np.floor(shares).astype(int)
    by_remainder = np.argsort(-(shares - counts), kind="stable")
    counts[by_remainder[: max(total - counts.sum(), 0)]] += 1
    rng = np.random.default_rng(seed)
    heldout = np.concatenate([rng.permutation(group)[:count] for group, count in zip(groups, counts, strict=True)])
    is_heldout = np.zeros(len(dataset), dtype=bool)
    is_heldout[heldout] = True
    return dataset.select(np.flatnonzero(~is_heldout)), dataset.select(np.flatnonzero(is_heldout))
