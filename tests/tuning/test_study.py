"""The shared storage under sweeps and grids: workers that start together on a new database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.helpers.scripts import repo_env

OPENER = """
import sys, time
from pathlib import Path
from pseudo_kd_hf.tuning.study import load_study, open_storage
url, ready, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
(ready / sys.argv[4]).touch()
while len(list(ready.iterdir())) < count:  # a barrier: every process imported, then all at once
    time.sleep(0.001)
print("created" if load_study(open_storage(url), "shared")[1] else "joined")
"""


@pytest.mark.slow  # six processes importing torch
def test_workers_starting_together_on_a_new_database_all_open_it(tmp_path: Path) -> None:
    """Seen on the CPU grid: of two workers started at once, one died on "table alembic_version already exists"
    while the other created the tables. Every worker must wait for the tables instead; exactly one creates the study
    (the one that records a sweep's settings)."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    env = repo_env()
    ready = tmp_path / "ready"
    ready.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, url, str(ready), "6", str(index)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(6)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 6, "\n".join(outputs)
    assert [study.study_name for study in optuna.get_all_study_summaries(url)] == ["shared"]
    said = sorted(line for output in outputs for line in output.splitlines() if line in ("created", "joined"))
    assert said == ["created"] + ["joined"] * 5, "\n".join(outputs)
