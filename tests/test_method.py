"""Proposal, losses and the recurrent machine."""

from __future__ import annotations

import math

import pytest
import torch

from alfi import proposal
from alfi.losses import meta_loss, partial_loss, step_weights
from alfi.model import ALFI, ModelConfig
from alfi.simulators import get_simulator


def test_log_prob_matches_torch_normal(generator):
    psi = torch.randn(4, 6, generator=generator(0))
    theta = torch.randn(4, 3, generator=generator(1))
    mean, log_scale = proposal.split(psi)
    expected = torch.distributions.Normal(mean, log_scale.exp()).log_prob(theta).sum(-1)
    assert torch.allclose(proposal.log_prob(psi, theta), expected, atol=1e-5)


def test_score_matches_autograd(generator):
    psi = torch.randn(5, 4, dtype=torch.float64, generator=generator(2)).requires_grad_()
    theta = torch.randn(5, 2, dtype=torch.float64, generator=generator(3))
    (grad,) = torch.autograd.grad(proposal.log_prob(psi, theta).sum(), psi)
    assert torch.allclose(proposal.score(psi, theta), grad, atol=1e-12)


def test_whitened_score_is_score_times_inverse_root_fisher(generator):
    psi = torch.randn(5, 4, dtype=torch.float64, generator=generator(4))
    theta = torch.randn(5, 2, dtype=torch.float64, generator=generator(5))
    _, log_scale = proposal.split(psi)
    fisher_root = torch.cat((torch.exp(-log_scale), torch.full_like(log_scale, math.sqrt(2))), -1)
    assert torch.allclose(
        proposal.whitened_score(psi, theta), proposal.score(psi, theta) / fisher_root
    )


def test_sample_moments(generator):
    psi = torch.tensor([1.0, -2.0, math.log(0.5), math.log(2.0)])
    theta = proposal.sample(psi, 100_000, generator(6))
    assert theta.shape == (100_000, 2)
    se = torch.tensor([0.5, 2.0]) / math.sqrt(100_000)
    assert ((theta.mean(0) - psi[:2]).abs() < 4 * se).all()
    # std of a sample std is about sigma / sqrt(2n)
    assert ((theta.std(0) - torch.tensor([0.5, 2.0])).abs() < 4 * se / math.sqrt(2)).all()


def test_initial_proposal_in_standardised_prior(generator):
    psi = proposal.initial((10_000,), 3, generator(7), log_scale=0.5)
    mean, log_scale = proposal.split(psi)
    assert (mean.abs() <= math.sqrt(3)).all() and (log_scale == 0.5).all()
    assert abs(float(mean.std()) - 1.0) < 0.03  # standardised: unit variance


def test_weights():
    assert step_weights("last", 5).tolist() == [0, 0, 0, 0, 1]
    assert step_weights("const", 3).tolist() == [1, 1, 1]
    w = step_weights("exp", 15, beta=5.0)
    assert w[-1] == pytest.approx(1.0) and 0 < w[0] < 0.01
    assert torch.all(w[1:] > w[:-1])
    with pytest.raises(ValueError, match="unknown weighting 'lin'"):
        step_weights("lin", 3)


def test_partial_losses():
    psi = torch.tensor([[1.0, 0.0]])
    theta = torch.tensor([[3.0]])
    assert float(partial_loss("mse", psi, theta)) == pytest.approx(4.0)
    assert float(partial_loss("nll", psi, theta)) == pytest.approx(
        2.0 + 0.5 * math.log(2 * math.pi)
    )
    trajectory = torch.stack([psi, psi, psi])  # psi_1 carries no weight
    assert float(meta_loss(trajectory, theta, "mse", "const")) == pytest.approx(8.0)


def _model(name="poisson", clip=0.2, saturate=False):
    sim = get_simulator(name)
    torch.manual_seed(0)
    model = ALFI(ModelConfig(sim.theta_dim, sim.observation_dim, 8, 16, 16, (16,), clip))
    if saturate:  # make raw outputs large, so the clip is what bounds the step
        with torch.no_grad():
            model.post[-1].weight.mul_(1000)
    return sim, model


def test_update_clip_holds_and_shapes(generator):
    sim, model = _model("multivariate", clip=0.2, saturate=True)
    x = sim.simulate(sim.sample_prior((6,), generator(1)), 30, generator(2))
    psi = proposal.initial((6,), 3, generator(3))
    trajectory = model.unroll(sim, x, psi, steps=4, n_theta=5, n_sim=7, generator=generator(4))
    assert trajectory.shape == (5, 6, 6)
    step = trajectory.diff(dim=0)
    # psi_{t+1} - psi_t is recomputed in float32, hence the rounding allowance.
    assert (step.abs() <= 0.2 + 1e-6).all() and step.abs().max() > 0.19


def test_gradient_flows_through_the_unroll(generator):
    sim, model = _model("poisson")
    x = sim.simulate(sim.sample_prior((3,), generator(1)), 10, generator(2))
    psi = proposal.initial((3,), 1, generator(3))
    loss = meta_loss(
        model.unroll(sim, x, psi, steps=3, n_theta=4, n_sim=5, generator=generator(4)),
        torch.zeros(3, 1),
    )
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.x_encoder.phi[0].weight.grad.abs().sum() > 0


def test_unroll_is_independent_across_problems(generator):
    """Problem p's trajectory depends on its own data only (no leakage across the batch)."""
    sim, model = _model("poisson")
    x = sim.simulate(sim.sample_prior((4,), generator(1)), 10, generator(2))
    psi = proposal.initial((4,), 1, generator(3))
    full = model.unroll(sim, x, psi, steps=3, n_theta=4, n_sim=5, generator=generator(4))
    x_changed = x.clone()
    x_changed[3] += 5
    changed = model.unroll(sim, x_changed, psi, steps=3, n_theta=4, n_sim=5, generator=generator(4))
    assert torch.equal(full[:, :3], changed[:, :3])
    assert not torch.equal(full[:, 3], changed[:, 3])
