"""Exact reference posteriors (alfi.reference) against closed forms and direct integration.

Tolerances: the grid's moments are midpoint-rule quadratures on a window resolved to >= 90
cells per posterior sd (1-D), so their error is far below the 1e-3 relative target: spectrally
small where the density decays smoothly inside the window, O((h/sd)^2 / 24) ~ 1e-5 where the box
truncates the mass (measured: <= 2e-5). The mean is compared to 1e-3 posterior sds, far stricter
than 1e-3 of its value. Samples are compared within 4 Monte-Carlo standard errors, fixed seed.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from alfi import calibration
from alfi.reference import reference_posterior
from alfi.simulators import Simulator, get_simulator
from alfi.simulators.weinberg import log_density

RTOL = 1e-3


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def _close(mean, var, want_mean, want_var, rtol: float = RTOL) -> None:
    """Means within ``rtol`` posterior sds, variances within ``rtol`` relative."""
    mean, var = np.asarray(mean, dtype=float), np.asarray(var, dtype=float)
    want_mean, want_var = np.asarray(want_mean, dtype=float), np.asarray(want_var, dtype=float)
    np.testing.assert_array_less(np.abs(mean - want_mean) / np.sqrt(want_var), rtol)
    np.testing.assert_allclose(var, want_var, rtol=rtol)


def _quad_moments(log_f, low: float, high: float, mode: float, scale: float):
    """Mean and variance of the density proportional to ``exp(log_f)`` on ``[low, high]`` by
    adaptive quadrature, with break points at the mode and +-5 scales around it."""
    shift = log_f(mode)
    points = [p for p in (mode - 5 * scale, mode, mode + 5 * scale) if low < p < high]

    def moment(j: int, centre: float = 0.0) -> float:
        return integrate.quad(
            lambda t: (t - centre) ** j * math.exp(log_f(t) - shift),
            low,
            high,
            points=points or None,
            limit=500,
            epsabs=0.0,
            epsrel=1e-12,
        )[0]

    mass = moment(0)
    mean = moment(1) / mass
    return mean, moment(2, mean) / mass


def test_poisson_grid_matches_direct_integration(generator) -> None:
    sim = get_simulator("poisson")
    theta = torch.tensor([[0.2], [0.25], [3.0], [6.95], [7.0]])
    x = sim.simulate(theta, 200, generator(1))
    x = torch.cat((x, torch.zeros(1, 200, 1)))  # all zero counts: mass piled at the lower edge
    post = reference_posterior(sim, x)
    n = x.shape[1]
    want = []
    for total in x.sum((1, 2)).double().tolist():
        # log posterior in theta = log(lambda): S theta - n e^theta (+ const)
        mode = min(max(math.log(max(total, 1e-300) / n), 0.2), 7.0)
        scale = 1 / math.sqrt(max(total, 1.0))
        want.append(
            _quad_moments(lambda t, s=total: s * t - n * math.exp(t), 0.2, 7.0, mode, scale)
        )
    want_mean, want_var = np.array(want).T
    _close(post.mean()[:, 0], post.var()[:, 0], want_mean, want_var)
    assert (post.edge_mass < 1e-12).all() and (post.cells_per_sd > 100).all()


class GaussianMean(Simulator):
    """Toy: x ~ N(theta, 1), theta ~ U[-1, 1]: posterior N(mean x, 1/n) truncated to [-1, 1]."""

    name = "gaussian_mean_toy"  # not registered: reference_posterior uses the default 1-D grid
    parameter_names = ("mean",)
    prior_low, prior_high = (-1.0,), (1.0,)

    def log_likelihood(self, theta, x):
        return (-0.5 * (x - theta.unsqueeze(-2)) ** 2 - 0.5 * math.log(2 * math.pi)).sum((-2, -1))


@pytest.mark.parametrize("n, means", [(4, [0.3, -0.9]), (200, [0.0, 0.95, 1.3, -1.02])])
def test_truncated_normal_closed_form_and_samples(generator, n: int, means: list[float]) -> None:
    noise = torch.randn(len(means), n, 1, generator=generator(2), dtype=torch.float64)
    x = torch.tensor(means, dtype=torch.float64)[:, None, None] + noise - noise.mean(1, True)
    post = reference_posterior(GaussianMean(), x)
    sd = 1 / math.sqrt(n)
    law = stats.truncnorm((-1 - np.array(means)) / sd, (1 - np.array(means)) / sd, means, sd)
    _close(post.mean()[:, 0], post.var()[:, 0], law.mean(), law.var())
    draws = post.sample(20_000, generator(3))[..., 0].numpy()
    s = draws.shape[1]
    se_mean = np.sqrt(law.var() / s)
    fourth = ((draws - draws.mean(1, keepdims=True)) ** 4).mean(1)
    se_var = np.sqrt((fourth - law.var() ** 2) / s)  # delta method for the sample variance
    assert (np.abs(draws.mean(1) - law.mean()) < 4 * se_mean).all()
    assert (np.abs(draws.var(1) - law.var()) < 4 * se_var).all()


def test_multivariate_factors_match_closed_forms(generator) -> None:
    sim = get_simulator("multivariate")
    theta = torch.tensor([[0.5, -2.0, -2.9], [2.95, 2.9, 2.99], [-3.0, 0.0, 0.0]])
    x = sim.simulate(theta, 200, generator(4))
    post = reference_posterior(sim, x)
    z = sim.unmix(x).numpy()
    n, mean, var = z.shape[1], post.mean().numpy(), post.var().numpy()
    # theta_0: N(mean z_0, 1/n) truncated to the box [-3, 3]
    zbar, sd = z[..., 0].mean(1), 1 / math.sqrt(n)
    law = stats.truncnorm((-3 - zbar) / sd, (3 - zbar) / sd, zbar, sd)
    _close(mean[:, 0], var[:, 0], law.mean(), law.var())
    # theta_1 (sigma = e^(theta/3)): log L = -n theta / 3 - S e^(-2 theta / 3) / 2, by quadrature
    want = []
    for total in ((z[..., 1] - 3) ** 2).sum(1).tolist():
        mode = min(max(1.5 * math.log(total / n), -3.0), 3.0)
        log_f = lambda t, s=total: -n * t / 3 - 0.5 * s * math.exp(-2 * t / 3)  # noqa: E731
        want.append(_quad_moments(log_f, -3.0, 3.0, mode, 1.5 / math.sqrt(2 * n)))
    _close(mean[:, 1], var[:, 1], *np.array(want).T)
    # theta_2: u = theta_2 + 5 has density u^-n on [A, 8], A = max z_3 + 5, r = 8 / A:
    # E u = A (n-1)/(n-2) (1 - r^(2-n)) / (1 - r^(1-n)), E u^2 likewise with n-3, r^(3-n)
    a, r = z[..., 3].max(1) + 5, 8 / (z[..., 3].max(1) + 5)
    first = a * (n - 1) / (n - 2) * (1 - r ** (2.0 - n)) / (1 - r ** (1.0 - n))
    second = a**2 * (n - 1) / (n - 3) * (1 - r ** (3.0 - n)) / (1 - r ** (1.0 - n))
    _close(mean[:, 2], var[:, 2], first - 5, second - first**2)


def _asymmetry_prior(a: np.ndarray) -> np.ndarray:
    """Density (up to a constant) of a(theta) for theta uniform on [40, 50] x [0.5, 1.5].

    a = s G with s(E) = 2 tanh((2/9)(E - 45)); for fixed E, |da/dG| = |s|, so p(a) is the
    integral of dE / |s(E)| over the energies with G = a / s(E) in [0.5, 1.5]. With
    E(s) = 45 + 4.5 atanh(s/2), the antiderivative of 1/s(E) is 4.5 log t(s), t = s/sqrt(4 - s^2)
    (= sinh(atanh(s/2))); s ranges over [a/1.5, min(a/0.5, s_max)], s_max = s(50).
    """
    s_max, a = 2 * math.tanh(10 / 9), np.abs(a)
    low, high = a / 1.5, np.minimum(a / 0.5, s_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.log(high / np.sqrt(4 - high**2)) - np.log(low / np.sqrt(4 - low**2))
    value = np.where(a == 0, math.log(3.0), value)  # the a -> 0 limit
    return np.where(low < high, value, 0.0)


def test_weinberg_asymmetry_matches_one_dimensional_grid(generator) -> None:
    sim = get_simulator("weinberg")
    theta = torch.tensor([[42.0, 0.7], [45.2, 1.0], [49.8, 1.45], [47.0, 1.3]])
    x = sim.simulate(theta, 200, generator(5))
    post = reference_posterior(sim, x)
    mean, var = post.derived_moments()["asymmetry"]
    # The 1-D reference: midpoint grid of 40000 cells on the image [-a_max, a_max] of the box.
    a_max = sim.asymmetry_range()
    edges = np.linspace(-a_max, a_max, 40_001)
    grid = torch.from_numpy((edges[1:] + edges[:-1]) / 2)
    log_lik = log_density(x.double()[:, None, :, 0], grid[None, :, None]).sum(-1).numpy()
    log_w = log_lik + np.log(_asymmetry_prior(grid.numpy()))
    w = np.exp(log_w - log_w.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    want_mean = (w * grid.numpy()).sum(1)
    want_var = (w * (grid.numpy() - want_mean[:, None]) ** 2).sum(1)
    # The 2-D cells tile the window exactly, so the midpoint rule's error is O(h^2 f''): across
    # the ridge (sd >= ~13 cells, cells_per_sd) about (1/13)^2 / 24 = 2.5e-4 relative; along it
    # the density is smooth on the box's scale. Measured: 3e-4 on the variance.
    _close(mean, var, want_mean, want_var)


@pytest.mark.parametrize("name", ["poisson", "linear_regression", "multivariate", "weinberg"])
def test_grid_resolves_the_mass(generator, name: str) -> None:
    sim = get_simulator(name)
    low, high = (b.double() for b in sim.bounds())
    corners = torch.stack((low + 1e-3 * (high - low), high - 1e-3 * (high - low)))
    theta = torch.cat((corners, sim.sample_prior((2,), generator(6)).double())).float()
    post = reference_posterior(sim, sim.simulate(theta, 200, generator(7)))
    assert (post.edge_mass < 1e-10).all(), post.edge_mass
    assert (post.cells_per_sd >= 4).all(), post.cells_per_sd


@pytest.mark.parametrize("name", ["poisson", "linear_regression", "multivariate", "weinberg"])
def test_grid_on_device_matches_cpu(device, generator, name: str) -> None:
    """Device-aware: the grid built where the data lie (the workflow's `device: auto` puts them
    on the GPU) gives the CPU's moments; float64 on both, so to ~1e-12 (different kernels)."""
    sim = get_simulator(name)
    x = sim.simulate(sim.sample_prior((3,), generator(11)), 50, generator(12))
    here, there = reference_posterior(sim, x), reference_posterior(sim, x.to(device))
    assert there.mean().device.type == device.type
    torch.testing.assert_close(there.mean().cpu(), here.mean(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(there.var().cpu(), here.var(), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("name", ["poisson", "multivariate"])
def test_reference_samples_are_calibrated(generator, name: str) -> None:
    """Truths from the prior lie in the exact posterior's central intervals at their level."""
    sim = get_simulator(name)
    theta = sim.sample_prior((400,), generator(8))
    post = reference_posterior(sim, sim.simulate(theta, 20, generator(9)))
    draws = post.sample(1000, generator(10)).numpy()
    table = calibration.sample_coverage(draws, theta.numpy(), levels=(0.5, 0.9))
    # binomial sd sqrt(a (1 - a) / 400) <= 0.025; 4 sds
    assert (np.abs(table["coverage"] - table["level"]) < 0.1).all(), table


def test_c2st_without_sbi_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sbi.utils.metrics", None)
    with pytest.raises(ImportError, match=r"sbi.*pip install -e '\.\[baselines\]'"):
        calibration.c2st(np.zeros((1, 10, 1)), np.zeros((1, 10, 1)))


@pytest.mark.baselines
@pytest.mark.parametrize("trees", [100, 25])
def test_c2st_against_the_reference(generator, require_sbi, trees: int) -> None:
    sim = get_simulator("poisson")
    x = sim.simulate(torch.tensor([[1.0], [5.0]]), 200, generator(11))
    post = reference_posterior(sim, x)
    reference = post.sample(500, generator(12)).numpy()
    same = calibration.c2st(post.sample(500, generator(13)).numpy(), reference, trees=trees)
    shift = 2 * post.var().sqrt()[:, None].numpy()
    shifted = calibration.c2st(
        post.sample(500, generator(14)).numpy() + shift, reference, trees=trees
    )
    assert same.shape == (2,) and (same < 0.6).all(), same  # chance level 0.5
    assert (shifted > 0.75).all(), shifted  # two sds apart: Bayes accuracy Phi(1) = 0.84
