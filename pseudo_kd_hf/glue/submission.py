"""GLUE leaderboard submissions: write the eleven TSV files and the flat zip, read them back, validate them.

Design: a run writes its leaderboard file(s) with :func:`write_leaderboard_file`; packaging finds them in run folders
(:func:`collect_leaderboard_files`), reads each back into predictions (:func:`read_leaderboard_file`) and writes the
whole submission again with :func:`write_submission`. Reading back checks every file, and one writer formats them all.
:func:`package_submission` chains these steps for ``pseudo-kd-glue-submit``.

Every GLUE test file is indexed 0..n-1 in file order (the Hub's ``idx``), so a file's index column is ``range(n)``
and predictions are given as sequences in test order, with no explicit index.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import check_finite_predictions
from .tasks import STSB_RANGE, SUBMISSION_FILES, SUBMISSION_HEADER, TASKS, SubmissionFile

SUBMISSION_ZIP = "submission.zip"
FILLED_NOTE = "FILLED.txt"  # beside the files (never in the zip): which files hold constant placeholder predictions
_BY_FILE_NAME: dict[str, SubmissionFile] = {entry.file_name: entry for entry in SUBMISSION_FILES.values()}
_MAX_ROW_PROBLEMS = 10  # per file: a wrong file would otherwise produce one message per row
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # float() also takes "0_1", " 3.0 ", "nan", "1e0"
# What reading a damaged zip member raises: bad CRC or header (BadZipFile), broken deflate data (zlib.error), a
# truncated member (EOFError), an encrypted one (RuntimeError) or an unknown compression method (NotImplementedError).
_CORRUPT_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError)


class SubmissionError(ValueError):
    """Run folders or leaderboard files that cannot make a submission: bad input, reported as one line."""


class OutputFolderError(SubmissionError):
    """The folder asked to hold the submission cannot: it is one of the run folders collected from."""


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
    """Format one file's predictions, checking each: Hub class ids or logits (argmaxed here), or STS-B scores.

    Logits holding NaN or infinity raise :class:`NonFinitePredictionsError`: argmaxed, they would read as class 0.
    STS-B scores are clipped to STSB_RANGE.
    """
    values = np.asarray(predictions)
    num_columns = len(entry.label_strings) or 1
    if values.dtype.kind in "biuf":
        check_finite_predictions(entry.key, values)
    if values.ndim == 2 and values.shape[1] == num_columns and values.dtype.kind == "f":
        values = values.argmax(axis=-1) if entry.label_strings else values[:, 0]
    if values.ndim != 1:
        raise ValueError(
            f"{entry.key}: predictions have shape {values.shape}; pass one prediction per test example, or logits "
            f"(N, {num_columns})."
        )
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
    check_finite_predictions(entry.key, scores)
    return [_format_score(score) for score in np.clip(scores, *STSB_RANGE).tolist()]


def _tsv_text(column: list[str]) -> str:
    rows = "".join(f"{index}\t{prediction}\n" for index, prediction in enumerate(column))
    return "\t".join(SUBMISSION_HEADER) + "\n" + rows


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a crash mid-write leaves the previous file (or none), never half of one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as to a file
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_leaderboard_file(key: str, predictions: Sequence, output_dir: str | os.PathLike) -> Path:
    """Write one leaderboard file (e.g. ``key="rte"`` -> ``RTE.tsv``) into ``output_dir``, as a run produces it.

    ``predictions`` are the model's logits (N, num_labels), or Hub class ids (N,), in test order, one per official
    test example; for ``stsb`` scores (N,) or (N, 1). Everything is checked before the file is written, whole: NaN or
    infinite logits (a diverged model) raise :class:`NonFinitePredictionsError` and write nothing.
    """
    if key not in SUBMISSION_FILES:
        raise ValueError(f"Unknown submission key {key!r}: choose one of {', '.join(SUBMISSION_FILES)}.")
    entry = SUBMISSION_FILES[key]
    text = _tsv_text(_prediction_column(entry, predictions))
    path = Path(output_dir) / entry.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text.encode("utf-8"))
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
    zip_path = output_dir / SUBMISSION_ZIP
    zip_path.unlink(missing_ok=True)  # a crash while the files below are replaced leaves no zip of old and new
    for file_name, text in texts.items():
        write_atomically(output_dir / file_name, text.encode("utf-8"))
    filled_note = output_dir / FILLED_NOTE
    if missing:
        lines = [f"{SUBMISSION_FILES[key].file_name}\t{_fill_description(SUBMISSION_FILES[key])}" for key in missing]
        header = "Placeholder files: every row holds one constant prediction (AX uses MNLI's majority class).\n"
        write_atomically(filled_note, (header + "\n".join(lines) + "\n").encode("utf-8"))
    else:
        filled_note.unlink(missing_ok=True)  # a stale note from an overwritten filled submission would mislead
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file_name, text in texts.items():
            member = zipfile.ZipInfo(file_name, date_time=time.localtime()[:6])
            member.external_attr = 0o644 << 16  # readable by all, as the files beside it
            archive.writestr(member, text, compress_type=zipfile.ZIP_DEFLATED)
    write_atomically(zip_path, buffer.getvalue())  # last: a folder holding the zip holds a complete submission
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
        if not _PLAIN_DECIMAL.fullmatch(prediction):
            row_problems.append(f"{where}: prediction {prediction!r} is not a plain decimal number such as 3.142.")
            continue
        score = float(prediction)
        if not low <= score <= high:
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


def _read_zip_members(archive: zipfile.ZipFile) -> tuple[dict[str, bytes | None], list[str]]:
    """The leaderboard files of a zip by name, and one problem per misplaced, repeated, unexpected or damaged member.

    A repeated or damaged leaderboard file maps to None: it is there, but its problem is already reported.
    """
    contents: dict[str, bytes | None] = {}
    problems: list[str] = []
    counts = Counter(info.filename for info in archive.infolist())
    for member, count in counts.items():
        if count > 1:
            contents[member] = None
            problems.append(f"{member}: {count} members of the zip have this name; write the zip again with one.")
        elif "/" in member.rstrip("/"):
            problems.append(f"{member}: inside a folder of the zip; put the files at the zip's root.")
        elif member not in _BY_FILE_NAME:
            problems.append(f"{member}: not a leaderboard file; the zip holds only the eleven files.")
        else:
            try:
                contents[member] = archive.read(member)
            except _CORRUPT_MEMBER_ERRORS as error:
                contents[member] = None
                problems.append(f"{member}: damaged in the zip ({' '.join(str(error).split())}); write the zip again.")
    return contents, problems


def validate_submission(path: str | os.PathLike) -> list[str]:
    """Every problem with a submission folder or ``.zip``, one line each naming the file; ``[]`` when valid.

    Checks: each of the eleven files present (and, in a zip, once, undamaged, at its root with nothing else), its
    header, row count against the official test size, indices 0..n-1, labels allowed for the file, STS-B scores
    plain decimal numbers in [0, 5].
    A folder may hold other files (the zip itself, ``FILLED.txt``); only unexpected ``.tsv`` files are reported.
    Row-level problems are listed up to 10 per file, then counted.
    """
    path = Path(path)
    contents: dict[str, bytes | None] = {}
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
                contents, problems = _read_zip_members(archive)
        except zipfile.BadZipFile:
            return [f"{path}: not a readable zip file."]
    else:
        return [f"{path}: neither a folder nor a .zip file."]
    for file_name, entry in _BY_FILE_NAME.items():
        if file_name not in contents:
            problems.append(f"{file_name}: missing; the leaderboard rejects a submission without it.")
            continue
        if contents[file_name] is None:  # repeated or damaged in the zip: reported above
            continue
        text, problem = _read_text(contents[file_name], file_name)
        problems += [problem] if problem else _check_leaderboard_text(entry, text)[1]
    return problems


def read_leaderboard_file(path: str | os.PathLike) -> list[int] | list[float]:
    """Read a leaderboard file back into predictions: Hub class ids, or floats for STS-B.

    The file name says which file it is; any problem :func:`validate_submission` would report raises
    :class:`SubmissionError`.
    """
    path = Path(path)
    if path.name not in _BY_FILE_NAME:
        raise SubmissionError(f"{path}: not a leaderboard file name; expected one of {', '.join(_BY_FILE_NAME)}.")
    text, problem = _read_text(path.read_bytes(), str(path))
    if problem:
        raise SubmissionError(problem)
    predictions, problems = _check_leaderboard_text(_BY_FILE_NAME[path.name], text)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise SubmissionError(f"{path}: invalid leaderboard file: {problems[0]}{more}")
    return predictions


def collect_leaderboard_files(run_dirs: Iterable[str | os.PathLike]) -> dict[str, Path]:
    """Find leaderboard files (registry file names, searched recursively) in run folders: SUBMISSION_FILES key -> path.

    A file name found twice, within one folder or across folders, raises :class:`SubmissionError` listing every
    path: the submission takes each task from exactly one run. Folders holding a ``submission.zip`` are packaged
    submissions, not runs, and are passed over, so a suite's root can be packaged again.
    """
    found: dict[str, list[Path]] = {}
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise SubmissionError(f"Run folder {run_dir} does not exist or is not a folder.")
        for file_name, entry in _BY_FILE_NAME.items():
            found.setdefault(entry.key, []).extend(
                path
                for path in sorted(run_dir.rglob(file_name))
                if path.is_file() and not (path.parent / SUBMISSION_ZIP).exists()
            )
    duplicates = [paths for paths in found.values() if len(paths) > 1]
    if duplicates:
        listed = "; ".join(" and ".join(str(path) for path in paths) for paths in duplicates)
        raise SubmissionError(f"Leaderboard files found more than once: {listed}. Pass one run folder per task.")
    collected = {key: paths[0] for key, paths in found.items() if paths}
    if not collected:
        searched = ", ".join(str(run_dir) for run_dir in run_dirs)
        raise SubmissionError(
            f"No leaderboard files ({', '.join(_BY_FILE_NAME)}) in {searched}; pass the runs' folders."
        )
    return collected


def package_submission(
    run_dirs: Iterable[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    fill_missing: bool = False,
    overwrite: bool = False,
) -> SubmissionSummary:
    """Gather the runs' leaderboard files into one checked submission in ``output_dir`` (:func:`write_submission`).

    ``output_dir`` may not be one of the run folders: the submission's files would replace the run's own there.
    Problems with the runs' files raise :class:`SubmissionError`, an unusable ``output_dir`` its subclass
    :class:`OutputFolderError`, an existing submission there (without ``overwrite``) ``FileExistsError``.
    """
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    output = Path(output_dir).resolve()
    for run_dir in run_dirs:
        if run_dir.resolve() == output:
            raise OutputFolderError(
                f"Output folder {output_dir} is also a run folder to collect from ({run_dir}): writing the submission "
                "there would replace the run's own leaderboard files; choose another output folder."
            )
    sources = collect_leaderboard_files(run_dirs)
    predictions = {key: read_leaderboard_file(path) for key, path in sources.items()}
    zip_path = write_submission(predictions, output_dir, fill_missing=fill_missing, overwrite=overwrite)
    filled = {key: _fill_description(entry) for key, entry in SUBMISSION_FILES.items() if key not in sources}
    return SubmissionSummary(zip_path=zip_path, sources=sources, filled=filled)
