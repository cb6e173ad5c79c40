"""Optuna studies, and runner runs as trials: the engine under the sweep and the benchmark.

Any number of processes, on one machine or many, work on one study by opening the same storage (`tuning.storage`).
Each trial runs the runner in its own process (`python -m pseudo_kd_hf CONFIG`): a crash or an out-of-memory kill
ends that trial, not the worker, and every trial starts with fresh memory and a fresh CUDA context. The runner
lives no longer than its worker: it runs in its own process group, gets SIGKILL from the kernel when the worker
dies (Linux), and the worker kills the group when it is stopped (SIGTERM, SIGINT).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import BaseStorage, fail_stale_trials

from ..errors import UsageError
from ..suite import ALL_RESULTS

TRIAL_CONFIG = "trial.yaml"
TRIAL_LOG = "runner.log"
TRIAL_RECORDS = (TRIAL_CONFIG, TRIAL_LOG, ALL_RESULTS, "train_results.json", "eval_results.json", "trainer_state.json")
RUNNER = (sys.executable, "-m", "pseudo_kd_hf")
PR_SET_PDEATHSIG = 1
POLL_S = 10.0  # how often a waiting worker looks at the trials running elsewhere


class TrialFailed(RuntimeError):
    """The runner failed in a trial (not for bad input): the trial is marked FAIL and the worker goes on."""


def load_study(storage: BaseStorage, name: str) -> tuple[optuna.Study, bool]:
    """Create the study or join it, and fail the trials whose workers stopped beating. Also returns whether this
    call created it: study names are unique in the storage, so of workers that start together exactly one did."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study, created = optuna.create_study(study_name=name, storage=storage, direction="maximize"), True
    except optuna.exceptions.DuplicatedStudyError:
        study, created = optuna.load_study(study_name=name, storage=storage), False
    fail_dead_trials(study)
    return study, created


def fail_dead_trials(study: optuna.Study) -> None:
    """Mark FAIL (and queue again) the running trials whose heartbeat is older than the storage's grace period."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)


def wait_for_running(study: optuna.Study, deadline: float | None = None) -> None:
    """Until no trial of `study` runs anywhere, or `deadline` (monotonic) passed: a dead worker's trial is failed
    (and queued again) once its heartbeat is older than the grace period."""
    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if deadline is not None and time.monotonic() > deadline:
            return
        time.sleep(POLL_S)
        fail_dead_trials(study)


def count_states(study: optuna.Study, *states: optuna.trial.TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def run_runner(values: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """Run `pseudo-kd-glue` on `values` (flag name -> value, `output_dir` = `run_dir`) in a fresh process.

    The values go through a config file, `run_dir/trial.yaml` (a record of the run); the output to
    `run_dir/runner.log`. Returns `all_results.json`. Raises `UsageError` with the runner's own message when it
    refused its input (every trial would), `TrialFailed` when it failed otherwise; a failed or stopped run leaves
    only its record (no half-trained weights).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / TRIAL_CONFIG
    config.write_text(yaml.safe_dump({**values, "output_dir": str(run_dir)}, sort_keys=False), encoding="utf-8")
    log = run_dir / TRIAL_LOG
    try:
        with open(log, "w", encoding="utf-8") as stream:
            code = run_in_own_group([*RUNNER, str(config)], stream)
        if code == 2:
            errors = [line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("error: ")]
            raise UsageError((errors[-1] if errors else f"the runner refused {config}").removeprefix("error: "))
        if code != 0:
            raise TrialFailed(f"the runner failed with exit code {code}: see {log}")
    except BaseException:
        keep_records_only(run_dir)
        raise
    return json.loads((run_dir / ALL_RESULTS).read_text(encoding="utf-8"))


def _die_with_parent(parent: int) -> None:
    """In the child before exec: its own process group, and SIGKILL from the kernel when the worker dies (Linux)."""
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(1)


def run_in_own_group(command: list[str], stream) -> int:
    """Run `command` to its end and return its exit code; the runner and its children die with this worker."""
    parent = os.getpid()
    process = subprocess.Popen(
        command, stdout=stream, stderr=subprocess.STDOUT, preexec_fn=lambda: _die_with_parent(parent)
    )
    with _kill_group_on_stop(process.pid):
        try:
            return process.wait()
        finally:
            if process.poll() is None:  # an exception in the wait (a signal): the group goes too
                _kill_group(process.pid)
                process.wait()


@contextlib.contextmanager
def _kill_group_on_stop(group: int) -> Iterator[None]:
    """While the runner runs: SIGTERM or SIGINT to this worker kills the runner's group, then stops the worker as
    the signal would have (KeyboardInterrupt, or exit 143)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return

    def stop(signum: int, _frame) -> None:
        _kill_group(group)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def keep_records_only(run_dir: Path) -> None:
    """Leave a trial's folder with its record (config, log, results, trainer state): its model, tokenizer,
    checkpoints and training arguments are not needed to compare settings, and a sweep's add up to gigabytes."""
    for path in run_dir.iterdir():
        if path.name in TRIAL_RECORDS:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def forget_weights_of(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A dead worker's trial (failed after its grace period): its folder, where this machine sees it, keeps only
    its record."""
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir and Path(run_dir).is_dir():
        keep_records_only(Path(run_dir))
