"""`--task_name all` and leaderboard files: every GLUE task in turn, its test predictions in the leaderboard's format,
one submission zip and one results table (`pseudo-kd-glue-submit`, in `submit.py`, packages runs' files by hand)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from datasets import Dataset

from .arguments import SUITE_TASKS
from .config import PseudoKDTrainingArguments
from .errors import UsageError
from .glue.data import load_glue_task, missing_splits, required_splits
from .glue.finite import check_finite_predictions
from .glue.submission import SubmissionError, package_submission, write_atomically, write_leaderboard_file
from .glue.tasks import METRIC_KEYS, SUBMISSION_FILES, TASKS

if TYPE_CHECKING:
    from .trainer import PseudoKDTrainer

logger = logging.getLogger(__name__)

ALL_RESULTS = "all_results.json"  # written last by `cli.run_task`: a folder holding it is a finished run
RESULTS_TABLE = "results.md"
SUITE_SUBMISSION = "submission"
EVAL_SUFFIXES = {"validation_mismatched": "_mm"}  # run_glue's key suffix for MNLI's second dev set


def run_suite(
    values: dict[str, Any],
    training_args: PseudoKDTrainingArguments,
    data_dir: str | None,
    run_one: Callable[[dict[str, Any]], object],
) -> None:
    """Run every GLUE task with one method and seed into `output_dir/<task>/`, then package and tabulate.

    Every task to run is checked first (`checks.check_suite_tasks`): bad input stops the suite before any task
    trains. Resumable: a task whose folder holds a whole `all_results.json` is skipped (`finished_results`); an
    interrupted one resumes from its last checkpoint. With `--data_dir`, tasks lacking a file the stages read (or their
    whole folder) are skipped with a
    warning, and the submission fills them. `run_one` runs one task from the user's values with its task name and
    output folder filled in.
    """
    root = Path(training_args.output_dir)
    stages = {"do_train": training_args.do_train, "do_eval": training_args.do_eval}
    from .checks import check_suite_tasks  # checks -> run_folder -> this module: imported when used

    pending = [task for task in SUITE_TASKS if finished_results(root / task.name, training_args.do_train) is None]
    check_suite_tasks(values, SUITE_TASKS, pending, root)
    for task in SUITE_TASKS:
        task_dir = root / task.name
        if task not in pending:
            logger.info(f"Suite: {task.name} already finished in {task_dir}; skipped.")
            continue
        needed = required_splits(task.name, **stages, do_predict=training_args.do_predict)
        missing = missing_splits(task.name, data_dir, needed)
        if missing:
            absent = ", ".join(task.files[split] for split in missing)
            logger.warning(f"Suite: {task.name} skipped: {absent} not found in {Path(data_dir) / task.folder}.")
            continue
        logger.info(f"Suite: running {task.name} into {task_dir}.")
        run_one({**values, "task_name": task.name, "output_dir": str(task_dir)})

    table = root / RESULTS_TABLE
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(results_table(root, values), encoding="utf-8")
    logger.info(f"Suite: dev results in {table}.")
    run_dirs = [root / task.name for task in SUITE_TASKS if (root / task.name).is_dir()]
    if training_args.do_predict and run_dirs:
        _package_suite(root, run_dirs)


def finished_results(run_dir: Path, trained: bool) -> dict[str, Any] | None:
    """A finished run's `all_results.json`: None when it is absent, cut short (a full disk, a crash mid-write) or
    lacks `train_loss` though the run trained. Such a run is unfinished: a rerun resumes it or evaluates again."""
    path = run_dir / ALL_RESULTS
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        results = None
    if isinstance(results, dict) and results and (not trained or "train_loss" in results):
        return results
    logger.warning(f"{path} is cut short or holds no results of this run: the run counts as unfinished.")
    return None


def _package_suite(root: Path, run_dirs: list[Path]) -> None:
    """The suite's submission zip, tasks no run wrote filled; runs' files that cannot be packaged are bad input."""
    try:
        summary = package_submission(run_dirs, root / SUITE_SUBMISSION, fill_missing=True, overwrite=True)
    except SubmissionError as error:
        raise UsageError(f"--task_name all: no submission written to {root / SUITE_SUBMISSION}: {error}") from None
    for key, description in summary.filled.items():
        logger.warning(f"Suite: {SUBMISSION_FILES[key].file_name} filled with {description}: no run wrote it.")
    logger.info(f"Suite: submission written to {summary.zip_path}.")


def results_table(root: Path, values: dict[str, Any]) -> str:
    """A markdown table of every suite task's dev metrics (x 100, as the paper reports them) from its run folder."""
    settings = ", ".join(f"{name}={values[name]}" for name in sorted(values) if name not in ("output_dir", "task_name"))
    lines = [
        "# GLUE dev results",
        "",
        f"Settings: {settings or 'defaults'}.",
        "",
        "| task | metric | dev |",
        "|---|---|---|",
    ]
    for task in SUITE_TASKS:
        results = finished_results(root / task.name, trained=False) or {}
        names = sorted(METRIC_KEYS[task.metric], key=lambda name: name != task.primary_metric)  # the paper's first
        names += ["combined_score"] if len(names) > 1 else []
        rows = [
            f"| {task.name} | {name}{suffix} | {100 * results[f'eval_{name}{suffix}']:.2f} |"
            for suffix in ("", *EVAL_SUFFIXES.values())
            for name in names
            if f"eval_{name}{suffix}" in results
        ]
        lines += rows or [f"| {task.name} | {task.primary_metric} | not run |"]
    return "\n".join(lines) + "\n"


# ---- leaderboard files -------------------------------------------------------------------------------------------


def ax_test_split(data_dir: str | None) -> dict[str, Dataset]:
    """AX (the diagnostic set) is predicted by the MNLI model; with --data_dir it needs the diagnostic/ folder."""
    ax = TASKS["ax"]
    if data_dir is not None and not (Path(data_dir) / ax.folder).is_dir():
        logger.warning(f"{Path(data_dir) / ax.folder} not found: AX.tsv skipped (the leaderboard needs it).")
        return {}
    test_sets = load_glue_task(ax.name, data_dir, splits=ax.test_splits)
    return {ax.submission_keys[split]: test_sets[split] for split in ax.test_splits}


# run_glue's names for the prediction files of MNLI's two test sets (`predict_results_mnli-mm.txt`).
PREDICT_RESULTS_NAMES = {"mnli_matched": "mnli", "mnli_mismatched": "mnli-mm"}


def write_predictions(trainer: PseudoKDTrainer, key: str, dataset: Dataset) -> None:
    """Predict one test split; write run_glue's `predict_results_<task>.txt` and, for a whole GLUE test split, its
    leaderboard file into output_dir. Non-finite logits (a diverged model) raise before anything is written."""
    output = trainer.predict(dataset, metric_key_prefix="predict")
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    check_finite_predictions(key, logits)
    if not trainer.is_world_process_zero():
        return
    config = trainer.accelerator.unwrap_model(trainer.model).config
    output_dir = Path(trainer.args.output_dir)
    path = output_dir / f"predict_results_{PREDICT_RESULTS_NAMES.get(key, key)}.txt"
    label_names = None if config.num_labels == 1 else [config.id2label[i] for i in range(config.num_labels)]
    write_predict_results(path, logits, label_names)
    logger.info(f"Wrote {path} ({len(logits)} predictions).")
    entry = SUBMISSION_FILES.get(key)
    if entry is None:  # your own data: no leaderboard
        return
    if len(logits) != entry.num_rows:
        logger.warning(
            f"{entry.file_name} not written: --max_predict_samples kept {len(logits)} of the {entry.num_rows} "
            "test examples, and the leaderboard accepts only complete files."
        )
        return
    logger.info(f"Wrote {write_leaderboard_file(key, logits, output_dir)}.")  # it refuses NaN/inf logits


def write_predict_results(path: Path, logits: np.ndarray, label_names: Sequence[str] | None) -> None:
    """run_glue's prediction file: `index<TAB>prediction`, a label name per row, or a `%3.3f` score (regression).

    Written whole or not at all (a temporary file, then `os.replace`).
    """
    check_finite_predictions(path.name, logits)
    if label_names is None:
        column = [f"{score:3.3f}" for score in logits.reshape(len(logits), -1)[:, 0].tolist()]
    else:
        column = [label_names[label_id] for label_id in logits.argmax(axis=-1).tolist()]
    text = "index\tprediction\n" + "".join(f"{index}\t{value}\n" for index, value in enumerate(column))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text.encode("utf-8"))
