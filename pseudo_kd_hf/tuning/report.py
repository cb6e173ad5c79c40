"""What a sweep leaves behind: `best.yaml`, `trials.md` and the plots, all rewritten from the study's storage."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from ..glue.tasks import GlueTask
from .space import runner_values

BEST_CONFIG = "best.yaml"
TRIALS_TABLE = "trials.md"
HISTORY_PLOT = "optimization_history.png"
IMPORTANCE_PLOT = "param_importances.png"
# Flags that only make sense while selecting: best.yaml trains on the whole training set and evaluates on the whole
# dev set (`max_eval_samples` capped the held-out part).
SELECTION_ONLY = ("heldout_fraction", "heldout_seed", "max_eval_samples", "output_dir", "overwrite_output_dir")


def best_config(trial: FrozenTrial, shared: dict[str, Any]) -> dict[str, Any]:
    """The runner flags of `trial` (the shared ones plus its searched values), without the selection-only ones."""
    values = {**shared, **runner_values(trial.params, shared)}
    return {name: value for name, value in values.items() if name not in SELECTION_ONLY}


def write_report(study: optuna.Study, output_dir: Path, task: GlueTask, shared: dict[str, Any]) -> list[str]:
    """Write the three outputs into `output_dir`; return the notes (also in trials.md) on what could not be drawn."""
    output_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    notes = []
    best_file = output_dir / BEST_CONFIG
    if complete:
        best = max(complete, key=lambda trial: trial.value)
        header = (
            f"# Best of {len(complete)} finished trials of study {study.study_name}: held-out {task.primary_metric} "
            f"{best.value:.4f} (trial {best.number}).\n# Train on the whole training set and report on dev with:\n"
            f"#   pseudo-kd-glue {BEST_CONFIG} --do_predict --output_dir runs/NAME\n"
        )
        text = yaml.safe_dump(best_config(best, shared), sort_keys=False)
        best_file.write_text(header + text, encoding="utf-8")
    else:
        best_file.unlink(missing_ok=True)  # never leave another study's (or an older) best behind
        notes.append(f"No finished trial yet: no {BEST_CONFIG}.")
    notes += write_plots(study, output_dir, complete)
    (output_dir / TRIALS_TABLE).write_text(trials_table(study, trials, task, notes), encoding="utf-8")
    return notes


def trials_table(study: optuna.Study, trials: list[FrozenTrial], task: GlueTask, notes: list[str]) -> str:
    names = sorted({name for trial in trials for name in trial.params})
    counts = {state.name: sum(trial.state == state for trial in trials) for state in TrialState}
    lines = [
        f"# Study {study.study_name}: {task.name}, held-out {task.primary_metric}",
        "",
        "Trials: " + ", ".join(f"{count} {state.lower()}" for state, count in counts.items() if count) + ".",
        "",
        "| trial | state | " + " | ".join([f"held-out {task.primary_metric}", *names, "wall s", "folder"]) + " |",
        "|---:|---|" + "---:|" * (len(names) + 2) + "---|",
    ]
    for trial in sorted(trials, key=lambda trial: trial.number):
        value = "" if trial.value is None else f"{trial.value:.4f}"
        params = [_format(trial.params.get(name)) for name in names]
        wall = trial.user_attrs.get("wall_s")
        cells = [str(trial.number), trial.state.name.lower(), value, *params]
        cells += ["" if wall is None else f"{wall:.0f}", trial.user_attrs.get("run_dir", "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *notes] if notes else []
    return "\n".join(lines) + "\n"


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def write_plots(study: optuna.Study, output_dir: Path, complete: list[FrozenTrial]) -> list[str]:
    """The optimisation history and the parameter importances (PNG); notes on what could not be drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as optuna_plots
    except ImportError:
        return ["No plots: matplotlib is not installed (`pip install pseudo-kd-hf[plot]`)."]
    notes = []
    plots = {HISTORY_PLOT: optuna_plots.plot_optimization_history}
    names = {name for trial in complete for name in trial.params}
    if any(len({repr(trial.params.get(name)) for trial in complete}) > 1 for name in names):
        plots[IMPORTANCE_PLOT] = optuna_plots.plot_param_importances
    else:
        (output_dir / IMPORTANCE_PLOT).unlink(missing_ok=True)
        notes.append(f"No {IMPORTANCE_PLOT}: it needs 2 finished trials whose settings differ.")
    if not complete:
        (output_dir / HISTORY_PLOT).unlink(missing_ok=True)
        return [f"No {HISTORY_PLOT}: no finished trial.", *notes]
    for file_name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = plot(study)
        axes.figure.tight_layout()
        axes.figure.savefig(output_dir / file_name, dpi=110)
        plt.close(axes.figure)
    return notes
