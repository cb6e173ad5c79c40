"""Fixed grids as Optuna studies: every point run exactly once, by any number of workers on any number of machines.

A grid study (e.g. one (task, variant) of the benchmark, with the seeds as its grid) lives in a shared storage like a
sweep. A worker picks the first point that has no finished or running trial and starts a trial of its own for it;
the trial with the lowest number holds a point, and any later trial of the same point is pruned before it trains, so
no point is trained twice. A point whose trial failed is tried again once per worker and sitting. Across studies,
workers go breadth-first (the study with the fewest started points next), so a sitting cut short leaves every study at
the same first points.

Why not Optuna's `GridSampler` with queued trials: its sampler picks points at random and, by its own documentation,
can run a point twice when workers ask together; and a queued (WAITING) trial is claimed without a lock under SQLite,
so two workers could run the very same trial (seen on the H100 grid). Here each worker only ever runs the trial it
created, and trial numbers are handed out under the study's lock, so "the lowest number holds the point" is decided
by the storage. The one wait is for an earlier trial that exists but has not yet recorded its point (the few
milliseconds between Optuna creating a trial and the objective suggesting its values).
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from .study import load_study

RESULT = "result"  # the trial's user attribute holding its run's result (a JSON-able dict with a "score")
POLL_S = 10.0
SETTLE_S = 10.0  # the longest wait for an earlier trial to record its point (its worker may have died in between)
SETTLE_POLL_S = 0.05


class _ClaimedPoint(BaseSampler):
    """Suggests the point the worker chose (`GridStudy.run_next`) instead of choosing one itself."""

    def __init__(self) -> None:
        self.point: dict[str, Any] = {}

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self.point[param_name]


class GridStudy:
    """One study whose trials are the points of `grid` (name -> values), each run by `run(params) -> result`."""

    def __init__(self, storage: RDBStorage, name: str, grid: dict[str, Sequence[Any]]) -> None:
        self.name = name
        self.grid = {key: list(values) for key, values in grid.items()}
        self.points = list(itertools.product(*self.grid.values()))
        self.sampler = _ClaimedPoint()
        self.study = load_study(storage, name, self.sampler)

    def point_of(self, trial: FrozenTrial) -> tuple | None:
        """The grid point a trial runs (None until its objective suggested it)."""
        return tuple(trial.params[key] for key in self.grid) if all(key in trial.params for key in self.grid) else None

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
        """Point -> result of its finished trial."""
        return {self.point_of(trial): trial.user_attrs[RESULT] for trial in self.trials(TrialState.COMPLETE)}

    def run_next(self, run: Callable[[dict[str, Any]], dict[str, Any] | None], retried: set) -> FrozenTrial | None:
        """Start a trial for the first pending point and run it; return the trial (None: no point left for this
        worker). A failed run marks its trial FAIL, with the error in the user attribute `error`; it is not raised.
        A trial that finds its point held by an earlier one is PRUNED, with `duplicate_of` naming that trial."""
        pending, tried = self.pending()
        pending = [point for point in pending if (self.name, point) not in retried]
        if not pending:
            return None
        point = ([point for point in pending if point not in tried] or pending)[0]  # untried points first
        if point in tried:
            retried.add((self.name, point))
        self.sampler.point = dict(zip(self.grid, point, strict=True))
        ran: list[FrozenTrial] = []
        self.study.optimize(
            self._objective(run), n_trials=1, catch=(RuntimeError,), callbacks=[lambda _, trial: ran.append(trial)]
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

    def _objective(self, run: Callable[[dict[str, Any]], dict[str, Any] | None]):
        def objective(trial: optuna.Trial) -> float:
            params = {key: trial.suggest_categorical(key, values) for key, values in self.grid.items()}
            holder = self.holder(trial, tuple(params.values()))
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

    def wait(self) -> None:
        """Until no trial of the study runs anywhere (a dead worker's trial is failed after its grace period)."""
        while self.trials(TrialState.RUNNING):
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
        trial = study.run_next(runs[study], retried)
        if trial is None:
            active.remove(study)
        elif trial.state == TrialState.FAIL:
            failures.append(f"{study.name} {trial.params}: {trial.user_attrs.get('error', 'failed')}")
    return failures
