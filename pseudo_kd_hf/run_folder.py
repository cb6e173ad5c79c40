"""The CLI's output folder: one run at a time, a finished run left alone, the checkpoint to resume from.

What each case does for the user is in docs/crashes.md; the mechanisms (the lock file, what
makes a checkpoint complete, removing checkpoints) are in `run_dir.py`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from .arguments import DataTrainingArguments, ModelArguments
from .config import PseudoKDTrainingArguments
from .errors import UsageError
from .glue.submission import write_atomically
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

SETTINGS_FILE_NAME = "training_settings.json"  # the settings a run trained with: `record_settings`


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
    ours = {LOCK_FILE_NAME, SETTINGS_FILE_NAME, *(folder.name for folder in checkpoints)}
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


# ---- the run's settings -------------------------------------------------------------------------------------------

# Settings that may differ between two runs of one training: paths and machines, how often to log, report and save,
# the data loader's workers, and what is evaluated or predicted (not trained). `--preset` and `--paper_beta_reading`
# are free because the values they fill are recorded themselves.
FREE_SETTINGS = frozenset(
    {
        # where things are, and which machine runs them
        *("output_dir", "cache_dir", "data_dir", "overwrite_output_dir", "resume_from_checkpoint"),
        *("use_cpu", "local_rank", "dataloader_pin_memory", "token", "hub_token", "trust_remote_code"),
        *("ddp_backend", "ddp_timeout", "ddp_find_unused_parameters", "ddp_bucket_cap_mb", "ddp_broadcast_buffers"),
        *("dataloader_num_workers", "dataloader_persistent_workers", "dataloader_prefetch_factor"),
        *("dataloader_multiprocessing_context", "preprocessing_num_workers", "overwrite_cache", "skip_memory_metrics"),
        *("use_fast_tokenizer", "torch_empty_cache_steps"),  # ignored (transformers 5 tokenizers are fast); memory
        # logging, reporting, saving
        *("logging_strategy", "logging_steps", "logging_first_step", "log_on_each_node", "log_level"),
        *("log_level_replica", "disable_tqdm", "report_to", "run_name", "project", "debug"),
        *("trackio_space_id", "trackio_bucket_id", "trackio_static_space_id", "include_num_input_tokens_seen"),
        *("save_strategy", "save_steps", "save_total_limit", "save_on_each_node", "save_only_model"),
        *("enable_jit_checkpoint", "keep_checkpoints", "push_to_hub", "hub_model_id", "hub_strategy"),
        *("hub_private_repo", "hub_always_push", "hub_revision"),
        # evaluation and prediction (the trained model does not depend on them)
        *("do_eval", "do_predict", "validation_file", "test_file", "max_eval_samples", "max_predict_samples"),
        *("per_device_eval_batch_size", "eval_strategy", "eval_steps", "eval_delay", "eval_on_start"),
        *("eval_accumulation_steps", "eval_do_concat_batches", "eval_use_gather_object", "batch_eval_metrics"),
        *("prediction_loss_only", "include_for_metrics", "bf16_full_eval", "fp16_full_eval", "eval_sort_by_length"),
        *("preset", "paper_beta_reading"),
    }
)
# Models and files named by a path: recorded by what they hold, so a moved folder is the same run, another model not.
CONTENT_SETTINGS = ("model_name_or_path", "config_name", "tokenizer_name", "teacher_name_or_path", "teacher_logits")
CONTENT_SETTINGS += ("train_file",)
# What a model folder's model is made of (a run's output folder is one too: its result files are not).
_MODEL_FILE_PATTERNS = ("config.json", "*.safetensors*", "pytorch_model*.bin*", "tokenizer*.json", "vocab.*")
_MODEL_FILE_PATTERNS += ("merges.txt", "special_tokens_map.json", "*.model")


def _content_id(value: str) -> str:
    """A local file or model folder as the SHA-256 of its files (a folder: its top-level model, config and
    tokenizer files, by name); anything else (a Hub id) as typed. Hashing reads the weights: about 1 s per GB."""
    path = Path(value)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted({p for pattern in _MODEL_FILE_PATTERNS for p in path.glob(pattern) if p.is_file()})
    else:
        return value
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name if path.is_dir() else ''}\0".encode())
        with file.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def training_settings(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> dict[str, Any]:
    """Every setting the trained model depends on, by flag name, as JSON values (`FREE_SETTINGS` left out).

    A new flag is recorded unless it is added to `FREE_SETTINGS`: an unknown setting is refused rather than
    silently mixed into a resumed run.
    """
    values = {
        **{f.name: getattr(model_args, f.name) for f in dataclasses.fields(model_args) if f.init},
        **{f.name: getattr(data_args, f.name) for f in dataclasses.fields(data_args) if f.init},
        **training_args.to_dict(),
    }
    settings = {}
    for name, value in values.items():
        if name in FREE_SETTINGS or name.startswith("_"):
            continue
        if name in CONTENT_SETTINGS and value is not None:
            value = _content_id(str(value))
        settings[name] = json.loads(json.dumps(value, default=str))  # as read back from the file
    return settings


def check_settings(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> None:
    """A --do_train run into a folder that recorded other settings is refused (`UsageError`), naming each one.

    The record is `SETTINGS_FILE_NAME`, written by `record_settings` when training starts. A folder without one
    (from before the record existed, or whose run never started training) is not checked: it resumes, or is left
    alone when finished, as before, and a resumed run records its settings then.
    """
    path = Path(training_args.output_dir) / SETTINGS_FILE_NAME
    if not training_args.do_train or data_args.overwrite_output_dir or not path.is_file():
        return
    recorded = json.loads(path.read_text(encoding="utf-8"))
    current = training_settings(model_args, data_args, training_args)
    differing = [
        f"--{name} {_shown(recorded, name)} recorded, {_shown(current, name)} now"
        for name in sorted(recorded.keys() | current.keys())
        if name not in recorded or name not in current or recorded[name] != current[name]
    ]
    if differing:
        listed = "; ".join(differing)
        raise UsageError(
            f"--output_dir {training_args.output_dir} holds a run with other settings ({listed}): pass the "
            "recorded settings, or --overwrite_output_dir to train it again, or choose another --output_dir."
        )


def _shown(settings: dict[str, Any], name: str) -> str:
    return json.dumps(settings[name]) if name in settings else "(no such setting)"


def record_settings(settings: dict[str, Any], output_dir: str | os.PathLike) -> None:
    """Write `settings` to the folder's `SETTINGS_FILE_NAME` atomically (a temporary file renamed over it)."""
    text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
    write_atomically(Path(output_dir) / SETTINGS_FILE_NAME, text.encode())
