"""`pseudo-kd-glue-submit`: gather runs' leaderboard files into one validated GLUE submission zip.

It imports only the submission writer and the GLUE table: neither torch nor transformers, so it starts in a moment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import UsageError
from .glue.submission import (
    OutputFolderError,
    SubmissionError,
    SubmissionSummary,
    collect_leaderboard_files,
    package_submission,
    validate_submission,
)
from .glue.tasks import SUBMISSION_FILES


def main(argv: Sequence[str] | None = None) -> int:
    """`pseudo-kd-glue-submit`: gather runs' leaderboard files into one validated GLUE submission zip."""
    parser = argparse.ArgumentParser(
        prog="pseudo-kd-glue-submit",
        description="Collect the leaderboard files (CoLA.tsv, ..., AX.tsv) that pseudo-kd-glue --do_predict wrote "
        "into run folders, check them, and write the eleven files plus submission.zip for gluebenchmark.com.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="Run folders, searched recursively.")
    parser.add_argument(
        "--output_dir", required=True, help="Where to write the submission, e.g. glue_submissions/NAME."
    )
    parser.add_argument(
        "--fill_missing",
        action="store_true",
        help="Fill files no run wrote with the majority training class (STS-B: mean score); listed in FILLED.txt.",
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace a submission already in --output_dir.")
    args = parser.parse_args(argv)
    try:
        summary = _package(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = [("file", "source", "rows")]
    for key, entry in SUBMISSION_FILES.items():
        source = str(summary.sources[key]) if key in summary.sources else f"filled: {summary.filled[key]}"
        rows.append((entry.file_name, source, str(entry.num_rows)))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for name, source, count in rows:
        print(f"{name:<{widths[0]}}  {source:<{widths[1]}}  {count:>5}")
    problems = validate_submission(summary.zip_path)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    from_runs = f"{len(summary.sources)} file{'' if len(summary.sources) == 1 else 's'} from runs"
    print(f"Wrote {summary.zip_path} ({from_runs}, {len(summary.filled)} filled).")
    return 0


def _package(args: argparse.Namespace) -> SubmissionSummary:
    """`package_submission` with its bad-input errors as `UsageError`s naming the flags as typed."""
    try:
        if not args.fill_missing:
            missing = set(SUBMISSION_FILES) - set(collect_leaderboard_files(args.run_dirs))
            if missing:
                names = ", ".join(entry.file_name for key, entry in SUBMISSION_FILES.items() if key in missing)
                raise UsageError(
                    f"No run wrote {names}: the leaderboard needs all eleven files; pass the runs that wrote them, "
                    "or --fill_missing to fill them with majority-class placeholders."
                )
        return package_submission(
            args.run_dirs, args.output_dir, fill_missing=args.fill_missing, overwrite=args.overwrite
        )
    except OutputFolderError as error:
        raise UsageError(f"--output_dir {args.output_dir}: {error}") from None
    except SubmissionError as error:
        raise UsageError(str(error)) from None
    except FileExistsError:
        raise UsageError(
            f"--output_dir {args.output_dir} already holds a submission: pass --overwrite to replace it, or choose "
            "another folder."
        ) from None


if __name__ == "__main__":
    sys.exit(main())
