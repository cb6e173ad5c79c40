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
    NonFiniteTeacherLogitsError,
    add_teacher_logits,
    check_finite_teacher_logits,
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

    `logits` columns are in the order of `label_names`; `texts_hash` is computed from `row_digests`. Logits that are
    not finite raise `NonFiniteTeacherLogitsError` and write nothing.
    """
    path = Path(path)
    num_rows = len(idx)
    if logits.shape[0] != num_rows or row_digests.shape != (num_rows, ROW_DIGEST_BYTES):
        raise ValueError(
            f"idx ({num_rows} rows), logits {tuple(logits.shape)} and row_digests {tuple(row_digests.shape)} disagree."
        )
    check_finite_teacher_logits(logits, idx.tolist())  # a diverged teacher's logits never reach a file
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
    """Read a file written by `write_teacher_logits_file`; anything else is refused with `TeacherLogitsFileError`.

    Besides the format, the header's keys, the tensors' shapes (one logit column per label name) and the logits'
    finiteness are checked: a hand-edited or damaged file, or one from a diverged teacher, is named here instead of
    failing in training.
    """
    where = f"--teacher_logits {path}"
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            if metadata.get("format") != FILE_FORMAT:
                raise TeacherLogitsFileError(f"{where}: not written by pseudo-kd-glue-teacher-logits.")
            if metadata.get("format_version") != FORMAT_VERSION:
                raise TeacherLogitsFileError(
                    f"{where}: format version {metadata.get('format_version')}, this package reads "
                    f"{FORMAT_VERSION}: write it again with this version's pseudo-kd-glue-teacher-logits."
                )
            # Copied out of the memory map: the file may be replaced or rewritten while the tensors are in use.
            tensors = {name: file.get_tensor(name).clone() for name in ("idx", "logits", "row_digests")}
    except (SafetensorError, OSError) as error:
        raise TeacherLogitsFileError(f"{where} cannot be read: {error}") from None
    fields = _header_fields(metadata, where)
    num_rows = fields.pop("num_rows")
    teacher = TeacherLogitsFile(**fields, **tensors)
    _check_contents(teacher, num_rows, where)
    return teacher


def _header_fields(metadata: dict[str, str], where: str) -> dict[str, object]:
    """The header's fields, each key present, `num_rows` a count and `label_names` a JSON list of names."""
    keys = ("task_name", "split", "num_rows", "texts_hash", "label_names", "teacher_fingerprint")
    missing = [key for key in keys if key not in metadata]
    damaged = "write it again with pseudo-kd-glue-teacher-logits"
    if missing:
        raise TeacherLogitsFileError(f"{where}: the header lacks {', '.join(missing)}; the file is damaged: {damaged}.")
    try:
        label_names = json.loads(metadata["label_names"])
    except json.JSONDecodeError as error:
        raise TeacherLogitsFileError(
            f"{where}: the header's label_names is not JSON ({error.msg}): {damaged}."
        ) from None
    if not isinstance(label_names, list) or not all(isinstance(name, str) for name in label_names):
        raise TeacherLogitsFileError(f"{where}: the header's label_names is not a list of names: {damaged}.")
    if not metadata["num_rows"].isdigit():
        raise TeacherLogitsFileError(f"{where}: the header's num_rows is not a count: {damaged}.")
    fields = {key: metadata[key] for key in ("task_name", "split", "texts_hash", "teacher_fingerprint")}
    return {**fields, "num_rows": int(metadata["num_rows"]), "label_names": tuple(label_names)}


def _check_contents(teacher: TeacherLogitsFile, num_rows: int, where: str) -> None:
    """Shapes that agree with the header and each other, one row per idx, finite logits."""
    damaged = "the file is damaged: write it again with pseudo-kd-glue-teacher-logits"
    rows = len(teacher.idx)
    num_labels = max(len(teacher.label_names), 1)  # () is regression: one score column
    shapes = {
        "idx": (tuple(teacher.idx.shape), (num_rows,)),
        "logits": (tuple(teacher.logits.shape), (num_rows, num_labels)),
        "row_digests": (tuple(teacher.row_digests.shape), (num_rows, ROW_DIGEST_BYTES)),
    }
    for name, (shape, expected) in shapes.items():
        if shape != expected:
            raise TeacherLogitsFileError(
                f"{where}: {name} is shaped {list(shape)}, the header ({num_rows} rows, labels "
                f"{list(teacher.label_names)}) says {list(expected)}; {damaged}."
            )
    if _hash_row_digests(teacher.row_digests) != teacher.texts_hash:
        raise TeacherLogitsFileError(f"{where}: its row digests do not match its texts_hash; {damaged}.")
    if len(set(teacher.idx.tolist())) != rows:
        raise TeacherLogitsFileError(f"{where}: an idx appears in more than one row; {damaged}.")
    try:
        check_finite_teacher_logits(teacher.logits, teacher.idx.tolist())
    except NonFiniteTeacherLogitsError as error:
        raise TeacherLogitsFileError(f"{where}: {error} Write the file again from such a teacher.") from None


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
    where = f"--teacher_logits {logits_file}"
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

    Returns the exit code: 0; 2 after one `error: ...` line on stderr for bad input (a flag, a missing teacher
    folder, a bad data file, a teacher of other labels); 1 after one for a diverged teacher (logits that are NaN or
    infinite: no file is written). A bug or a library failure keeps its traceback.
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
    try:
        logits = _teacher_logits_in_split_order(train, teacher, teacher_tokenizer, args, label_order, fingerprint)
    except NonFiniteTeacherLogitsError as error:  # a diverged teacher: exit 1, as pseudo-kd-glue for a diverged model
        print(f"error: --teacher_name_or_path {args.teacher_name_or_path}: {error} No file written.", file=sys.stderr)
        return 1
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
