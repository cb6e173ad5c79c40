"""Sweep workers on a real PostgreSQL server: started together, killed mid-trial, and on two "machines" (network
namespaces). Trials run the fake runner (`tests/tuning/fake_runner.py`): the storage is under test, not training."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from pseudo_kd_hf.tuning.storage import open_storage
from tests.tuning.postgres import create_database, postgres_server, skip_reason
from tests.tuning.workers import process_gone, start_sweep_worker, sweep_flags, wait_for_file

pytestmark = pytest.mark.slow  # worker processes importing torch


def finished_study(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="shared", storage=open_storage(storage)).trials


def assert_two_workers_finish(tmp_path: Path, urls: list[str], prefixes: list[tuple[str, ...]]) -> None:
    """Two workers started at once with the same flags (but where each reaches the server): exactly `--n_trials`
    COMPLETE trials, each with its own settings; any other trial is one Optuna made after the queue ran out, pruned
    before it trained."""
    pairs = zip(urls, prefixes, strict=True)
    workers = [start_sweep_worker(sweep_flags(tmp_path, url, 4), 1.0, prefix) for url, prefix in pairs]
    outputs = [worker.communicate(timeout=900)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    trials = finished_study(urls[0])
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    assert len(complete) == 4
    assert len({tuple(sorted(trial.params.items())) for trial in complete}) == 4  # no setting twice
    assert {trial.state for trial in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}


def test_two_workers_started_together_run_exactly_n_trials(postgres_url: str, tmp_path: Path) -> None:
    assert_two_workers_finish(tmp_path, [postgres_url] * 2, [(), ()])


def test_a_killed_worker_leaves_no_runner_and_another_worker_finishes(postgres_url: str, tmp_path: Path) -> None:
    """kill -9 of a worker mid-trial: its runner dies with it (no orphan training on), its trial stays RUNNING until
    the grace period has passed, then is failed and queued again, and a second worker finishes the study; the
    killed trial's folder keeps its record, not its weights."""
    flags = sweep_flags(tmp_path, postgres_url, 2)
    first = start_sweep_worker(flags, sleep_s=600)
    killed_dir = tmp_path / "trials" / "trial_0000"
    runner = int(wait_for_file(killed_dir / "runner.pid"))
    first.kill()
    first.wait()
    assert process_gone(runner)
    assert [trial.state for trial in finished_study(postgres_url)][0] == TrialState.RUNNING
    second = start_sweep_worker(flags)
    output = second.communicate(timeout=900)[0]
    assert second.returncode == 0, output
    trials = finished_study(postgres_url)
    assert trials[0].state == TrialState.FAIL
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    assert len(complete) == 2
    assert trials[0].params in [trial.params for trial in complete]  # the dead worker's settings, run again
    assert not (killed_dir / "model.safetensors").exists() and (killed_dir / "trial.yaml").is_file()


@contextlib.contextmanager
def two_namespaces() -> Iterator[list[tuple[str, str]]]:
    """Two network namespaces, each joined to this host by a veth pair: yields (namespace, host-side address)."""
    tag = os.getpid() % 10000
    octet = 100 + os.getpid() % 100
    made: list[tuple[str, str]] = []
    try:
        for index in (1, 2):
            name, host, inside = f"pkd{tag}n{index}", f"pkd{tag}h{index}", f"pkd{tag}i{index}"
            subnet = f"10.{octet}.{index}"
            for command in (
                ["ip", "netns", "add", name],
                ["ip", "link", "add", host, "type", "veth", "peer", "name", inside],
                ["ip", "link", "set", inside, "netns", name],
                ["ip", "addr", "add", f"{subnet}.1/24", "dev", host],
                ["ip", "link", "set", host, "up"],
                ["ip", "netns", "exec", name, "ip", "addr", "add", f"{subnet}.2/24", "dev", inside],
                ["ip", "netns", "exec", name, "ip", "link", "set", inside, "up"],
                ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
            ):
                subprocess.run(command, check=True, capture_output=True)
                if command[:3] == ["ip", "netns", "add"]:
                    made.append((name, f"{subnet}.1"))
        yield made
    finally:
        for index, (name, _) in enumerate(made, 1):
            subprocess.run(["ip", "link", "del", f"pkd{tag}h{index}"], check=False, capture_output=True)
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def namespaces_reason() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    probe = subprocess.run(["ip", "netns", "add", f"pkdprobe{os.getpid()}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns add failed: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", f"pkdprobe{os.getpid()}"], check=False)
    return None


def test_two_workers_on_two_machines_run_exactly_n_trials(tmp_path: Path) -> None:
    """As two machines would: each worker in its own network namespace, reaching the server on its host-side
    address (the folder is shared, as a network file system would be)."""
    reason = skip_reason() or namespaces_reason()
    if reason:
        pytest.skip(reason)
    with two_namespaces() as machines:
        octet = machines[0][1].split(".")[1]
        addresses = tuple(address for _, address in machines)
        with postgres_server(addresses, trusted=f"10.{octet}.0.0/16") as port:
            urls = [create_database(port, "two_hosts", host=addresses[0])]
            urls.append(urls[0].replace(addresses[0], addresses[1]))
            prefixes = [("ip", "netns", "exec", name) for name, _ in machines]
            assert_two_workers_finish(tmp_path, urls, prefixes)
