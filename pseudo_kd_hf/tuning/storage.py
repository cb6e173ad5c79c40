"""Where studies live: an Optuna journal file (one machine, or a shared disk) or a database URL (many machines).

`--storage` is a journal file path (default: one in the output folder) or an SQLAlchemy URL. A journal is Optuna's
`JournalStorage` on a `JournalFileBackend`: an append-only text log, written under Optuna's file lock (a symlink
made atomically, safe across processes and on NFS), and replayed in the same order by every reader, so every
process sees one history. A URL opens Optuna's `RDBStorage` (PostgreSQL, MySQL; `sqlite:///` still opens the
studies of older versions). Both hand out trial numbers and pop a queued (WAITING) trial atomically: the journal's
replay lets the first RUNNING record of a trial win, the database takes the trial's row lock (`SELECT ... FOR
UPDATE`; SQLite ignores it, so SQLite is for one worker only). Trials beat a heartbeat; a trial whose worker died
is failed after the grace period and queued again with its settings (`RetryHeartbeatStaleTrialCallback`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from ..arguments import UsageError

HEARTBEAT_INTERVAL_S = 60
GRACE_PERIOD_S = 180
CONNECT_TIMEOUT_S = 5
HEARTBEAT_ATTR = "heartbeat"  # a journal trial's system attribute: the time.time() of its last beat
TABLE_ATTEMPTS = 3


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with heartbeats. Optuna (5.0) gives heartbeats, and so `fail_stale_trials` and the
    retry of a dead worker's trial, only to `RDBStorage`; here each beat is a trial system attribute (wall clock:
    machines sharing a disk need synchronised clocks, as NFS itself does). A finished trial is not failed again, so
    of workers that find one stale trial together only the first queues its retry."""

    def __init__(
        self, path: Path, heartbeat_interval: int, grace_period: int, stale_callback: Callable | None = None
    ) -> None:
        super().__init__(JournalFileBackend(str(path)))
        self.heartbeat_interval, self.grace_period, self.stale_callback = (
            heartbeat_interval,
            grace_period,
            stale_callback,
        )

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        now = time.time()
        beats = {trial._trial_id: trial.system_attrs.get(HEARTBEAT_ATTR) for trial in running}
        return [trial_id for trial_id, beat in beats.items() if beat is not None and now - beat > self.grace_period]

    def get_heartbeat_interval(self) -> int:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_callback

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        if state.is_finished() and self.get_trial(trial_id).state.is_finished():
            raise optuna.exceptions.UpdateFinishedTrialError(f"trial {trial_id} has already finished")
        return super().set_trial_state_values(trial_id, state, values)


def is_url(storage: str) -> bool:
    return "://" in storage


def open_storage(
    storage: str,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int = GRACE_PERIOD_S,
    stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    requeue_stale: bool = True,
) -> BaseStorage:
    """The journal file or database at `storage` (`--storage` as typed), with heartbeats; a dead worker's trial is
    queued again (when `requeue_stale`: a grid makes its own trials), then `stale_callback` runs on it. Bad input
    (no database there, no driver) is one `UsageError`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback()

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        if requeue_stale:
            retry(study, trial)
        if stale_callback is not None:
            stale_callback(study, trial)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable since 2.9
        if not is_url(storage):
            path = Path(storage)
            if path.is_dir():
                raise UsageError(f"--storage {storage} is a folder: pass a journal file or a database URL.")
            path.parent.mkdir(parents=True, exist_ok=True)
            return HeartbeatJournalStorage(path, heartbeat_interval, grace_period, on_stale)
        url = _checked_url(storage)
        kwargs = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period}
        return _rdb_storage(url, {**kwargs, "heartbeat_stale_trial_callback": on_stale})


def _checked_url(storage: str) -> sqlalchemy.URL:
    """`storage` as a URL whose server answers within `CONNECT_TIMEOUT_S`, else one line naming `--storage`."""
    try:
        url = sqlalchemy.engine.make_url(storage)
    except sqlalchemy.exc.ArgumentError:
        raise UsageError(
            f"--storage {storage} is not a database URL: pass a journal file, or e.g. "
            "postgresql+psycopg://user:password@host:5432/db."
        ) from None
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not Path(database).parent.is_dir():
            raise UsageError(f"--storage {shown}: no folder {Path(database).parent}.")
        return url
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    except sqlalchemy.exc.NoSuchModuleError:
        raise UsageError(f"--storage {shown}: no such database dialect {url.drivername}.") from None
    except ImportError as error:
        raise UsageError(
            f"--storage {shown}: its driver {error.name} is not installed: pip install 'pseudo-kd-hf[sweep]' "
            "(psycopg, for postgresql+psycopg://), or name the driver you have (e.g. mysql+pymysql://)."
        ) from None
    try:
        engine.connect().close()
    except sqlalchemy.exc.DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        raise UsageError(
            f"--storage {shown}: cannot connect ({reason}): check its host, port, user and database."
        ) from None
    finally:
        engine.dispose()
    return url


def _rdb_storage(url: sqlalchemy.URL, kwargs: dict) -> RDBStorage:
    """Optuna's RDB storage. Its tables are made with plain CREATE TABLE, which fails in a worker that starts at the
    same instant as another one making them (PostgreSQL: duplicate key in pg_type; SQLite: table already exists):
    the next attempt finds them."""
    text = url.render_as_string(hide_password=False)
    engine_kwargs = None if url.get_backend_name() == "sqlite" else {"connect_args": {"connect_timeout": 30}}
    for attempt in range(1, TABLE_ATTEMPTS):
        try:
            return RDBStorage(text, engine_kwargs=engine_kwargs, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):
            time.sleep(attempt)
    return RDBStorage(text, engine_kwargs=engine_kwargs, **kwargs)  # the last attempt raises what it meets
