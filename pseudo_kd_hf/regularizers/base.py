"""The extension point: a label regulariser is a `Regularizer` subclass registered under a name.

```python
@register_regularizer("confidence_penalty")
class ConfidencePenalty(Regularizer):
    def per_example_loss(self, logits, labels, batch):
        log_p = F.log_softmax(logits.float(), dim=-1)
        return F.nll_loss(log_p, labels, reduction="none") + self.args.alpha * (log_p.exp() * log_p).sum(-1)
```

`PseudoKDTrainingArguments(regularization="confidence_penalty")` then trains with it. `PseudoKDTrainer` owns what
is common to every method: it drops the rows labelled -100 (they reach `per_example_loss` as class 0 and their
values are zeroed), reduces the per-example loss over the whole accumulated batch (gradient accumulation and DDP
included), logs the loss parts and checkpoints the method's state. A method owns the rest, through these hooks:

- `bounds` (class attribute): the settings the method owns and their ranges; `check_arguments(args)` (class
  method): any other check. Both run (`check_settings`) when `PseudoKDTrainingArguments` are built with the method
  chosen, and for each trial of `hyperparameter_search`.
- `setup(trainer)`: once, at the end of `PseudoKDTrainer.__init__` (build state, add callbacks, read the data).
- `train_dataloader(trainer)`: a DataLoader of the method's own batches, or None for the Trainer's.
- `per_example_loss(logits, labels, batch)`: every training micro-batch (never in evaluation).
- `update_state(logits, keep, batch)`: after every training micro-batch's loss, with the rows kept.
- `state_dict()` / `load_state_dict(state)` / `restart_state(model)`: saved into every checkpoint as
  `regularizer_state.pt`; restored on resume; restarted when a checkpoint lacks the file.
- `describe()`: the method and its settings in one line, the first line `pseudo-kd-glue` logs (default: the name
  and the settings in `bounds`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from torch.utils.data import DataLoader

from ..losses import LossParts

if TYPE_CHECKING:
    from ..config import PseudoKDTrainingArguments
    from ..trainer import PseudoKDTrainer

# A setting's valid range: (predicate, the range in words).
Bound = tuple[Callable[[float], bool], str]
UNIT: Bound = (lambda value: 0.0 <= value <= 1.0, "in [0, 1]")
POSITIVE: Bound = (lambda value: value > 0.0, "> 0")
NON_NEGATIVE: Bound = (lambda value: value >= 0.0, ">= 0")
OPEN_UNIT: Bound = (lambda value: 0.0 < value < 1.0, "in (0, 1)")
HALF_OPEN_UNIT: Bound = (lambda value: 0.0 <= value < 1.0, "in [0, 1)")


class Regularizer:
    """One label regularisation method, built by `PseudoKDTrainer` from its `PseudoKDTrainingArguments`.

    Class attributes a method may set:
        name: set by `register_regularizer`.
        bounds: the settings (fields of the training arguments) the method owns, with their valid ranges.
        columns: extra training-set columns the method reads from `batch` (kept through `remove_unused_columns`,
            never passed to the model).
        supports_regression: False makes a regression head (num_labels=1) train on the plain MSE instead, with a
            warning.
        uses_teacher: whether the method runs the trainer's `teacher_model` (others refuse one).
        supports_fast_step: False refuses `--fast_step` (batches padded to static shapes with -100 rows): for a
            method that builds its own batches or keys per-row state by every row of a batch.
        keeps_state: whether `state_dict()` holds state: a checkpoint of such a method lacking `regularizer_state.pt`
            is incomplete, and resuming passes over it.
    """

    name: ClassVar[str] = ""
    bounds: ClassVar[dict[str, Bound]] = {}
    columns: ClassVar[tuple[str, ...]] = ()
    supports_regression: ClassVar[bool] = False
    uses_teacher: ClassVar[bool] = False
    supports_fast_step: ClassVar[bool] = True
    keeps_state: ClassVar[bool] = False

    def __init__(self, args: PseudoKDTrainingArguments) -> None:
        self.args = args
        self.trainer: PseudoKDTrainer | None = None

    @classmethod
    def check_settings(cls, args: PseudoKDTrainingArguments) -> None:
        """The method's settings in their `bounds`, then `check_arguments` (the arguments checked them finite)."""
        for field_name, (valid, bound) in cls.bounds.items():
            value = getattr(args, field_name)
            if not valid(value):
                raise ValueError(f"{field_name} must be {bound}, got {value}.")
        cls.check_arguments(args)

    @classmethod
    def check_arguments(cls, args: PseudoKDTrainingArguments) -> None:
        """Refuse settings that cannot work with this method (raise `ValueError` naming the field)."""

    def setup(self, trainer: PseudoKDTrainer) -> None:
        """Build the method's state from the trainer (model, training set, accelerator); keeps the trainer."""
        self.trainer = trainer

    def train_dataloader(self, trainer: PseudoKDTrainer) -> DataLoader | None:
        """The training DataLoader, for a method that builds its own batches; None keeps the Trainer's."""
        return None

    def per_example_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, Any]
    ) -> torch.Tensor | LossParts:
        """The loss of each example, or its `LossParts` (then `ce_loss`/`regularizer_loss` are logged exactly).

        Args:
            logits: the model's logits for the micro-batch.
            labels: gold class ids (float scores for regression); rows labelled -100 arrive as 0 and are masked.
            batch: the micro-batch's other columns (model inputs and the method's `columns`).

        Shape:
            logits (B, K); labels (B,); output (B,).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement per_example_loss.")

    def update_state(self, logits: torch.Tensor, keep: torch.Tensor, batch: dict[str, Any]) -> None:
        """After a training micro-batch's loss: `logits` detached, `keep` False on the rows labelled -100."""

    def state_dict(self) -> dict[str, Any]:
        """What checkpoints hold of the method (identical on every process); empty when it keeps no state."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output when resuming."""

    def restart_state(self, model: torch.nn.Module) -> None:
        """Resuming from a checkpoint without the method's state: start it afresh from the resumed `model`."""

    def describe(self) -> str:
        """The method and its settings in one line, the run's first log line (e.g. ``ls: alpha 0.1``)."""
        settings = ", ".join(f"{name} {getattr(self.args, name):g}" for name in self.bounds)
        return f"{self.name}: {settings}" if settings else self.name

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """`batch` without the method's own columns: what the model (or a teacher, an EMA copy) takes."""
        return {name: value for name, value in batch.items() if name not in self.columns}


_REGISTRY: dict[str, type[Regularizer]] = {}
_R = TypeVar("_R", bound=type[Regularizer])


def register_regularizer(name: str) -> Callable[[_R], _R]:
    """Class decorator: make a `Regularizer` subclass available as `regularization=name` (and `--regularization`)."""

    def register(cls: _R) -> _R:
        if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
            raise TypeError(f"register_regularizer({name!r}) decorates Regularizer subclasses, got {cls!r}.")
        if name in _REGISTRY and _REGISTRY[name].__qualname__ != cls.__qualname__:
            raise ValueError(f"A regulariser named {name!r} is already registered ({_REGISTRY[name].__qualname__}).")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return register


def registered_regularizers() -> dict[str, type[Regularizer]]:
    """Every registered method by name, built-in ones first."""
    return dict(_REGISTRY)


def get_regularizer(name: str) -> type[Regularizer]:
    """The class registered as `name`; `ValueError` listing the registered names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(
            f"regularization must be one of {', '.join(_REGISTRY)}, got {name!r} (a method of your own: register it "
            "with @register_regularizer and import its module first, e.g. --regularizer_module my_pkg.my_reg)."
        )
    return _REGISTRY[name]


def import_regularizer_module(module: str) -> None:
    """Import a user's module so that its `@register_regularizer` classes register: a dotted name or a .py path."""
    if module.endswith(".py") or os.sep in module:
        path = Path(module).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"regularizer_module {module}: no such file; pass a .py file or a dotted module name.")
        name = f"_pseudo_kd_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return
        spec = importlib.util.spec_from_file_location(name, path)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[name]
            raise
        return
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or not module.startswith(error.name):  # a module it imports is missing: a real bug
            raise
        raise ValueError(f"regularizer_module {module}: no module named {error.name!r} on the Python path.") from None


def student_num_labels(trainer: PseudoKDTrainer) -> int:
    """The student's number of labels (1: a regression head), read through any wrapper accelerate put on it."""
    return trainer.accelerator.unwrap_model(trainer.model).config.num_labels


LABEL_COLUMNS = ("labels", "label", "label_ids")  # where a batch or dataset may hold the labels (HF collators' names)


def training_labels(dataset: Any, regularization: str) -> list:
    """The training labels, read once at setup by the methods that need them before any batch."""
    columns = getattr(dataset, "column_names", None) or []
    name = next((name for name in LABEL_COLUMNS if name in columns), None)
    if name is None:
        raise ValueError(
            f"regularization={regularization!r} reads the training labels up front: pass train_dataset as a "
            "datasets.Dataset with a 'label' column."
        )
    return list(dataset[name])
