"""Logs a file can hold: no terminal escape codes when the output is not a terminal (`pseudo-kd-glue ... > log`),
and a log printer that leaves the logged metrics whole."""

from __future__ import annotations

import logging
import re
import sys

import datasets
import transformers
from transformers import PrinterCallback, Trainer

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _StripEscapeCodes(logging.Filter):
    """Removes terminal escape codes from a record (transformers bolds its model load report unconditionally)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\x1b" in message:
            record.msg, record.args = ANSI_ESCAPE.sub("", message), None
        return True


def plain_text_when_not_a_terminal() -> None:
    """A log written to a file gets no escape codes: none in log records, and no progress bars of the libraries
    (datasets, model saving), whose nesting under the Trainer's bar writes cursor moves. The Trainer's own bar
    follows --disable_tqdm."""
    for logger_name in ("", "transformers"):  # the root logger (run_glue's basicConfig), transformers' own handler
        for handler in logging.getLogger(logger_name).handlers:
            stream = getattr(handler, "stream", None)
            to_terminal = stream is not None and hasattr(stream, "isatty") and stream.isatty()
            if not to_terminal and not any(isinstance(added, _StripEscapeCodes) for added in handler.filters):
                handler.addFilter(_StripEscapeCodes())
    if not sys.stderr.isatty():
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


class MetricsKeepingPrinterCallback(PrinterCallback):
    """transformers' `PrinterCallback` (the log printer under --disable_tqdm) without its side effect.

    It pops `total_flos` from the dict it is handed, which at the end of training is the train metrics themselves:
    `train_results.json` then lacks it. This one prints the same line from a copy.
    """

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs=dict(logs or {}), **kwargs)


def keep_logged_metrics(trainer: Trainer) -> None:
    """Swap the trainer's `PrinterCallback`, if it has one, for :class:`MetricsKeepingPrinterCallback`."""
    if trainer.pop_callback(PrinterCallback) is not None:
        trainer.add_callback(MetricsKeepingPrinterCallback)
