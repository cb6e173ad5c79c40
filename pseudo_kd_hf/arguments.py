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
from transformers import HfArgumentParser, TrainingArguments

from .config import PseudoKDTrainingArguments
from .glue.tasks import AX_PREDICTED_BY, TASKS, GlueTask, PaperPreset, get_task

logger = logging.getLogger(__name__)

ALL_TASKS = "all"  # --task_name all: the suite
PRESETS = ("paper",)
# How --preset paper reads Appendix C's beta column (README, "The paper's beta"): as the temperature tau = beta/alpha
# (sections 4.1 and 4.3 search and discuss the same {1.5, 2.5, 4} pool as "beta/alpha", the temperature), or as is.
PAPER_BETA_READINGS = ("temperature", "literal")
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

    _argument_group_name = "Model (run_glue.py's flags)"

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
    teacher_logits: str | None = field(
        default=None,
        metadata={
            "help": "KD from a file of teacher logits written by pseudo-kd-glue-teacher-logits, instead of "
            "--teacher_name_or_path: no teacher model is loaded. A file made for another task, data file, row count "
            "or label order is refused."
        },
    )


@dataclass
class DataTrainingArguments:
    """Which GLUE task (or your own files), where its data is, and how to tokenise it, as in run_glue."""

    _argument_group_name = "Data: a GLUE task or your own files"

    task_name: str | None = field(
        default=None,
        metadata={"help": f"GLUE task: {', '.join(task.name for task in SUITE_TASKS)}, or {ALL_TASKS} for the suite."},
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Your own training data instead of --task_name: a CSV or JSON lines file with a 'label' column "
            "(class names or ids; floats for regression) and sentence1/sentence2 or sentence (else the first one or "
            "two other columns)."
        },
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "Your own dev data (--do_eval), same format and columns as --train_file."}
    )
    test_file: str | None = field(
        default=None, metadata={"help": "Your own test data (--do_predict), same format; 'label' may be absent."}
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
        metadata={"help": "Keep the first N test examples (predict_results_<task>.txt only, no leaderboard file)."},
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
    paper_beta_reading: str = field(
        default="temperature",
        metadata={
            "help": "How --preset paper reads Appendix C's beta column: temperature (tau = beta / alpha, so "
            "beta = alpha * column: the reading sections 4.1 and 4.3 support) or literal (beta = column).",
            "choices": list(PAPER_BETA_READINGS),
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
    heldout_fraction: float | None = field(
        default=None,
        metadata={
            "help": "For selecting settings: hold out this share of the training set (stratified), train on the "
            "rest and evaluate on it instead of the dev set (no --do_predict)."
        },
    )
    heldout_seed: int = field(
        default=0,
        metadata={"help": "Seed of the held-out draw, apart from --seed so every trial of a sweep sees one split."},
    )

    def __post_init__(self) -> None:
        if self.heldout_fraction is not None and not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"--heldout_fraction must be in (0, 1), got {self.heldout_fraction}.")
        own_files = [f"--{name}" for name in DATA_FILE_FIELDS if getattr(self, name) is not None]
        if own_files and self.task_name is not None:
            raise ValueError(f"--task_name {self.task_name} and {own_files[0]}: pass a GLUE task or your own files.")
        if not own_files:
            self.task_name = suite_task_name(self.task_name)
        elif self.preset is not None:
            raise ValueError("--preset paper holds the paper's GLUE settings: drop it with --train_file.")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"--preset {self.preset!r} is unknown: choose one of {', '.join(PRESETS)}.")
        if self.paper_beta_reading not in PAPER_BETA_READINGS:
            raise ValueError(
                f"--paper_beta_reading {self.paper_beta_reading!r} is unknown: choose one of "
                f"{', '.join(PAPER_BETA_READINGS)}."
            )
        for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive number of examples, got {value}.")


DATA_FILE_FIELDS = ("train_file", "validation_file", "test_file")
_TASK_CHOICES = f"one of {', '.join(task.name for task in SUITE_TASKS)}, or {ALL_TASKS} for every task"
_AX_NOTE = f"ax (the diagnostic set) is not trained: the {AX_PREDICTED_BY} model predicts it"


def suite_task_name(name: str | None) -> str:
    """The canonical name of a GLUE task with training data (`ALL_TASKS` for the suite); `UsageError` otherwise."""
    if name is None:
        raise UsageError(f"--task_name is required: {_TASK_CHOICES}; or your own data with --train_file.")
    if name.lower() == ALL_TASKS:
        return ALL_TASKS
    try:
        task = get_task(name)
    except ValueError:
        raise UsageError(f"--task_name {name!r} is not a GLUE task: {_TASK_CHOICES} ({_AX_NOTE}).") from None
    if task not in SUITE_TASKS:
        raise UsageError(
            f"--task_name {task.name} has no training data: {_AX_NOTE}, so its leaderboard file is written by "
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


USAGE = "pseudo-kd-glue [CONFIG.yaml | CONFIG.json] [--flag VALUE ...]"
DESCRIPTION = (
    "Fine-tune, evaluate and predict a GLUE task (or your own CSV / JSON lines files) with a label regulariser, as "
    "Hugging Face's run_glue.py does. Settings come from flags, or from one JSON/YAML file of flag names and values; "
    "flags given after the file override its values (pseudo-kd-glue rte.yaml --seed 3)."
)
KD_TEACHER_FIELDS = ("teacher_name_or_path", "teacher_logits", "kd_online")  # shown under "KD teacher"


def build_parser() -> HfArgumentParser:
    """The `pseudo-kd-glue` parser: run_glue's three dataclasses, with `--help` grouped for a person to read."""
    parser = HfArgumentParser(ARGUMENT_CLASSES, prog="pseudo-kd-glue", usage=USAGE, description=DESCRIPTION)
    _group_help(parser)
    return parser


def _group_help(parser: HfArgumentParser) -> None:
    """Order `--help` as: the method's flags, the KD teacher's, data, model, then `TrainingArguments`' own.

    HfArgumentParser gives a dataclass with `_argument_group_name` its own group (data, model), but puts the
    method's flags, which live in `PseudoKDTrainingArguments`, among 100+ `TrainingArguments` flags. argparse has
    no public way to move an action between groups, so this moves the actions (the parsing is unchanged: only the
    help's sections and their order change).
    """
    inherited = {setting.name for setting in dataclasses.fields(TrainingArguments)}
    method = {setting.name for setting in dataclasses.fields(PseudoKDTrainingArguments)} - inherited
    sections = [
        ("Label regularisation method (this project)", lambda dest: dest in method),
        ("KD teacher (this project)", lambda dest: dest in KD_TEACHER_FIELDS),
        (DataTrainingArguments._argument_group_name, None),
        (ModelArguments._argument_group_name, None),
        ("Training (Hugging Face TrainingArguments)", lambda dest: dest in inherited),
    ]
    groups = {group.title: group for group in parser._action_groups}
    ordered = []
    for title, wanted in sections:
        group = groups.get(title) or parser.add_argument_group(title)
        if wanted is not None:
            for source in parser._action_groups:
                moved = [action for action in source._group_actions if source is not group and wanted(action.dest)]
                source._group_actions[:] = [action for action in source._group_actions if action not in moved]
                group._group_actions.extend(moved)
        ordered.append(group)
    rest = [group for group in parser._action_groups if group not in ordered and group._group_actions]
    parser._action_groups[:] = rest + ordered  # positionals and `-h` first, then the sections


_UNSET = object()  # a field argparse did not set: absent from argv


def read_arguments(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The arguments the user set, by field name: from the command line, from one .json/.yaml/.yml file, or from
    such a file followed by flags that override its values (`pseudo-kd-glue rte.yaml --seed 3`).

    Only what was set is returned (not the defaults), so `--preset paper` can fill in exactly the rest. argv is
    parsed once: every field starts out unset in the namespace, which keeps argparse from writing its defaults.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    field_types = _field_types()
    from_file: dict[str, Any] = {}
    if argv and argv[0].endswith(CONFIG_SUFFIXES):
        from_file, argv = _read_config_file(Path(argv[0]), field_types), argv[1:]
    unset = argparse.Namespace(**dict.fromkeys(field_types, _UNSET))
    namespace = build_parser().parse_args(argv, namespace=unset)  # --help, bad flags end here
    return {**from_file, **{name: value for name, value in vars(namespace).items() if value is not _UNSET}}


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
    if "beta" in values and "pseudo_kd_temperature" in values:
        raise UsageError("--pseudo_kd_temperature sets --beta (beta = alpha * tau): pass one of them, not both.")
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
    """Fill the paper's Appendix C hyper-parameters for `task` into `values`, keeping every value the user set.

    Appendix C's beta column is read as a temperature by default (`pseudo_kd_temperature` = the column, so
    beta = alpha * column); `paper_beta_reading="literal"` fills `beta` with the column instead.
    """
    preset = task.preset
    if preset is None:
        raise UsageError(f"--preset paper has no values for {task.name}: drop --preset.")
    if preset.note:
        logger.warning(f"--preset paper for {task.name}: {preset.note}.")
    filled = {name: getattr(preset, name) for name in PRESET_FIELDS if name not in values and name != "beta"}
    user_set_beta = "beta" in values or "pseudo_kd_temperature" in values
    reading = values.get("paper_beta_reading", "temperature")
    if not user_set_beta:
        filled["pseudo_kd_temperature" if reading == "temperature" else "beta"] = preset.beta
    settings = [
        f"{name}={filled[name]} (paper)" if name in filled else f"{name}={values[name]} (yours)"
        for name in PRESET_FIELDS
        if name != "beta"
    ]
    alpha = filled.get("alpha", values.get("alpha"))
    if user_set_beta:
        settings.append("beta/tau yours")
    elif reading == "temperature":
        settings.append(
            f"beta={alpha * preset.beta:g} (paper's beta column {preset.beta:g} read as the temperature "
            f"tau = beta / alpha; --paper_beta_reading literal for beta={preset.beta:g})"
        )
    else:
        settings.append(f"beta={preset.beta:g}, tau={preset.beta / alpha:g} (paper's beta column read literally)")
    logger.info(f"--preset paper for {task.name}: {', '.join(settings)}.")
    return {**values, **filled}


def task_arguments(
    values: dict[str, Any],
) -> tuple[ModelArguments, DataTrainingArguments, PseudoKDTrainingArguments]:
    """One task's dataclasses: `build_arguments` after `--preset` filled the fields the user did not set.

    Output sent to a file (stderr not a terminal) gets no progress bars unless `--disable_tqdm false` is given: a bar
    nested under another (evaluation during training) writes terminal escape codes, and every update a line break.
    """
    if values.get("preset") == "paper" and values.get("task_name") is not None:
        values = apply_preset(values, get_task(suite_task_name(values.get("task_name"))))
    if "disable_tqdm" not in values and not sys.stderr.isatty():
        values = {**values, "disable_tqdm": True}
    return build_arguments(values)
