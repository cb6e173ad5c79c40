"""Load a GLUE task as the Hub's ``DatasetDict``: from the Hub, or offline from an original ``glue_data/`` folder.

Both sources give the same split names, columns and features, so training, evaluation and submission code never
needs to know where the data came from. The offline reader reads raw TSV (tab-split, no quote handling) because a
CSV reader would choke on GLUE's unbalanced quotes and turn the text "NA" or "null" into missing values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, NamedSplit, Value, load_dataset
from datasets.exceptions import DatasetGenerationError

from .tasks import HUB_DATASET, GlueTask, get_task


def load_glue_task(task_name: str, data_dir: str | os.PathLike | None = None) -> DatasetDict:
    """Load every split of a GLUE task with the Hub's schema.

    Without ``data_dir`` the task comes from the Hub (``nyu-mll/glue``). With it, the files are read from
    ``data_dir/<task folder>/`` in the original ``glue_data`` layout, without network; a split whose file is absent
    is left out. Each split is written to the ``datasets`` Arrow cache, so a second load and later ``.map()`` calls
    are served from disk, and an edited file is read again.
    """
    task = get_task(task_name)
    if data_dir is None:
        return load_dataset(HUB_DATASET, task.name)
    folder = Path(data_dir) / task.folder
    if not folder.is_dir():
        raise ValueError(f"GLUE folder {folder} not found: pass the glue_data/ folder that holds {task.folder}/.")
    features = _hub_features(task)
    splits = {
        split: _load_split(task, split, (folder / file_name).resolve(), features)
        for split, file_name in task.files.items()
        if (folder / file_name).is_file()
    }
    if not splits:
        raise ValueError(f"No {task.folder} files in {folder}: expected any of {', '.join(task.files.values())}.")
    return DatasetDict(splits)


def _hub_features(task: GlueTask) -> Features:
    label = Value("float32") if task.is_regression else ClassLabel(names=list(task.label_names))
    text = {column: Value("string") for column in task.text_columns}
    return Features({**text, "label": label, "idx": Value("int32")})


def _load_split(task: GlueTask, split: str, path: Path, features: Features) -> Dataset:
    # The file's size and mtime are part of the cache key (gen_kwargs are hashed), so an edited file is re-read.
    stat = path.stat()
    gen_kwargs = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "task": task, "split": split}
    try:
        return Dataset.from_generator(_read_rows, features=features, gen_kwargs=gen_kwargs, split=NamedSplit(split))
    except DatasetGenerationError as error:
        # `datasets` wraps whatever the generator raises; surface our one-line message about the file instead.
        if isinstance(error.__cause__, ValueError):
            raise error.__cause__ from None
        raise


def _read_rows(path: str, size: int, mtime_ns: int, task: GlueTask, split: str) -> Iterator[dict]:
    """Yield one split's rows in the Hub's schema; ``size`` and ``mtime_ns`` only key the cache."""
    del size, mtime_ns
    layout = task.layout_for(split)
    fields_used = [*layout.text_fields, *(f for f in (layout.label_field, layout.index_field) if f is not None)]
    min_fields = max(f + 1 if f >= 0 else -f for f in fields_used)
    num_fields = layout.num_fields
    row_number = 0
    for line_number, fields in _tsv_lines(path):
        if layout.has_header and line_number == 1:
            num_fields = num_fields or len(fields)
            continue
        where = f"{path}, line {line_number}"
        if num_fields is not None and len(fields) != num_fields:
            raise ValueError(f"{where}: expected {num_fields} tab-separated fields, found {len(fields)}.")
        if len(fields) < min_fields:
            raise ValueError(f"{where}: expected at least {min_fields} tab-separated fields, found {len(fields)}.")
        row = {column: fields[field] for column, field in zip(task.text_columns, layout.text_fields, strict=True)}
        row["label"] = -1 if layout.label_field is None else _parse_label(task, fields[layout.label_field], where)
        row["idx"] = row_number if layout.index_field is None else _parse_index(fields[layout.index_field], where)
        yield row
        row_number += 1


def _tsv_lines(path: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, fields) of a raw TSV file: UTF-8, an optional byte-order mark, no quoting."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_number = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{path}, line {line_number}: expected UTF-8 text ({error.reason}).") from None
    lines = text.split("\n")
    if lines[-1] == "":  # the final newline ends the last row; it does not start an empty one
        lines.pop()
    for line_number, line in enumerate(lines, start=1):
        # A Windows line ending is not part of the last field (the Hub's reader used universal newlines too).
        yield line_number, line.removesuffix("\r").split("\t")


def _parse_label(task: GlueTask, value: str, where: str) -> int | float:
    if task.is_regression:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{where}: expected a float score, found {value!r}.") from None
    if value not in task.file_labels:
        raise ValueError(f"{where}: expected a label in {', '.join(task.file_labels)}, found {value!r}.")
    return task.file_labels.index(value)


def _parse_index(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{where}: expected an integer index, found {value!r}.") from None


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
    import numpy as np  # imported here so this appended section leaves the module's header alone

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
