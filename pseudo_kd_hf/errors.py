"""`UsageError`, the one-line error for bad input, in a module of its own: the commands that need neither torch nor
transformers (`pseudo-kd-glue-submit`) raise it without importing the runner's arguments."""


class UsageError(Exception):
    """Bad user input, found before any training: one `error: ...` line on stderr naming the flag, exit code 2.

    Raised only where input is validated; errors from datasets, tokenizers, torch or the Trainer keep their type
    (and their traceback).
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
