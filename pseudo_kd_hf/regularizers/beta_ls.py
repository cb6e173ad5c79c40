"""`beta_ls`: Beta smoothing, ranked by an exponential moving average (EMA) of the student."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import TrainerCallback, TrainingArguments

from ..losses import LossParts, beta_smoothing_loss
from .base import HALF_OPEN_UNIT, POSITIVE, UNIT, Regularizer, register_regularizer

if TYPE_CHECKING:
    from ..trainer import PseudoKDTrainer


class EMAUpdateCallback(TrainerCallback):
    """Move an EMA model toward the student after every optimizer step (not every micro-batch).

    After the t-th step: ``ema <- d * ema + (1 - d) * student``, ``d = min(1 - 1 / (t + 1), max_decay)``, over the
    parameters, as in Beta smoothing's official code (whose EMA model starts from a fresh initialisation; ours from
    the student).
    """

    def __init__(self, ema_model: nn.Module, max_decay: float) -> None:
        self.ema_model = ema_model
        self.max_decay = max_decay

    @torch.no_grad()
    def on_step_end(
        self, args: TrainingArguments, state: Any, control: Any, model: nn.Module | None = None, **kwargs
    ) -> None:
        decay = min(1.0 - 1.0 / (state.global_step + 1), self.max_decay)
        for ema_parameter, parameter in zip(self.ema_model.parameters(), model.parameters(), strict=True):
            ema_parameter.lerp_(parameter.detach().to(ema_parameter.device), 1.0 - decay)


@register_regularizer("beta_ls")
class BetaSmoothing(Regularizer):
    """Cross-entropy to ``(1 - a) * onehot(y) + a * q_beta`` (`losses.beta_smoothing_loss`), ``a = beta_ls_alpha``.

    Costs memory and time: an EMA copy of the model (its parameters again, without gradients or optimizer state),
    one extra no-grad forward per micro-batch, and an EMA update per optimizer step. The draws of the t-th optimizer
    step come from a generator seeded with ``hash((seed, process_index, t))``: they differ across processes and
    replay exactly after resuming from a checkpoint.
    """

    supports_fast_step = False  # its draws are per row of a batch
    keeps_state = True  # the EMA model

    bounds = {"beta_ls_alpha": UNIT, "beta_ls_beta": POSITIVE, "beta_ls_ema_decay": HALF_OPEN_UNIT}

    def setup(self, trainer: PseudoKDTrainer) -> None:
        super().setup(trainer)
        zero_3 = trainer.is_deepspeed_enabled and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3
        if trainer.is_fsdp_enabled or zero_3:
            raise ValueError(
                "regularization='beta_ls' keeps a whole EMA copy of the model: it does not support FSDP or "
                "DeepSpeed ZeRO-3; use DDP or ZeRO-1/2."
            )
        self.ema_model = copy.deepcopy(trainer.accelerator.unwrap_model(trainer.model)).requires_grad_(False)
        self.ema_model.train()  # as in the official code: the EMA model runs with dropout, like the student
        self._generator = torch.Generator()
        self._generator_step = -1  # the optimizer step the generator was last seeded for
        trainer.add_callback(EMAUpdateCallback(self.ema_model, self.args.beta_ls_ema_decay))

    def draws_generator(self) -> torch.Generator:
        """The generator of this optimizer step's draws; its micro-batches draw from it in turn."""
        step = self.trainer.state.global_step
        if step != self._generator_step:
            self._generator.manual_seed(hash((self.args.seed, self.args.process_index, step)) % 2**63)
            self._generator_step = step
        return self._generator

    def per_example_loss(self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, Any]) -> LossParts:
        with torch.no_grad():  # `to` is a no-op once there (DeepSpeed moves the student late)
            ema_logits = self.ema_model.to(logits.device)(**self.model_inputs(batch)).logits
        return beta_smoothing_loss(
            logits,
            labels,
            ema_logits,
            alpha=self.args.beta_ls_alpha,
            beta=self.args.beta_ls_beta,
            generator=self.draws_generator(),
            reduction="none",
            return_parts=True,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"ema_model": self.ema_model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema_model.load_state_dict(state["ema_model"])

    def restart_state(self, model: nn.Module) -> None:
        self.ema_model.load_state_dict(model.state_dict())
