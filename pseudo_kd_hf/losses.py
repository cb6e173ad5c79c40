"""Label regularisers of the Pseudo-KD paper as pure functions on logits.

Equation numbers refer to "Pseudo Knowledge Distillation: towards learning optimal instance-specific label
smoothing regularization". Notation: logits ``z`` of shape (batch, K), gold class ``y``, model probabilities
``p = softmax(z)``, smoothing weight ``alpha`` in [0, 1], KL weight ``beta`` > 0.

Every function works from log-softmax in float32 (float64 stays float64), never from powers of probabilities, so
fp16/bf16 logits of magnitude 1e4 give finite values and gradients. Each takes ``reduction`` in
{"mean", "sum", "none"}; "none" returns one value per example.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")


def _check_beta(beta: float) -> None:
    if not beta > 0.0:
        raise ValueError(f"beta must be > 0, got {beta}.")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")


def _upcast(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are computed on in float32; float32 and float64 stay as they are."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def _reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    if reduction == "mean":
        return per_example.mean()
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")


def _gold_nll(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``-log p(y|x)`` per example."""
    return -log_probs.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)


def label_smoothing_loss(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float, reduction: str = "mean"
) -> torch.Tensor:
    """Uniform label smoothing (Eq. 3 and 5 with ``P_ls = U``).

    ``L = sum_j [(1 - alpha) * onehot(y)_j + alpha / K] * (-log p_j)
        = (1 - alpha) * CE(y, p) + alpha * mean_j(-log p_j)``,
    the same value as ``F.cross_entropy(z, y, label_smoothing=alpha)``.
    """
    _check_alpha(alpha)
    log_probs = F.log_softmax(_upcast(logits), dim=-1)
    per_example = (1.0 - alpha) * _gold_nll(log_probs, labels) - alpha * log_probs.mean(dim=-1)
    return _reduce(per_example, reduction)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Knowledge distillation in Hinton's form (Eq. 1 with temperature ``T``).

    ``L = (1 - alpha) * CE(y, softmax(z_s)) + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``.
    The teacher's logits receive no gradient; ``T^2`` keeps the soft term's gradient scale independent of ``T``.
    """
    _check_alpha(alpha)
    _check_temperature(temperature)
    student_logits = _upcast(student_logits)
    teacher_logits = _upcast(teacher_logits.detach()).to(student_logits.dtype)
    hard = _gold_nll(F.log_softmax(student_logits, dim=-1), labels)
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits / temperature, dim=-1)
    soft = F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True).sum(dim=-1)
    per_example = (1.0 - alpha) * hard + alpha * temperature**2 * soft
    return _reduce(per_example, reduction)


def pseudo_kd_targets(logits: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """The optimal smoothing distribution of Theorem 1 (Eq. 10), detached.

    ``P*(j|x) = p(j|x)^(alpha/beta) / sum_j' p(j'|x)^(alpha/beta) = softmax((alpha / beta) * z)``:
    the log-sum-exp of ``log p`` cancels, so it is computed from logits. With ``beta = alpha * tau`` it is
    ``softmax(z / tau)`` (Eq. 13); as ``beta -> inf`` it tends to uniform. ``alpha = 0`` gives uniform exactly.
    """
    _check_alpha(alpha)
    _check_beta(beta)
    return F.softmax((alpha / beta) * _upcast(logits.detach()), dim=-1)


def pseudo_kd_loss(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float, reduction: str = "mean"
) -> torch.Tensor:
    """The Pseudo-KD objective ``R_i`` of Eq. 12, with ``P*`` of Theorem 1 held fixed (Algorithm 1, stage 2).

    ``R_i = sum_j Phat*(j) * (-log p_j) + beta * sum_j P*(j) * log(K * P*(j))``, where
    ``Phat* = (1 - alpha) * onehot(y) + alpha * P*`` (Eq. 5) and ``P* = softmax((alpha / beta) * z)``.
    No gradient flows through ``P*``, so the second term (``beta * KL(P* || U)``) is a constant in the parameters,
    but it is part of the value, as in Eq. 12.
    """
    _check_alpha(alpha)
    _check_beta(beta)
    logits = _upcast(logits)
    log_probs = F.log_softmax(logits, dim=-1)
    target_log_probs = F.log_softmax((alpha / beta) * logits.detach(), dim=-1)
    targets = target_log_probs.exp()
    num_classes = logits.shape[-1]
    smoothed_cross_entropy = (1.0 - alpha) * _gold_nll(log_probs, labels) - alpha * (targets * log_probs).sum(dim=-1)
    kl_to_uniform = (targets * (target_log_probs + math.log(num_classes))).sum(dim=-1)
    return _reduce(smoothed_cross_entropy + beta * kl_to_uniform, reduction)


def regression_kd_loss(
    predictions: torch.Tensor,
    teacher_predictions: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    reduction: str = "mean",
) -> torch.Tensor:
    """Distillation for a regression head (STS-B): ``L = (y_hat - y)^2 + alpha * (y_hat - y_teacher)^2``.

    Label smoothing has no meaning for a real-valued target, so the gold score keeps its full weight and the
    teacher's score adds an ``alpha``-weighted squared error. Inputs of shape (batch,) or (batch, 1).
    """
    _check_alpha(alpha)
    predictions = _upcast(predictions).reshape(-1)
    gold = (predictions - targets.reshape(-1).to(predictions.dtype)) ** 2
    teacher = (predictions - teacher_predictions.detach().reshape(-1).to(predictions.dtype)) ** 2
    return _reduce(gold + alpha * teacher, reduction)
