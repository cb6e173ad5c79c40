"""GLUE leaderboard submissions: write the eleven TSV files and the flat zip, read them back, validate them.

Design: a run writes its leaderboard file(s) with :func:`write_leaderboard_file`; packaging finds them in run folders
(:func:`collect_leaderboard_files`), reads each back into predictions (:func:`read_leaderboard_file`) and writes the
whole submission again with :func:`write_submission`. Reading back checks every file, and one writer formats them all.
:func:`package_submission` chains these steps for ``pseudo-kd-glue-submit``.

Every GLUE test file is indexed 0..n-1 in file order (the Hub's ``idx``), so a file's index column is ``range(n)``
and predictions are given as sequences in test order, with no explicit index.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tasks import STSB_RANGE, SUBMISSION_FILES, SUBMISSION_HEADER, TASKS, SubmissionFile

SUBMISSION_ZIP = "submission.zip"
FILLED_NOTE = "FILLED.txt"  # beside the files (never in the zip): which files hold constant placeholder predictions
_BY_FILE_NAME: dict[str, SubmissionFile] = {entry.file_name: entry for entry in SUBMISSION_FILES.values()}
_MAX_ROW_PROBLEMS = 10  # per file: a wrong file would otherwise produce one message per row


@dataclass(frozen=True)
class SubmissionSummary:
    """What :func:`package_submission` put in the zip, for the CLI's table."""

    zip_path: Path
    sources: dict[str, Path]  # SUBMISSION_FILES key -> leaderboard file its predictions were read from
    filled: dict[str, str]  # SUBMISSION_FILES key -> the constant prediction written instead, with its reason


def _format_score(score: float) -> str:
    return f"{score:.3f}"


def _fill_description(entry: SubmissionFile) -> str:
    if not entry.label_strings:
        return f"{_format_score(entry.fill_prediction)} (mean training score)"
    label_name = TASKS[entry.task].label_names[entry.fill_prediction]
    return f"{entry.label_strings[entry.fill_prediction]} ({label_name}, majority training class)"


def _prediction_column(entry: SubmissionFile, predictions: Sequence) -> list[str]:
    """Format one file's predictions (Hub class ids, or STS-B scores clipped to STSB_RANGE), checking each."""
    values = np.asarray(predictions)
    if values.ndim != 1:
        raise ValueError(f"{entry.key}: predictions have shape {values.shape}; pass one prediction per test example.")
    if len(values) != entry.num_rows:
        raise ValueError(
            f"{entry.key}: got {len(values)} predictions, expected {entry.num_rows} (official size of the "
            f"{entry.task} {entry.split} split); predict the whole test split, in file order."
        )
    if entry.label_strings:
        if values.dtype.kind not in "iu":
            raise ValueError(f"{entry.key}: predictions have dtype {values.dtype}; pass integer class ids (Hub order).")
        bad = np.flatnonzero((values < 0) | (values >= len(entry.label_strings)))
        if bad.size:
            raise ValueError(
                f"{entry.key}: prediction {values[bad[0]]} at row {bad[0]} is not a class id "
                f"0..{len(entry.label_strings) - 1}; pass ids in the Hub's label order."
            )
        return [entry.label_strings[label_id] for label_id in values.tolist()]
    try:
        scores = values.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{entry.key}: predictions are not numbers; pass similarity scores as floats.") from None
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise ValueError(f"{entry.key}: prediction {scores[bad[0]]} at row {bad[0]} is not a finite score.")
    return [_format_score(score) for score in np.clip(scores, *STSB_RANGE).tolist()]


def _tsv_text(column: list[str]) -> str:
    rows = "".join(f"{index}\t{prediction}\n" for index, prediction in enumerate(column))
    return "\t".join(SUBMISSION_HEADER) + "\n" + rows


def write_leaderboard_file(key: str, predictions: Sequence, output_dir: str | os.PathLike) -> Path:
    """Write one leaderboard file (e.g. ``key="rte"`` -> ``RTE.tsv``) into ``output_dir``, as a run produces it.

    ``predictions`` are Hub class ids (floats for ``stsb``) in test order, one per official test example.
    """
    if key not in SUBMISSION_FILES:
        raise ValueError(f"Unknown submission key {key!r}: choose one of {', '.join(SUBMISSION_FILES)}.")
    entry = SUBMISSION_FILES[key]
    path = Path(output_dir) / entry.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_tsv_text(_prediction_column(entry, predictions)), encoding="utf-8")
    return path


def write_submission(
    predictions: Mapping[str, Sequence],
    output_dir: str | os.PathLike,
    *,
    fill_missing: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the eleven leaderboard TSVs and a flat ``submission.zip`` into ``output_dir``; return the zip's path.

    ``predictions`` maps SUBMISSION_FILES keys (cola, sst2, mrpc, stsb, qqp, mnli_matched, mnli_mismatched, qnli,
    rte, wnli, ax) to per-example predictions in test order: class ids in the Hub's label order, floats for stsb
    (clipped to STSB_RANGE, written with 3 decimals). The index column is 0..n-1 (see the module docstring).

    The leaderboard rejects a submission with any file missing. With ``fill_missing`` a task without predictions
    gets its registry ``fill_prediction`` (majority training class, STS-B's mean score) on every row, and
    ``FILLED.txt`` lists those files. Everything is checked before anything is written; existing submission files
    in ``output_dir`` raise ``FileExistsError`` unless ``overwrite``.
    """
    unknown = sorted(set(predictions) - set(SUBMISSION_FILES))
    if unknown:
        raise ValueError(f"Unknown submission keys {', '.join(unknown)}: use keys of {', '.join(SUBMISSION_FILES)}.")
    missing = [key for key in SUBMISSION_FILES if key not in predictions]
    if missing and not fill_missing:
        raise ValueError(
            f"No predictions for {', '.join(missing)}: the leaderboard needs all eleven files; pass them, or "
            "fill_missing=True to write majority-class placeholders."
        )
    texts = {}
    for key, entry in SUBMISSION_FILES.items():
        column = predictions[key] if key in predictions else [entry.fill_prediction] * entry.num_rows
        texts[entry.file_name] = _tsv_text(_prediction_column(entry, column))

    output_dir = Path(output_dir)
    existing = [name for name in (*texts, SUBMISSION_ZIP, FILLED_NOTE) if (output_dir / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds {', '.join(existing)}: choose a new output folder or pass overwrite=True."
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    for file_name, text in texts.items():
        (output_dir / file_name).write_text(text, encoding="utf-8")
    filled_note = output_dir / FILLED_NOTE
    if missing:
        lines = [f"{SUBMISSION_FILES[key].file_name}\t{_fill_description(SUBMISSION_FILES[key])}" for key in missing]
        header = "Placeholder files: every row holds one constant prediction (AX uses MNLI's majority class).\n"
        filled_note.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    else:
        filled_note.unlink(missing_ok=True)  # a stale note from an overwritten filled submission would mislead
    zip_path = output_dir / SUBMISSION_ZIP
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file_name in texts:
            archive.write(output_dir / file_name, arcname=file_name)
    return zip_path


def _check_leaderboard_text(entry: SubmissionFile, text: str) -> tuple[list[int | float], list[str]]:
    """Parse one leaderboard file: its predictions (Hub ids / scores) and every problem, one line each."""
    name = entry.file_name
    lines = text.splitlines()
    if not lines:
        return [], [f"{name}: the file is empty; it needs the header and {entry.num_rows} rows."]
    problems: list[str] = []
    if lines[0].split("\t") != list(SUBMISSION_HEADER):
        problems.append(f"{name}: line 1: header {lines[0]!r}, expected {chr(9).join(SUBMISSION_HEADER)!r}.")
    label_ids = {label: label_id for label_id, label in enumerate(entry.label_strings)}
    low, high = STSB_RANGE
    predictions: list[int | float] = []
    row_problems: list[str] = []
    for row, line in enumerate(lines[1:]):
        where = f"{name}: line {row + 2}"
        fields = line.split("\t")
        if len(fields) != 2:
            row_problems.append(f"{where}: {len(fields)} tab-separated fields, expected 2 (index, prediction).")
            continue
        index, prediction = fields
        if index != str(row):
            row_problems.append(f"{where}: index {index!r}, expected {row} (indices run 0..n-1 in order).")
        if entry.label_strings:
            if prediction in label_ids:
                predictions.append(label_ids[prediction])
            else:
                allowed = ", ".join(entry.label_strings)
                row_problems.append(f"{where}: prediction {prediction!r} is not one of {allowed}.")
            continue
        try:
            score = float(prediction)
        except ValueError:
            row_problems.append(f"{where}: prediction {prediction!r} is not a number.")
            continue
        if not low <= score <= high:  # also rejects nan
            row_problems.append(f"{where}: score {prediction} is outside [{low:g}, {high:g}].")
        predictions.append(score)
    problems += row_problems[:_MAX_ROW_PROBLEMS]
    if len(row_problems) > _MAX_ROW_PROBLEMS:
        problems.append(f"{name}: {len(row_problems) - _MAX_ROW_PROBLEMS} more row problems not listed.")
    if len(lines) - 1 != entry.num_rows:
        problems.append(f"{name}: {len(lines) - 1} rows, expected {entry.num_rows} (the official test size).")
    return predictions, problems


def _read_text(data: bytes, name: str) -> tuple[str | None, str | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        return None, f"{name}: not utf-8 text ({error.reason} at byte {error.start})."


def validate_submission(path: str | os.PathLike) -> list[str]:
    """Every problem with a submission folder or ``.zip``, one line each naming the file; ``[]`` when valid.

    Checks: each of the eleven files present (and, in a zip, at its root with nothing else), its header, row count
    against the official test size, indices 0..n-1, labels allowed for the file, STS-B scores numeric in [0, 5].
    A folder may hold other files (the zip itself, ``FILLED.txt``); only unexpected ``.tsv`` files are reported.
    Row-level problems are listed up to 10 per file, then counted.
    """
    path = Path(path)
    contents: dict[str, bytes] = {}
    problems: list[str] = []
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.name in _BY_FILE_NAME and child.is_file():
                contents[child.name] = child.read_bytes()
            elif child.suffix == ".tsv":
                problems.append(f"{child.name}: not a leaderboard file; remove it or name it as the leaderboard does.")
    elif path.suffix == ".zip" and path.is_file():
        try:
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    if "/" in member.rstrip("/"):
                        problems.append(f"{member}: inside a folder of the zip; put the files at the zip's root.")
                    elif member in _BY_FILE_NAME:
                        contents[member] = archive.read(member)
                    else:
                        problems.append(f"{member}: not a leaderboard file; the zip holds only the eleven files.")
        except zipfile.BadZipFile:
            return [f"{path}: not a readable zip file."]
    else:
        return [f"{path}: neither a folder nor a .zip file."]
    for file_name, entry in _BY_FILE_NAME.items():
        if file_name not in contents:
            problems.append(f"{file_name}: missing; the leaderboard rejects a submission without it.")
            continue
        text, problem = _read_text(contents[file_name], file_name)
        problems += [problem] if problem else _check_leaderboard_text(entry, text)[1]
    return problems


def read_leaderboard_file(path: str | os.PathLike) -> list[int] | list[float]:
    """Read a leaderboard file back into predictions: Hub class ids, or floats for STS-B.

    The file name says which file it is; any problem :func:`validate_submission` would report raises ``ValueError``.
    """
    path = Path(path)
    if path.name not in _BY_FILE_NAME:
        raise ValueError(f"{path}: not a leaderboard file name; expected one of {', '.join(_BY_FILE_NAME)}.")
    text, problem = _read_text(path.read_bytes(), str(path))
    if problem:
        raise ValueError(problem)
    predictions, problems = _check_leaderboard_text(_BY_FILE_NAME[path.name], text)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ValueError(f"{path}: invalid leaderboard file: {problems[0]}{more}")
    return predictions


def collect_leaderboard_files(run_dirs: Iterable[str | os.PathLike]) -> dict[str, Path]:
    """Find leaderboard files (registry file names, searched recursively) in run folders: SUBMISSION_FILES key -> path.

    A file name found twice, within one folder or across folders, raises ``ValueError`` listing every path: the
    submission takes each task from exactly one run. Folders holding a ``submission.zip`` are packaged submissions,
    not runs, and are passed over, so a suite's root can be packaged again.
    """
    found: dict[str, list[Path]] = {}
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise ValueError(f"Run folder {run_dir} does not exist or is not a folder.")
        for file_name, entry in _BY_FILE_NAME.items():
            found.setdefault(entry.key, []).extend(
                path
                for path in sorted(run_dir.rglob(file_name))
                if path.is_file() and not (path.parent / SUBMISSION_ZIP).exists()
            )
    duplicates = [paths for paths in found.values() if len(paths) > 1]
    if duplicates:
        listed = "; ".join(" and ".join(str(path) for path in paths) for paths in duplicates)
        raise ValueError(f"Leaderboard files found more than once: {listed}. Pass one run folder per task.")
    collected = {key: paths[0] for key, paths in found.items() if paths}
    if not collected:
        searched = ", ".join(str(run_dir) for run_dir in run_dirs)
        raise ValueError(f"No leaderboard files ({', '.join(_BY_FILE_NAME)}) in {searched}; pass the runs' folders.")
    return collected


def package_submission(
    run_dirs: Iterable[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    fill_missing: bool = False,
    overwrite: bool = False,
) -> SubmissionSummary:
    """Gather the runs' leaderboard files into one checked submission in ``output_dir`` (:func:`write_submission`)."""
    sources = collect_leaderboard_files(run_dirs)
    predictions = {key: read_leaderboard_file(path) for key, path in sources.items()}
    zip_path = write_submission(predictions, output_dir, fill_missing=fill_missing, overwrite=overwrite)
    filled = {key: _fill_description(entry) for key, entry in SUBMISSION_FILES.items() if key not in sources}
    return SubmissionSummary(zip_path=zip_path, sources=sources, filled=filled)
