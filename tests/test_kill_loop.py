"""A run killed with SIGKILL at 20 random moments, its newest checkpoint sometimes damaged as well, finishes with an
uninterrupted run's weights, bit for bit."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from pseudo_kd_hf.cli import main
from tests.test_crash_recovery import DAMAGE, assert_same_weights, student, train_flags  # noqa: F401 (a fixture)

KILLS = 20
# Each kill in training comes at most KILL_WINDOW_S after a new checkpoint, so a run advances a step or two between
# kills on a fast machine and at least one on a slow one: 20 kills fit in these steps either way.
STEPS = 80
KILL_WINDOW_S = 0.05
DAMAGE_ORDER = sorted(DAMAGE, key=lambda name: "zeroed" not in name)


def run_cli(flags: list[str], log: str) -> None:
    """One run in a process of its own, its output to `log`; exits with the runner's code."""
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    sys.exit(main(flags))


def saved_since(output_dir: Path, start: float) -> bool:
    """A checkpoint's manifest (its last file) written after `start`: the run has made progress."""
    return any(path.stat().st_mtime >= start for path in output_dir.glob("checkpoint-*/checkpoint_manifest.json"))


def wait_for_a_save(output_dir: Path, start: float, process: multiprocessing.Process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while process.is_alive() and not saved_since(output_dir, start):
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)


def newest_checkpoint(output_dir: Path) -> Path | None:
    folders = sorted(output_dir.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    return folders[-1] if folders else None


@pytest.mark.slow
def test_kill_minus_nine_at_random_moments_with_damage_finishes_bit_equal(
    student: Path,  # noqa: F811
    shared_glue_data: Path,
    tmp_path: Path,
) -> None:
    def flags(output_dir: Path) -> list[str]:
        return train_flags(student, output_dir, shared_glue_data, steps=STEPS)

    reference = tmp_path / "reference"
    assert main(flags(reference)) == 0  # also fills the dataset caches, so kills hit training, not cache writes

    context = multiprocessing.get_context("forkserver")  # each run forks from a process with the imports done
    context.set_forkserver_preload(["pseudo_kd_hf.cli", "tests.test_kill_loop"])
    output_dir, log = tmp_path / "killed", str(tmp_path / "killed.log")
    rng = random.Random(25)
    kills, damaged = 0, []
    while kills < KILLS:
        start = time.time()
        process = context.Process(target=run_cli, args=(flags(output_dir), log))
        process.start()
        if rng.random() < 0.2:  # a moment at start-up: loading, resuming, the first step
            time.sleep(rng.uniform(0, 2))
        else:  # a moment in training: in a step, a save, or between them
            wait_for_a_save(output_dir, start, process)
            time.sleep(rng.uniform(0, KILL_WINDOW_S))
        if not process.is_alive():
            break  # finished before this kill
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        kills += 1
        newest = newest_checkpoint(output_dir)
        if newest is not None and rng.random() < 0.4:  # each kind of damage in turn, zeroed weights first
            name = DAMAGE_ORDER[len(damaged) % len(DAMAGE_ORDER)]
            file_name, damage = DAMAGE[name]
            if (newest / file_name).is_file():
                damage(newest / file_name)
                damaged.append(f"{newest.name}: {name}")
    process.join()
    final = context.Process(target=run_cli, args=(flags(output_dir), log))
    final.start()
    final.join()
    assert final.exitcode == 0, Path(log).read_text()[-3000:]
    assert kills == KILLS and len(damaged) >= 2, (kills, damaged)
    assert_same_weights(output_dir, reference)
