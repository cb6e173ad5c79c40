"""An output folder's life: one run at a time, resume from the newest complete checkpoint, tidy up when finished.

What a crash, a rerun and a second run into one folder do (docs/crashes.md says the same):

- A second run into a folder that a live run is writing is refused at once: the first run holds a lock file with its
  host and pid. A lock left behind by a killed run (same host, that pid gone) is taken over with a warning.
- A crash during a checkpoint save leaves a partial `checkpoint-N` folder. Resuming passes over it (with a warning
  naming it) and continues from the newest checkpoint whose files are all there.
- Every checkpoint `PseudoKDTrainer` saves carries a manifest, written last, of its files with their sizes and
  hashes: a file cut short, emptied or overwritten afterwards (a full disk, a bad copy, zeroed weights) makes the
  checkpoint damaged, and resuming passes over it in the same way, naming the file. transformers checks neither
  (huggingface/transformers#35782): it would resume from such a checkpoint, or crash on it every time.
- When a run finishes, its `checkpoint-*` folders are removed (the final model stays in the output folder), unless the
  run keeps them: an interrupted run still has them to resume from.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import xxhash

from .glue.submission import write_atomically

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = ".pseudo_kd_hf.lock"
TRAINER_STATE_NAME = "trainer_state.json"  # the Trainer writes it last when it saves a checkpoint
WEIGHTS_NAMES = ("model.safetensors", "pytorch_model.bin")
SHARDED_WEIGHTS_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TRAINING_STATE_NAMES = ("optimizer.pt", "scheduler.pt")
MANIFEST_NAME = "checkpoint_manifest.json"
# The entry of trainer_state.json's `stateful_callbacks` that PseudoKDTrainer writes into each checkpoint: a
# checkpoint holding it was saved with a manifest, so one without its manifest is a save cut short.
CHECKPOINT_RECORD = "PseudoKDTrainer"
_HASH = "xxh3_128"  # MiniLM-L6 checkpoint (270 MB): 0.16 s, the time to read it; sha256 0.65 s
_CHECKPOINT_FOLDER = re.compile(r"^checkpoint-(\d+)$")


class OutputDirBusy(RuntimeError):
    """Another live run holds the output folder."""


# ---- one run per folder -------------------------------------------------------------------------------------------


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _read_lock(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # half-written by a run killed while taking it: no owner to respect
        return {}


def _create_lock(path: Path) -> bool:
    """Create the lock file atomically; False when it already exists."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="utf-8") as lock:
        json.dump({"host": socket.gethostname(), "pid": os.getpid()}, lock)
    return True


@contextmanager
def output_dir_lock(output_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold `output_dir` for this process while the block runs; refuse when a live run holds it.

    The lock is a file inside the folder holding `{"host", "pid"}`, created with `O_EXCL` so two runs starting at
    once cannot both win. A lock whose process is gone (same host) is stale: it is taken over with a warning. A lock
    from another host cannot be checked from here, so it is refused with the file to remove if that run is over.

    Raises:
        OutputDirBusy: a live run (or one on another host) holds the folder.
    """
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_FILE_NAME
    while not _create_lock(lock_path):
        owner = _read_lock(lock_path)
        host, pid = owner.get("host"), owner.get("pid")
        if host not in (None, socket.gethostname()):
            raise OutputDirBusy(
                f"{folder} is in use by a run on host {host} (pid {pid}); if that run is over, delete {lock_path}"
            )
        if isinstance(pid, int) and pid != os.getpid() and _process_alive(pid):
            raise OutputDirBusy(f"{folder} is in use by another run (pid {pid}); wait for it or choose another folder")
        logger.warning(f"Taking over {lock_path}: the run that left it (pid {pid}) is gone.")
        lock_path.unlink(missing_ok=True)
    try:
        yield lock_path
    finally:
        if _read_lock(lock_path).get("pid") == os.getpid():
            lock_path.unlink(missing_ok=True)


# ---- checkpoints --------------------------------------------------------------------------------------------------


def checkpoint_folders(output_dir: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders in `output_dir`, newest (highest N) first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [(int(match[1]), path) for path in folder.iterdir() if (match := _CHECKPOINT_FOLDER.match(path.name))]
    return [path for _, path in sorted(found, reverse=True) if path.is_dir()]


def _weights_present(checkpoint: Path) -> bool:
    if any((checkpoint / name).is_file() for name in WEIGHTS_NAMES):
        return True
    for index_name in SHARDED_WEIGHTS_INDEXES:
        index_path = checkpoint / index_name
        if index_path.is_file():
            try:
                shards = set(json.loads(index_path.read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError, AttributeError):
                return False
            return all((checkpoint / shard).is_file() for shard in shards)
    return False


def file_hash(path: str | os.PathLike) -> str:
    """The manifest's hash of one file (xxh3-128: it detects damage, not tampering)."""
    digest, buffer = xxhash.xxh3_128(), bytearray(1 << 20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as file:
        while size := file.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


def write_manifest(checkpoint: str | os.PathLike) -> Path:
    """Record every file of a saved checkpoint with its size and hash, in `checkpoint_manifest.json` (atomically).

    Written after the checkpoint's last file, so a checkpoint with a manifest that matches its files is whole.
    """
    folder = Path(checkpoint)
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.name != MANIFEST_NAME)
    entries = {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, _HASH: file_hash(path)} for path in files
    }
    manifest = folder / MANIFEST_NAME
    write_atomically(manifest, json.dumps({"files": entries}, indent=1, sort_keys=True).encode("utf-8"))
    return manifest


def _manifest_problems(folder: Path, trainer_state: dict) -> list[str]:
    """How the checkpoint's files differ from its manifest. A checkpoint saved before manifests existed (no record
    in its trainer state) has none and is taken on the completeness check alone."""
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        return [f"no {MANIFEST_NAME}"] if CHECKPOINT_RECORD in trainer_state.get("stateful_callbacks", {}) else []
    try:
        entries = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
        expected = {name: (int(entry["size"]), str(entry[_HASH])) for name, entry in entries.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return [f"a torn {MANIFEST_NAME}"]
    problems = []
    for name, (size, _) in expected.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"no {name}")
        elif path.stat().st_size != size:
            problems.append(f"{name} damaged ({path.stat().st_size} bytes, the manifest says {size})")
    if problems:  # sizes first: a file cut short is found without reading anything
        return problems
    return [
        f"{name} damaged (its contents differ from the manifest's hash)"
        for name, (_, digest) in expected.items()
        if file_hash(folder / name) != digest
    ]


def checkpoint_problems(checkpoint: str | os.PathLike, required: Iterable[str] = TRAINING_STATE_NAMES) -> list[str]:
    """Why a checkpoint cannot be resumed from ("no model weights", "optimizer.pt damaged (...)"); [] when it can.

    It needs weights, the `required` files and a readable `trainer_state.json` (the Trainer writes it last, so a
    save cut short by a crash lacks it, or has it torn), then files that match its manifest.
    """
    folder = Path(checkpoint)
    missing = [] if _weights_present(folder) else ["model weights"]
    missing += [name for name in required if not (folder / name).is_file()]
    try:
        trainer_state = json.loads((folder / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        missing.append(TRAINER_STATE_NAME)
    problems = [f"no {name}" for name in missing]
    if problems or not isinstance(trainer_state, dict):
        return problems or [f"a torn {TRAINER_STATE_NAME}"]
    return _manifest_problems(folder, trainer_state)


def last_complete_checkpoint(
    output_dir: str | os.PathLike, required: Iterable[str] = TRAINING_STATE_NAMES
) -> str | None:
    """The newest checkpoint in `output_dir` that a run can resume from, passing over partial or damaged newer ones.

    Each checkpoint passed over is named in a warning, with what it lacks or which file is damaged.
    """
    required = tuple(required)
    for checkpoint in checkpoint_folders(output_dir):
        problems = checkpoint_problems(checkpoint, required)
        if not problems:
            return str(checkpoint)
        logger.warning(f"Passing over checkpoint {checkpoint} ({'; '.join(problems)}): a save cut short or damaged.")
    return None


def remove_checkpoints(output_dir: str | os.PathLike) -> int:
    """Delete the `checkpoint-*` folders of a finished run (its final model is in `output_dir`); return how many."""
    folders = checkpoint_folders(output_dir)
    for folder in folders:
        shutil.rmtree(folder)
    return len(folders)
