"""A KD teacher's logits over a GLUE training split, as a file that travels: `pseudo-kd-glue-teacher-logits`.

Teacher inference runs once, anywhere; students train elsewhere (a GPU machine without the teacher's weights, many
seeds) from the file alone. The file is a `safetensors` file (loading it runs no code) with three tensors,

    idx          int64   [N]            the examples' GLUE `idx`, in the split's order
    logits       float32 [N, L]         the teacher's logits, columns in the order of `label_names`
    row_digests  uint8   [N, 8]         the first 8 bytes of sha256 over each example's texts

and a header naming what the logits belong to: the task, the split, the row count, `texts_hash` (sha256 over the
row digests in order, i.e. over the whole split's texts), the label names and the teacher's fingerprint
(`teacher.fingerprint_teacher`). `attach_teacher_logits` checks a training set against all of it, row by row
through `idx`, so a shuffled training set, or with `allow_subset` a subset (`--max_train_samples`), gets the right
rows, and a file made for another task, data file, row count or label order is refused with one line saying which.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from transformers import (
    AutoTokenizer,
    HfArgumentParser,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .checks import check_local_path
from .errors import UsageError
from .glue.data import GlueDataError, load_glue_task
from .glue.tasks import get_task
from .teacher import (
    TEACHER_LOGITS_COLUMN,
    add_teacher_logits,
    fingerprint_teacher,
    load_teacher_model,
    teacher_label_order,
)

FILE_FORMAT = "pseudo-kd-hf teacher logits"
FORMAT_VERSION = "1"
TRAIN_SPLIT = "train"
ROW_DIGEST_BYTES = 8
_TEXT_SEPARATOR = "\x1f"  # ASCII unit separator: ("a b", "c") and ("a", "b c") hash differently


class TeacherLogitsFileError(ValueError):
    """A teacher logits file that cannot be read, or does not belong to the training set: one line saying why."""


@dataclass(frozen=True)
class TeacherLogitsFile:
    """The content of a teacher logits file (see the module docstring for the layout)."""

    task_name: str
    split: str
    idx: torch.Tensor  # int64 [N]
    logits: torch.Tensor  # float32 [N, num_labels]
    row_digests: torch.Tensor  # uint8 [N, ROW_DIGEST_BYTES]
    texts_hash: str
    label_names: tuple[str, ...]  # () for the regression task STS-B
    teacher_fingerprint: str

    @property
    def num_rows(self) -> int:
        return len(self.idx)


def row_digests(dataset: Dataset, text_columns: Sequence[str]) -> torch.Tensor:
    """Shape: uint8 [len(dataset), ROW_DIGEST_BYTES]: a short sha256 of each example's texts, in dataset order."""
    columns = [list(dataset[column]) for column in text_columns]
    digests = [
        hashlib.sha256(_TEXT_SEPARATOR.join(texts).encode("utf-8")).digest()[:ROW_DIGEST_BYTES]
        for texts in zip(*columns, strict=True)
    ]
    return torch.frombuffer(bytearray(b"".join(digests)), dtype=torch.uint8).reshape(len(digests), ROW_DIGEST_BYTES)


def _hash_row_digests(digests: torch.Tensor) -> str:
    return hashlib.sha256(digests.contiguous().numpy().tobytes()).hexdigest()


def texts_hash(dataset: Dataset, text_columns: Sequence[str]) -> str:
    """sha256 over the training texts in dataset order (through their row digests): names the data a file came from."""
    return _hash_row_digests(row_digests(dataset, text_columns))


def write_teacher_logits_file(
    path: str | os.PathLike,
    *,
    task_name: str,
    split: str,
    idx: torch.Tensor,
    logits: torch.Tensor,
    row_digests: torch.Tensor,
    label_names: Sequence[str],
    teacher_fingerprint: str,
) -> Path:
    """Write the file atomically (a temporary file renamed into place): a crash never leaves a partial file.

    `logits` columns are in the order of `label_names`; `texts_hash` is computed from `row_digests`.
    """
    path = Path(path)
    num_rows = len(idx)
    if logits.shape[0] != num_rows or row_digests.shape != (num_rows, ROW_DIGEST_BYTES):
        raise ValueError(
            f"idx ({num_rows} rows), logits {tuple(logits.shape)} and row_digests {tuple(row_digests.shape)} disagree."
        )
    tensors = {
        "idx": idx.to(torch.int64).contiguous(),
        "logits": logits.to(torch.float32).contiguous(),
        "row_digests": row_digests.to(torch.uint8).contiguous(),
    }
    metadata = {
        "format": FILE_FORMAT,
        "format_version": FORMAT_VERSION,
        "task_name": task_name,
        "split": split,
        "num_rows": str(num_rows),
        "texts_hash": _hash_row_digests(tensors["row_digests"]),
        "label_names": json.dumps(list(label_names)),
        "teacher_fingerprint": teacher_fingerprint,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        save_file(tensors, temporary, metadata=metadata)
        os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp made it private; give it a new file's mode
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_teacher_logits_file(path: str | os.PathLike) -> TeacherLogitsFile:
    """Read a file written by `write_teacher_logits_file`; anything else is refused with `TeacherLogitsFileError`."""
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            if metadata.get("format") != FILE_FORMAT:
                raise TeacherLogitsFileError(
                    f"Teacher logits file {path}: not written by pseudo-kd-glue-teacher-logits."
                )
            if metadata.get("format_version") != FORMAT_VERSION:
                raise TeacherLogitsFileError(
                    f"Teacher logits file {path}: format version {metadata.get('format_version')}, this package "
                    f"reads {FORMAT_VERSION}: write it again with this version's pseudo-kd-glue-teacher-logits."
                )
            # Copied out of the memory map: the file may be replaced or rewritten while the tensors are in use.
            tensors = {name: file.get_tensor(name).clone() for name in ("idx", "logits", "row_digests")}
    except (SafetensorError, OSError) as error:
        raise TeacherLogitsFileError(f"Teacher logits file {path} cannot be read: {error}") from None
    return TeacherLogitsFile(
        task_name=metadata["task_name"],
        split=metadata["split"],
        texts_hash=metadata["texts_hash"],
        label_names=tuple(json.loads(metadata["label_names"])),
        teacher_fingerprint=metadata["teacher_fingerprint"],
        **tensors,
    )


def attach_teacher_logits(
    train_dataset: Dataset,
    logits_file: str | os.PathLike,
    *,
    task_name: str,
    label_names: Sequence[str],
    text_columns: Sequence[str],
    allow_subset: bool = False,
) -> Dataset:
    """Return `train_dataset` with the file's logits as the `teacher_logits` column the trainer reads, matched by `idx`.

    Refuses (`TeacherLogitsFileError`, one line) a file made for another task or split, another label order (the
    student's `label_names`, in its label-id order), another row count (the whole split is expected unless
    `allow_subset`; then every `idx` must be in the file), or another data file (a row whose texts differ).
    The column equals what `teacher.add_teacher_logits` computes in memory with the same teacher.
    """
    teacher = read_teacher_logits_file(logits_file)
    where = f"Teacher logits file {logits_file}"
    if teacher.task_name != task_name or teacher.split != TRAIN_SPLIT:
        raise TeacherLogitsFileError(
            f"{where} was made for task {teacher.task_name} ({teacher.split} split), not {task_name} "
            f"({TRAIN_SPLIT} split): another task."
        )
    if teacher.label_names != tuple(label_names):
        raise TeacherLogitsFileError(
            f"{where} holds logits for labels {list(teacher.label_names)}, the student's are {list(label_names)}: "
            "another label order."
        )
    if "idx" not in train_dataset.column_names:
        raise ValueError("The training set has no idx column: teacher logits are matched to examples by idx.")
    if TEACHER_LOGITS_COLUMN in train_dataset.column_names:
        raise ValueError(f"The training set already has a {TEACHER_LOGITS_COLUMN!r} column.")
    positions = _file_rows(teacher, list(train_dataset["idx"]), where, allow_subset)
    changed = (row_digests(train_dataset, text_columns) != teacher.row_digests[positions]).any(dim=1).nonzero()
    if len(changed):
        first = train_dataset[int(changed[0])]["idx"]
        raise TeacherLogitsFileError(
            f"{where}: the training texts differ from those its logits were computed on ({len(changed)} rows, "
            f"first idx {first}; text hash): another data file."
        )
    return train_dataset.add_column(TEACHER_LOGITS_COLUMN, teacher.logits[positions].tolist())


def _file_rows(teacher: TeacherLogitsFile, idx: Sequence[int], where: str, allow_subset: bool) -> torch.Tensor:
    """Each example's row in the file, found through its idx; refuses another row count."""
    if not allow_subset and len(idx) != teacher.num_rows:
        raise TeacherLogitsFileError(
            f"{where} holds {teacher.num_rows} training rows, the training set has {len(idx)}: another row count."
        )
    row_of = {int(example_idx): row for row, example_idx in enumerate(teacher.idx.tolist())}
    missing = [example_idx for example_idx in idx if example_idx not in row_of]
    if missing:
        raise TeacherLogitsFileError(
            f"{where} holds {teacher.num_rows} training rows, none for idx {missing[0]} ({len(missing)} of the "
            f"training set's {len(idx)} examples): another row count."
        )
    return torch.tensor([row_of[example_idx] for example_idx in idx], dtype=torch.long)


# ---- pseudo-kd-glue-teacher-logits ---------------------------------------------------------------------------------


@dataclass
class TeacherLogitsArguments:
    """Which teacher, which task's training split, and where the file goes."""

    task_name: str = field(metadata={"help": "GLUE task whose training split the teacher scores, e.g. rte."})
    teacher_name_or_path: str = field(metadata={"help": "The teacher: a model fine-tuned on the task (folder)."})
    output_file: str = field(metadata={"help": "The logits file to write (.safetensors)."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "An original glue_data/ folder (CoLA/, SST-2/, ...) read offline; default: the Hub."},
    )
    max_seq_length: int = field(default=128, metadata={"help": "Longer inputs are truncated to this many tokens."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Examples per teacher forward pass."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing --output_file."})

    def __post_init__(self) -> None:
        task = get_task(self.task_name)
        if TRAIN_SPLIT not in task.files:
            raise ValueError(f"--task_name {task.name} has no training split to score.")
        self.task_name = task.name
        if Path(self.output_file).exists() and not self.overwrite:
            raise ValueError(f"--output_file {self.output_file} exists: pass --overwrite to replace it.")


def main(argv: Sequence[str] | None = None) -> int:
    """`pseudo-kd-glue-teacher-logits`: write a teacher's logits over a task's training split to a file.

    Returns the exit code: 0, or 2 after one `error: ...` line on stderr for bad input (a flag, a missing teacher
    folder, a bad data file, a teacher of other labels); a bug or a library failure keeps its traceback.
    """
    try:
        try:
            (args,) = HfArgumentParser(TeacherLogitsArguments).parse_args_into_dataclasses(argv)
        except ValueError as error:  # the arguments' own checks
            raise UsageError(str(error)) from None
        check_local_path("--teacher_name_or_path", args.teacher_name_or_path)
        task = get_task(args.task_name)
        train = load_glue_task(task.name, args.data_dir, splits=TRAIN_SPLIT)[TRAIN_SPLIT]
        teacher = load_teacher_model(args.teacher_name_or_path)
        teacher_tokenizer = AutoTokenizer.from_pretrained(args.teacher_name_or_path)
        task_config = PretrainedConfig(num_labels=task.num_labels)
        if task.label_names:
            task_config.id2label = dict(enumerate(task.label_names))
        try:
            label_order = teacher_label_order(teacher.config, task_config)
        except ValueError as error:
            raise UsageError(f"--teacher_name_or_path {args.teacher_name_or_path}: {error}") from None
    except (UsageError, GlueDataError) as error:  # bad input; anything else keeps its traceback
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    fingerprint = fingerprint_teacher(teacher, teacher_tokenizer)
    logits = _teacher_logits_in_split_order(train, teacher, teacher_tokenizer, args, label_order, fingerprint)
    path = write_teacher_logits_file(
        args.output_file,
        task_name=task.name,
        split=TRAIN_SPLIT,
        idx=torch.tensor(list(train["idx"])),
        logits=logits,
        row_digests=row_digests(train, task.text_columns),
        label_names=task.label_names,
        teacher_fingerprint=fingerprint,
    )
    print(f"Wrote {path}: {task.name} teacher logits for {len(train)} training rows ({path.stat().st_size} bytes).")
    return 0


def _teacher_logits_in_split_order(
    train: Dataset,
    teacher: PreTrainedModel,
    teacher_tokenizer: PreTrainedTokenizerBase,
    args: TeacherLogitsArguments,
    label_order: list[int] | None,
    fingerprint: str,
) -> torch.Tensor:
    """The teacher's logits (task label order) for every training row, computed in batches of similar length."""
    text_columns = get_task(args.task_name).text_columns
    lengths = [
        len(ids)
        for ids in teacher_tokenizer(
            *(list(train[column]) for column in text_columns), truncation=True, max_length=args.max_seq_length
        )["input_ids"]
    ]
    by_length = sorted(range(len(train)), key=lengths.__getitem__)  # little padding: 1.5-2x less work on CPU
    scored = add_teacher_logits(
        train.select(by_length),
        teacher,
        teacher_tokenizer,
        text_columns,
        batch_size=args.per_device_eval_batch_size,
        max_length=args.max_seq_length,
        label_order=label_order,
        teacher_fingerprint=fingerprint,
        device=torch.device("cuda" if torch.cuda.is_available() else "cpu"),
    )
    logits = torch.empty(len(train), teacher.config.num_labels)
    logits[torch.tensor(by_length)] = torch.tensor(scored[TEACHER_LOGITS_COLUMN])
    return logits
