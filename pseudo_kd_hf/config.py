"""`PseudoKDTrainingArguments`: `TrainingArguments` plus the label regulariser's settings, as command-line flags."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from transformers import TrainingArguments

from .regularizers import get_regularizer


@dataclass
class PseudoKDTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the label regulariser's settings (so `HfArgumentParser` exposes them as flags).

    Which fields each method reads (defaults in brackets):
    ls: alpha [0.1]; kd: alpha [0.1], temperature [1]; pseudo_kd: alpha [0.1], beta [2] (or pseudo_kd_temperature
    tau, which sets beta = alpha * tau);
    tf_reg: alpha [0.1] (as in KD, the soft term's weight; also the official ResNet18 setting), tf_reg_temperature
    [20], tf_reg_teacher_prob [0.99]; ps_kd: ps_kd_alpha_T [0.8]; cs_kd: cs_kd_lambda [1], cs_kd_temperature [4];
    beta_ls: beta_ls_alpha [0.6], beta_ls_beta [3], beta_ls_ema_decay [0.999].
    `regularization` names a registered `Regularizer` (`pseudo_kd_hf.register_regularizer`); each method declares
    the settings it owns and their ranges (`Regularizer.bounds`), checked here for the chosen method. Building the
    arguments has no side effect: a method of your own is registered (its module imported) before, and the trainer
    applies what acts on training (`dataloader_pin_memory` on CPU, `fast_step`'s settings).
    A baseline whose authors' default differs from `alpha`/`beta`/`temperature`'s gets its own field, so its default
    holds and `--preset paper` (which fills the paper's alpha and beta) leaves it alone.
    """

    regularizer_module: str | None = field(
        default=None,
        metadata={
            "help": "A module to import before --regularization is read, so that the methods it registers with "
            "@register_regularizer can be chosen: a dotted name (my_pkg.my_reg) or a path to a .py file."
        },
    )
    regularization: str = field(
        default="pseudo_kd",
        metadata={
            "help": "Label regulariser: none (cross-entropy), ls (uniform label smoothing), kd (knowledge "
            "distillation from a teacher), pseudo_kd (the paper's optimal instance-specific smoothing); the paper's "
            "teacher-free baselines: tf_reg (a manually designed teacher), ps_kd (the model's own predictions of "
            "the previous epoch), cs_kd (a same-class example's prediction), beta_ls (Beta smoothing ranked by an "
            "EMA of the model); or a method of your own, registered in --regularizer_module.",
        },
    )
    alpha: float = field(
        default=0.1,
        metadata={
            "help": "Weight of the smoothing distribution / teacher in the target, in [0, 1] (ls, kd, "
            "pseudo_kd, tf_reg)."
        },
    )
    beta: float = field(
        default=2.0, metadata={"help": "Pseudo-KD's KL weight (> 0): P* = softmax((alpha / beta) * logits)."}
    )
    pseudo_kd_temperature: float | None = field(
        default=None,
        metadata={
            "help": "Pseudo-KD's temperature tau (> 0) instead of beta: sets beta = alpha * tau, so "
            "P* = softmax(logits / tau) (the paper's self-distillation reading). Give this or --beta, not both."
        },
    )
    temperature: float = field(
        default=1.0, metadata={"help": "KD softmax temperature T (> 0); the loss uses T^2 (kd only)."}
    )
    tf_reg_temperature: float = field(
        default=20.0,
        metadata={
            "help": "TF-reg: temperature T (> 0) of the virtual teacher and the student; the loss uses T^2. "
            "Default: the official ResNet18 setting."
        },
    )
    tf_reg_teacher_prob: float = field(
        default=0.99,
        metadata={
            "help": "TF-reg: probability a in (0, 1) the virtual teacher puts on the gold class; it spreads "
            "1 - a evenly over the others."
        },
    )
    ps_kd_alpha_T: float = field(
        default=0.8,
        metadata={
            "help": "PS-KD: final weight alpha_T in [0, 1] of the previous epoch's predictions; epoch t "
            "(from 0) of E uses alpha_T * (t + 1) / E."
        },
    )
    cs_kd_lambda: float = field(
        default=1.0, metadata={"help": "CS-KD: weight lambda (>= 0) of the KL to a same-class example's prediction."}
    )
    cs_kd_temperature: float = field(
        default=4.0, metadata={"help": "CS-KD: softmax temperature T (> 0); the loss uses T^2."}
    )
    beta_ls_alpha: float = field(
        default=0.6, metadata={"help": "Beta smoothing: weight in [0, 1] of the Beta-smoothed target."}
    )
    beta_ls_beta: float = field(
        default=3.0, metadata={"help": "Beta smoothing: shape a (> 0) of the Beta(a, 1) gold-class probabilities."}
    )
    beta_ls_ema_decay: float = field(
        default=0.999,
        metadata={"help": "Beta smoothing: cap in [0, 1) of the EMA model's decay min(1 - 1 / (step + 1), cap)."},
    )
    logging_nan_inf_filter: bool = field(
        default=False,
        metadata={
            "help": "Replace a NaN or inf step loss by the running mean in the logs (Trainer's default: on). Off here: "
            "it hides a diverged model, and it costs a host sync per step; a NaN logged loss stops training instead."
        },
    )
    fast_step: bool = field(
        default=False,
        metadata={
            "help": "A faster GPU training step with the same numbers: batches padded to a few static shapes, CUDA "
            "graphs (torch.compile reduce-overhead, training only), no host sync per step. No effect on CPU. "
            "Not for ps_kd, cs_kd, beta_ls."
        },
    )

    eval_sort_by_length: bool = field(
        default=True,
        metadata={
            "help": "Evaluate and predict longest rows first, so batches pad less; every output comes back in "
            "dataset order. false: the Trainer's file order, whose eval_loss matches a plain Trainer's bit for bit "
            "(a row's logits move in their last float bits with its padded length)."
        },
    )

    def __post_init__(self) -> None:
        self.check_settings()
        super().__post_init__()

    def check_settings(self) -> None:
        """Check the settings and derive `beta` from `pseudo_kd_temperature`; `ValueError` naming the field.

        Every float field (inherited ones included) must be finite; then the chosen method checks its own settings
        (`Regularizer.bounds` and `check_arguments`). Run when the arguments are built, and again by
        `PseudoKDTrainer` for each trial of `hyperparameter_search` (which sets a trial's values on `args`).
        """
        self._check_finite()
        self._beta_from_temperature()
        method = get_regularizer(self.regularization)
        method.check_settings(self)
        if self.fast_step and not method.supports_fast_step:
            raise ValueError(
                f"fast_step does not support regularization={self.regularization!r}: it builds its own batches or "
                "keeps state per row of a batch, which the static shapes would change; drop fast_step."
            )
        if self.label_smoothing_factor:
            raise ValueError(
                "label_smoothing_factor would smooth on top of the regulariser: use "
                f"regularization='ls' with alpha={self.label_smoothing_factor} instead."
            )

    def _beta_from_temperature(self) -> None:
        """`pseudo_kd_temperature` tau sets `beta = alpha * tau`; a different `beta` beside it is a contradiction."""
        tau = self.pseudo_kd_temperature
        if tau is None:
            return
        if tau <= 0.0:
            raise ValueError(f"pseudo_kd_temperature must be > 0, got {tau}.")
        beta = beta_from_temperature(self.alpha, tau)
        if self.beta not in (DEFAULT_BETA, beta):
            raise ValueError(
                f"pseudo_kd_temperature {tau} sets beta = alpha * tau = {beta:g}, but beta is {self.beta}: "
                "give pseudo_kd_temperature or beta, not both."
            )
        self.beta = beta

    def _check_finite(self) -> None:
        """Every float setting, `TrainingArguments`' own included, must be a finite number (not inf, not NaN)."""
        for setting in dataclasses.fields(self):
            value = getattr(self, setting.name)
            if not isinstance(value, float) or math.isfinite(value):
                continue
            hint = " (--regularization ls is Pseudo-KD's beta -> inf limit)" if setting.name == "beta" else ""
            raise ValueError(f"{setting.name} must be a finite number, got {value}{hint}.")


def beta_from_temperature(alpha: float, temperature: float) -> float:
    """Pseudo-KD's `beta` for a temperature tau: ``beta = alpha * tau`` makes ``P* = softmax(z / tau)``."""
    return alpha * temperature


DEFAULT_BETA = next(
    setting.default for setting in dataclasses.fields(PseudoKDTrainingArguments) if setting.name == "beta"
)
