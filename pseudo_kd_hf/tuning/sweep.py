"""`pseudo-kd-glue-sweep`: choose a method's settings for one GLUE task on held-out training data, with Optuna.

Every `pseudo-kd-glue` flag sets what all trials share (task, model, method, data, batch size, ...); the search
space (`--search_space`, default: the method's own in `tuning.space`) sets what each trial varies. Each trial trains
on the training set less `--heldout_fraction` of it (stratified, drawn with `--heldout_seed`, the same for every
trial) and is scored by the task's primary metric on that held-out part: the dev set is never evaluated, so it
stays an honest report of the chosen settings. The study lives in `--storage` (default: an Optuna journal file in
`--output_dir`; see `tuning.storage`): a rerun continues it up to `--n_trials` finished trials, and processes on
other machines join it by passing the same database URL (or journal on a shared disk) and `--study_name`. At the
end: `best.yaml` (a `pseudo-kd-glue` config holding the best settings, to train on the whole training set with),
`trials.md` and the plots (see `tuning.report`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..errors import UsageError
from ..glue.data import HELDOUT_SPLIT
from ..glue.tasks import get_task
from ..parsing import build_arguments, read_arguments
from . import report
from . import study as study_module
from .space import build_space, describe, read_space_text, runner_values, suggest
from .storage import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, open_storage
from .study import (
    TrialFailed,
    count_states,
    fail_dead_trials,
    forget_weights_of,
    keep_records_only,
    load_study,
    run_runner,
)

logger = logging.getLogger(__name__)

DEFAULT_HELDOUT_FRACTION = 0.1
JOURNAL = "study.journal"
OLD_STUDY_DB = "study.db"  # the default storage of earlier versions: continued where it lies
STUDY_MARKER = "study_name.txt"  # in --output_dir: the one study whose trials and reports it holds
MAX_FAILURES_IN_A_ROW = 3
# How long a worker joining a brand-new study waits for its creator to record the settings.
SETTINGS_WAIT_S = 60.0
QUEUED = "queued"  # user attribute of the trials the sweep queues
SETTINGS_POLL_S = 0.5
# Where things lie on one machine: a worker joining a study may name them by other paths (only whether each is given
# is compared; a teacher's logits file is checked against the training set by its own header, whatever its path).
MACHINE_PATHS = (
    "model_name_or_path",
    "config_name",
    "tokenizer_name",
    "teacher_name_or_path",
    "teacher_logits",
    "data_dir",
    "cache_dir",
)
# Set for every trial unless the user set them: a trial is never resumed, so intermediate checkpoints are waste.
TRIAL_DEFAULTS = {"save_strategy": "no", "report_to": "none", "disable_tqdm": True}


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The sweep's own flags, and the runner flags every trial shares (checked as `pseudo-kd-glue` checks them)."""
    parser = argparse.ArgumentParser(
        prog="pseudo-kd-glue-sweep",
        description=__doc__.split("\n\n")[0],
        epilog="Every other flag is a pseudo-kd-glue flag shared by all trials; --output_dir holds the study.",
        allow_abbrev=False,
    )
    parser.add_argument("--n_trials", type=int, default=20, help="Finished trials the study should hold.")
    parser.add_argument("--study_name", help="Default: <task>_<regularization>.")
    parser.add_argument(
        "--storage",
        help=f"Journal file, or database URL (postgresql+psycopg://user:pw@host/db); default: <output_dir>/{JOURNAL}.",
    )
    parser.add_argument("--search_space", help="YAML file, or inline YAML, narrowing the default search space.")
    parser.add_argument("--heartbeat_interval", type=int, default=HEARTBEAT_INTERVAL_S, help="Seconds.")
    parser.add_argument(
        "--grace_period", type=int, default=GRACE_PERIOD_S, help="Seconds without heartbeat before a trial is failed."
    )
    parser.add_argument("--keep_weights", action="store_true", help="Keep each trial's model, not only its record.")
    parser.add_argument("--time_budget_s", type=float, help="Start no new trial after this many seconds.")
    parser.add_argument("--report_only", action="store_true", help="Only write best.yaml, trials.md and the plots.")
    args, runner_argv = parser.parse_known_args(argv)
    if args.n_trials < 0:
        raise UsageError(f"--n_trials must be >= 0, got {args.n_trials}.")
    if args.heartbeat_interval <= 0:
        raise UsageError(f"--heartbeat_interval must be a positive number of seconds, got {args.heartbeat_interval}.")
    if args.grace_period <= args.heartbeat_interval:
        raise UsageError(
            f"--grace_period {args.grace_period} must be longer than --heartbeat_interval {args.heartbeat_interval}: "
            "a running trial beats once per interval, so a shorter grace period fails trials that are alive."
        )
    values = read_arguments(runner_argv)
    if "output_dir" not in values:
        raise UsageError("--output_dir is required: the folder that holds the study's trials and reports.")
    if values.get("do_predict"):
        raise UsageError("--do_predict: a sweep trains on part of the training set; predict with best.yaml instead.")
    if values.get("task_name", "").lower() == "all":
        raise UsageError("--task_name all: a sweep tunes one task; run one sweep per task.")
    values = {"heldout_fraction": DEFAULT_HELDOUT_FRACTION, **values, "do_train": True, "do_eval": True}
    build_arguments(values)  # every value checked, as the runner will
    return args, values


def main(argv: Sequence[str] | None = None) -> int:
    """Returns the exit code: 0, or 2 after one `error: ...` line on stderr for bad input."""
    try:
        run_sweep(*parse_args(argv))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def run_sweep(args: argparse.Namespace, values: dict[str, Any]) -> optuna.Study:
    output_dir = Path(values.pop("output_dir"))
    task = get_task(values["task_name"])
    regularization = values.get("regularization", "pseudo_kd")
    try:
        user_space = read_space_text(args.search_space) if args.search_space else {}
        space, pinned = build_space(regularization, values, user_space)
    except ValueError as error:
        raise UsageError(str(error)) from None
    shared = {**values, **pinned}
    storage_url = args.storage or default_storage(output_dir)
    study_name = args.study_name or f"{task.name}_{regularization}"
    storage = open_storage(storage_url, args.heartbeat_interval, args.grace_period, forget_weights_of)
    if args.report_only and study_name not in optuna.get_all_study_names(storage):
        raise UsageError(f"--report_only: {storage_url} holds no study {study_name}: pass the --study_name it ran as.")
    claim_output_dir(output_dir, study_name)
    study, created = load_study(storage, study_name)
    if created and not args.report_only:
        fill_queue(study, args.n_trials)  # before the settings, which the workers joining it wait for
    check_same_settings(study, shared, describe(space), created=created, wait=not args.report_only)
    try:
        if not args.report_only:
            objective = make_objective(task.primary_metric, space, shared, output_dir, args.keep_weights)
            deadline = None if args.time_budget_s is None else time.monotonic() + args.time_budget_s
            fill_queue(study, args.n_trials)
            work(study, objective, args.n_trials, deadline)
    finally:  # the reports also when a trial refused its input or too many failed
        report.write_report(study, output_dir, task, shared)
    return study


def default_storage(output_dir: Path) -> str:
    """The journal in `output_dir`, or the SQLite file an earlier version made there."""
    old = output_dir / OLD_STUDY_DB
    journal = output_dir / JOURNAL
    return f"sqlite:///{old.resolve()}" if old.is_file() and not journal.exists() else str(journal)


def claim_output_dir(output_dir: Path, study_name: str) -> None:
    """Mark `output_dir` as `study_name`'s, or refuse it when another study's trials and reports are there: their
    `trials/trial_NNNN` folders and `best.yaml` would be overwritten."""
    marker = output_dir / STUDY_MARKER
    if marker.is_file():
        owner = marker.read_text(encoding="utf-8").strip()
        if owner != study_name:
            raise UsageError(
                f"--output_dir {output_dir} holds study {owner}'s trials: pass another --output_dir for {study_name}."
            )
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(study_name + "\n", encoding="utf-8")


def check_same_settings(
    study: optuna.Study, shared: dict[str, Any], space: dict[str, Any], *, created: bool, wait: bool = True
) -> None:
    """A study continues only with the settings it started with, paths on the machine aside (`MACHINE_PATHS`):
    trials with other settings would not compare. The worker that created the study records them; one that joins a
    study with no settings and no trial yet waits for its creator's (when `wait`), so that two workers started
    together with different flags cannot both go on."""
    stored = None if created else _settings_of(study, SETTINGS_WAIT_S if wait else 0.0)
    if stored is None:
        if not created:  # made elsewhere (`optuna create-study`), or its creator died before recording them
            logger.warning(f"study {study.study_name} has no recorded settings: recording this worker's.")
        study.set_user_attr("shared", shared)
        study.set_user_attr("space", space)
        return
    names = {*shared, *stored["shared"]}
    differ = sorted(
        {name for name in names if _differs(name, shared, stored["shared"])}
        | ({"search space"} if stored["space"] != space else set())
    )
    if differ:
        raise UsageError(
            f"study {study.study_name} was started with other settings ({', '.join(differ)}): pass those, or "
            "another --study_name and --output_dir."
        )


def _settings_of(study: optuna.Study, wait_s: float) -> dict[str, Any] | None:
    """The study's recorded settings, None when it has none. While it has neither them nor a trial, its creator is
    about to record them: wait up to `wait_s`. The creator writes the search space last and before any trial, so
    the trials are read first: settings read after a trial was seen are complete."""
    deadline = time.monotonic() + wait_s
    while True:
        trials = study.get_trials(deepcopy=False)
        if "space" in (stored := study.user_attrs):
            return stored
        if trials or time.monotonic() >= deadline:
            return None
        time.sleep(SETTINGS_POLL_S)


def _differs(name: str, shared: dict[str, Any], stored: dict[str, Any]) -> bool:
    """A machine path may differ in value (another machine), not in being given (a teacher, or another teacher)."""
    if name in MACHINE_PATHS:
        return (shared.get(name) is None) != (stored.get(name) is None)
    return shared.get(name) != stored.get(name)


def make_objective(primary_metric: str, space: dict, shared: dict[str, Any], output_dir: Path, keep_weights: bool):
    """One trial: the searched values on top of the shared flags, run by the runner in `trials/trial_NNNN/`, scored
    by the task's primary metric on the held-out part."""
    trial_values = {**TRIAL_DEFAULTS, **shared, "overwrite_output_dir": True}

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        run_dir = output_dir / "trials" / f"trial_{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        start = time.perf_counter()
        results = run_runner({**trial_values, **runner_values(params, shared)}, run_dir)
        trial.set_user_attr("wall_s", time.perf_counter() - start)
        if results.get("eval_split") != HELDOUT_SPLIT:
            raise RuntimeError(f"{run_dir}: the runner did not evaluate on the held-out split.")
        if not keep_weights:
            keep_records_only(run_dir)
        return results[f"eval_{primary_metric}"]

    return objective


def fill_queue(study: optuna.Study, n_trials: int) -> None:
    """Queue trials (Optuna's WAITING ones; the sampler picks their settings when one starts) until the study holds
    `n_trials` finished, running or queued ones. The worker that creates a study fills it before the others join."""
    for _ in range(n_trials - count_states(study, TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)):
        study.enqueue_trial({}, user_attrs={QUEUED: True})


def work(study: optuna.Study, objective, n_trials: int, deadline: float | None = None) -> None:
    """Run queued trials until `n_trials` finished, none is queued or running, or `deadline` (monotonic) passed.
    The storage hands each queued trial to one worker; a failed trial is queued again (by its worker, or by the
    heartbeat once its worker died), so the study ends with as many finished trials as were queued. A worker with
    nothing left to start waits for the trials running elsewhere. After `MAX_FAILURES_IN_A_ROW` failures in a row it
    stops with an error."""
    failures = 0
    while deadline is None or time.monotonic() < deadline:
        fail_dead_trials(study)
        if count_states(study, TrialState.COMPLETE) >= n_trials:
            return
        if not count_states(study, TrialState.WAITING):
            if not count_states(study, TrialState.RUNNING):
                return
            time.sleep(study_module.POLL_S)
            continue
        ran: list[optuna.trial.FrozenTrial] = []
        study.optimize(queued_only(objective), n_trials=1, catch=(TrialFailed,), callbacks=[collect_into(ran)])
        if ran[0].state == TrialState.FAIL:
            study.enqueue_trial({}, user_attrs={QUEUED: True})
            failures += 1
            if failures >= MAX_FAILURES_IN_A_ROW:
                raise TrialFailed(f"{failures} trials in a row failed: see their runner.log in the trials folder.")
        elif ran[0].state == TrialState.COMPLETE:
            failures = 0


def collect_into(trials: list):
    return lambda _study, trial: trials.append(trial)


def queued_only(objective):
    """Run `objective` on queued trials (or a dead worker's, queued again) only: a trial Optuna made because another
    worker took the last queued one in between is pruned before it trains."""

    def run(trial: optuna.Trial) -> float:
        if not trial.user_attrs.get(QUEUED):  # a dead worker's trial queued again keeps its user attributes
            raise optuna.TrialPruned("no queued trial left")
        return objective(trial)

    return run


if __name__ == "__main__":
    sys.exit(main())
