"""Each simulator against its law, and each MLE against the truth and a generic optimiser.

Statistical checks use fixed seeds. Moment checks allow 4 standard errors (a false alarm rate of
6e-5 per check under the law); goodness-of-fit checks require a p-value above 1e-3.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import generator
from scipy import optimize, stats

from alfi.simulators import available, get_simulator
from alfi.simulators.multivariate import MIXING
from alfi.simulators.weinberg import asymmetry, log_density, support

P_MIN = 1e-3


def test_registry_has_the_four_paper_simulators():
    assert set(available()) >= {"poisson", "linear_regression", "multivariate", "weinberg"}
    with pytest.raises(ValueError, match="unknown simulator 'nope'"):
        get_simulator("nope")


@pytest.mark.parametrize("name", ["poisson", "linear_regression", "multivariate", "weinberg"])
def test_batched_shapes_and_prior(name):
    sim = get_simulator(name)
    theta = sim.sample_prior((2, 3), generator(1))
    low, high = sim.bounds()
    assert theta.shape == (2, 3, sim.theta_dim)
    assert ((theta >= low) & (theta <= high)).all()
    x = sim.simulate(theta, 7, generator(2))
    assert x.shape == (2, 3, 7, sim.observation_dim)
    assert torch.isfinite(x).all()
    assert sim.mle(x).shape == (2, 3, sim.theta_dim)


def test_same_seed_same_draws():
    sim = get_simulator("weinberg")
    theta = sim.sample_prior((4,), generator(3))
    a = sim.simulate(theta, 50, generator(9))
    b = sim.simulate(theta, 50, generator(9))
    assert torch.equal(a, b)


def test_poisson_law():
    sim = get_simulator("poisson")
    rate, n = 5.0, 40_000
    x = sim.simulate(torch.tensor([math.log(rate)]), n, generator(0))[:, 0].numpy()
    assert abs(x.mean() - rate) < 4 * math.sqrt(rate / n)
    counts = np.bincount(x.astype(int), minlength=30)[:15]
    expected = stats.poisson(rate).pmf(np.arange(15)) * n
    tail = n - counts.sum(), n - expected.sum()
    chi2 = stats.chisquare(np.append(counts, tail[0]), np.append(expected, tail[1]))
    assert chi2.pvalue > P_MIN


def test_linear_regression_law():
    sim = get_simulator("linear_regression")
    theta = torch.tensor([0.9, -0.3])
    x = sim.simulate(theta, 20_000, generator(0)).double()
    u, one, y = x[:, 0], x[:, 1], x[:, 2]
    assert torch.all(one == 1)
    assert stats.kstest(u.numpy(), stats.uniform(-1, 2).cdf).pvalue > P_MIN
    noise = y - math.tan(0.9) * u + 0.3
    assert stats.kstest(noise.numpy(), stats.norm(0, 0.1).cdf).pvalue > P_MIN


def test_multivariate_law():
    sim = get_simulator("multivariate")
    theta = torch.tensor([1.5, -2.0, 0.7])
    x = sim.simulate(theta, 20_000, generator(0))
    z = torch.linalg.solve(torch.tensor(MIXING, dtype=torch.float64), x.double().T).T.numpy()

    def mixture_cdf(v):
        return 0.5 * stats.norm(-2, 0.5).cdf(v) + 0.5 * stats.norm(2, 1).cdf(v)

    laws = [
        stats.norm(1.5, 1).cdf,
        stats.norm(3, math.exp(-2.0 / 3)).cdf,
        mixture_cdf,
        stats.uniform(-5, 5.7).cdf,
        stats.expon(scale=2.0).cdf,
    ]
    for k, cdf in enumerate(laws):
        assert stats.kstest(z[:, k], cdf).pvalue > P_MIN, f"latent z{k}"


def _weinberg_cdf(x: np.ndarray, a: float) -> np.ndarray:
    low, high = (float(v) for v in support(torch.tensor(a, dtype=torch.float64)))

    def anti(v):
        return v + a * v * v / 2 + v**3 / 3

    x = np.clip(x, low, high)
    return (anti(x) - anti(low)) / (anti(high) - anti(low))


@pytest.mark.parametrize("a", [0.0, 1.2, -1.9, 2.3, -2.4])
def test_weinberg_law_including_truncated_support(a):
    sim = get_simulator("weinberg")
    # theta on the level set a(theta) = a, Fermi constant solved for at E = 50 (or 40).
    energy = 50.0 if a >= 0 else 40.0
    slope = float(asymmetry(torch.tensor([energy, 1.0], dtype=torch.float64)))
    theta = torch.tensor([energy, a / slope])
    assert abs(float(asymmetry(theta)) - a) < 1e-5
    x = sim.simulate(theta, 20_000, generator(0))[:, 0].double()
    low, high = support(torch.tensor(a, dtype=torch.float64))
    assert x.min() >= low - 1e-6 and x.max() <= high + 1e-6
    assert stats.kstest(x.numpy(), lambda v: _weinberg_cdf(v, a)).pvalue > P_MIN
    # The density integrates to 1 over its support.
    grid = torch.linspace(float(low), float(high), 200_001, dtype=torch.float64)
    integral = torch.trapezoid(log_density(grid, torch.tensor(a, dtype=torch.float64)).exp(), grid)
    assert abs(float(integral) - 1) < 1e-6


def test_weinberg_prior_reaches_truncated_region():
    sim = get_simulator("weinberg")
    assert sim.asymmetry_range() > 2.0


@pytest.mark.parametrize(
    ("name", "theta", "n", "tol"),
    [
        ("poisson", [2.0], 50_000, 4 * math.sqrt(1 / (50_000 * math.exp(2.0)))),
        ("linear_regression", [0.8, 0.2], 50_000, 0.005),
        ("multivariate", [0.5, 1.0, 1.0], 50_000, 0.03),
    ],
)
def test_mle_recovers_theta_on_large_samples(name, theta, n, tol):
    sim = get_simulator(name)
    x = sim.simulate(torch.tensor(theta), n, generator(4))
    assert torch.allclose(sim.mle(x), torch.tensor(theta), atol=tol)


def test_weinberg_mle_recovers_asymmetry():
    sim = get_simulator("weinberg")
    theta = torch.tensor([[47.0, 1.2], [41.0, 0.7]])
    x = sim.simulate(theta, 50_000, generator(5))
    a_hat = sim.mle_asymmetry(x)
    # Fisher information of a is at least ~0.1 per observation here: 4 se < 0.06.
    assert torch.allclose(a_hat.float(), asymmetry(theta), atol=0.06)
    assert torch.allclose(asymmetry(sim.mle(x).double()), a_hat, atol=1e-6)


def _neg_log_likelihood(sim, x):
    return lambda t: -float(sim.log_likelihood(torch.tensor(t, dtype=torch.float64), x.double()))


@pytest.mark.parametrize("name", ["poisson", "linear_regression"])
def test_mle_matches_numerical_maximisation(name):
    sim = get_simulator(name)
    theta = sim.sample_prior((5,), generator(6))
    x = sim.simulate(theta, 30, generator(7))
    bounds = list(zip(sim.prior_low, sim.prior_high, strict=True))
    for k in range(5):
        start = np.array(sim.prior_moments()[0].tolist())
        result = optimize.minimize(
            _neg_log_likelihood(sim, x[k]),
            start,
            bounds=bounds,
            method="L-BFGS-B",
            options={"ftol": 1e-14, "gtol": 1e-10},
        )
        np.testing.assert_allclose(sim.mle(x[k].double()).numpy(), result.x, atol=2e-4)


def test_multivariate_mle_matches_numerical_maximisation():
    sim = get_simulator("multivariate")
    theta = torch.tensor([0.3, -1.0, 1.5])
    x = sim.simulate(theta, 30, generator(8)).double()
    mle = sim.mle(x)
    nll = _neg_log_likelihood(sim, x)
    # theta2: the likelihood (theta2 + 5)^-n is decreasing on [max z3, 3], so max z3 is exact.
    result = optimize.minimize(
        lambda t: nll([t[0], t[1], float(mle[2])]),
        [0.0, 0.0],
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 10_000},
    )
    np.testing.assert_allclose(mle[:2].numpy(), result.x, atol=1e-4)
    assert nll(mle.tolist()) < nll([*mle[:2].tolist(), float(mle[2]) + 1e-3])
    assert math.isinf(nll([*mle[:2].tolist(), float(mle[2]) - 1e-3]))


@pytest.mark.parametrize("theta", [[47.0, 1.2], [41.0, 1.45], [45.3, 0.6]])
def test_weinberg_mle_matches_scalar_maximisation(theta):
    sim = get_simulator("weinberg")
    x = sim.simulate(torch.tensor(theta), 40, generator(9))[:, 0].double()
    a_max = sim.asymmetry_range()
    result = optimize.minimize_scalar(
        lambda a: -float(log_density(x, torch.tensor(a, dtype=torch.float64)).sum()),
        bounds=(-a_max, a_max),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert abs(float(sim.mle_asymmetry(x[:, None])) - result.x) < 1e-6


def test_poisson_mle_all_zero_counts_is_lower_bound():
    sim = get_simulator("poisson")
    assert float(sim.mle(torch.zeros(10, 1))) == pytest.approx(0.2)


def test_weinberg_inverse_cdf_round_trip():
    """F(F^{-1}(u)) = u across the prior's range of a, including |a| = 2 and the truncated laws."""
    from alfi.simulators.weinberg import inverse_cdf

    a = torch.tensor(
        [-2.41, -2.2, -2.0, -1.0, 0.0, 0.3, 1.99, 2.0, 2.01, 2.41], dtype=torch.float64
    )
    u = torch.linspace(0, 1, 1001, dtype=torch.float64)
    x = inverse_cdf(u[None, :], a[:, None])
    for i, value in enumerate(a.tolist()):
        cdf = torch.from_numpy(_weinberg_cdf(x[i].numpy(), value))
        assert torch.allclose(cdf, u, atol=1e-9), value
