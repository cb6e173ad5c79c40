"""Reading the runner's command line: argv or one config file, once; `--preset`; then the argument dataclasses.

`read_arguments` returns only the values the user set, so `apply_preset` can fill the paper's settings into exactly
the others, and `build_arguments` then builds (and checks) the dataclasses of `pseudo_kd_hf.arguments`.
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
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .arguments import ARGUMENT_CLASSES, DataTrainingArguments, ModelArguments, suite_task_name
from .config import PseudoKDTrainingArguments, beta_from_temperature
from .errors import UsageError
from .glue.tasks import GlueTask, PaperPreset, get_task
from .regularizers import import_regularizer_module

logger = logging.getLogger(__name__)

CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
PRESET_FIELDS = tuple(f.name for f in dataclasses.fields(PaperPreset) if f.name != "note")


def _field_types() -> dict[str, tuple[Any, bool]]:
    """Every flag's field name, value type (`float` for `float | None`) and whether it takes None, from the argument
    dataclasses."""
    types = {}
    for cls in ARGUMENT_CLASSES:
        hints = typing.get_type_hints(cls)
        for setting in dataclasses.fields(cls):
            if setting.init:
                options = typing.get_args(hints[setting.name])
                kinds = [option for option in options if option is not type(None)]
                kind = kinds[0] if len(kinds) == 1 else hints[setting.name]
                types[setting.name] = (kind, type(None) in options)
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


def _read_config_file(path: Path, field_types: dict[str, tuple[Any, bool]]) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"Config file {path} not found: pass an existing .json, .yaml or .yml file.")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            values = json.loads(text, object_pairs_hook=_refuse_duplicate_pairs)
        else:
            values = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKeyError as error:
        raise UsageError(f"Config file {path}: {error.key} is given twice{error.where}; keep one.") from None
    except (ValueError, yaml.YAMLError) as error:
        raise UsageError(f"Config file {path} is not valid {path.suffix[1:].upper()}: {error}") from None
    if not isinstance(values, dict):
        raise UsageError(f"Config file {path} must hold a mapping of argument names to values.")
    unknown = sorted(str(name) for name in set(values) - set(field_types))
    if unknown:
        raise UsageError(f"Config file {path}: unknown arguments {', '.join(unknown)}; see --help for the names.")
    return {name: _config_value(path, name, value, *field_types[name]) for name, value in values.items()}


class _DuplicateKeyError(ValueError):
    def __init__(self, key: Any, where: str = "") -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.where = key, where


def _refuse_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`' object hook: a key given twice is refused (JSON itself would keep the last value)."""
    values: dict[str, Any] = {}
    for key, value in pairs:
        if key in values:
            raise _DuplicateKeyError(key)
        values[key] = value
    return values


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping key given twice (PyYAML keeps the last value, unlike YAML 1.2)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKeyError(key, f" (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep)


def _config_value(path: Path, name: str, value: Any, expected: Any, optional: bool) -> Any:
    """A config file's value as the command line would give it, or one `UsageError` naming the key.

    Numbers written as text are converted (YAML reads `2e-5` as a string); a boolean must be one (the string
    "false" would read as True); a text setting must be text (`output_dir: 2024` is a number). A float's finiteness
    is checked with the other settings, when the arguments are built.
    """
    where = f"Config file {path}: {name}"
    if value is None:
        if optional:
            return None
        raise UsageError(f"{where} needs a value, got null.")
    if expected not in (bool, int, float, str):
        return value
    if isinstance(value, list | dict):
        raise UsageError(f"{where} takes one value, not a {type(value).__name__}: got {value!r}.")
    if expected is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{where} must be true or false (no quotes), got {value!r}.")
        return value
    if expected is str:
        if not isinstance(value, str):
            raise UsageError(f"{where} must be text, got {value!r}: put it in quotes ('{value}').")
        return value
    if isinstance(value, bool) or (expected is int and isinstance(value, float)):
        raise UsageError(f"{where} must be {'a whole number' if expected is int else 'a number'}, got {value!r}.")
    try:
        return expected(value)
    except ValueError:
        kind = "a whole number" if expected is int else "a number"
        raise UsageError(f"{where} must be {kind}, got {value!r}.") from None


def build_arguments(
    values: dict[str, Any],
) -> tuple[ModelArguments, DataTrainingArguments, PseudoKDTrainingArguments]:
    """The three argument dataclasses from the set values; their `__post_init__` checks every value.

    The one place where the dataclasses are built, after `--regularizer_module` is imported (so that its methods can
    be chosen): a `ValueError` from their checks is bad input, reported as a `UsageError` with the fields it names
    written as flags (`alpha` -> `--alpha`).
    """
    if "beta" in values and "pseudo_kd_temperature" in values:
        raise UsageError("--pseudo_kd_temperature sets --beta (beta = alpha * tau): pass one of them, not both.")
    try:
        if values.get("regularizer_module") is not None:  # registers the user's methods before they are named
            import_regularizer_module(values["regularizer_module"])
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
        beta = beta_from_temperature(alpha, preset.beta)
        settings.append(
            f"beta={beta:g} (paper's beta column {preset.beta:g} read as the temperature "
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
