#!/usr/bin/env python
"""Evaluation and prediction speed of two checkouts of pseudo_kd_hf, and whether their output files are identical.

For each task, each checkout (`--old`, `--new`) runs `pseudo_kd_hf.cli`'s evaluation and prediction stages in a
subprocess on one CPU thread, alternating old and new (`--rounds` times) so drifting machine load hits both alike.
The student is `--model_name_or_path` with its classifier head drawn from `--seed` (identical in both). Reports
the median wall and CPU time of each stage, the speed-up, and whether every predict_results file, leaderboard file
and eval metric is byte-identical. Writes `--output` (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(model: str, task: str, glue: str, output_dir: str, limits: argparse.Namespace) -> None:
    """One checkout (first on sys.path): build the task as the CLI does, then time evaluation and prediction."""
    import torch

    torch.set_num_threads(1)
    from pseudo_kd_hf.checks import check_task
    from pseudo_kd_hf.cli import EVAL_SUFFIXES, prepare_task
    from pseudo_kd_hf.parsing import task_arguments
    from pseudo_kd_hf.suite import write_predictions

    values = dict(model_name_or_path=model, task_name=task, data_dir=glue, output_dir=output_dir, do_eval=True)
    values.update(do_predict=True, use_cpu=True, report_to="none", disable_tqdm=True)
    values.update(per_device_eval_batch_size=limits.per_device_eval_batch_size)
    for name in ("max_eval_samples", "max_predict_samples"):
        if getattr(limits, name) is not None:
            values[name] = getattr(limits, name)
    arguments = task_arguments(values)
    check_task(*arguments)
    run = prepare_task(*arguments)
    times, metrics = {}, {}
    start, cpu = time.perf_counter(), time.process_time()
    for split, dataset in run.eval_datasets.items():
        suffix = EVAL_SUFFIXES.get(split, "")
        metrics.update({k + suffix: v for k, v in run.trainer.evaluate(eval_dataset=dataset).items()})
    times["eval"] = (time.perf_counter() - start, time.process_time() - cpu)
    start, cpu = time.perf_counter(), time.process_time()
    for key, dataset in run.predict_datasets.items():
        write_predictions(run.trainer, key, dataset)
    times["predict"] = (time.perf_counter() - start, time.process_time() - cpu)
    kept = {k: v for k, v in metrics.items() if not k.endswith(("_runtime", "_per_second", "_time"))}
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(output_dir).glob("*.t[sx]?"))}
    print("RESULT " + json.dumps({"times": times, "metrics": repr(kept), "files": files}))


def run_child(code: str, args: argparse.Namespace, task: str) -> dict:
    env = {**os.environ, "PYTHONPATH": code, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as output_dir:
        command = [sys.executable, __file__, "--child", args.model_name_or_path, task, args.glue, output_dir]
        for name in ("per_device_eval_batch_size", "max_eval_samples", "max_predict_samples"):
            if getattr(args, name) is not None:
                command += [f"--{name}", str(getattr(args, name))]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=4, metavar=("MODEL", "TASK", "GLUE", "OUT"))
    parser.add_argument("--old", help="The checkout to compare against (a clone of an older commit); needed to time.")
    parser.add_argument("--new", default=str(Path(__file__).resolve().parents[1]), help="Default: this checkout.")
    parser.add_argument("--model_name_or_path")
    parser.add_argument("--glue", default="../shared/glue_data")
    parser.add_argument("--tasks", nargs="+", default=["rte", "sst2"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--per_device_eval_batch_size", type=int, default=8)
    parser.add_argument("--max_eval_samples", type=int, help="the first N rows of each dev set (default: all)")
    parser.add_argument("--max_predict_samples", type=int, help="the first N rows of each test set (default: all)")
    parser.add_argument("--output", default="predict_order_speed.json")
    args = parser.parse_args()
    if not args.child and not args.old:
        parser.error("--old is needed: the checkout to compare this one against")
    if args.child:
        child(*args.child, args)
        return
    runs = {task: {"old": [], "new": []} for task in args.tasks}
    for round_index in range(args.rounds):
        for task in args.tasks:
            for side in ("old", "new") if round_index % 2 == 0 else ("new", "old"):
                runs[task][side].append(run_child(getattr(args, side), args, task))
                print(f"round {round_index} {task} {side}: {json.dumps(runs[task][side][-1])}", flush=True)
    report = {}
    for task, sides in runs.items():
        row = {"identical_files": sides["old"][0]["files"] == sides["new"][0]["files"]}
        row["identical_metrics"] = sides["old"][0]["metrics"] == sides["new"][0]["metrics"]
        row["metrics"] = {side: sides[side][0]["metrics"] for side in sides}
        for stage in ("eval", "predict"):
            for kind, column in (("wall", 0), ("cpu", 1)):
                old, new = (statistics.median(run["times"][stage][column] for run in sides[s]) for s in ("old", "new"))
                row[f"{stage}_{kind}_s"] = {"old": round(old, 2), "new": round(new, 2), "speedup": round(old / new, 2)}
        report[task] = row
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
