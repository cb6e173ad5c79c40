"""The runner's checks of the user's input that need no model: each raises `UsageError` naming the flag as typed,
before any work starts (and before any log line)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import constants as hub_constants
from huggingface_hub import is_offline_mode
from transformers import AutoConfig, PretrainedConfig

from .arguments import DataTrainingArguments, ModelArguments
from .config import PseudoKDTrainingArguments
from .errors import UsageError
from .glue.data import GlueDataError, missing_splits
from .glue.tasks import GlueTask, get_task
from .parsing import task_arguments
from .regularizers import get_regularizer, registered_regularizers
from .run_dir import checkpoint_problems
from .run_folder import check_output_dir, check_settings, checkpoint_files
from .task_data import load_splits, needed_splits
from .teacher import teacher_label_order


def check_task(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> None:
    """The checks of the user's input that need no model: raise `UsageError` naming the flag, before any work."""
    _check_stages(model_args, training_args)
    if data_args.heldout_fraction is not None and training_args.do_predict:
        raise UsageError(
            "--heldout_fraction trains on part of the training set, to select settings: drop --do_predict, and "
            "predict with the chosen settings in a run without --heldout_fraction."
        )
    task = None if data_args.task_name is None else get_task(data_args.task_name)  # None: your own data files
    if task is None and data_args.dataset_name is None:  # a dataset's splits are checked once it is loaded
        _check_own_files(data_args, training_args)
    needed = [] if task is None else needed_splits(task, data_args, training_args)
    missing = [] if task is None else missing_splits(task.name, data_args.data_dir, needed)
    if missing:
        raise UsageError(
            f"--data_dir {data_args.data_dir}: {task.name} has no {', '.join(missing)} split "
            f"({', '.join(task.files[split] for split in missing)} not in {task.folder}/); add the files, or drop "
            "the --do_train/--do_eval/--do_predict stage that reads them."
        )
    check_output_dir(task, data_args, training_args)
    for flag in ("model_name_or_path", "config_name", "tokenizer_name", "teacher_name_or_path"):
        check_local_path(f"--{flag}", getattr(model_args, flag), model_args.cache_dir)
    resume = training_args.resume_from_checkpoint
    if training_args.do_train and resume is not None:
        problems = checkpoint_problems(resume, checkpoint_files(task, training_args))
        if problems:
            raise UsageError(
                f"--resume_from_checkpoint {resume} is not a complete checkpoint ({'; '.join(problems)}): pass "
                "another one, or drop the flag to resume from the newest complete checkpoint in --output_dir."
            )


def _check_own_files(data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments) -> None:
    """Each stage needs its file: --do_eval a --validation_file (unless it evaluates a held-out part), --do_predict
    a --test_file; each file named must be there."""
    for name in ("train_file", "validation_file", "test_file"):
        path = getattr(data_args, name)
        if path is not None and not Path(path).is_file():
            raise UsageError(f"--{name} {path}: no such file")
    for stage, wanted, name in (
        ("--do_eval", training_args.do_eval, "validation_file"),
        ("--do_predict", training_args.do_predict, "test_file"),
    ):
        held_out = stage == "--do_eval" and data_args.heldout_fraction is not None  # evaluates part of train
        if wanted and getattr(data_args, name) is None and not held_out:
            raise UsageError(f"{stage} with --train_file needs --{name} too (or drop {stage}).")


def _check_stages(model_args: ModelArguments, training_args: PseudoKDTrainingArguments) -> None:
    """Fail before loading anything when the requested work cannot run."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise UsageError("Nothing to do: pass --do_train, --do_eval and/or --do_predict.")
    method = training_args.regularization
    uses_teacher = get_regularizer(method).uses_teacher
    teacher_flags = [
        flag
        for flag, value in (
            ("--teacher_name_or_path", model_args.teacher_name_or_path),
            ("--teacher_logits", model_args.teacher_logits),
        )
        if value is not None
    ]
    if uses_teacher and training_args.do_train and not teacher_flags:
        raise UsageError(
            f"--regularization {method} needs a teacher: pass --teacher_name_or_path (a model fine-tuned on it) or "
            "--teacher_logits (a file written by pseudo-kd-glue-teacher-logits)."
        )
    if model_args.teacher_logits is not None and not Path(model_args.teacher_logits).is_file():
        raise UsageError(f"--teacher_logits {model_args.teacher_logits}: no such file.")
    if len(teacher_flags) > 1:
        raise UsageError("--teacher_logits replaces the teacher model: pass it or --teacher_name_or_path, not both.")
    if not uses_teacher and teacher_flags:
        teacher_methods = " or ".join(name for name, cls in registered_regularizers().items() if cls.uses_teacher)
        raise UsageError(
            f"{teacher_flags[0]} is used only by --regularization {teacher_methods} (got {method}): "
            "drop it or choose a method that runs a teacher."
        )
    if model_args.kd_online and model_args.teacher_name_or_path is None:
        raise UsageError("--kd_online runs a teacher at every step: pass --teacher_name_or_path too.")


def check_local_path(flag: str, name: str | None, cache_dir: str | None = None) -> None:
    """A model name that is meant as a folder must exist; offline, a Hub id must be in the cache.

    `org/name` Hub ids look like relative paths, so a name counts as a folder when it starts with / . or ~, has more
    than one /, or its first part is a folder here (`runs/rte-teacher` with `runs/` present). Otherwise the Hub's
    own message would complain about a repo id or the connection instead.
    """
    if name is None or Path(name).expanduser().exists():
        return
    first = Path(name).parts[0] if Path(name).parts else name
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or ("/" in name and Path(first).is_dir()):
        raise UsageError(f"{flag} {name}: no such folder; pass a saved model's folder or a Hub model id.")
    cached = Path(cache_dir or hub_constants.HF_HUB_CACHE) / f"models--{name.replace('/', '--')}"
    if is_offline_mode() and not cached.is_dir():
        raise UsageError(
            f"{flag} {name}: no such folder, and not in the Hub cache while the Hub is offline (HF_HUB_OFFLINE=1); "
            "pass a saved model's folder, or go online to download it."
        )


# ---- --task_name all: every task checked before the first trains --------------------------------------------------


def check_suite_tasks(
    values: dict[str, Any], tasks: Sequence[GlueTask], pending: Sequence[GlueTask], root: Path
) -> None:
    """`--task_name all`: each task's flags, files and heads checked before the first task trains.

    Every task folder's recorded settings first (`check_settings`: a finished task trained with other settings is
    refused too, or its results would be packaged as this command's). Then per pending task: `check_task`, its splits
    read (every row of every file the stages use, so a broken line stops the suite now; `datasets` caches them for
    the run), the student's classifier head against the task's label count, and a teacher's labels against the
    task's. A task lacking a file is left to the suite, which skips it with a warning. Any problem is one
    `UsageError` naming the task; nothing has trained then.
    """
    for task in tasks:
        model_args, data_args, training_args = task_arguments(
            {**values, "task_name": task.name, "output_dir": str(root / task.name)}
        )
        try:
            check_settings(model_args, data_args, training_args)
        except UsageError as error:
            raise UsageError(f"--task_name all: {task.name}, checked before any task trained: {error}") from None
        if task not in pending:
            continue
        if missing_splits(task.name, data_args.data_dir, needed_splits(task, data_args, training_args)):
            continue
        try:
            check_task(model_args, data_args, training_args)
            load_splits(data_args, training_args, model_args.cache_dir)
            _check_head(model_args, task)
        except (UsageError, GlueDataError) as error:
            raise UsageError(f"--task_name all: {task.name}, checked before any task trained: {error}") from None


def _check_head(model_args: ModelArguments, task: GlueTask) -> None:
    """A fine-tuned student's classifier head (and a teacher's labels) must fit the task, read from the configs only:
    loading each task's model here would cost as much as the suite's start-up."""
    hub_kwargs = {"cache_dir": model_args.cache_dir, "token": model_args.token}
    hub_kwargs["trust_remote_code"] = model_args.trust_remote_code
    name = model_args.model_name_or_path
    student = AutoConfig.from_pretrained(name, revision=model_args.model_revision, **hub_kwargs)
    has_head = any(kind.endswith("ForSequenceClassification") for kind in student.architectures or [])
    if has_head and student.num_labels != task.num_labels and not model_args.ignore_mismatched_sizes:
        raise UsageError(
            f"--model_name_or_path {name} has a classifier head for {student.num_labels} "
            f"labels, {task.name} has {task.num_labels}: pass --ignore_mismatched_sizes to start a new classifier head."
        )
    if model_args.teacher_name_or_path is not None:
        task_config = PretrainedConfig(num_labels=task.num_labels)
        if task.label_names:
            task_config.id2label = dict(enumerate(task.label_names))
        try:
            teacher_label_order(AutoConfig.from_pretrained(model_args.teacher_name_or_path, **hub_kwargs), task_config)
        except ValueError as error:
            raise UsageError(f"--teacher_name_or_path {model_args.teacher_name_or_path}: {error}") from None
