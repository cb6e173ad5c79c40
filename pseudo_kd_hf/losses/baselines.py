"""The teacher-free baselines of the paper's Table 2 (TF-reg, PS-KD, CS-KD, Beta smoothing), each documented with
its source, its authors' defaults, and where we differ from their official code."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .core import LossParts, _check_positive, _check_unit, _finish, _gold_nll, _upcast, kd_loss, split_ignored


def soft_target_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft_targets: torch.Tensor,
    *,
    alpha: float,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Cross-entropy against ``(1 - alpha) * onehot(y) + alpha * q`` for fixed per-example targets ``q`` (Eq. 5).

    ``L = (1 - alpha) * CE(y, p) + alpha * sum_j q_j * (-log p_j)``; ``q`` receives no gradient. PS-KD and Beta
    smoothing are this loss with their own ``q``.

    Args:
        logits: the student's logits.
        labels: gold class ids; -100 marks an ignored row.
        soft_targets: ``q``, one distribution over the K classes per example.
        alpha: weight of ``q`` in the target, in [0, 1].
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight ``1 - alpha``) instead of the loss.

    Shape:
        logits and soft_targets (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    _check_unit("alpha", alpha)
    keep, labels = split_ignored(labels)
    log_probs = F.log_softmax(_upcast(logits), dim=-1)
    soft = -(soft_targets.detach().to(log_probs.dtype) * log_probs).sum(dim=-1)
    return _finish(_gold_nll(log_probs, labels), 1.0 - alpha, alpha * soft, keep, reduction, return_parts)


def virtual_teacher_logits(
    labels: torch.Tensor, num_classes: int, *, teacher_prob: float = 0.99, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """TF-reg's manually designed teacher as logits: ``log a`` on the gold class, ``log((1 - a) / (K - 1))`` elsewhere.

    Their softmax is the teacher's distribution ``p^d`` of Yuan et al. (CVPR 2020), so tempering these logits,
    ``softmax(v / T) ∝ (p^d)^(1/T)``, softens ``p^d`` the way KD softens a real teacher. A -100 label gets class 0.

    Shape:
        labels (B,); output (B, num_classes).
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
    return logits.scatter_(-1, split_ignored(labels)[1].long().unsqueeze(-1), math.log(teacher_prob))


def tf_reg_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float,
    temperature: float = 20.0,
    teacher_prob: float = 0.99,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Teacher-free KD with a manually designed teacher, Tf-KD_reg (Yuan et al., CVPR 2020, Section 5).

    ``L = (1 - alpha) * CE(y, softmax(z)) + alpha * T^2 * KL(softmax(v / T) || softmax(z / T))`` with ``v`` the
    virtual teacher's logits (`virtual_teacher_logits`): KD (`kd_loss`) from a teacher that puts ``a`` on the gold
    class. Official code (yuanli2333/Teacher-free-Knowledge-Distillation, ``loss_kd_regularization``): ``a = 0.99``;
    per model, e.g. ResNet18 ``reg_alpha=0.1, reg_temperature=20, multiplier=100``. It differs from the paper, and
    from us, in three ways: it applies softmax to the teacher's *probabilities* (``softmax(p^d / T)``, nearly uniform
    for T = 20) instead of tempering them, it does not temper the student (``log_softmax(z)``), and it scales the KL,
    averaged over all B * K elements (``nn.KLDivLoss()``), by ``multiplier`` instead of summing over classes and
    scaling by ``T^2``.

    Args:
        logits: the student's logits.
        labels: gold class ids; -100 marks an ignored row.
        alpha: weight of the virtual teacher, in [0, 1].
        temperature: ``T`` > 0 of the virtual teacher and the student.
        teacher_prob: ``a`` in (0, 1), the virtual teacher's probability of the gold class.
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight ``1 - alpha``) instead of the loss.

    Shape:
        logits (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    teacher = virtual_teacher_logits(labels, logits.shape[-1], teacher_prob=teacher_prob, dtype=_upcast(logits).dtype)
    return kd_loss(
        logits,
        labels,
        teacher,
        alpha=alpha,
        temperature=temperature,
        reduction=reduction,
        return_parts=return_parts,
    )


def ps_kd_alpha(alpha_T: float, epoch: int, num_epochs: int) -> float:
    """PS-KD's schedule (Kim et al., ICCV 2021): ``alpha_t = alpha_T * (t + 1) / num_epochs``, epochs ``t`` from 0."""
    _check_unit("alpha_T", alpha_T)
    if not 0 <= epoch < num_epochs:
        raise ValueError(f"epoch must be in [0, num_epochs={num_epochs}), got {epoch}.")
    return alpha_T * (epoch + 1) / num_epochs


def ps_kd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    previous_probs: torch.Tensor,
    *,
    alpha_t: float,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Progressive self-knowledge distillation, PS-KD (Kim et al., ICCV 2021).

    Cross-entropy against ``(1 - alpha_t) * onehot(y) + alpha_t * p_prev(x)``, where ``p_prev(x)`` is the model's
    own softmax prediction for ``x`` in the previous epoch (one-hot before any) and ``alpha_t`` follows
    `ps_kd_alpha`. Official code (lgcnsai/PS-KD-Pytorch): ``alpha_T = 0.8``, loss ``(-q * log_softmax(z)).sum(1)``
    averaged over the batch; same here. Arguments as `soft_target_loss` with ``alpha = alpha_t``.

    Shape:
        logits and previous_probs (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    _check_unit("alpha_t", alpha_t)
    return soft_target_loss(
        logits, labels, previous_probs, alpha=alpha_t, reduction=reduction, return_parts=return_parts
    )


def cs_kd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pair_logits: torch.Tensor,
    *,
    lambda_: float = 1.0,
    temperature: float = 4.0,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Class-wise self-knowledge distillation, CS-KD (Yun et al., CVPR 2020).

    ``L = CE(y, softmax(z)) + lambda * T^2 * KL(softmax(z' / T) || softmax(z / T))``, where ``z'`` are the logits
    of another training example of the same class, detached. Official code (alinlab/cs-kd): ``--temp 4``,
    ``--lamda 1``, KL summed over classes and averaged over the batch; same here.

    Args:
        logits: the anchors' logits ``z``.
        labels: the anchors' gold class ids; -100 marks an ignored row.
        pair_logits: ``z'``, the logits of each anchor's partner (same class, another example).
        lambda_: weight ``lambda`` >= 0 of the KL term.
        temperature: ``T`` > 0 of both distributions.
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight 1) instead of the loss.

    Shape:
        logits and pair_logits (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    if not (lambda_ >= 0.0 and math.isfinite(lambda_)):
        raise ValueError(f"lambda_ must be finite and >= 0, got {lambda_}.")
    _check_positive("temperature", temperature)
    keep, labels = split_ignored(labels)
    logits = _upcast(logits)
    hard = _gold_nll(F.log_softmax(logits, dim=-1), labels)
    pair_log_probs = F.log_softmax(_upcast(pair_logits.detach()).to(logits.dtype) / temperature, dim=-1)
    log_probs = F.log_softmax(logits / temperature, dim=-1)
    soft = F.kl_div(log_probs, pair_log_probs, reduction="none", log_target=True).sum(dim=-1)
    return _finish(hard, 1.0, lambda_ * temperature**2 * soft, keep, reduction, return_parts)


def beta_smoothing_targets(
    ema_logits: torch.Tensor, labels: torch.Tensor, *, beta: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Beta smoothing's per-example targets (Zhang & Sabuncu, NeurIPS 2020), detached.

    Draws one ``b ~ Beta(beta, 1)`` per example, sorts them, and gives the largest ``b`` to the example on which the
    EMA model is most confident about the gold class (``softmax(ema_logits)[y]``), the smallest to the least
    confident; the target puts ``b`` on the gold class and ``(1 - b) / (K - 1)`` on every other class. ``b`` is
    drawn by inverse CDF, ``U^(1/beta)`` with ``U`` uniform on the CPU ``generator``, so a seeded generator
    replays the draws. Rows labelled -100 rank as least confident (they take the smallest draws).

    Shape:
        ema_logits (B, K); labels (B,); output (B, K).
    """
    _check_positive("beta", beta)
    batch_size, num_classes = ema_logits.shape
    if num_classes < 2:
        raise ValueError(f"Beta smoothing needs num_classes >= 2, got {num_classes}.")
    keep, labels = split_ignored(labels)
    confidence = _gold_nll(F.log_softmax(_upcast(ema_logits.detach()), dim=-1), labels).neg()
    confidence = torch.where(keep, confidence, -math.inf)
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
    *,
    alpha: float = 0.6,
    beta: float = 3.0,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Beta smoothing (Zhang & Sabuncu, NeurIPS 2020): ``(1 - alpha) * CE(y, p) + alpha * CE(q_beta, p)``.

    ``q_beta`` from `beta_smoothing_targets`, ranked by an exponential moving average of the student. Official code
    (ZhiluZhang123/neurips_2020_distillation, ``soft_beta_loss``): ``--alpha 0.6 --beta 3.0``, EMA decay
    ``min(1 - 1 / (step + 1), 0.999)``; it takes ``log(softmax(z) + 1e-8)`` where we take ``log_softmax(z)``.

    Args:
        logits: the student's logits.
        labels: gold class ids; -100 marks an ignored row.
        ema_logits: the EMA model's logits for the same examples, which rank them.
        alpha: weight of ``q_beta`` in the target, in [0, 1].
        beta: shape ``a`` > 0 of the Beta(a, 1) gold-class probabilities.
        generator: CPU generator of the draws.
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight ``1 - alpha``) instead of the loss.

    Shape:
        logits and ema_logits (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    targets = beta_smoothing_targets(ema_logits, labels, beta=beta, generator=generator)
    return soft_target_loss(logits, labels, targets, alpha=alpha, reduction=reduction, return_parts=return_parts)
