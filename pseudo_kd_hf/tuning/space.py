"""Search spaces: which runner flags a sweep tries, per method by default, narrowed by the user's YAML.

A space maps a runner flag name (`learning_rate`, `alpha`, ...) to an Optuna distribution. The YAML a user gives
(`--search_space FILE` or the same text inline) uses three forms per name:

    learning_rate: {low: 1e-5, high: 1e-4, log: true}   # a range: float, or int for an int flag (`step` optional)
    alpha: [0.1, 0.2, 0.5]                              # categorical
    num_train_epochs: 3                                 # fixed: passed to every trial, not searched

`tau` is Pseudo-KD's temperature, not a runner flag: `P* = softmax(z / tau)` with `tau = beta / alpha`, so a trial
passes `--beta alpha * tau`. Searching tau rather than beta keeps the two searched axes independent (with beta, the
temperature moves whenever alpha does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import BaseTrial

from ..arguments import ARGUMENT_CLASSES
from ..config import beta_from_temperature

TAU = "tau"
TEMPERATURE_NAMES = {TAU, "beta", "pseudo_kd_temperature"}  # three ways to set one thing: a space names one at most
LEARNING_RATE = FloatDistribution(1e-5, 2e-4, log=True)
# Ranges around the paper's grid (alpha {0.1, 0.2, 0.5}, KD T {1, 5, 10}, beta {1.5, 2, 4}, i.e. tau from 3 to 40)
# and, for the teacher-free baselines, around their authors' defaults.
METHOD_SPACES: dict[str, dict[str, BaseDistribution]] = {
    "none": {},
    "ls": {"alpha": FloatDistribution(0.02, 0.5, log=True)},
    "pseudo_kd": {"alpha": FloatDistribution(0.05, 0.5, log=True), TAU: FloatDistribution(1.0, 50.0, log=True)},
    "kd": {"alpha": FloatDistribution(0.1, 0.9), "temperature": FloatDistribution(1.0, 10.0, log=True)},
    "tf_reg": {"alpha": FloatDistribution(0.05, 0.9), "tf_reg_temperature": FloatDistribution(1.0, 40.0, log=True)},
    "ps_kd": {"ps_kd_alpha_T": FloatDistribution(0.1, 0.9)},
    "cs_kd": {
        "cs_kd_lambda": FloatDistribution(0.1, 4.0, log=True),
        "cs_kd_temperature": FloatDistribution(1.0, 8.0, log=True),
    },
    "beta_ls": {"beta_ls_alpha": FloatDistribution(0.1, 0.9), "beta_ls_beta": FloatDistribution(1.0, 10.0, log=True)},
}
# What the sweep itself decides for every trial: not searchable.
SWEEP_CONTROLLED = ("output_dir", "task_name", "do_train", "do_eval", "do_predict", "heldout_fraction", "heldout_seed")
RUNNER_FIELDS = {field.name: field for cls in ARGUMENT_CLASSES for field in dataclasses.fields(cls)}


def default_space(regularization: str, fixed: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """The learning rate and the method's own settings, less whatever the user fixed with a runner flag."""
    space = {"learning_rate": LEARNING_RATE, **METHOD_SPACES.get(regularization, {})}
    if {"beta", "pseudo_kd_temperature"} & set(fixed):  # the user fixed Pseudo-KD's temperature: search alpha alone
        space.pop(TAU, None)
    return {name: distribution for name, distribution in space.items() if name not in fixed}


def read_space_text(spec: str) -> dict[str, Any]:
    """`--search_space`: a YAML file's path, or the YAML itself (`'{alpha: [0.1, 0.2]}'`)."""
    path = Path(spec)
    is_file = spec.endswith((".yaml", ".yml", ".json"))
    if is_file and not path.is_file():
        raise ValueError(f"--search_space {spec}: no such file.")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8") if is_file else spec)
    except yaml.YAMLError as error:
        raise ValueError(f"--search_space {spec}: not valid YAML ({' '.join(str(error).split())}).") from None
    if not isinstance(values, dict):
        raise ValueError(f"--search_space {spec}: expected a mapping of flag names to ranges, lists or values.")
    return values


def build_space(
    regularization: str, fixed: Mapping[str, Any], user: Mapping[str, Any]
) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
    """(searched distributions, values fixed by the YAML) from the method's default space and the user's YAML."""
    temperatures = sorted(({"beta", "pseudo_kd_temperature"} & set(fixed)) | (TEMPERATURE_NAMES & set(user)))
    if len(temperatures) > 1:
        names = " and ".join(temperatures)
        raise ValueError(f"--search_space: {names} each set Pseudo-KD's temperature (as flags or here); keep one.")
    space = default_space(regularization, fixed)
    if temperatures and temperatures != [TAU]:  # beta or pseudo_kd_temperature is set by a flag or the YAML
        space.pop(TAU, None)
    pinned: dict[str, Any] = {}
    for name, spec in user.items():
        if name in SWEEP_CONTROLLED or (name not in RUNNER_FIELDS and name != TAU):
            raise ValueError(f"--search_space: {name} is not a runner flag a sweep can search.")
        if name in fixed:
            raise ValueError(f"--search_space: {name} is also set as --{name}; keep one.")
        if name == TAU and regularization != "pseudo_kd":
            raise ValueError(f"--search_space: tau is Pseudo-KD's temperature, not used by {regularization}.")
        space.pop(name, None)
        if isinstance(spec, list):
            space[name] = CategoricalDistribution(spec)
        elif isinstance(spec, dict):
            space[name] = _range(name, spec)
        else:
            pinned[name] = spec
    return space, pinned


def _range(name: str, spec: dict[str, Any]) -> BaseDistribution:
    unknown = set(spec) - {"low", "high", "log", "step"}
    if unknown or not {"low", "high"} <= set(spec):
        raise ValueError(f"--search_space: {name} needs low and high (and optionally log, step), got {sorted(spec)}.")
    is_int = name in RUNNER_FIELDS and RUNNER_FIELDS[name].type in (int, "int")
    log, step = bool(spec.get("log", False)), spec.get("step")
    try:  # float() first: YAML reads 1e-5 as text
        if is_int:
            return IntDistribution(int(spec["low"]), int(spec["high"]), log=log, step=int(step or 1))
        return FloatDistribution(
            float(spec["low"]), float(spec["high"]), log=log, step=None if step is None else float(step)
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"--search_space: {name}: {error}") from None


def suggest(trial: BaseTrial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """One value per searched name, through the trial (so Optuna records it)."""
    values = {}
    for name, distribution in space.items():
        if isinstance(distribution, CategoricalDistribution):
            values[name] = trial.suggest_categorical(name, distribution.choices)
        elif isinstance(distribution, IntDistribution):
            values[name] = trial.suggest_int(
                name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
            )
        else:
            values[name] = trial.suggest_float(
                name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
            )
    return values


def runner_values(params: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's searched values as runner flags: `tau` becomes `beta = alpha * tau` (alpha: the trial's, else the
    fixed one, else the runner's default)."""
    values = {name: value for name, value in params.items() if name != TAU}
    if TAU in params:
        alpha = values.get("alpha", fixed.get("alpha", RUNNER_FIELDS["alpha"].default))
        values["beta"] = beta_from_temperature(float(alpha), params[TAU])
    return values


def describe(space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """The space in the YAML form above (stored with a study, so a rerun with another space is caught)."""
    described: dict[str, Any] = {}
    for name, distribution in space.items():
        if isinstance(distribution, CategoricalDistribution):
            described[name] = list(distribution.choices)
        else:
            described[name] = {"low": distribution.low, "high": distribution.high, "log": distribution.log}
            default_step = 1 if isinstance(distribution, IntDistribution) else None
            if distribution.step != default_step:
                described[name]["step"] = distribution.step
    return described
