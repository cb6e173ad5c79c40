"""The storages under sweeps and grids: the committed journals, a bad `--storage`, queued trials popped once, workers
that start together, and runners that die with their worker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from pseudo_kd_hf.tuning import sweep
from pseudo_kd_hf.tuning.storage import open_storage
from tests.helpers.scripts import REPO, repo_env
from tests.tuning.postgres import free_port
from tests.tuning.workers import process_gone, start_sweep_worker, sweep_flags, wait_for_file

RECORDED = Path(__file__).parent / "data" / "committed_studies.json"


def test_the_committed_studies_are_journals_holding_the_old_databases_trials() -> None:
    """Moved from SQLite with `optuna.copy_study`: every trial (number, state, value, settings, record) as the old
    `study.db` held it, and the sweep's default storage in each folder is the journal, so a rerun continues it."""
    recorded = json.loads(RECORDED.read_text())
    assert len(recorded) == 12
    for folder, old in recorded.items():
        folder = REPO / folder
        assert not (folder / "study.db").exists() and sweep.default_storage(folder) == str(folder / "study.journal")
        study = optuna.load_study(study_name=old["study_name"], storage=open_storage(sweep.default_storage(folder)))
        assert study.user_attrs == old["settings"]
        trials = [
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "user_attrs": t.user_attrs,
            }
            for t in study.trials
        ]
        assert trials == old["trials"], folder


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:{port}/db", "postgresql://postgres@nohost.invalid/db"]
)
def test_a_database_that_does_not_answer_fails_within_seconds_on_one_line(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong port or host: exit 2 and one `error:` line naming --storage, in seconds (not a driver traceback)."""
    pytest.importorskip("psycopg", reason="no PostgreSQL driver (psycopg): pip install -e '.[test]'")
    url = url.format(port=free_port())
    started = time.monotonic()
    assert sweep.main(["--task_name", "rte", "--output_dir", str(tmp_path), "--storage", url]) == 2
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --storage {url}: cannot connect"), err


POPPER = """
import sys, time
from pathlib import Path
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
storage, ready, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
if "://" not in storage:
    storage = JournalStorage(JournalFileBackend(storage))
study = optuna.load_study(study_name="queue", storage=storage)
(ready / sys.argv[4]).touch()
while len(list(ready.iterdir())) < count:  # a barrier: all start popping at once
    time.sleep(0.001)
while True:
    trial = study.ask()
    if not trial.user_attrs.get("queued"):  # none left: Optuna made a new trial
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        break
    print("popped", trial.number, flush=True)
    study.tell(trial, 1.0)
"""


@pytest.mark.slow  # four processes importing optuna
@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_each_queued_trial_is_popped_by_one_worker(backend: str, tmp_path: Path, request) -> None:
    """Optuna's journal (replay: the first RUNNING record wins) and RDB storage (SELECT ... FOR UPDATE) hand each
    WAITING trial to exactly one of the workers that ask at once."""
    storage = str(tmp_path / "q.journal") if backend == "journal" else request.getfixturevalue("postgres_url")
    study = optuna.create_study(study_name="queue", storage=open_storage(storage))
    for _ in range(40):
        study.enqueue_trial({}, user_attrs={"queued": True})
    ready = tmp_path / "ready"
    ready.mkdir()
    poppers = [
        subprocess.Popen([sys.executable, "-c", POPPER, storage, str(ready), "4", str(index)], stdout=subprocess.PIPE)
        for index in range(4)
    ]
    outputs = [popper.communicate(timeout=300)[0].decode() for popper in poppers]
    assert [popper.returncode for popper in poppers] == [0] * 4, outputs
    popped = [int(line.split()[1]) for output in outputs for line in output.splitlines() if line.startswith("popped")]
    assert sorted(popped) == list(range(40))  # every queued trial once, none twice
    assert sum(1 for output in outputs if "popped" in output) > 1  # the workers did share the queue


OPENER = """
import sys, time
from pathlib import Path
from pseudo_kd_hf.tuning.storage import open_storage
from pseudo_kd_hf.tuning.study import load_study
storage, ready, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
(ready / sys.argv[4]).touch()
while len(list(ready.iterdir())) < count:  # a barrier: every process imported, then all at once
    time.sleep(0.001)
print("created" if load_study(open_storage(storage), "shared")[1] else "joined")
"""


@pytest.mark.slow  # four processes importing torch
@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_workers_starting_together_on_a_new_storage_all_open_it(backend: str, tmp_path: Path, request) -> None:
    """Every worker opens a brand-new storage (a database's tables made at the same instant); exactly one creates
    the study (the one that queues a sweep's trials and records its settings)."""
    storage = str(tmp_path / "new.journal") if backend == "journal" else request.getfixturevalue("postgres_url")
    ready = tmp_path / "ready"
    ready.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, storage, str(ready), "4", str(index)],
            env=repo_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(4)
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, "\n".join(outputs)
    said = sorted(line for output in outputs for line in output.splitlines() if line in ("created", "joined"))
    assert said == ["created"] + ["joined"] * 3, "\n".join(outputs)


@pytest.mark.slow  # a worker process importing torch
def test_a_stopped_worker_takes_its_runner_and_its_weights_with_it(tmp_path: Path) -> None:
    """SIGTERM to a worker mid-trial: it kills the runner's process group and exits; the trial folder keeps its
    record only, no half-trained weights."""
    worker = start_sweep_worker(sweep_flags(tmp_path, str(tmp_path / "study.journal"), 1), sleep_s=600)
    runner = int(wait_for_file(tmp_path / "trials" / "trial_0000" / "runner.pid"))
    worker.send_signal(signal.SIGTERM)
    output = worker.communicate(timeout=60)[0]
    assert worker.returncode != 0, output
    assert process_gone(runner)
    assert not (tmp_path / "trials" / "trial_0000" / "model.safetensors").exists()
