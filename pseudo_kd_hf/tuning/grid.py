"""Fixed grids as Optuna studies: every point run exactly once, by any number of workers on any number of machines.

A grid study (e.g. one (task, variant) of the benchmark, with the seeds as its grid) lives in a shared storage like a
sweep. A worker picks the first point that has no finished or running trial, queues it (`enqueue_trial`) and runs
it; a point whose trial failed is queued again once per worker and sitting. Two workers that queue the same point at
the same instant both start a trial, and the later one is pruned as a duplicate before it trains, so no point is
trained twice. Across studies, workers go breadth-first (the study with the fewest started points next), so a sitting
cut short leaves every study at the same first points.
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.samplers import GridSampler
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from .study import load_study

logger = logging.getLogger(__name__)

RESULT = "result"  # the trial's user attribute holding its run's result (a JSON-able dict with a "score")
POLL_S = 10.0


class _QueuedGrid(GridSampler):
    """GridSampler over points the worker queues itself; it does not stop the study (the worker decides that)."""

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        return None


class GridStudy:
    """One study whose trials are the points of `grid` (name -> values), each run by `run(params) -> result`."""

    def __init__(self, storage: RDBStorage, name: str, grid: dict[str, Sequence[Any]]) -> None:
        self.name = name
        self.grid = {key: list(values) for key, values in grid.items()}
        self.points = list(itertools.product(*self.grid.values()))
        self.study = load_study(storage, name, _QueuedGrid(self.grid))

    def point_of(self, trial: FrozenTrial) -> tuple | None:
        params = trial.params or trial.system_attrs.get("fixed_params") or {}
        return tuple(params[key] for key in self.grid) if all(key in params for key in self.grid) else None

    def trials(self, *states: TrialState) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def pending(self) -> tuple[list[tuple], set[tuple]]:
        """(points with no finished or running/queued trial, in grid order; the points that were tried before)."""
        taken = {self.point_of(t) for t in self.trials(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)}
        tried = {self.point_of(trial) for trial in self.trials(TrialState.FAIL)}
        return [point for point in self.points if point not in taken], tried

    def started(self) -> int:
        return len(self.trials(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))

    def results(self) -> dict[tuple, dict[str, Any]]:
        """Point -> result of its finished trial."""
        return {self.point_of(trial): trial.user_attrs[RESULT] for trial in self.trials(TrialState.COMPLETE)}

    def run_next(self, run: Callable[[dict[str, Any]], dict[str, Any] | None], retried: set) -> FrozenTrial | None:
        """Queue one pending point and run the study's oldest queued trial (usually that point); return the trial
        (None: no point left for this worker). A failed run marks its trial FAIL, with the error in the user
        attribute `error`; it is not raised."""
        pending, tried = self.pending()
        pending = [point for point in pending if (self.name, point) not in retried]
        if pending:
            point = ([point for point in pending if point not in tried] or pending)[0]  # untried points first
            if point in tried:
                retried.add((self.name, point))
            self.study.enqueue_trial(dict(zip(self.grid, point, strict=True)))
        elif not self.trials(TrialState.WAITING):
            return None
        # else: a point queued by a worker that died before running it (or is about to): run it here
        ran: list[FrozenTrial] = []
        self.study.optimize(
            self._objective(run), n_trials=1, catch=(RuntimeError,), callbacks=[lambda _, trial: ran.append(trial)]
        )
        return ran[0]

    def _objective(self, run: Callable[[dict[str, Any]], dict[str, Any] | None]):
        def objective(trial: optuna.Trial) -> float:
            params = {key: trial.suggest_categorical(key, values) for key, values in self.grid.items()}
            point = tuple(params.values())
            for other in self.trials(TrialState.COMPLETE, TrialState.RUNNING):
                if other.number < trial.number and self.point_of(other) == point:
                    trial.set_user_attr("duplicate_of", other.number)
                    raise optuna.TrialPruned(f"{self.name} {params}: trial {other.number} runs it")
            try:
                result = run(params)
                if result is None:
                    raise RuntimeError("not started: the time budget ran out")
            except RuntimeError as error:
                trial.set_user_attr("error", str(error))
                raise
            trial.set_user_attr(RESULT, result)
            return result["score"]

        return objective

    def wait(self) -> None:
        """Until no trial of the study runs anywhere (a dead worker's trial is failed after its grace period)."""
        while self.trials(TrialState.RUNNING, TrialState.WAITING):
            time.sleep(POLL_S)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(self.study)


def work(runs: dict[GridStudy, Callable], deadline: float | None) -> list[str]:
    """Run the studies' pending points breadth-first until none is left or `deadline` (monotonic) passed.

    `runs` maps each study to its run function. Returns one line per trial of this worker that failed.
    """
    failures: list[str] = []
    retried: set = set()
    active = list(runs)
    while active and (deadline is None or time.monotonic() < deadline):
        study = min(active, key=GridStudy.started)
        try:
            trial = study.run_next(runs[study], retried)
        except (ValueError, AssertionError, optuna.exceptions.UpdateFinishedTrialError) as error:
            if not _lost_claim_race(error):
                raise
            # SQLite does not lock a queued trial between reading and claiming it: two workers can run the same
            # trial, and the second to finish cannot report it. The first one's result stands; carry on.
            logger.warning(f"{study.name}: another worker finished the same trial first ({error})")
            continue
        if trial is None:
            active.remove(study)
        elif trial.state == TrialState.FAIL:
            failures.append(f"{study.name} {trial.params}: {trial.user_attrs.get('error', 'failed')}")
    return failures


def _lost_claim_race(error: BaseException) -> bool:
    """Whether optuna refused to report a trial because another worker had already finished it: its
    `UpdateFinishedTrialError`, "Cannot tell a COMPLETE trial", or the assertion its optimize loop ends in then."""
    return (
        isinstance(error, optuna.exceptions.UpdateFinishedTrialError)
        or (isinstance(error, ValueError) and str(error).startswith("Cannot tell a"))
        or (isinstance(error, AssertionError) and str(error) == "Should not reach.")
    )
