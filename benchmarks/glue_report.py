#!/usr/bin/env python
"""The report of benchmarks/glue.py: tables, JSON and a chart from the finished runs (`--report_only`).

Reads each run's result from `<output_dir>/raw/<subset>/` and from the studies in the grid's storage (where other
machines' runs are), and writes `results_<subset>.{md,json,png}`: per task, each variant's mean +- std over the seeds
where every variant finished, its paired-by-seed difference to `none` (mean and 95% Student-t interval), the same
for each task's other metric (MRPC accuracy, STS-B Spearman), wall times, and the learning-rate selection.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from pseudo_kd_hf.glue.tasks import METRIC_KEYS, get_task
from pseudo_kd_hf.regularizers import CLASSIFICATION_ONLY, TEACHER_FREE_BASELINES
from pseudo_kd_hf.tuning.grid import RESULT
from pseudo_kd_hf.tuning.variants import paired_difference

TASKS = ("cola", "mrpc", "rte", "stsb")
METHODS = ("none", "ls", "pseudo_kd", "kd", *TEACHER_FREE_BASELINES)


def subset_tag(args: argparse.Namespace) -> str:
    """Runs on a training subset never mix with full-data runs: their files carry the subset size."""
    return "full" if args.max_train_samples is None else f"n{args.max_train_samples}"


def raw_path(args: argparse.Namespace, name: str) -> Path:
    return Path(args.output_dir) / "raw" / subset_tag(args) / f"{name}.json"


def storage_url(args: argparse.Namespace) -> str:
    """`--storage`, or the journal in the runs folder (the SQLite file of an earlier version where only it lies)."""
    if args.storage:
        return args.storage
    folder = Path(args.runs_dir) / subset_tag(args)
    old, journal = folder / "grid.db", folder / "grid.journal"
    return f"sqlite:///{old.resolve()}" if old.is_file() and not journal.exists() else str(journal)


def load_results(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Finished grid runs and selection runs of this subset: the raw files here, and the results other machines
    stored in the studies (with `--storage`, or when this machine's default storage exists)."""
    folder = raw_path(args, "x").parent
    results = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))}
    url = storage_url(args)
    if args.storage or Path(url.removeprefix("sqlite:///")).is_file():  # this machine's journal or old database
        for result in stored_results(url, f"{subset_tag(args)}/"):
            results.setdefault(result["name"], result)
    selection = [r for name, r in sorted(results.items()) if "_select_" in name]
    grid = [r for name, r in sorted(results.items()) if "_select_" not in name]
    return grid, selection


def stored_results(url: str, prefix: str) -> list[dict[str, Any]]:
    """The results of every finished trial of the studies whose name starts with `prefix`."""
    import optuna

    from pseudo_kd_hf.tuning.storage import open_storage

    storage = open_storage(url, requeue_stale=False)
    results = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name.startswith(prefix):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
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


def other_metrics(grid: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """task -> metric -> variant -> `summarize`'s row, for each task's metrics besides its primary one (MRPC's
    accuracy, STS-B's Spearman): `summarize` again, with that metric as the task's runs' score."""
    table: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for task in TASKS:
        spec = get_task(task)
        for metric in (key for key in METRIC_KEYS[spec.metric] if key != spec.primary_metric):
            key = f"eval_{metric}"
            rescored = [
                {**r, "score": 100 * r["metrics"][key]}
                for r in grid
                if r["task"] == task and key in r.get("metrics", {})
            ]
            rows = summarize([*rescored, *(r for r in grid if r["task"] != task)]).get(task)
            if rows:
                table.setdefault(task, {})[metric] = rows
    return table


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
    lines = table_head("task", methods)
    for task, rows in summary.items():
        cells = [score_cell(rows[method]) if method in rows else "not run" for method in methods]
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
    lines += other_metric_lines(other_metrics(grid), methods)
    if any(row["as_none"] for rows in summary.values() for row in rows.values()):
        lines += [
            "† regression: the label-reshaping methods (" + ", ".join(CLASSIFICATION_ONLY) + ") do not apply and "
            "train exactly as none; the none runs are shown.",
            "",
        ]
    lines += [
        "Mean wall seconds per run (where several runs shared a device, each run's own elapsed time):",
        "",
        *table_head("task", methods),
    ]
    for task, rows in summary.items():
        walls = [f"{rows[m]['wall_s']:.0f}" if m in rows and not rows[m]["as_none"] else "-" for m in methods]
        lines.append(f"| {task} | " + " | ".join(walls) + " |")
    return lines


def score_cell(row: dict[str, Any]) -> str:
    """`mean ± std (n)`, marked † where a regression task shows the none runs in a method's place."""
    return f"{row['mean']:.2f} ± {row['std']:.2f} ({row['n']}){' †' if row['as_none'] else ''}"


def table_head(first: str, columns: list[str]) -> list[str]:
    """A markdown table's header and alignment rows: `first` on the left, then `columns` right-aligned."""
    return [f"| {first} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]


def paired_lines(summary: dict, methods: list[str]) -> list[str]:
    """Each variant minus `none` on the same seeds: mean [95% Student-t interval over the seed pairs] (pairs)."""
    others = [method for method in methods if method != "none"]
    if not others or not any("none" in rows for rows in summary.values()):
        return []
    lines = [
        "Paired difference to none (variant minus none on the same seeds): mean [95% interval, Student t over the "
        "seed pairs] (pairs); * where the interval excludes 0.",
        "",
        *table_head("task", others),
    ]
    for task, rows in summary.items():
        cells = [difference_cell(rows.get(method, {}).get("vs_none")) for method in others]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def difference_cell(difference: dict[str, Any] | None) -> str:
    """`mean [low, high] (pairs)`, starred where the interval excludes 0; `-` for no pair."""
    if difference is None:
        return "-"
    if difference["low"] is None:
        return f"{difference['mean']:+.2f} ({difference['n']})"
    mark = " *" if difference["low"] > 0 or difference["high"] < 0 else ""
    return f"{difference['mean']:+.2f} [{difference['low']:+.2f}, {difference['high']:+.2f}] ({difference['n']}){mark}"


def other_metric_lines(table: dict, methods: list[str]) -> list[str]:
    """The tasks' other metrics (`other_metrics`): mean ± std (n), then a variant's paired difference to none."""
    if not table:
        return []
    lines = [
        "Each task's other dev metric x 100, on the same seeds: mean ± std (n); after it, a variant's paired "
        "difference to none as above.",
        "",
        *table_head("task, metric", methods),
    ]
    for task, metrics in table.items():
        for metric, rows in metrics.items():
            cells = []
            for method in methods:
                row = rows.get(method)
                if row is None:
                    cells.append("-")
                else:
                    cell = score_cell(row)
                    cells.append(cell if row["vs_none"] is None else f"{cell}, {difference_cell(row['vs_none'])}")
            lines.append(f"| {task}, {metric} | " + " | ".join(cells) + " |")
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
        "other_metrics": other_metrics(grid),
        "total_compute_s": sum(r["wall_s"] for r in grid + selection),
    }
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown_table(args, summary, average, grid, selection), encoding="utf-8")
    if summary:
        bar_chart(summary, average, stem.with_suffix(".png"))
    print(stem.with_suffix(".md").read_text(encoding="utf-8"))
