"""Optuna studies in a shared SQL storage, and runner runs as trials: the engine under the sweep and the benchmark.

Any number of processes, on one machine or many, can work on one study by opening the same storage URL: Optuna's
RDB storage hands out trial numbers atomically, so two workers never take the same trial. Each worker beats a
heartbeat for its running trial; a trial whose worker died (killed, machine lost) stops beating and is marked
FAIL by the next worker that starts or asks for a trial (`optuna.storages.fail_stale_trials`), so it is recorded,
not lost, and never counts as finished.

Each trial runs the runner in its own process (`python -m pseudo_kd_hf CONFIG`): a crash or an out-of-memory kill
ends that trial, not the worker, and every trial starts with fresh memory and a fresh CUDA context.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import yaml
from optuna.storages import RDBStorage, fail_stale_trials

from ..errors import UsageError
from ..suite import ALL_RESULTS

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 60
GRACE_PERIOD_S = 180
POLL_S = 10.0  # how often a waiting worker looks at the other workers' running trials
WAIT_NOTE_S = 600.0  # how often it says which trials it waits for
STORAGE_ATTEMPTS = 3
SQLITE_LOCK_TIMEOUT_S = 120  # how long a SQLite writer waits for the other workers' lock before failing
TRIAL_CONFIG = "trial.yaml"
TRIAL_LOG = "runner.log"
TRIAL_RECORDS = (TRIAL_CONFIG, TRIAL_LOG, ALL_RESULTS, "train_results.json", "eval_results.json", "trainer_state.json")


class TrialFailed(RuntimeError):
    """The runner failed in a trial (not for bad input): the trial is marked FAIL and the worker goes on."""


def check_storage_url(url: str) -> None:
    """A `--storage` value that is not a database URL is bad input (one line), not a SQLAlchemy traceback."""
    try:
        sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UsageError(
            f"--storage {url} is not a database URL: pass e.g. sqlite:///study.db or postgresql://user@host/db."
        ) from None


def open_storage(url: str, heartbeat_interval: int = HEARTBEAT_INTERVAL_S, grace_period: int = GRACE_PERIOD_S):
    """An RDB storage with heartbeats; SQLite waits for the lock (other workers) instead of failing at once, and
    workers that start together on a new storage retry while one of them creates its tables."""
    check_storage_url(url)
    engine_kwargs = {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT_S}} if url.startswith("sqlite") else None
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"engine_kwargs": engine_kwargs, "heartbeat_interval": heartbeat_interval, "grace_period": grace_period}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable since 2.9
        for attempt in range(1, STORAGE_ATTEMPTS):
            try:
                return RDBStorage(url, **kwargs)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
                # Another worker created the tables at the same instant ("UNIQUE constraint failed", "table ...
                # already exists"); by the next attempt they are there. Anything else fails again, then raises.
                time.sleep(attempt)
        return RDBStorage(url, **kwargs)  # the last attempt raises what it meets


def load_study(storage: RDBStorage, name: str) -> tuple[optuna.Study, bool]:
    """Create the study or join it, and fail the trials whose workers stopped beating. Also returns whether this
    call created it: study names are unique in the storage, so of workers that start together exactly one did."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study, created = optuna.create_study(study_name=name, storage=storage, direction="maximize"), True
    except optuna.exceptions.DuplicatedStudyError:
        study, created = optuna.load_study(study_name=name, storage=storage), False
    _fail_dead_trials(study)
    return study, created


def _fail_dead_trials(study: optuna.Study) -> None:
    """Mark FAIL the running trials whose heartbeat is older than the storage's grace period."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)


def wait_for_running(study: optuna.Study, deadline: float | None = None) -> None:
    """Until no trial of `study` runs anywhere, or `deadline` (monotonic) passed: the other workers' trials end, and
    a dead worker's is failed once its heartbeat is older than the grace period. A worker killed in the milliseconds
    between creating a trial and its first heartbeat leaves a trial Optuna cannot tell from one about to beat; the
    warning every `WAIT_NOTE_S` names the trials waited for, so a person can fail such a one (e.g. with
    `RDBStorage.set_trial_state_values`)."""
    noted = time.monotonic()
    while running := study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if deadline is not None and time.monotonic() > deadline:
            return
        if time.monotonic() - noted > WAIT_NOTE_S:
            numbers = ", ".join(str(trial.number) for trial in running)
            logger.warning(f"study {study.study_name}: still waiting for trial(s) {numbers}, running elsewhere.")
            noted = time.monotonic()
        time.sleep(POLL_S)
        _fail_dead_trials(study)


def count_states(study: optuna.Study, *states: optuna.trial.TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def run_runner(values: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """Run `pseudo-kd-glue` on `values` (flag name -> value, `output_dir` = `run_dir`) in a fresh process.

    The values go through a config file, `run_dir/trial.yaml` (a record of the run); the output to
    `run_dir/runner.log`. Returns `all_results.json`. Raises `UsageError` with the runner's own message when it
    refused its input (every trial would), `TrialFailed` when it failed otherwise.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / TRIAL_CONFIG
    config.write_text(yaml.safe_dump({**values, "output_dir": str(run_dir)}, sort_keys=False), encoding="utf-8")
    log = run_dir / TRIAL_LOG
    with open(log, "w", encoding="utf-8") as stream:
        command = [sys.executable, "-m", "pseudo_kd_hf", str(config)]
        code = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, check=False).returncode
    if code == 2:
        errors = [line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("error: ")]
        raise UsageError((errors[-1] if errors else f"the runner refused {config}").removeprefix("error: "))
    if code != 0:
        raise TrialFailed(f"the runner failed with exit code {code}: see {log}")
    return json.loads((run_dir / ALL_RESULTS).read_text(encoding="utf-8"))


def keep_records_only(run_dir: Path) -> None:
    """Leave a finished trial's folder with its record (config, log, results, trainer state): its model, tokenizer
    and training arguments are not needed to compare settings, and a sweep's add up to gigabytes."""
    for path in run_dir.iterdir():
        if path.is_file() and path.name not in TRIAL_RECORDS:
            path.unlink()
