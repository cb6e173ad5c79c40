"""The loss functions: the paper's identities and the baselines' official forms, checked against independent
computations; -100 rows and the loss parts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pseudo_kd_hf.losses import (
    beta_smoothing_loss,
    beta_smoothing_targets,
    cs_kd_loss,
    gold_loss,
    kd_loss,
    label_smoothing_loss,
    ps_kd_alpha,
    ps_kd_loss,
    pseudo_kd_loss,
    pseudo_kd_targets,
    regression_kd_loss,
    soft_target_loss,
    tf_reg_loss,
    virtual_teacher_logits,
)

torch.manual_seed(0)
K = 5
LOGITS = torch.randn(7, K, dtype=torch.float64) * 3
LABELS = torch.tensor([0, 1, 2, 3, 4, 0, 2])
ONE_HOT = F.one_hot(LABELS, K).to(torch.float64)
SIMPLEX = torch.distributions.Dirichlet(torch.ones(K, dtype=torch.float64)).sample((7,))


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


# ---- the teacher-free baselines (losses.baselines) ---------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 20.0])
def test_tf_reg_is_kd_from_the_tempered_virtual_teacher(temperature):
    alpha, a = 0.3, 0.9
    teacher = ONE_HOT * a + (1 - ONE_HOT) * (1 - a) / (K - 1)  # p^d, from probabilities
    tempered = teacher ** (1 / temperature) / (teacher ** (1 / temperature)).sum(-1, keepdim=True)
    student = (LOGITS / temperature).softmax(-1)
    kl = (tempered * (tempered.log() - student.log())).sum(-1)
    expected = (1 - alpha) * F.cross_entropy(LOGITS, LABELS) + alpha * temperature**2 * kl.mean()
    torch.testing.assert_close(
        tf_reg_loss(LOGITS, LABELS, alpha=alpha, temperature=temperature, teacher_prob=a), expected
    )
    torch.testing.assert_close(
        virtual_teacher_logits(LABELS, K, teacher_prob=a, dtype=torch.float64).softmax(-1), teacher
    )


def test_tf_reg_gradient():
    alpha, temperature, a = 0.4, 5.0, 0.99
    logits = LOGITS.clone().requires_grad_(True)
    tf_reg_loss(logits, LABELS, alpha=alpha, temperature=temperature, teacher_prob=a, reduction="sum").backward()
    tempered_teacher = (virtual_teacher_logits(LABELS, K, teacher_prob=a, dtype=torch.float64) / temperature).softmax(
        -1
    )
    expected = (1 - alpha) * (LOGITS.softmax(-1) - ONE_HOT) + alpha * temperature * (
        (LOGITS / temperature).softmax(-1) - tempered_teacher
    )
    torch.testing.assert_close(logits.grad, expected)


def test_ps_kd_is_cross_entropy_to_the_progressive_target_with_its_gradient():
    alpha_t = 0.6
    logits = LOGITS.clone().requires_grad_(True)
    loss = ps_kd_loss(logits, LABELS, SIMPLEX, alpha_t=alpha_t, reduction="sum")
    target = (1 - alpha_t) * ONE_HOT + alpha_t * SIMPLEX
    torch.testing.assert_close(loss, -(target * LOGITS.log_softmax(-1)).sum())
    loss.backward()
    torch.testing.assert_close(logits.grad, LOGITS.softmax(-1) - target)
    # One-hot "previous predictions" (before any) give plain cross-entropy for every alpha_t.
    torch.testing.assert_close(ps_kd_loss(LOGITS, LABELS, ONE_HOT, alpha_t=0.8), F.cross_entropy(LOGITS, LABELS))


def test_ps_kd_alpha_grows_linearly_to_alpha_T():
    assert [ps_kd_alpha(0.8, epoch, 4) for epoch in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    with pytest.raises(ValueError, match="epoch"):
        ps_kd_alpha(0.8, 4, 4)


def test_cs_kd_matches_the_official_kd_loss_and_detaches_the_pair():
    lambda_, temperature = 0.7, 4.0
    logits = LOGITS.clone().requires_grad_(True)
    pair = (torch.randn(7, K, dtype=torch.float64) * 2).requires_grad_(True)
    loss = cs_kd_loss(logits, LABELS, pair, lambda_=lambda_, temperature=temperature)
    # alinlab/cs-kd's KDLoss: KLDivLoss(reduction="sum") * T^2 / batch size.
    official_kd = F.kl_div(
        (LOGITS / temperature).log_softmax(-1), (pair.detach() / temperature).softmax(-1), reduction="sum"
    )
    expected = F.cross_entropy(LOGITS, LABELS) + lambda_ * official_kd * temperature**2 / 7
    torch.testing.assert_close(loss, expected)
    (loss * 7).backward()
    assert pair.grad is None
    expected_grad = (LOGITS.softmax(-1) - ONE_HOT) + lambda_ * temperature * (
        (LOGITS / temperature).softmax(-1) - (pair.detach() / temperature).softmax(-1)
    )
    torch.testing.assert_close(logits.grad, expected_grad)


def test_beta_targets_give_the_largest_b_to_the_most_confident_example():
    labels = torch.tensor([0, 1, 2, 1])
    gold_logit = torch.tensor([0.5, 3.0, -1.0, 1.5])  # EMA confidence order: 2 < 0 < 3 < 1
    ema_logits = torch.zeros(4, 3).scatter(1, labels.unsqueeze(1), gold_logit.unsqueeze(1))
    targets = beta_smoothing_targets(ema_logits, labels, beta=3.0, generator=torch.Generator().manual_seed(5))
    draws = torch.rand(4, generator=torch.Generator().manual_seed(5), dtype=torch.float64).sort().values ** (1 / 3)
    b = targets.gather(1, labels.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(b, draws[torch.tensor([1, 3, 0, 2])].float())
    torch.testing.assert_close(targets.sum(-1), torch.ones(4))
    off_gold = targets.masked_select(~F.one_hot(labels, 3).bool()).reshape(4, 2)
    torch.testing.assert_close(off_gold, ((1 - b) / 2).unsqueeze(1).expand(4, 2))


def test_beta_smoothing_matches_the_official_soft_beta_loss():
    """ZhiluZhang123/neurips_2020_distillation: sort examples by EMA confidence, give them the sorted draws."""
    alpha, beta = 0.6, 3.0
    ema_logits = torch.randn(7, K, dtype=torch.float64)
    draws = torch.rand(7, generator=torch.Generator().manual_seed(3), dtype=torch.float64).sort().values ** (1 / beta)
    order = ema_logits.softmax(-1).gather(1, LABELS.unsqueeze(1)).squeeze(1).sort().indices
    uniform = (1 - draws) / (K - 1)
    beta_label = ONE_HOT[order] * (draws - uniform).unsqueeze(1) + uniform.unsqueeze(1)
    official = -(beta_label * LOGITS.softmax(-1)[order].log()).sum() / 7
    expected = (1 - alpha) * F.cross_entropy(LOGITS, LABELS) + alpha * official
    loss = beta_smoothing_loss(
        LOGITS, LABELS, ema_logits, alpha=alpha, beta=beta, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(loss, expected)


def test_beta_draws_follow_beta_of_beta_and_one():
    beta = 3.0
    targets = beta_smoothing_targets(torch.zeros(20000, 2), torch.zeros(20000, dtype=torch.long), beta=beta)
    b = targets[:, 0].double()
    assert b.mean().item() == pytest.approx(beta / (beta + 1), abs=0.01)
    assert (b <= 0.5).double().mean().item() == pytest.approx(0.5**beta, abs=0.01)  # CDF of Beta(beta, 1): x^beta


def test_soft_target_gradient_ignores_the_targets():
    targets = SIMPLEX.clone().requires_grad_(True)
    soft_target_loss(LOGITS.clone().requires_grad_(True), LABELS, targets, alpha=0.5).backward()
    assert targets.grad is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_baselines_are_finite_on_extreme_half_precision_logits(dtype):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]]).to(dtype).requires_grad_(True)
    labels = torch.tensor([1, 0])
    pair = torch.tensor([[-1e4, 1e4, 0.0], [1e4, -1e4, 0.0]]).to(dtype)
    for loss in (
        tf_reg_loss(logits, labels, alpha=0.5, temperature=20.0),
        ps_kd_loss(logits, labels, torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]), alpha_t=0.8),
        cs_kd_loss(logits, labels, pair),
        beta_smoothing_loss(logits, labels, pair),
    ):
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: tf_reg_loss(LOGITS, LABELS, alpha=0.1, teacher_prob=1.0), "teacher_prob"),
        (lambda: tf_reg_loss(LOGITS, LABELS, alpha=0.1, temperature=0.0), "temperature"),
        (lambda: ps_kd_loss(LOGITS, LABELS, SIMPLEX, alpha_t=1.2), "alpha"),
        (lambda: cs_kd_loss(LOGITS, LABELS, LOGITS, lambda_=-1.0), "lambda_"),
        (lambda: beta_smoothing_loss(LOGITS, LABELS, LOGITS, beta=0.0), "beta"),
    ],
)
def test_out_of_range_baseline_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=name):
        call()


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
