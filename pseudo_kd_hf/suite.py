"""`--task_name all`, leaderboard files and `pseudo-kd-glue-submit`: every GLUE task in turn, its test predictions in
the leaderboard's format, one submission zip and one results table."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from datasets import Dataset

from .arguments import SUITE_TASKS, UsageError
from .config import PseudoKDTrainingArguments
from .glue.data import load_glue_task, missing_splits, required_splits
from .glue.metrics import check_finite_predictions
from .glue.submission import (
    OutputFolderError,
    SubmissionError,
    collect_leaderboard_files,
    package_submission,
    validate_submission,
    write_atomically,
    write_leaderboard_file,
)
from .glue.tasks import METRIC_KEYS, SUBMISSION_FILES, TASKS

if TYPE_CHECKING:
    from .glue.submission import SubmissionSummary
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

    Resumable: a task whose folder holds a whole `all_results.json` is skipped (`finished_results`); an interrupted
    one resumes from its last checkpoint.
    With `--data_dir`, tasks lacking a file the stages read (or their whole folder) are skipped with a
    warning, and the submission fills them. `run_one` runs one task from the user's values with its task name and
    output folder filled in.
    """
    root = Path(training_args.output_dir)
    stages = {"do_train": training_args.do_train, "do_eval": training_args.do_eval}
    for task in SUITE_TASKS:
        task_dir = root / task.name
        if finished_results(task_dir, trained=training_args.do_train) is not None:
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


# ---- pseudo-kd-glue-submit -----------------------------------------------------------------------------------------


def submit_main(argv: Sequence[str] | None = None) -> int:
    """`pseudo-kd-glue-submit`: gather runs' leaderboard files into one validated GLUE submission zip."""
    parser = argparse.ArgumentParser(
        prog="pseudo-kd-glue-submit",
        description="Collect the leaderboard files (CoLA.tsv, ..., AX.tsv) that pseudo-kd-glue --do_predict wrote "
        "into run folders, check them, and write the eleven files plus submission.zip for gluebenchmark.com.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="Run folders, searched recursively.")
    parser.add_argument(
        "--output_dir", required=True, help="Where to write the submission, e.g. glue_submissions/NAME."
    )
    parser.add_argument(
        "--fill_missing",
        action="store_true",
        help="Fill files no run wrote with the majority training class (STS-B: mean score); listed in FILLED.txt.",
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace a submission already in --output_dir.")
    args = parser.parse_args(argv)
    try:
        summary = _package(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = [("file", "source", "rows")]
    for key, entry in SUBMISSION_FILES.items():
        source = str(summary.sources[key]) if key in summary.sources else f"filled: {summary.filled[key]}"
        rows.append((entry.file_name, source, str(entry.num_rows)))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for name, source, count in rows:
        print(f"{name:<{widths[0]}}  {source:<{widths[1]}}  {count:>5}")
    problems = validate_submission(summary.zip_path)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    from_runs = f"{len(summary.sources)} file{'' if len(summary.sources) == 1 else 's'} from runs"
    print(f"Wrote {summary.zip_path} ({from_runs}, {len(summary.filled)} filled).")
    return 0


def _package(args: argparse.Namespace) -> SubmissionSummary:
    """`package_submission` with its bad-input errors as `UsageError`s naming the flags as typed."""
    try:
        if not args.fill_missing:
            missing = set(SUBMISSION_FILES) - set(collect_leaderboard_files(args.run_dirs))
            if missing:
                names = ", ".join(entry.file_name for key, entry in SUBMISSION_FILES.items() if key in missing)
                raise UsageError(
                    f"No run wrote {names}: the leaderboard needs all eleven files; pass the runs that wrote them, "
                    "or --fill_missing to fill them with majority-class placeholders."
                )
        return package_submission(
            args.run_dirs, args.output_dir, fill_missing=args.fill_missing, overwrite=args.overwrite
        )
    except OutputFolderError as error:
        raise UsageError(f"--output_dir {args.output_dir}: {error}") from None
    except SubmissionError as error:
        raise UsageError(str(error)) from None
    except FileExistsError:
        raise UsageError(
            f"--output_dir {args.output_dir} already holds a submission: pass --overwrite to replace it, or choose "
            "another folder."
        ) from None
