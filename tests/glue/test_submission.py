"""GLUE leaderboard submissions: write -> validate round trip, each kind of broken file reported, filling, packaging."""

from __future__ import annotations

import os
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pseudo_kd_hf.glue import submission
from pseudo_kd_hf.glue.metrics import NonFinitePredictionsError
from pseudo_kd_hf.glue.submission import (
    FILLED_NOTE,
    SUBMISSION_ZIP,
    OutputFolderError,
    SubmissionError,
    collect_leaderboard_files,
    package_submission,
    read_leaderboard_file,
    validate_submission,
    write_leaderboard_file,
    write_submission,
)
from pseudo_kd_hf.glue.tasks import STSB_TRAIN_MEAN, SUBMISSION_FILES, TASKS, TRAIN_LABEL_COUNTS

FILE_NAMES = [entry.file_name for entry in SUBMISSION_FILES.values()]


def _random_predictions(seed: int = 0) -> dict[str, np.ndarray]:
    """Full-size predictions for all eleven files; STS-B scores deliberately overshoot [0, 5]."""
    rng = np.random.default_rng(seed)
    return {
        key: rng.integers(0, len(entry.label_strings), entry.num_rows)
        if entry.label_strings
        else rng.uniform(-1.0, 6.0, entry.num_rows)
        for key, entry in SUBMISSION_FILES.items()
    }


@pytest.fixture(scope="module")
def predictions() -> dict[str, np.ndarray]:
    return _random_predictions()


@pytest.fixture(scope="module")
def valid_dir(tmp_path_factory, predictions) -> Path:
    output_dir = tmp_path_factory.mktemp("valid") / "submission"
    write_submission(predictions, output_dir)
    return output_dir


@pytest.fixture
def broken_dir(tmp_path, valid_dir) -> Path:
    """A private copy of the valid submission folder (leaderboard files only) for a test to break."""
    copy = tmp_path / "broken"
    copy.mkdir()
    for file_name in FILE_NAMES:
        shutil.copy(valid_dir / file_name, copy / file_name)
    return copy


def _edit_line(path: Path, line_number: int, new_line: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_number - 1] = new_line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _zip_folder(folder: Path, zip_path: Path, arcname=lambda name: name, extra: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(zip_path, "w") as archive:
        for file_name in FILE_NAMES:
            if (folder / file_name).exists():
                archive.write(folder / file_name, arcname=arcname(file_name))
        for name, text in (extra or {}).items():
            archive.writestr(name, text)
    return zip_path


def test_round_trip_writes_eleven_valid_files_and_a_flat_zip(valid_dir, predictions):
    zip_path = valid_dir / SUBMISSION_ZIP
    assert zip_path.is_file()
    assert validate_submission(valid_dir) == []
    assert validate_submission(zip_path) == []
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == sorted(FILE_NAMES)
    assert not (valid_dir / FILLED_NOTE).exists()
    for key, entry in SUBMISSION_FILES.items():
        read_back = read_leaderboard_file(valid_dir / entry.file_name)
        if entry.label_strings:
            assert read_back == predictions[key].tolist()
        else:
            np.testing.assert_allclose(read_back, np.clip(predictions[key], 0.0, 5.0), atol=5e-4)


def test_files_use_the_leaderboard_header_index_and_label_strings(valid_dir, predictions):
    mnli_lines = (valid_dir / "MNLI-m.tsv").read_text(encoding="utf-8").splitlines()
    assert mnli_lines[0] == "index\tprediction"
    assert len(mnli_lines) == 1 + 9796
    names = ("entailment", "neutral", "contradiction")
    assert mnli_lines[1:4] == [f"{i}\t{names[label]}" for i, label in enumerate(predictions["mnli_matched"][:3])]
    qqp_lines = (valid_dir / "QQP.tsv").read_text(encoding="utf-8").splitlines()
    assert len(qqp_lines) == 1 + 390965
    assert qqp_lines[-1] == f"390964\t{predictions['qqp'][-1]}"
    wnli_rows = (valid_dir / "WNLI.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert {row.split("\t")[1] for row in wnli_rows} == {"0", "1"}


def test_stsb_scores_are_clipped_and_written_with_three_decimals(tmp_path, predictions):
    scores = np.full(SUBMISSION_FILES["stsb"].num_rows, 2.0)
    scores[:4] = [-0.7, 5.2, 3.14159, 0.0005]
    write_submission({**predictions, "stsb": scores}, tmp_path)
    rows = (tmp_path / "STS-B.tsv").read_text(encoding="utf-8").splitlines()[1:5]
    assert rows == ["0\t0.000", "1\t5.000", "2\t3.142", "3\t0.001"]


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: (d / "RTE.tsv").unlink(), "RTE.tsv: missing"),
        (lambda d: (d / "CoLA.tsv").write_text("", encoding="utf-8"), "CoLA.tsv: the file is empty"),
        (lambda d: _edit_line(d / "CoLA.tsv", 1, "idx\tlabel"), "CoLA.tsv: line 1: header 'idx\\tlabel'"),
        (lambda d: _edit_line(d / "CoLA.tsv", 1, "index,prediction"), "CoLA.tsv: line 1: header"),
        (lambda d: _edit_line(d / "MRPC.tsv", 5, "7\t1"), "MRPC.tsv: line 5: index '7', expected 3"),
        (lambda d: _edit_line(d / "SST-2.tsv", 3, "1\tpositive"), "SST-2.tsv: line 3: prediction 'positive'"),
        (lambda d: _edit_line(d / "MNLI-mm.tsv", 2, "0\t0"), "MNLI-mm.tsv: line 2: prediction '0' is not one of"),
        (lambda d: _edit_line(d / "QNLI.tsv", 2, "0\tentailment\textra"), "QNLI.tsv: line 2: 3 tab-separated"),
        (lambda d: _edit_line(d / "STS-B.tsv", 2, "0\t5.5"), "STS-B.tsv: line 2: score 5.5 is outside [0, 5]"),
        (lambda d: _edit_line(d / "STS-B.tsv", 4, "2\tabc"), "STS-B.tsv: line 4: prediction 'abc' is not a plain"),
        (lambda d: _edit_line(d / "STS-B.tsv", 4, "2\tnan"), "STS-B.tsv: line 4: prediction 'nan' is not a plain"),
        # float() takes these, but they are not plain decimal numbers: the leaderboard's parser need not.
        (lambda d: _edit_line(d / "STS-B.tsv", 4, "2\t0_1"), "STS-B.tsv: line 4: prediction '0_1' is not a plain"),
        (lambda d: _edit_line(d / "STS-B.tsv", 4, "2\t 3.0 "), "STS-B.tsv: line 4: prediction ' 3.0 ' is not a plain"),
        (lambda d: _edit_line(d / "STS-B.tsv", 4, "2\t1e0"), "STS-B.tsv: line 4: prediction '1e0' is not a plain"),
        (lambda d: _edit_line(d / "STS-B.tsv", 4, "2\t-0.5"), "STS-B.tsv: line 4: score -0.5 is outside [0, 5]"),
        (lambda d: (d / "AX.tsv").write_bytes(b"index\tprediction\n0\t\xff\n"), "AX.tsv: not utf-8 text"),
        (lambda d: (d / "MNLI.tsv").write_text("index\tprediction\n", encoding="utf-8"), "MNLI.tsv: not a leaderboard"),
    ],
)
def test_each_broken_file_is_reported(broken_dir, break_it, expected):
    break_it(broken_dir)
    problems = validate_submission(broken_dir)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_a_broken_zip_reports_every_problem(broken_dir):
    (broken_dir / "RTE.tsv").unlink()
    _edit_line(broken_dir / "CoLA.tsv", 1, "idx\tlabel")
    _edit_line(broken_dir / "STS-B.tsv", 2, "0\t5.5")
    assert validate_submission(_zip_folder(broken_dir, broken_dir.parent / "broken.zip")) == [
        "CoLA.tsv: line 1: header 'idx\\tlabel', expected 'index\\tprediction'.",
        "STS-B.tsv: line 2: score 5.5 is outside [0, 5].",
        "RTE.tsv: missing; the leaderboard rejects a submission without it.",
    ]


def test_wrong_row_count_is_reported_against_the_official_size(broken_dir):
    wnli = broken_dir / "WNLI.tsv"
    wnli.write_text("\n".join(wnli.read_text(encoding="utf-8").splitlines()[:-1]) + "\n", encoding="utf-8")
    assert validate_submission(broken_dir) == ["WNLI.tsv: 145 rows, expected 146 (the official test size)."]


def test_row_problems_are_capped_per_file(broken_dir):
    (broken_dir / "WNLI.tsv").write_text(
        "index\tprediction\n" + "".join(f"{i}\tyes\n" for i in range(146)), encoding="utf-8"
    )
    problems = validate_submission(broken_dir)
    assert len(problems) == 11
    assert problems[-1] == "WNLI.tsv: 136 more row problems not listed."


def test_zip_problems_nested_paths_and_extra_members(broken_dir, tmp_path):
    nested = _zip_folder(broken_dir, tmp_path / "nested.zip", arcname=lambda name: f"glue/{name}")
    problems = validate_submission(nested)
    assert "glue/CoLA.tsv: inside a folder of the zip; put the files at the zip's root." in problems
    assert "CoLA.tsv: missing; the leaderboard rejects a submission without it." in problems
    assert len(problems) == 2 * len(FILE_NAMES)
    extra = _zip_folder(broken_dir, tmp_path / "extra.zip", extra={"README.txt": "hello"})
    assert validate_submission(extra) == ["README.txt: not a leaderboard file; the zip holds only the eleven files."]


def test_unreadable_paths_are_reported(tmp_path):
    assert validate_submission(tmp_path / "absent") == [f"{tmp_path / 'absent'}: neither a folder nor a .zip file."]
    not_a_zip = tmp_path / "fake.zip"
    not_a_zip.write_text("plain text", encoding="utf-8")
    assert validate_submission(not_a_zip) == [f"{not_a_zip}: not a readable zip file."]


def test_fill_missing_writes_placeholders_and_a_note(tmp_path, predictions):
    zip_path = write_submission({"rte": predictions["rte"]}, tmp_path, fill_missing=True)
    assert validate_submission(zip_path) == []
    note = (tmp_path / FILLED_NOTE).read_text(encoding="utf-8")
    assert "RTE.tsv" not in note
    assert all(name in note for name in FILE_NAMES if name != "RTE.tsv")
    assert "QQP.tsv\t0 (not_duplicate, majority training class)" in note
    assert "STS-B.tsv\t2.701 (mean training score)" in note
    qqp_rows = (tmp_path / "QQP.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(qqp_rows) == 390965 and {row.split("\t")[1] for row in qqp_rows} == {"0"}
    ax_rows = (tmp_path / "AX.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert {row.split("\t")[1] for row in ax_rows} == {"contradiction"}  # MNLI's majority training class
    assert read_leaderboard_file(tmp_path / "RTE.tsv") == predictions["rte"].tolist()
    with zipfile.ZipFile(zip_path) as archive:
        assert FILLED_NOTE not in archive.namelist()


def test_missing_and_unknown_keys_raise_naming_them(tmp_path, predictions):
    partial = {key: value for key, value in predictions.items() if key not in ("qqp", "ax")}
    with pytest.raises(ValueError, match=r"^No predictions for qqp, ax: .*fill_missing=True"):
        write_submission(partial, tmp_path)
    with pytest.raises(ValueError, match=r"^Unknown submission keys mnli, squad: "):
        write_submission({**predictions, "mnli": [], "squad": []}, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("key", "values", "message"),
    [
        ("rte", [0] * 2999, r"^rte: got 2999 predictions, expected 3000"),
        ("rte", [2] + [0] * 2999, r"^rte: prediction 2 at row 0 is not a class id 0\.\.1"),
        ("cola", [1.0] * 1063, r"^cola: predictions have dtype float64; pass integer class ids"),
        ("stsb", ["abc"] * 1379, r"^stsb: predictions are not numbers"),
        ("stsb", [float("nan")] * 1379, r"^stsb: 1379 of 1379 rows of predictions are not finite \(NaN or inf\)"),
        ("rte", np.full((3000, 2), np.nan), r"^rte: 3000 of 3000 rows of predictions are not finite"),
        ("rte", np.zeros((3000, 3)), r"^rte: predictions have shape \(3000, 3\)"),
    ],
)
def test_bad_predictions_raise_before_anything_is_written(tmp_path, predictions, key, values, message):
    with pytest.raises(ValueError, match=message):
        write_submission({**predictions, key: values}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_no_silent_overwrite(tmp_path, predictions):
    write_submission({"cola": predictions["cola"]}, tmp_path, fill_missing=True)
    with pytest.raises(FileExistsError, match="already holds CoLA.tsv, .*submission.zip, FILLED.txt: .*overwrite=True"):
        write_submission(predictions, tmp_path)
    write_submission(predictions, tmp_path, overwrite=True)
    assert not (tmp_path / FILLED_NOTE).exists()  # the stale note about placeholders is gone
    assert validate_submission(tmp_path) == []
    lone = tmp_path / "lone"
    write_leaderboard_file("wnli", predictions["wnli"], lone)
    with pytest.raises(FileExistsError, match="already holds WNLI.tsv"):
        write_submission(predictions, lone)


def test_write_leaderboard_file_round_trips_and_rejects_unknown_keys(tmp_path, predictions):
    path = write_leaderboard_file("mnli_mismatched", predictions["mnli_mismatched"], tmp_path / "run")
    assert path == tmp_path / "run" / "MNLI-mm.tsv"
    assert read_leaderboard_file(path) == predictions["mnli_mismatched"].tolist()
    with pytest.raises(ValueError, match="Unknown submission key 'mnli'"):
        write_leaderboard_file("mnli", [], tmp_path)


def test_read_leaderboard_file_rejects_invalid_files(tmp_path):
    wrong = tmp_path / "RTE.tsv"
    wrong.write_text("index\tprediction\n0\tentailment\n", encoding="utf-8")
    with pytest.raises(SubmissionError, match=r"RTE.tsv: invalid leaderboard file: RTE.tsv: 1 rows, expected 3000"):
        read_leaderboard_file(wrong)
    with pytest.raises(SubmissionError, match="not a leaderboard file name"):
        read_leaderboard_file(tmp_path / "predict_results_rte.txt")


def test_collect_finds_files_in_runs_and_refuses_duplicates(tmp_path, predictions):
    rte_path = write_leaderboard_file("rte", predictions["rte"], tmp_path / "run_rte")
    stsb_path = write_leaderboard_file("stsb", predictions["stsb"], tmp_path / "run_stsb" / "predictions")
    collected = collect_leaderboard_files([tmp_path / "run_rte", tmp_path / "run_stsb"])
    assert collected == {"rte": rte_path, "stsb": stsb_path}
    again = write_leaderboard_file("rte", predictions["rte"], tmp_path / "run_rte_2")
    with pytest.raises(SubmissionError, match=f"found more than once: {rte_path} and {again}\\. Pass one run folder"):
        collect_leaderboard_files([tmp_path / "run_rte", tmp_path / "run_rte_2"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SubmissionError, match="No leaderboard files .* in .*empty"):
        collect_leaderboard_files([tmp_path / "empty"])
    with pytest.raises(SubmissionError, match="absent does not exist"):
        collect_leaderboard_files([tmp_path / "absent"])


def test_package_submission_reports_sources_and_fills(tmp_path, predictions):
    rte_path = write_leaderboard_file("rte", predictions["rte"], tmp_path / "run_rte")
    mnli_dir = tmp_path / "run_mnli"
    for key in ("mnli_matched", "mnli_mismatched", "ax"):
        write_leaderboard_file(key, predictions[key], mnli_dir)
    with pytest.raises(ValueError, match="No predictions for cola"):
        package_submission([tmp_path / "run_rte", mnli_dir], tmp_path / "out")
    summary = package_submission([tmp_path / "run_rte", mnli_dir], tmp_path / "out", fill_missing=True)
    assert summary.zip_path == tmp_path / "out" / SUBMISSION_ZIP
    assert summary.sources == {
        "rte": rte_path,
        "mnli_matched": mnli_dir / "MNLI-m.tsv",
        "mnli_mismatched": mnli_dir / "MNLI-mm.tsv",
        "ax": mnli_dir / "AX.tsv",
    }
    assert set(summary.filled) == set(SUBMISSION_FILES) - set(summary.sources)
    assert summary.filled["cola"] == "1 (acceptable, majority training class)"
    assert validate_submission(summary.zip_path) == []
    assert read_leaderboard_file(tmp_path / "out" / "AX.tsv") == predictions["ax"].tolist()
    # Packaging the parent folder again passes over the packaged submission inside it.
    again = package_submission([tmp_path], tmp_path / "out", fill_missing=True, overwrite=True)
    assert again.sources == summary.sources


# ---- reliability: diverged models, damaged zips, crashes, output folders ------------------------------------------


def test_write_leaderboard_file_takes_logits_and_refuses_a_diverged_model(tmp_path, predictions):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3000, 2))
    path = write_leaderboard_file("rte", logits, tmp_path / "run")
    assert read_leaderboard_file(path) == logits.argmax(-1).tolist()
    before = path.read_bytes()
    logits[[5, 17], 1] = np.nan  # NaN argmaxes to class 0: it must not be written as a prediction
    logits[99, 0] = np.inf
    with pytest.raises(NonFinitePredictionsError, match=r"^rte: 3 of 3000 rows of predictions are not finite"):
        write_leaderboard_file("rte", logits, tmp_path / "run")
    with pytest.raises(NonFinitePredictionsError, match=r"^rte: 3 of 3000 rows"):
        write_leaderboard_file("rte", logits, tmp_path / "fresh")
    assert path.read_bytes() == before  # the earlier file is neither replaced nor truncated
    assert not (tmp_path / "fresh").exists()
    scores = rng.uniform(0, 5, (1379, 1))  # a regression head's (N, 1) output
    stsb = write_leaderboard_file("stsb", scores, tmp_path / "run")
    np.testing.assert_allclose(read_leaderboard_file(stsb), scores[:, 0], atol=5e-4)


def test_a_crash_while_writing_leaves_the_old_file_whole_and_no_temporary(tmp_path, predictions, monkeypatch):
    path = write_leaderboard_file("wnli", predictions["wnli"], tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not a private temporary one
    before = path.read_bytes()

    def power_cut(_fd):
        raise OSError("simulated crash before the data reached the disk")

    monkeypatch.setattr(submission.os, "fsync", power_cut)
    with pytest.raises(OSError, match="simulated crash"):
        write_leaderboard_file("wnli", 1 - predictions["wnli"], tmp_path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["WNLI.tsv"]


def test_an_interrupted_overwrite_leaves_no_zip_of_old_and_new_files(tmp_path, predictions, monkeypatch):
    write_submission(predictions, tmp_path)
    real_write = submission.write_atomically
    written = []

    def crash_on_third_file(path, data):
        if len(written) == 2:
            raise OSError("simulated crash")
        written.append(path)
        real_write(path, data)

    monkeypatch.setattr(submission, "write_atomically", crash_on_third_file)
    with pytest.raises(OSError, match="simulated crash"):
        write_submission(_random_predictions(seed=1), tmp_path, overwrite=True)
    assert not (tmp_path / SUBMISSION_ZIP).exists()  # a zip is only ever the complete, checked submission


def _damage_member(zip_path: Path, member: str) -> None:
    """Flip one byte in the middle of a member's stored data."""
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(member)
    data = bytearray(zip_path.read_bytes())
    header_size = 30 + len(info.filename.encode()) + len(info.extra)
    data[info.header_offset + header_size + info.compress_size // 2] ^= 0xFF
    zip_path.write_bytes(bytes(data))


@pytest.mark.parametrize(("compression", "error"), [(zipfile.ZIP_STORED, "CRC"), (zipfile.ZIP_DEFLATED, "")])
def test_a_damaged_member_is_a_problem_not_a_crash(valid_dir, tmp_path, compression, error):
    zip_path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(zip_path, "w", compression=compression) as archive:
        for file_name in FILE_NAMES:
            archive.write(valid_dir / file_name, arcname=file_name)
    _damage_member(zip_path, "RTE.tsv")
    problems = validate_submission(zip_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith("RTE.tsv: damaged in the zip (") and error in problems[0]
    assert problems[0].endswith("); write the zip again.") and "\n" not in problems[0]


def test_a_repeated_member_is_reported_once(broken_dir, tmp_path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        zip_path = _zip_folder(broken_dir, tmp_path / "twice.zip", extra={"CoLA.tsv": "index\tprediction\n"})
    assert validate_submission(zip_path) == [
        "CoLA.tsv: 2 members of the zip have this name; write the zip again with one."
    ]


def test_package_refuses_to_write_into_a_run_folder(tmp_path, predictions):
    run_dir = tmp_path / "run_rte"
    rte = write_leaderboard_file("rte", predictions["rte"], run_dir)
    before = rte.read_bytes()
    for output_dir in (run_dir, tmp_path / "." / "run_rte"):
        with pytest.raises(OutputFolderError, match=f"^Output folder {output_dir} is also a run folder"):
            package_submission([run_dir], output_dir, fill_missing=True, overwrite=True)
    assert sorted(p.name for p in run_dir.iterdir()) == ["RTE.tsv"] and rte.read_bytes() == before
    summary = package_submission([run_dir], tmp_path / "out", fill_missing=True)
    assert validate_submission(summary.zip_path) == []


def test_train_label_counts_are_consistent_with_the_registry():
    for task_name, counts in TRAIN_LABEL_COUNTS.items():
        task = TASKS[task_name]
        assert len(counts) == task.num_labels
        assert sum(counts) == task.split_sizes["train"]
    trained = {name for name, task in TASKS.items() if "train" in task.split_sizes and not task.is_regression}
    assert set(TRAIN_LABEL_COUNTS) == trained


def _raw_rows(path: Path, has_header: bool) -> list[list[str]]:
    lines = [line for line in path.read_text(encoding="utf-8-sig").split("\n") if line]
    return [line.split("\t") for line in lines[1 if has_header else 0 :]]


def test_fill_facts_recount_from_the_real_training_files(shared_glue_data):
    layouts = {
        "cola": ("CoLA", False, 1),
        "sst2": ("SST-2", True, 1),
        "mrpc": ("MRPC", True, 0),
        "rte": ("RTE", True, 3),
    }
    for task_name, (folder, has_header, label_field) in layouts.items():
        task = TASKS[task_name]
        counts = Counter(row[label_field] for row in _raw_rows(shared_glue_data / folder / "train.tsv", has_header))
        assert tuple(counts[label] for label in task.file_labels) == TRAIN_LABEL_COUNTS[task_name]
    scores = [float(row[-1]) for row in _raw_rows(shared_glue_data / "STS-B" / "train.tsv", True)]
    assert len(scores) == 5749
    assert sum(scores) / len(scores) == pytest.approx(STSB_TRAIN_MEAN, abs=5e-4)
