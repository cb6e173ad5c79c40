"""The runner's checks of the user's input that need no model: each raises `UsageError` naming the flag as typed,
before any work starts (and before any log line)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import constants as hub_constants
from huggingface_hub import is_offline_mode

from .arguments import DataTrainingArguments, ModelArguments, UsageError
from .config import PseudoKDTrainingArguments
from .glue.data import missing_splits
from .glue.tasks import get_task
from .regularizers import get_regularizer, registered_regularizers
from .run_dir import checkpoint_problems
from .run_folder import check_output_dir, checkpoint_files
from .task_data import needed_splits


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
    if task is None:
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
