"""The paper's identities for the loss functions, checked against independent computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pseudo_kd_hf.losses import (
    cs_kd_loss,
    gold_loss,
    kd_loss,
    label_smoothing_loss,
    ps_kd_loss,
    pseudo_kd_loss,
    pseudo_kd_targets,
    regression_kd_loss,
    soft_target_loss,
    tf_reg_loss,
)

torch.manual_seed(0)
K = 5
LOGITS = torch.randn(7, K, dtype=torch.float64) * 3
LABELS = torch.tensor([0, 1, 2, 3, 4, 0, 2])


def _risk(logits: torch.Tensor, labels: torch.Tensor, smoothing: torch.Tensor, alpha: float, beta: float):
    """R_i(P_ls) of Eq. 7 for an arbitrary smoothing distribution, computed from probabilities (float64)."""
    probs = logits.softmax(-1)
    onehot = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    target = (1 - alpha) * onehot + alpha * smoothing
    cross = -(target * probs.log()).sum(-1)
    kl_uniform = (smoothing * (smoothing * logits.shape[-1]).log()).sum(-1)
    return cross + beta * kl_uniform


def test_label_smoothing_matches_torch_cross_entropy():
    for alpha in (0.0, 0.1, 0.7, 1.0):
        expected = F.cross_entropy(LOGITS, LABELS, label_smoothing=alpha)
        torch.testing.assert_close(label_smoothing_loss(LOGITS, LABELS, alpha=alpha), expected)


def test_reductions_agree():
    per_example = pseudo_kd_loss(LOGITS, LABELS, alpha=0.1, beta=2.0, reduction="none")
    assert per_example.shape == (7,)
    torch.testing.assert_close(pseudo_kd_loss(LOGITS, LABELS, alpha=0.1, beta=2.0, reduction="sum"), per_example.sum())
    torch.testing.assert_close(pseudo_kd_loss(LOGITS, LABELS, alpha=0.1, beta=2.0), per_example.mean())
    with pytest.raises(ValueError, match="reduction"):
        pseudo_kd_loss(LOGITS, LABELS, alpha=0.1, beta=2.0, reduction="avg")


def test_kd_matches_hinton_form():
    teacher = torch.randn(7, K, dtype=torch.float64)
    alpha, temperature = 0.3, 4.0
    ce = F.cross_entropy(LOGITS, LABELS)
    kl = F.kl_div(F.log_softmax(LOGITS / temperature, -1), F.softmax(teacher / temperature, -1), reduction="batchmean")
    expected = (1 - alpha) * ce + alpha * temperature**2 * kl
    torch.testing.assert_close(kd_loss(LOGITS, LABELS, teacher, alpha=alpha, temperature=temperature), expected)


def test_kd_gives_no_gradient_to_teacher():
    teacher = torch.randn(7, K, requires_grad=True)
    student = torch.randn(7, K, requires_grad=True)
    kd_loss(student, LABELS, teacher, alpha=0.5, temperature=2.0).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_pseudo_kd_targets_are_theorem_1_power_form():
    alpha, beta = 0.3, 1.7
    probs = LOGITS.softmax(-1)
    powered = probs ** (alpha / beta)
    torch.testing.assert_close(
        pseudo_kd_targets(LOGITS, alpha=alpha, beta=beta), powered / powered.sum(-1, keepdim=True)
    )


def test_theorem_1_targets_minimise_the_risk_on_the_simplex():
    alpha, beta = 0.4, 1.5
    optimum = pseudo_kd_targets(LOGITS, alpha=alpha, beta=beta)
    best = _risk(LOGITS, LABELS, optimum, alpha, beta)
    generator = torch.Generator().manual_seed(1)
    for _ in range(200):
        other = torch.distributions.Dirichlet(torch.ones(K, dtype=torch.float64)).sample((7,))
        assert torch.all(_risk(LOGITS, LABELS, other, alpha, beta) >= best - 1e-12)
        nearby = (optimum + 1e-3 * torch.rand(7, K, generator=generator, dtype=torch.float64)).clamp_min(1e-12)
        nearby = nearby / nearby.sum(-1, keepdim=True)
        assert torch.all(_risk(LOGITS, LABELS, nearby, alpha, beta) >= best - 1e-12)
    uniform = torch.full((7, K), 1.0 / K, dtype=torch.float64)
    assert torch.all(_risk(LOGITS, LABELS, uniform, alpha, beta) > best)


def test_eq_12_value_and_gradient():
    alpha, beta = 0.2, 2.0
    logits = LOGITS.clone().requires_grad_(True)
    loss = pseudo_kd_loss(logits, LABELS, alpha=alpha, beta=beta, reduction="sum")
    fixed = pseudo_kd_targets(LOGITS, alpha=alpha, beta=beta)
    torch.testing.assert_close(loss, _risk(LOGITS, LABELS, fixed, alpha, beta).sum())
    loss.backward()
    # With P* fixed, dR/dz = p - Phat*: the gradient of cross-entropy against the smoothed target (Eq. 5).
    onehot = F.one_hot(LABELS, K).to(LOGITS.dtype)
    expected_grad = LOGITS.softmax(-1) - ((1 - alpha) * onehot + alpha * fixed)
    torch.testing.assert_close(logits.grad, expected_grad)


def test_beta_equal_alpha_tau_gives_temperature_softmax():
    alpha, tau = 0.1, 3.0
    torch.testing.assert_close(pseudo_kd_targets(LOGITS, alpha=alpha, beta=alpha * tau), F.softmax(LOGITS / tau, -1))


def test_large_beta_gives_label_smoothing():
    alpha = 0.2
    torch.testing.assert_close(
        pseudo_kd_targets(LOGITS, alpha=alpha, beta=1e9), torch.full_like(LOGITS, 1.0 / K), atol=1e-8, rtol=0
    )
    # The smoothed cross-entropy tends to LS; the beta * KL(P* || U) term vanishes like 1 / beta.
    torch.testing.assert_close(
        pseudo_kd_loss(LOGITS, LABELS, alpha=alpha, beta=1e9),
        label_smoothing_loss(LOGITS, LABELS, alpha=alpha),
        atol=1e-6,
        rtol=0,
    )


def test_small_beta_collapses_to_the_one_hot_label():
    targets = pseudo_kd_targets(LOGITS, alpha=0.5, beta=1e-6)
    torch.testing.assert_close(targets, F.one_hot(LOGITS.argmax(-1), K).to(LOGITS.dtype))


def test_eq_8_teacher_in_place_of_p_star_is_kd_plus_alpha_log_k():
    alpha = 0.3
    teacher_logits = torch.randn(7, K, dtype=torch.float64)
    teacher = teacher_logits.softmax(-1)
    # Eq. 8 is Eq. 7 with the teacher's distribution as P_ls and alpha as the KL weight.
    risk = _risk(LOGITS, LABELS, teacher, alpha, beta=alpha).mean()
    expected = kd_loss(LOGITS, LABELS, teacher_logits, alpha=alpha, temperature=1.0) + alpha * math.log(K)
    torch.testing.assert_close(risk, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_extreme_half_precision_logits_are_finite(dtype):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]]).to(dtype).requires_grad_(True)
    labels = torch.tensor([1, 0])
    teacher = torch.tensor([[-1e4, 1e4, 0.0], [1e4, -1e4, 0.0]]).to(dtype)
    losses = [
        label_smoothing_loss(logits, labels, alpha=0.1),
        pseudo_kd_loss(logits, labels, alpha=0.1, beta=2.0),
        pseudo_kd_loss(logits, labels, alpha=1.0, beta=0.01),
        kd_loss(logits, labels, teacher, alpha=0.5, temperature=2.0),
    ]
    for loss in losses:
        assert loss.dtype == torch.float32
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all()
    assert torch.isfinite(pseudo_kd_targets(logits, alpha=1.0, beta=0.01)).all()


def test_float64_stays_float64():
    assert pseudo_kd_loss(LOGITS, LABELS, alpha=0.1, beta=2.0).dtype == torch.float64
    assert pseudo_kd_targets(LOGITS, alpha=0.1, beta=2.0).dtype == torch.float64


def test_p_star_is_detached():
    logits = LOGITS.clone().requires_grad_(True)
    assert not pseudo_kd_targets(logits, alpha=0.1, beta=2.0).requires_grad


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: label_smoothing_loss(LOGITS, LABELS, alpha=1.5), "alpha"),
        (lambda: pseudo_kd_loss(LOGITS, LABELS, alpha=-0.1, beta=2.0), "alpha"),
        (lambda: pseudo_kd_loss(LOGITS, LABELS, alpha=0.1, beta=0.0), "beta"),
        (lambda: pseudo_kd_targets(LOGITS, alpha=0.1, beta=-1.0), "beta"),
        (lambda: kd_loss(LOGITS, LABELS, LOGITS, alpha=0.1, temperature=0.0), "temperature"),
        (lambda: kd_loss(LOGITS, LABELS, LOGITS, alpha=2.0), "alpha"),
        (lambda: regression_kd_loss(LOGITS[:, 0], LOGITS[:, 1], LOGITS[:, 2], alpha=1.1), "alpha"),
    ],
)
def test_out_of_range_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_regression_kd_is_gold_mse_plus_alpha_teacher_mse():
    predictions = torch.randn(6, 1, dtype=torch.float64)
    teacher = torch.randn(6, 1, dtype=torch.float64)
    gold = torch.rand(6, dtype=torch.float64) * 5
    expected = F.mse_loss(predictions.squeeze(-1), gold) + 0.3 * F.mse_loss(predictions, teacher)
    torch.testing.assert_close(regression_kd_loss(predictions, gold, teacher, alpha=0.3), expected)


# ---- rows labelled -100, and the loss parts -------------------------------------------------------------------

REFERENCE = torch.randn(7, K, dtype=torch.float64)
SOFT = REFERENCE.softmax(-1)
LOSSES = {
    "gold": lambda z, y, **kw: gold_loss(z, y, **kw),
    "ls": lambda z, y, **kw: label_smoothing_loss(z, y, alpha=0.3, **kw),
    "kd": lambda z, y, **kw: kd_loss(z, y, REFERENCE[: len(y)], alpha=0.3, temperature=2.0, **kw),
    "pseudo_kd": lambda z, y, **kw: pseudo_kd_loss(z, y, alpha=0.3, beta=1.5, **kw),
    "tf_reg": lambda z, y, **kw: tf_reg_loss(z, y, alpha=0.3, temperature=5.0, **kw),
    "ps_kd": lambda z, y, **kw: ps_kd_loss(z, y, SOFT[: len(y)], alpha_t=0.4, **kw),
    "cs_kd": lambda z, y, **kw: cs_kd_loss(z, y, REFERENCE[: len(y)], lambda_=0.7, **kw),
    "soft_target": lambda z, y, **kw: soft_target_loss(z, y, SOFT[: len(y)], alpha=0.6, **kw),
}
IGNORED = torch.tensor([False, True, False, False, True, False, False])


@pytest.mark.parametrize("name", list(LOSSES))
def test_rows_labelled_minus_100_are_ignored_like_cross_entropy(name):
    """mean over the kept rows, sum of the kept rows, and 0 for an ignored row with reduction="none"."""
    loss = LOSSES[name]
    labels = LABELS.masked_fill(IGNORED, -100)
    kept = ~IGNORED
    per_example = loss(LOGITS, labels, reduction="none")
    assert per_example.shape == (7,) and torch.equal(per_example[IGNORED], torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(per_example[kept], loss(LOGITS, LABELS, reduction="none")[kept])
    if name in ("kd", "ps_kd", "cs_kd", "soft_target"):  # references are per row: keep them aligned
        return
    torch.testing.assert_close(loss(LOGITS, labels), loss(LOGITS[kept], LABELS[kept]))
    torch.testing.assert_close(loss(LOGITS, labels, reduction="sum"), loss(LOGITS[kept], LABELS[kept], reduction="sum"))


def test_gold_loss_ignores_like_torch_cross_entropy():
    labels = LABELS.masked_fill(IGNORED, -100)
    torch.testing.assert_close(gold_loss(LOGITS, labels), F.cross_entropy(LOGITS, labels))
    scores = torch.tensor([1.0, -100.0, 2.5])
    predictions = torch.tensor([[1.5], [7.0], [2.0]])
    torch.testing.assert_close(gold_loss(predictions, scores), torch.tensor((0.25 + 0.25) / 2))


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_loss_parts_add_up_to_the_loss(name, reduction):
    """loss = gold_weight * gold + regularizer, with gold the plain cross-entropy to the gold class."""
    labels = LABELS.masked_fill(IGNORED, -100)
    parts = LOSSES[name](LOGITS, labels, reduction=reduction, return_parts=True)
    torch.testing.assert_close(parts.total, LOSSES[name](LOGITS, labels, reduction=reduction))
    torch.testing.assert_close(parts.gold, gold_loss(LOGITS, labels, reduction=reduction))
    expected_weight = {"gold": 1.0, "cs_kd": 1.0, "ps_kd": 0.6, "soft_target": 0.4}.get(name, 0.7)
    assert parts.gold_weight == pytest.approx(expected_weight)


def test_regression_kd_ignores_and_splits():
    predictions, teacher = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.5, 0.0, 2.0])
    targets = torch.tensor([1.0, -100.0, 4.0])
    parts = regression_kd_loss(predictions, targets, teacher, alpha=0.5, reduction="none", return_parts=True)
    torch.testing.assert_close(parts.gold, torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(parts.regularizer, torch.tensor([0.125, 0.0, 0.5]))
    assert parts.gold_weight == 1.0


def test_infinite_settings_are_refused():
    with pytest.raises(ValueError, match="beta must be finite.*label_smoothing_loss"):
        pseudo_kd_loss(LOGITS, LABELS, alpha=0.1, beta=math.inf)
    with pytest.raises(ValueError, match="temperature must be finite"):
        kd_loss(LOGITS, LABELS, LOGITS, alpha=0.1, temperature=math.inf)
