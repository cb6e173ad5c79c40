"""The runner's command line: the argument dataclasses, reading them once from argv or a file, and `--preset`.

As in run_glue.py, `HfArgumentParser` turns three dataclasses into flags: `ModelArguments`, `DataTrainingArguments`
and `PseudoKDTrainingArguments`. The command line is parsed once; `read_arguments` returns only the values the user
set, so `apply_preset` can fill the paper's settings into exactly the others, and `build_arguments` then builds
(and checks) the dataclasses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from .config import PseudoKDTrainingArguments
from .glue.tasks import AX_PREDICTED_BY, TASKS, GlueTask, PaperPreset, get_task

logger = logging.getLogger(__name__)

ALL_TASKS = "all"  # --task_name all: the suite
PRESETS = ("paper",)
PRESET_FIELDS = tuple(f.name for f in dataclasses.fields(PaperPreset) if f.name != "note")
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
SUITE_TASKS = tuple(task for task in TASKS.values() if "train" in task.files)  # AX comes with the MNLI run


class UsageError(Exception):
    """Bad user input, found before any training: one `error: ...` line on stderr naming the flag, exit code 2.

    Raised only where input is validated; errors from datasets, tokenizers, torch or the Trainer keep their type
    (and their traceback).
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass
class ModelArguments:
    """Which student (and teacher) to fine-tune, as in run_glue."""

    model_name_or_path: str = field(
        default="distilroberta-base",
        metadata={"help": "Student model: a Hub id or a local folder (the paper fine-tunes DistilRoBERTa)."},
    )
    config_name: str | None = field(default=None, metadata={"help": "Config name or path, if not the model's."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer name or path, if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store models downloaded from the Hub."})
    model_revision: str = field(default="main", metadata={"help": "Model version: a branch, tag or commit id."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models (default: your login)."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow models whose code lives on the Hub (runs that code locally)."}
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={"help": "Replace a checkpoint's classifier head trained for another number of labels."},
    )
    teacher_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "KD teacher fine-tuned on the task (e.g. RoBERTa-Large), for --regularization kd. Its logits over "
            "the training set are computed once with its own tokenizer (batch: --per_device_eval_batch_size) and "
            "cached beside the dataset cache."
        },
    )
    kd_online: bool = field(
        default=False,
        metadata={"help": "Run the teacher at every training step instead of caching its logits (same tokenizer)."},
    )


@dataclass
class DataTrainingArguments:
    """Which GLUE task, where its data is, and how to tokenise it, as in run_glue."""

    task_name: str | None = field(
        default=None,
        metadata={"help": f"GLUE task: {', '.join(task.name for task in SUITE_TASKS)}, or {ALL_TASKS} for the suite."},
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "An original glue_data/ folder (CoLA/, SST-2/, ...) read offline; default: the Hub."},
    )
    max_seq_length: int = field(default=128, metadata={"help": "Longer inputs are truncated to this many tokens."})
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "Pad every input to max_seq_length (default: pad each batch dynamically)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep the first N examples of each dev set."})
    max_predict_samples: int | None = field(
        default=None,
        metadata={"help": "Keep the first N test examples (debugging only: no leaderboard file is written then)."},
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Tokenise again instead of reading the cache."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})
    preset: str | None = field(
        default=None,
        metadata={
            "help": "paper: alpha, beta, batch size and learning rate of the paper's Appendix C for the task "
            "(flags you pass win).",
            "choices": list(PRESETS),
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into a non-empty --output_dir from scratch instead of refusing (or resuming)."},
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "Keep the checkpoint-* folders (weights, optimizer and scheduler state) of a finished run; by "
            "default they are removed once its final model and results are saved."
        },
    )

    def __post_init__(self) -> None:
        self.task_name = suite_task_name(self.task_name)
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"--preset {self.preset!r} is unknown: choose one of {', '.join(PRESETS)}.")
        for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive number of examples, got {value}.")


def suite_task_name(name: str | None) -> str:
    """The canonical name of a GLUE task with training data (`ALL_TASKS` for the suite); `ValueError` otherwise."""
    if name is None:
        raise UsageError(f"--task_name is required: one of {', '.join(t.name for t in SUITE_TASKS)}, {ALL_TASKS}.")
    if name.lower() == ALL_TASKS:
        return ALL_TASKS
    try:
        task = get_task(name)
    except ValueError as error:
        raise UsageError(f"--task_name {name}: {error}") from None
    if task not in SUITE_TASKS:
        raise UsageError(
            f"--task_name {task.name} has no training data: its leaderboard file is written by "
            f"--task_name {AX_PREDICTED_BY} --do_predict."
        )
    return task.name


ARGUMENT_CLASSES = (ModelArguments, DataTrainingArguments, PseudoKDTrainingArguments)


def _field_types() -> dict[str, Any]:
    """Every flag's field name and value type (`float` for `float | None`), from the argument dataclasses."""
    types = {}
    for cls in ARGUMENT_CLASSES:
        hints = typing.get_type_hints(cls)
        for setting in dataclasses.fields(cls):
            if setting.init:
                options = [option for option in typing.get_args(hints[setting.name]) if option is not type(None)]
                types[setting.name] = options[0] if len(options) == 1 else hints[setting.name]
    return types


_UNSET = object()  # a field argparse did not set: absent from argv


def read_arguments(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The arguments the user set, by field name: from the command line, or from one .json/.yaml/.yml file.

    Only what was set is returned (not the defaults), so `--preset paper` can fill in exactly the rest. argv is
    parsed once: every field starts out unset in the namespace, which keeps argparse from writing its defaults.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    field_types = _field_types()
    if len(argv) == 1 and argv[0].endswith(CONFIG_SUFFIXES):
        return _read_config_file(Path(argv[0]), field_types)
    unset = argparse.Namespace(**dict.fromkeys(field_types, _UNSET))
    namespace = HfArgumentParser(ARGUMENT_CLASSES).parse_args(argv, namespace=unset)  # --help, bad flags end here
    return {name: value for name, value in vars(namespace).items() if value is not _UNSET}


def _read_config_file(path: Path, field_types: dict[str, Any]) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"Config file {path} not found: pass an existing .json, .yaml or .yml file.")
    try:
        text = path.read_text(encoding="utf-8")
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise UsageError(f"Config file {path} is not valid {path.suffix[1:].upper()}: {error}") from None
    if not isinstance(values, dict):
        raise UsageError(f"Config file {path} must hold a mapping of argument names to values.")
    unknown = sorted(set(values) - set(field_types))
    if unknown:
        raise UsageError(f"Config file {path}: unknown arguments {', '.join(unknown)}; see --help for the names.")
    return {name: _convert_number(path, name, value, field_types[name]) for name, value in values.items()}


def _convert_number(path: Path, name: str, value: Any, expected: Any) -> Any:
    """Convert a number written as text, as the command line would: YAML reads `2e-5` as a string.

    A boolean must be one (`true`/`false`): the string "false" would otherwise read as True.
    """
    if expected is bool and not isinstance(value, bool | None):
        raise UsageError(f"Config file {path}: {name} must be true or false (no quotes), got {value!r}.")
    if not isinstance(value, str) or expected not in (int, float):
        return value
    try:
        return expected(value)
    except ValueError:
        raise UsageError(f"Config file {path}: {name} must be a number, got {value!r}.") from None


def build_arguments(
    values: dict[str, Any],
) -> tuple[ModelArguments, DataTrainingArguments, PseudoKDTrainingArguments]:
    """The three argument dataclasses from the set values; their `__post_init__` checks every value.

    The one place where the dataclasses are built: a `ValueError` from their checks is bad input, reported as a
    `UsageError` with the fields it names written as flags (`alpha` -> `--alpha`).
    """
    try:
        return HfArgumentParser(ARGUMENT_CLASSES).parse_dict(values)
    except ValueError as error:
        raise UsageError(flags_named(str(error))) from None


def flags_named(message: str) -> str:
    """Write the argument fields a dataclass check names as the flags a user types: `alpha=0.5` -> `--alpha 0.5`.

    A field is renamed where it opens the message, is followed by `=`, or (names with an underscore) anywhere; a
    plain word such as "seed" or "temperature" inside a sentence is left alone.
    """
    for name in _field_types():
        message = re.sub(rf"(?<![\w-]){name}=", f"--{name} ", message)
        message = re.sub(rf"(?<![\w-]){name}\b" if "_" in name else rf"^{name}\b", f"--{name}", message)
    return message


def apply_preset(values: dict[str, Any], task: GlueTask) -> dict[str, Any]:
    """Fill the paper's Appendix C hyper-parameters for `task` into `values`, keeping every value the user set."""
    preset = task.preset
    if preset is None:
        raise UsageError(f"--preset paper has no values for {task.name}: drop --preset.")
    if preset.note:
        logger.warning(f"--preset paper for {task.name}: {preset.note}.")
    filled = {name: getattr(preset, name) for name in PRESET_FIELDS if name not in values}
    settings = ", ".join(
        f"{name}={filled[name]} (paper)" if name in filled else f"{name}={values[name]} (yours)"
        for name in PRESET_FIELDS
    )
    logger.info(f"--preset paper for {task.name}: {settings}.")
    return {**values, **filled}


def task_arguments(
    values: dict[str, Any],
) -> tuple[ModelArguments, DataTrainingArguments, PseudoKDTrainingArguments]:
    """One task's dataclasses: `build_arguments` after `--preset` filled the fields the user did not set."""
    if values.get("preset") == "paper":
        values = apply_preset(values, get_task(suite_task_name(values.get("task_name"))))
    return build_arguments(values)
