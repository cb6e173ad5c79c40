"""Fixed grids as Optuna studies: every point run exactly once, by any number of workers on any number of machines.

A grid study (e.g. one (task, variant) of the benchmark, with the seeds as its grid) lives in a shared storage like a
sweep. A worker picks the first point that has no finished or running trial and starts a trial of its own for it;
the trial with the lowest number holds a point, and any later trial of the same point is pruned before it trains, so
no point is trained twice. A point whose trial failed is tried again once per worker and sitting; a worker with no
point left waits for the points other workers run, so one whose worker died (failed after the grace period) is run
again. Across studies, workers go breadth-first (the study with the fewest started points next), so a sitting cut
short leaves every study at the same first points. A trial records its point as a user attribute, not as Optuna
parameters: a grid that grows (more seeds in a later sitting) is the same study with more points, where Optuna
would refuse categorical parameters whose choices changed.

Why not Optuna's `GridSampler` or queued trials (`enqueue_trial`), although both storages pop a queued trial
atomically (`tuning.storage`): `GridSampler` picks points at random and, by its own documentation, can run a point
twice when workers ask together; and Optuna has no atomic "queue this point unless it is queued", so workers that
start a grid together, or a grid that grows, would queue a point twice. Trial numbers, though, are handed out
atomically, so "the lowest number holds the point" is decided by the storage; before it trains, a worker waits
only for an earlier trial that exists but has not yet recorded its point (the milliseconds between Optuna creating a
trial and the objective recording it).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from .study import load_study, wait_for_running

RESULT = "result"  # the trial's user attribute holding its run's result (a JSON-able dict with a "score")
POINT = "point"  # the trial's user attribute naming its grid point (name -> value)
SETTLE_S = 10.0  # the longest wait for an earlier trial to record its point (its worker may have died in between)
SETTLE_POLL_S = 0.05


class GridStudy:
    """One study whose trials are the points of `grid` (name -> values), each run by `run(params) -> result`."""

    def __init__(self, storage: BaseStorage, name: str, grid: dict[str, Sequence[Any]]) -> None:
        self.name = name
        self.grid = {key: list(values) for key, values in grid.items()}
        self.points = list(itertools.product(*self.grid.values()))
        self.study, _ = load_study(storage, name)

    def point_of(self, trial: FrozenTrial) -> tuple | None:
        """The grid point a trial runs (None until its objective recorded it; a trial of an older version of this
        module holds it in its Optuna parameters)."""
        values = trial.user_attrs.get(POINT, trial.params)
        return tuple(values[key] for key in self.grid) if all(key in values for key in self.grid) else None

    def trials(self, *states: TrialState) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def pending(self) -> tuple[list[tuple], set[tuple]]:
        """(points with no finished or running trial, in grid order; the points that were tried before)."""
        taken = {self.point_of(trial) for trial in self.trials(TrialState.COMPLETE, TrialState.RUNNING)}
        tried = {self.point_of(trial) for trial in self.trials(TrialState.FAIL)}
        return [point for point in self.points if point not in taken], tried

    def started(self) -> int:
        return len(self.trials(TrialState.COMPLETE, TrialState.RUNNING))

    def results(self) -> dict[tuple, dict[str, Any]]:
        """Point of the grid -> result of its finished trial (points of an earlier, other grid left out)."""
        finished = {self.point_of(trial): trial.user_attrs[RESULT] for trial in self.trials(TrialState.COMPLETE)}
        return {point: finished[point] for point in self.points if point in finished}

    def next_point(self, retried: set) -> tuple[tuple, bool] | None:
        """(the first pending point this worker may run, untried ones first; whether it failed before), or None."""
        pending, tried = self.pending()
        pending = [point for point in pending if (self.name, point) not in retried]
        if not pending:
            return None
        point = ([point for point in pending if point not in tried] or pending)[0]
        return point, point in tried

    def run_next(self, run: Callable[[dict[str, Any]], dict[str, Any] | None], retried: set) -> FrozenTrial | None:
        """Start a trial for `next_point` and run it; return the trial (None: no point left for this worker).
        A failed run marks its trial FAIL, with the error in the user attribute `error`; it is not raised.
        A trial that finds its point held by an earlier one is PRUNED, with `duplicate_of` naming that trial."""
        chosen = self.next_point(retried)
        if chosen is None:
            return None
        point, failed_before = chosen
        if failed_before:
            retried.add((self.name, point))
        ran: list[FrozenTrial] = []
        self.study.optimize(
            self._objective(run, point),
            n_trials=1,
            catch=(RuntimeError,),
            callbacks=[lambda _, trial: ran.append(trial)],
        )
        return ran[0]

    def holder(self, trial: optuna.Trial, point: tuple) -> FrozenTrial | None:
        """The trial that holds `point` if not `trial`: a finished one, or a running one with a lower number. Earlier
        trials that have not recorded their point yet are waited for (at most `SETTLE_S`)."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            others = self.trials(TrialState.COMPLETE, TrialState.RUNNING)
            others = [other for other in others if other.number != trial.number]
            for other in others:
                earlier = other.state == TrialState.COMPLETE or other.number < trial.number
                if earlier and self.point_of(other) == point:
                    return other
            unsettled = any(other.number < trial.number and self.point_of(other) is None for other in others)
            if not unsettled or time.monotonic() > deadline:
                return None
            time.sleep(SETTLE_POLL_S)

    def _objective(self, run: Callable[[dict[str, Any]], dict[str, Any] | None], point: tuple):
        params = dict(zip(self.grid, point, strict=True))

        def objective(trial: optuna.Trial) -> float:
            trial.set_user_attr(POINT, params)
            holder = self.holder(trial, point)
            if holder is not None:
                trial.set_user_attr("duplicate_of", holder.number)
                raise optuna.TrialPruned(f"{self.name} {params}: trial {holder.number} runs it")
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

    def wait(self, deadline: float | None = None) -> None:
        """Until no trial of the study runs anywhere (a dead worker's trial is failed after its grace period), or
        `deadline` (monotonic) passed."""
        wait_for_running(self.study, deadline)


def work(runs: dict[GridStudy, Callable], deadline: float | None) -> list[str]:
    """Run the studies' pending points breadth-first until none is left or `deadline` (monotonic) passed. With none
    left to start, wait for the points running elsewhere, then run those whose worker died (their trial failed).

    `runs` maps each study to its run function. Returns one line per trial of this worker that failed.
    """
    failures: list[str] = []
    retried: set = set()
    active = list(runs)
    while active and (deadline is None or time.monotonic() < deadline):
        study = min(active, key=GridStudy.started)
        trial = study.run_next(runs[study], retried)
        if trial is None:
            active.remove(study)
            if not active and (deadline is None or time.monotonic() < deadline):
                for study in runs:
                    study.wait(deadline)
                active = [study for study in runs if study.next_point(retried) is not None]
        elif trial.state == TrialState.FAIL:
            failures.append(f"{study.name} {trial.user_attrs[POINT]}: {trial.user_attrs.get('error', 'failed')}")
    return failures
