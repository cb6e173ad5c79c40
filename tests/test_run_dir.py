"""run_dir: the output-folder lock, resuming past partial checkpoints, tidying a finished run."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pseudo_kd_hf.run_dir import (
    LOCK_FILE_NAME,
    OutputDirBusy,
    checkpoint_folders,
    checkpoint_problems,
    last_complete_checkpoint,
    output_dir_lock,
    remove_checkpoints,
    write_manifest,
)


def write_checkpoint(folder: Path, *, state: bool = True, optimizer: bool = True, extra: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "scheduler.pt").write_bytes(b"scheduler")
    if optimizer:
        (folder / "optimizer.pt").write_bytes(b"optimizer")
    for name in extra:
        (folder / name).write_bytes(b"state")
    if state:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": 1}))
    return folder


def test_lock_refuses_a_second_holder_while_the_first_lives(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": sleeper.pid}))
        with pytest.raises(OutputDirBusy, match=f"pid {sleeper.pid}"), output_dir_lock(tmp_path):
            pass
    finally:
        sleeper.kill()
        sleeper.wait()


def test_lock_is_released_and_can_be_taken_again(tmp_path: Path) -> None:
    with output_dir_lock(tmp_path / "run") as lock_path:
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()
    assert not lock_path.exists()
    with output_dir_lock(tmp_path / "run"):
        pass


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path: Path, caplog) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    (tmp_path / LOCK_FILE_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid}))
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf.run_dir"), output_dir_lock(tmp_path) as lock_path:
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()
    assert f"pid {dead_pid}" in caplog.text


def test_torn_lock_file_is_stale(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE_NAME).write_text('{"host": ')
    with output_dir_lock(tmp_path):
        pass


def test_lock_from_another_host_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE_NAME).write_text(json.dumps({"host": "elsewhere.example", "pid": 1}))
    with pytest.raises(OutputDirBusy, match="elsewhere.example.*delete .*lock"), output_dir_lock(tmp_path):
        pass


def test_partial_newest_checkpoint_is_passed_over_with_a_warning(tmp_path: Path, caplog) -> None:
    write_checkpoint(tmp_path / "checkpoint-10")
    write_checkpoint(tmp_path / "checkpoint-20", state=False)  # killed before trainer_state.json
    write_checkpoint(tmp_path / "checkpoint-9")
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf.run_dir"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert "checkpoint-20" in caplog.text and "trainer_state.json" in caplog.text


def test_torn_trainer_state_and_missing_method_state_make_a_checkpoint_partial(tmp_path: Path) -> None:
    torn = write_checkpoint(tmp_path / "checkpoint-3")
    (torn / "trainer_state.json").write_text('{"global_step": ')
    assert checkpoint_problems(torn) == ["no trainer_state.json"]
    no_method_state = write_checkpoint(tmp_path / "checkpoint-2")
    assert checkpoint_problems(no_method_state, ("optimizer.pt", "regularizer_state.pt")) == ["no regularizer_state.pt"]
    complete = write_checkpoint(tmp_path / "checkpoint-1", extra=("regularizer_state.pt",))
    assert last_complete_checkpoint(tmp_path, ("optimizer.pt", "regularizer_state.pt")) == str(complete)


def test_a_checkpoint_is_checked_against_its_manifest_and_an_older_one_without_is_taken(tmp_path: Path) -> None:
    older = write_checkpoint(tmp_path / "checkpoint-1")  # saved before manifests: no record in its trainer state
    assert checkpoint_problems(older) == []
    newer = write_checkpoint(tmp_path / "checkpoint-2")
    record = {"PseudoKDTrainer": {"args": {}, "attributes": {"manifest": True}}}
    (newer / "trainer_state.json").write_text(json.dumps({"global_step": 2, "stateful_callbacks": record}))
    assert checkpoint_problems(newer) == ["no checkpoint_manifest.json"]  # killed before its manifest
    write_manifest(newer)
    assert checkpoint_problems(newer) == []
    (newer / "scheduler.pt").write_bytes(b"schedulex")  # same length, other bytes
    assert checkpoint_problems(newer) == ["scheduler.pt damaged (its contents differ from the manifest's hash)"]
    (newer / "scheduler.pt").write_bytes(b"sched")
    assert checkpoint_problems(newer) == ["scheduler.pt damaged (5 bytes, the manifest says 9)"]
    (newer / "checkpoint_manifest.json").write_text('{"files": ')
    assert checkpoint_problems(newer) == ["a torn checkpoint_manifest.json"]


def test_sharded_weights_need_every_shard(tmp_path: Path) -> None:
    checkpoint = write_checkpoint(tmp_path / "checkpoint-5")
    (checkpoint / "model.safetensors").unlink()
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (checkpoint / "model.safetensors.index.json").write_text(json.dumps(index))
    (checkpoint / "model-00001-of-00002.safetensors").write_bytes(b"1")
    assert checkpoint_problems(checkpoint) == ["no model weights"]
    (checkpoint / "model-00002-of-00002.safetensors").write_bytes(b"2")
    assert checkpoint_problems(checkpoint) == []


def test_no_checkpoint_at_all(tmp_path: Path) -> None:
    assert last_complete_checkpoint(tmp_path / "absent") is None
    write_checkpoint(tmp_path / "checkpoint-1", optimizer=False)
    assert last_complete_checkpoint(tmp_path) is None


def test_remove_checkpoints_keeps_everything_else(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "checkpoint-1")
    write_checkpoint(tmp_path / "checkpoint-2")
    (tmp_path / "model.safetensors").write_bytes(b"final")
    (tmp_path / "checkpoint-notes").mkdir()
    assert remove_checkpoints(tmp_path) == 2
    assert checkpoint_folders(tmp_path) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-notes", "model.safetensors"]
