"""Run a script under `torchrun --standalone --nproc_per_node 2` (gloo on CPU) for the DDP equality tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def run_two_processes(script: Path, *script_args: str, attempts: int = 3, timeout: float = 120) -> str:
    """Run `script` in two processes; return its stderr. Raise AssertionError with the tail of stderr on failure.

    On an overloaded 2-core machine a gloo rendezvous has hung at random, so only a hang (timeout) is retried,
    after killing the whole process group (torchrun's workers included). A failing exit code fails at once.
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(script), *script_args]
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    for _ in range(attempts):
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            continue
        assert process.returncode == 0, stderr[-3000:]
        return stderr
    raise AssertionError(f"torchrun hung {attempts} times (over {timeout} s each): {' '.join(command)}")


def run_one_process(script: Path, *script_args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), *script_args], check=True, env=env, capture_output=True)
