"""Grids as Optuna studies (the benchmark's engine), method variants, and the paired comparison with `none`."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import optuna
import pytest
from optuna.trial import TrialState

from pseudo_kd_hf.tuning import study as study_module
from pseudo_kd_hf.tuning.grid import POINT, RESULT, GridStudy, work
from pseudo_kd_hf.tuning.storage import open_storage
from pseudo_kd_hf.tuning.variants import Variant, paired_difference, parse_variants
from tests.helpers.scripts import repo_env


@pytest.fixture(scope="module")
def glue() -> ModuleType:
    from benchmarks import glue

    return glue


# ---- paired difference -----------------------------------------------------------------------------------------


def test_paired_difference_is_a_student_t_interval_over_the_shared_seeds() -> None:
    scores = {1: 11.0, 2: 12.0, 3: 13.0, 9: 50.0}  # seed 9 has no baseline: left out
    baseline = {1: 10.0, 2: 10.0, 3: 10.0, 4: 70.0}
    difference = paired_difference(scores, baseline)
    half_width = 4.302653 * 1.0 / math.sqrt(3)  # t(0.975, 2 df) * sd of (1, 2, 3) / sqrt(3)
    assert difference["mean"] == pytest.approx(2.0)
    assert difference["low"] == pytest.approx(2.0 - half_width, abs=1e-5)
    assert difference["high"] == pytest.approx(2.0 + half_width, abs=1e-5)
    assert (difference["n"], difference["seeds"]) == (3, [1, 2, 3])
    assert paired_difference({1: 3.0}, {1: 1.0}) == {"mean": 2.0, "low": None, "high": None, "n": 1, "seeds": [1]}
    assert paired_difference({1: 3.0}, {2: 1.0}) is None


# ---- variants --------------------------------------------------------------------------------------------------


def test_variants_from_the_command_line_and_a_file(tmp_path: Path) -> None:
    best = tmp_path / "sweeps" / "rte" / "best.yaml"
    best.parent.mkdir(parents=True)
    best.write_text(
        "task_name: rte\nmodel_name_or_path: /elsewhere\nseed: 42\nregularization: pseudo_kd\nalpha: 0.3\n"
        "beta: 3.0\nlearning_rate: 5e-5\ndo_train: true\nreport_to: [none]\n"
    )
    file = tmp_path / "variants.yaml"
    file.write_text(
        "kd_mpnet: [--regularization, kd, --teacher_logits, 'teachers/{task}.npy']\n"
        f"tuned: {{config: '{tmp_path}/sweeps/{{task}}/best.yaml', flags: --num_train_epochs 2}}\n"
        "pseudo_kd_tau: --regularization none\n"
    )
    variants = parse_variants(["pseudo_kd_tau=--regularization pseudo_kd --pseudo_kd_temperature 2"], str(file))
    assert variants["pseudo_kd_tau"] == Variant(
        "pseudo_kd_tau", ("--regularization", "pseudo_kd", "--pseudo_kd_temperature", "2")
    )
    assert variants["kd_mpnet"].argv("rte") == ["--regularization", "kd", "--teacher_logits", "teachers/rte.npy"]
    assert variants["kd_mpnet"].regularization("rte") == "kd" and variants["kd_mpnet"].names_teacher("rte")
    # the config's settings, less what the grid decides (task, model, seed, do_*, report_to), then the flags
    assert variants["tuned"].argv("rte") == [
        *("--regularization", "pseudo_kd", "--alpha", "0.3", "--beta", "3.0", "--learning_rate", "5e-05"),
        *("--num_train_epochs", "2"),
    ]
    assert variants["tuned"].regularization("rte") == "pseudo_kd" and not variants["tuned"].names_teacher("rte")
    with pytest.raises(ValueError, match="not found"):
        variants["tuned"].argv("cola")
    assert Variant("plain").regularization("rte") == "pseudo_kd"  # the runner's default


@pytest.mark.parametrize(
    ("spec", "match"), [("noequals", "NAME=FLAGS"), ("Bad-Name=--alpha 1", "variant name"), ("my_select=", "select")]
)
def test_bad_variants(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_variants([spec], None)


# ---- grid studies ----------------------------------------------------------------------------------------------


def fake_run(calls: list, fail: set = frozenset()):
    def run(params: dict) -> dict:
        calls.append(params)
        if tuple(params.values()) in fail:
            raise RuntimeError(f"boom at {params}")
        return {"score": float(sum(params.values()))}

    return run


def test_every_point_once_breadth_first_and_a_failure_retried_once(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "grid.journal"), requeue_stale=False)
    first, second = GridStudy(storage, "a", {"seed": [1, 2, 3]}), GridStudy(storage, "b", {"seed": [1, 2, 3]})
    calls_a, attempts = [], []
    failing = fake_run(attempts, fail={(2,)})
    failures = work({first: fake_run(calls_a), second: failing}, deadline=None)
    assert [call["seed"] for call in calls_a] == [1, 2, 3]
    assert [call["seed"] for call in attempts] == [1, 2, 3, 2]  # seed 2 failed, tried again once, failed again
    assert len(failures) == 2 and all("boom" in failure and failures for failure in failures)
    assert first.results() == {(1,): {"score": 1.0}, (2,): {"score": 2.0}, (3,): {"score": 3.0}}
    assert set(second.results()) == {(1,), (3,)}
    assert [trial.state for trial in second.trials()].count(TrialState.FAIL) == 2

    calls_again = []  # a later sitting: only the failed point runs
    assert work({GridStudy(storage, "b", {"seed": [1, 2, 3]}): fake_run(calls_again)}, deadline=None) == []
    assert calls_again == [{"seed": 2}]
    assert work({first: fake_run(calls_again)}, deadline=0.0) == []  # past the deadline nothing starts
    assert calls_again == [{"seed": 2}]


def another_workers_trial(storage, name: str, grid: dict, point: dict, recorded: bool = True) -> optuna.Trial:
    """A trial another worker started for `point` (RUNNING in the storage), having recorded its point or not yet."""
    trial = GridStudy(storage, name, grid).study.ask()
    if recorded:
        trial.set_user_attr(POINT, point)
    return trial


def stale_view(study: GridStudy, point: tuple) -> None:
    """Make `study` pick `point`, as a worker does that read the study just before another worker started it."""
    study.pending = lambda: ([point], set())


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the other worker's trial, started with ask()
def test_two_workers_picking_one_point_train_it_once(tmp_path: Path) -> None:
    """Both pick seed 7: the later trial (higher number) finds the earlier one holding it and is pruned untrained; the
    earlier trial's worker trains it."""
    storage = open_storage(str(tmp_path / "grid.journal"), requeue_stale=False)
    grid = {"seed": [7, 8]}
    first = another_workers_trial(storage, "a", grid, {"seed": 7})
    late = GridStudy(storage, "a", grid)
    stale_view(late, (7,))
    calls = []
    pruned = late.run_next(fake_run(calls), set())
    assert pruned.state == TrialState.PRUNED and pruned.user_attrs["duplicate_of"] == first.number
    assert calls == []
    assert late.holder(first, (7,)) is None  # the earlier trial holds the point itself: its worker trains it

    fresh = GridStudy(storage, "a", grid)  # a worker with an up-to-date view picks the free point
    assert fresh.run_next(fake_run(calls), set()).state == TrialState.COMPLETE and calls == [{"seed": 8}]
    stale_view(fresh, (8,))  # and a finished point is never trained again
    assert fresh.run_next(fake_run(calls), set()).state == TrialState.PRUNED and calls == [{"seed": 8}]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
@pytest.mark.parametrize(("other_point", "trains"), [({"seed": 7}, False), ({"seed": 8}, True)])
def test_a_worker_waits_for_an_earlier_trial_to_record_its_point(
    tmp_path: Path, other_point: dict, trains: bool
) -> None:
    """The other worker's trial exists (lower number) but has not recorded its point yet: this worker waits for it
    instead of deciding blind, then yields if it is its point and trains otherwise."""
    storage = open_storage(str(tmp_path / "grid.journal"), requeue_stale=False)
    grid = {"seed": [7, 8]}
    earlier = another_workers_trial(storage, "a", grid, other_point, recorded=False)
    timer = threading.Timer(0.5, earlier.set_user_attr, (POINT, other_point))
    study = GridStudy(storage, "a", grid)
    stale_view(study, (7,))
    calls = []
    timer.start()
    try:
        started = time.monotonic()
        trial = study.run_next(fake_run(calls), set())
    finally:
        timer.join()
    assert time.monotonic() - started >= 0.5  # it waited for the earlier trial's point
    assert (trial.state == TrialState.COMPLETE) is trains and (calls == [{"seed": 7}]) is trains


def test_a_grid_that_grows_in_a_later_sitting_runs_only_its_new_points(tmp_path: Path) -> None:
    """More seeds, or another learning rate, on the same storage: the same study with more points (Optuna itself
    refuses a categorical parameter whose choices changed, so the points are not Optuna parameters)."""
    storage = open_storage(str(tmp_path / "grid.journal"), requeue_stale=False)
    calls = []
    assert work({GridStudy(storage, "a", {"seed": [1, 2], "lr": [0.1]}): fake_run(calls)}, None) == []
    grown = GridStudy(storage, "a", {"seed": [1, 2, 3], "lr": [0.1, 0.2]})
    assert work({grown: fake_run(calls)}, None) == []
    ran = [tuple(call.values()) for call in calls]
    assert ran[:2] == [(1, 0.1), (2, 0.1)] and sorted(ran[2:]) == [(1, 0.2), (2, 0.2), (3, 0.1), (3, 0.2)]
    assert set(grown.results()) == set(grown.points)


def test_points_of_an_older_database_and_of_another_grid(tmp_path: Path) -> None:
    """Trials written before points became user attributes hold them as Optuna parameters: still finished. A finished
    point the grid no longer has (another --select_learning_rates) is not one of its results."""
    storage = open_storage(str(tmp_path / "grid.journal"), requeue_stale=False)
    old = GridStudy(storage, "a", {"seed": [1, 2, 3]})
    for seed in (1, 3):
        old.study.add_trial(
            optuna.trial.create_trial(
                params={"seed": seed},
                distributions={"seed": optuna.distributions.CategoricalDistribution([1, 2, 3])},
                value=float(seed),
                user_attrs={RESULT: {"score": float(seed)}},
            )
        )
    assert old.pending()[0] == [(2,)]
    assert GridStudy(storage, "a", {"seed": [2, 3]}).results() == {(3,): {"score": 3.0}}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_point_whose_worker_died_runs_again_once_its_trial_is_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker took seed 1 and died (its heartbeat stopped). This worker runs seed 2, then waits for seed 1's
    trial instead of leaving the point out of the sitting, and runs it when the grace period failed that trial."""
    monkeypatch.setattr(study_module, "POLL_S", 0.2)
    storage = open_storage(str(tmp_path / "grid.journal"), heartbeat_interval=1, grace_period=2, requeue_stale=False)
    grid = {"seed": [1, 2]}
    orphan = another_workers_trial(storage, "a", grid, {"seed": 1})
    storage.record_heartbeat(orphan._trial_id)
    calls = []
    study = GridStudy(storage, "a", grid)
    assert work({study: fake_run(calls)}, None) == []
    assert calls == [{"seed": 2}, {"seed": 1}]
    assert study.study.trials[orphan.number].state == TrialState.FAIL
    assert set(study.results()) == {(1,), (2,)}


WORKER = """
import json, sys, time
from pathlib import Path
from pseudo_kd_hf.tuning.grid import GridStudy, work
from pseudo_kd_hf.tuning.storage import open_storage
url, log = sys.argv[1], Path(sys.argv[2])
def run(params):
    with open(log, "a") as stream:
        stream.write(json.dumps(params) + "\\n")
    time.sleep(0.05)
    return {"score": 1.0}
storage = open_storage(url, requeue_stale=False)
studies = [GridStudy(storage, name, {"seed": list(range(6))}) for name in ("a", "b")]
print(len(work({study: run for study in studies}, None)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_worker_processes_share_a_grid_without_running_a_point_twice(backend: str, tmp_path: Path, request) -> None:
    """Three workers on one storage and short runs, so they often pick a point together: the benchmark's (task,
    variant) studies with the seeds as their grid, each point run once."""
    url = str(tmp_path / "grid.journal") if backend == "journal" else request.getfixturevalue("postgres_url")
    log = tmp_path / "runs.jsonl"
    env = repo_env()
    command = [sys.executable, "-c", WORKER, url, str(log)]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
    runs = log.read_text().splitlines()
    assert len(runs) == 12  # 2 studies x 6 seeds, none twice (the workers share the log)
    for name in ("a", "b"):
        study = optuna.load_study(study_name=name, storage=open_storage(url, requeue_stale=False))
        seeds = [trial.user_attrs[POINT]["seed"] for trial in study.get_trials(states=(TrialState.COMPLETE,))]
        assert sorted(seeds) == list(range(6))


# ---- the benchmark grid on the engine --------------------------------------------------------------------------


def test_benchmark_runs_selection_then_every_variant_and_seed(
    glue: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def run_once(args, task, method, seed, settings, flags=None, name=None, keep_weights=False):
        calls.append((task, method, seed, flags))
        name = name or f"{task}_{method}_seed{seed}"
        score = 50.0 + settings["learning_rate"] * 1e4 + (seed - 42) + (method == "ls")
        settings_used = {key: settings[key] for key in ("learning_rate", "num_train_epochs")}
        return {
            "name": name,
            "task": task,
            "method": method,
            "seed": seed,
            "score": score,
            "wall_s": 1.0,
            **settings_used,
        }

    monkeypatch.setattr(glue, "run_once", run_once)
    monkeypatch.setattr(glue, "kd_runs_pending", lambda args, task: False)  # no teacher weights to look for
    flags = ["--output_dir", str(tmp_path / "out"), "--runs_dir", str(tmp_path / "runs"), "--model", "m"]
    flags += ["--tasks", "rte", "stsb", "--methods", "none", "ls", "kd", "--seeds", "42", "43"]
    flags += ["--select_learning_rates", "1e-4", "2e-4", "--variant", "tau2=--regularization none --alpha 0.3"]
    assert glue.main(flags) == 0
    selection = [call for call in calls if call[1] == "none" and call[3] is None]
    assert len(selection) == 4  # 2 tasks x 2 learning rates, at the select seed
    grid = {(task, method, seed): run_flags for task, method, seed, run_flags in calls if run_flags is not None}
    assert set(grid) == {
        (task, method, seed)
        for task in ("rte", "stsb")
        for method in ("none", "ls", "kd", "tau2")
        for seed in (42, 43)
        if not (task == "stsb" and method == "ls")  # classification only
    }
    teacher = str(tmp_path / "runs" / "full" / "rte" / "rte_select_lr0.0002_ep3_seed0")  # the best selection run
    assert grid[("rte", "kd", 42)] == ["--regularization", "kd", "--teacher_name_or_path", teacher]
    assert grid[("rte", "tau2", 43)] == ["--regularization", "none", "--alpha", "0.3"]

    calls.clear()  # a second sitting finds everything done in the studies
    assert glue.main(flags) == 0
    assert calls == []
    # the report reads the results from the studies (this fake run wrote no raw files)
    results = json.loads((tmp_path / "out" / "results_full.json").read_text())
    assert results["summary"]["rte"]["ls"]["vs_none"]["mean"] == pytest.approx(1.0)
    assert results["summary"]["rte"]["tau2"]["n"] == 2
    assert "stsb" in results["summary"] and "ls" in results["summary"]["stsb"]  # shown as none
    assert RESULT == "result"


def test_benchmark_refuses_a_storage_it_cannot_open(glue: ModuleType, tmp_path: Path, capsys) -> None:
    flags = ["--output_dir", str(tmp_path / "out"), "--runs_dir", str(tmp_path / "runs"), "--model", "m"]
    assert glue.main([*flags, "--tasks", "rte", "--storage", "nodb://host/grid"]) == 2
    assert "--storage nodb://host/grid: no such database dialect" in capsys.readouterr().err


def test_a_killed_worker_fails_the_benchmark(
    glue: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Exit codes 0 and -9 (killed): the command fails and says which worker, instead of max() = 0."""

    class Worker:
        def __init__(self, code: int) -> None:
            self.code = code

        def wait(self) -> int:
            return self.code

    codes = iter([0, -9])
    monkeypatch.setattr(glue.subprocess, "Popen", lambda command, env: Worker(next(codes)))
    monkeypatch.setattr(glue, "load_glue_task", lambda task, data: None)
    monkeypatch.setattr(glue, "write_report", lambda args: None)
    storage = str(tmp_path / "grid.journal")
    args = argparse.Namespace(tasks=["rte"], glue_data=None, storage=storage, jobs=2, time_budget_s=None, model="m")
    assert glue.start_workers(args, []) == 1
    assert "error: worker 2 was killed by signal 9" in capsys.readouterr().err
