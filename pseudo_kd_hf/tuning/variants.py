"""Method variants of a benchmark grid, and the paired comparison of a variant with the baseline.

A variant is a name and the runner flags that make it, e.g. `pseudo_kd_tau` = `--regularization pseudo_kd
--pseudo_kd_temperature 2`. `{task}` in a flag becomes the task's name (`--teacher_logits teachers/{task}.npy`). A
variant may also start from a `pseudo-kd-glue` config file, such as a sweep's `best.yaml`: its settings come first,
the variant's flags after (they win), and the keys the grid decides itself (`GRID_CONTROLLED`) are left out.

Given on the command line as `NAME=FLAGS`, or in a YAML file:

    pseudo_kd_tau: --regularization pseudo_kd --pseudo_kd_temperature 2
    kd_mpnet: [--regularization, kd, --teacher_logits, "teachers/{task}.npy"]
    pseudo_kd_tuned: {config: "sweeps/{task}/pseudo_kd/best.yaml", flags: "--save_strategy no"}
"""

from __future__ import annotations

import math
import re
import shlex
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from scipy import stats

from ..parsing import read_arguments

TASK_PLACEHOLDER = "{task}"
DEFAULT_REGULARIZATION = "pseudo_kd"  # the runner's default
TEACHER_FLAGS = ("--teacher_name_or_path", "--teacher_logits")
# Set by the grid for every run (which run, where, how it logs): a config file's value for them is ignored.
GRID_CONTROLLED = (
    "model_name_or_path", "task_name", "data_dir", "output_dir", "overwrite_output_dir", "seed", "do_train",
    "do_eval", "do_predict", "max_train_samples", "max_eval_samples", "save_strategy", "report_to", "log_level",
    "disable_tqdm", "use_cpu",
)  # fmt: skip


@dataclass(frozen=True)
class Variant:
    name: str
    flags: tuple[str, ...] = ()
    config: str | None = None

    def argv(self, task: str) -> list[str]:
        """The runner flags for `task`: the config file's settings, then the variant's flags."""
        argv = [] if self.config is None else config_flags(self.config.replace(TASK_PLACEHOLDER, task))
        return argv + [flag.replace(TASK_PLACEHOLDER, task) for flag in self.flags]

    def regularization(self, task: str) -> str:
        argv = self.argv(task)
        values = [argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag == "--regularization"]
        values += [flag.split("=", 1)[1] for flag in argv if flag.startswith("--regularization=")]
        return values[-1] if values else DEFAULT_REGULARIZATION

    def names_teacher(self, task: str) -> bool:
        return any(flag.split("=", 1)[0] in TEACHER_FLAGS for flag in self.argv(task))


def config_flags(path: str) -> list[str]:
    """A runner config file's settings as flags, without the `GRID_CONTROLLED` ones."""
    if not Path(path).is_file():
        raise ValueError(f"variant config {path} not found.")
    flags = []
    for name, value in read_arguments([path]).items():
        if name in GRID_CONTROLLED:
            continue
        values = value if isinstance(value, list) else [value]
        flags += [f"--{name}", *(str(item).lower() if isinstance(item, bool) else str(item) for item in values)]
    return flags


def parse_variants(specs: Iterable[str], file: str | None) -> dict[str, Variant]:
    """`NAME=FLAGS` strings and a YAML file of them (the file first; a command-line variant of the same name wins)."""
    raw: dict[str, Any] = {}
    if file is not None:
        loaded = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError(f"--variants_file {file}: expected a mapping of variant names to flags.")
        raw.update(loaded)
    for spec in specs:
        name, separator, flags = spec.partition("=")
        if not separator:
            raise ValueError(f"--variant {spec!r}: write NAME=FLAGS, e.g. 'ls_02=--regularization ls --alpha 0.2'.")
        raw[name.strip()] = flags
    return {name: _variant(name, spec) for name, spec in raw.items()}


def _variant(name: str, spec: Any) -> Variant:
    if not re.fullmatch(r"[a-z0-9_]+", name) or "select" in name:
        raise ValueError(f"variant name {name!r}: use lower-case letters, digits and _ (and not 'select').")
    config = None
    if isinstance(spec, dict):
        unknown = set(spec) - {"config", "flags"}
        if unknown:
            raise ValueError(f"variant {name}: unknown keys {', '.join(sorted(unknown))} (use config, flags).")
        config, spec = spec.get("config"), spec.get("flags", "")
    flags = shlex.split(spec) if isinstance(spec, str) else [str(flag) for flag in spec or []]
    return Variant(name, tuple(flags), config)


def paired_difference(scores: dict[int, float], baseline: dict[int, float]) -> dict[str, Any] | None:
    """Mean of `scores - baseline` over the seeds both have, with a 95% Student-t interval over those pairs.

    Pairing by seed removes what a seed does to both runs (data order, initial head), so the interval is about the
    method, not the seeds. `low`/`high` are None with a single pair; None when no seed is shared.
    """
    seeds = sorted(set(scores) & set(baseline))
    if not seeds:
        return None
    differences = [scores[seed] - baseline[seed] for seed in seeds]
    mean = statistics.mean(differences)
    if len(seeds) < 2:
        return {"mean": mean, "low": None, "high": None, "n": 1, "seeds": seeds}
    half_width = stats.t.ppf(0.975, len(seeds) - 1) * statistics.stdev(differences) / math.sqrt(len(seeds))
    return {"mean": mean, "low": mean - half_width, "high": mean + half_width, "n": len(seeds), "seeds": seeds}


def method_variants(methods: Sequence[str]) -> dict[str, Variant]:
    """The built-in variants: each `--regularization` value under its own name."""
    return {method: Variant(method, ("--regularization", method)) for method in methods}
