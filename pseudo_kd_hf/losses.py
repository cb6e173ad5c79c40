"""Label regularisers of the Pseudo-KD paper as pure functions on logits.

Equation numbers refer to "Pseudo Knowledge Distillation: towards learning optimal instance-specific label
smoothing regularization". Notation: logits ``z`` of shape (batch, K), gold class ``y``, model probabilities
``p = softmax(z)``, smoothing weight ``alpha`` in [0, 1], KL weight ``beta`` > 0.

Every function works from log-softmax in float32 (float64 stays float64), never from powers of probabilities, so
fp16/bf16 logits of magnitude 1e4 give finite values and gradients. Each takes ``reduction`` in
{"mean", "sum", "none"}; "none" returns one value per example.

The teacher-free baselines of the paper's Table 2 follow at the end (TF-reg, PS-KD, CS-KD, Beta smoothing), each
documented with its source, its authors' defaults, and where we differ from their official code.
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


# ---- teacher-free baselines (the paper's Table 2) -------------------------------------------------------------------


def soft_target_loss(
    logits: torch.Tensor, labels: torch.Tensor, soft_targets: torch.Tensor, alpha: float, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy against ``(1 - alpha) * onehot(y) + alpha * q`` for fixed per-example targets ``q`` (Eq. 5).

    ``L = (1 - alpha) * CE(y, p) + alpha * sum_j q_j * (-log p_j)``; ``q`` (batch x K rows on the simplex) receives no
    gradient. PS-KD and Beta smoothing are this loss with their own ``q``.
    """
    _check_alpha(alpha)
    log_probs = F.log_softmax(_upcast(logits), dim=-1)
    soft = -(soft_targets.detach().to(log_probs.dtype) * log_probs).sum(dim=-1)
    return _reduce((1.0 - alpha) * _gold_nll(log_probs, labels) + alpha * soft, reduction)


def virtual_teacher_logits(
    labels: torch.Tensor, num_classes: int, teacher_prob: float = 0.99, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """TF-reg's manually designed teacher as logits: ``log a`` on the gold class, ``log((1 - a) / (K - 1))`` elsewhere.

    Their softmax is the teacher's distribution ``p^d`` of Yuan et al. (CVPR 2020), so tempering these logits,
    ``softmax(v / T) ∝ (p^d)^(1/T)``, softens ``p^d`` the way KD softens a real teacher.
    """
    if not 0.0 < teacher_prob < 1.0:
        raise ValueError(f"teacher_prob must be in (0, 1), got {teacher_prob}.")
    if num_classes < 2:
        raise ValueError(f"A virtual teacher needs num_classes >= 2, got {num_classes}.")
    logits = torch.full(
        (labels.shape[0], num_classes),
        math.log((1.0 - teacher_prob) / (num_classes - 1)),
        dtype=dtype,
        device=labels.device,
    )
    return logits.scatter_(-1, labels.long().unsqueeze(-1), math.log(teacher_prob))


def tf_reg_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    temperature: float = 20.0,
    teacher_prob: float = 0.99,
    reduction: str = "mean",
) -> torch.Tensor:
    """Teacher-free KD with a manually designed teacher, Tf-KD_reg (Yuan et al., CVPR 2020, Section 5).

    ``L = (1 - alpha) * CE(y, softmax(z)) + alpha * T^2 * KL(softmax(v / T) || softmax(z / T))`` with ``v`` the
    virtual teacher's logits (`virtual_teacher_logits`): KD (`kd_loss`) from a teacher that puts ``a`` on the gold
    class. Official code (yuanli2333/Teacher-free-Knowledge-Distillation, ``loss_kd_regularization``): ``a = 0.99``;
    per model, e.g. ResNet18 ``reg_alpha=0.1, reg_temperature=20, multiplier=100``. It differs from the paper, and
    from us, in three ways: it applies softmax to the teacher's *probabilities* (``softmax(p^d / T)``, nearly uniform
    for T = 20) instead of tempering them, it does not temper the student (``log_softmax(z)``), and it scales the KL,
    averaged over all B * K elements (``nn.KLDivLoss()``), by ``multiplier`` instead of summing over classes and
    scaling by ``T^2``.
    """
    teacher = virtual_teacher_logits(labels, logits.shape[-1], teacher_prob, dtype=_upcast(logits).dtype)
    return kd_loss(logits, teacher, labels, alpha, temperature, reduction)


def ps_kd_alpha(alpha_T: float, epoch: int, num_epochs: int) -> float:
    """PS-KD's schedule (Kim et al., ICCV 2021): ``alpha_t = alpha_T * (t + 1) / num_epochs``, epochs ``t`` from 0."""
    _check_alpha(alpha_T)
    if not 0 <= epoch < num_epochs:
        raise ValueError(f"epoch must be in [0, num_epochs={num_epochs}), got {epoch}.")
    return alpha_T * (epoch + 1) / num_epochs


def ps_kd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    previous_probs: torch.Tensor,
    alpha_t: float,
    reduction: str = "mean",
) -> torch.Tensor:
    """Progressive self-knowledge distillation, PS-KD (Kim et al., ICCV 2021).

    Cross-entropy against ``(1 - alpha_t) * onehot(y) + alpha_t * p_prev(x)``, where ``p_prev(x)`` is the model's
    own softmax prediction for ``x`` in the previous epoch (one-hot before any) and ``alpha_t`` follows
    `ps_kd_alpha`. Official code (lgcnsai/PS-KD-Pytorch): ``alpha_T = 0.8``, loss ``(-q * log_softmax(z)).sum(1)``
    averaged over the batch; same here.
    """
    return soft_target_loss(logits, labels, previous_probs, alpha_t, reduction)


def cs_kd_loss(
    logits: torch.Tensor,
    pair_logits: torch.Tensor,
    labels: torch.Tensor,
    lambda_: float = 1.0,
    temperature: float = 4.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Class-wise self-knowledge distillation, CS-KD (Yun et al., CVPR 2020).

    ``L = CE(y, softmax(z)) + lambda * T^2 * KL(softmax(z' / T) || softmax(z / T))``, where ``z'`` are the logits
    of another training example of the same class, detached. Official code (alinlab/cs-kd): ``--temp 4``,
    ``--lamda 1``, KL summed over classes and averaged over the batch; same here.
    """
    if not lambda_ >= 0.0:
        raise ValueError(f"lambda_ must be >= 0, got {lambda_}.")
    _check_temperature(temperature)
    logits = _upcast(logits)
    hard = _gold_nll(F.log_softmax(logits, dim=-1), labels)
    pair_log_probs = F.log_softmax(_upcast(pair_logits.detach()).to(logits.dtype) / temperature, dim=-1)
    log_probs = F.log_softmax(logits / temperature, dim=-1)
    soft = F.kl_div(log_probs, pair_log_probs, reduction="none", log_target=True).sum(dim=-1)
    return _reduce(hard + lambda_ * temperature**2 * soft, reduction)


def beta_smoothing_targets(
    ema_logits: torch.Tensor, labels: torch.Tensor, beta: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Beta smoothing's per-example targets (Zhang & Sabuncu, NeurIPS 2020), detached.

    Draws one ``b ~ Beta(beta, 1)`` per example, sorts them, and gives the largest ``b`` to the example on which the
    EMA model is most confident about the gold class (``softmax(ema_logits)[y]``), the smallest to the least
    confident; the target puts ``b`` on the gold class and ``(1 - b) / (K - 1)`` on every other class. ``b`` is
    drawn by inverse CDF, ``U^(1/beta)`` with ``U`` uniform on the CPU ``generator``, so a seeded generator
    replays the draws.
    """
    _check_beta(beta)
    batch_size, num_classes = ema_logits.shape
    if num_classes < 2:
        raise ValueError(f"Beta smoothing needs num_classes >= 2, got {num_classes}.")
    confidence = _gold_nll(F.log_softmax(_upcast(ema_logits.detach()), dim=-1), labels).neg()
    draws = torch.rand(batch_size, generator=generator, dtype=torch.float64).sort().values ** (1.0 / beta)
    draws = draws.to(device=confidence.device, dtype=confidence.dtype)
    b = torch.empty_like(draws)
    b[confidence.argsort(stable=True)] = draws  # the k-th smallest b to the k-th least confident example
    b = b.unsqueeze(-1)
    targets = ((1.0 - b) / (num_classes - 1)).expand(batch_size, num_classes).clone()
    return targets.scatter_(-1, labels.long().unsqueeze(-1), b)


def beta_smoothing_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ema_logits: torch.Tensor,
    alpha: float = 0.6,
    beta: float = 3.0,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Beta smoothing (Zhang & Sabuncu, NeurIPS 2020): ``(1 - alpha) * CE(y, p) + alpha * CE(q_beta, p)``.

    ``q_beta`` from `beta_smoothing_targets`, ranked by an exponential moving average of the student. Official code
    (ZhiluZhang123/neurips_2020_distillation, ``soft_beta_loss``): ``--alpha 0.6 --beta 3.0``, EMA decay
    ``min(1 - 1 / (step + 1), 0.999)``; it takes ``log(softmax(z) + 1e-8)`` where we take ``log_softmax(z)``.
    """
    return soft_target_loss(
        logits, labels, beta_smoothing_targets(ema_logits, labels, beta, generator), alpha, reduction
    )
