"""Sweep workers as separate processes for the multi-worker tests, their trials run by the fake runner (fast, no
model) instead of `python -m pseudo_kd_hf`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.scripts import repo_env

FAKE_RUNNER = Path(__file__).parent / "fake_runner.py"
SWEEP_WORKER = """
import sys
from pseudo_kd_hf.tuning import study
study.RUNNER = (sys.executable, sys.argv[1])
from pseudo_kd_hf.tuning.sweep import main
sys.exit(main(sys.argv[2:]))
"""


def sweep_flags(output_dir: Path, storage: str, n_trials: int, *extra: str) -> list[str]:
    """One study `shared` with a 1 s heartbeat and a 3 s grace period."""
    flags = ["--task_name", "rte", "--output_dir", output_dir, "--storage", storage, "--study_name", "shared"]
    flags += ["--n_trials", n_trials, "--heartbeat_interval", "1", "--grace_period", "3", *extra]
    return [str(flag) for flag in flags]


def start_sweep_worker(flags: list[str], sleep_s: float = 0.2, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """A worker whose runners sleep `sleep_s`; `prefix` runs it elsewhere (e.g. `ip netns exec NAME`)."""
    env = {**repo_env(), "FAKE_RUNNER_SLEEP_S": str(sleep_s)}
    command = [*prefix, sys.executable, "-c", SWEEP_WORKER, str(FAKE_RUNNER), *flags]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_file(path: Path, timeout_s: float = 300.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.is_file() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return path.read_text()


def process_gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether process `pid` is dead (or a zombie) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.1)
    return False
