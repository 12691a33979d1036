"""Each simulator against its law, and each MLE against the truth and a generic optimiser.

Statistical checks use fixed seeds. Moment checks allow 4 standard errors (a false alarm rate of
6e-5 per check under the law); goodness-of-fit checks require a p-value above 1e-3. Exactness
checks (every simulator through :func:`alfi.testing.check_simulator`, the KKT conditions of the
linear-regression MLE, the Weinberg level set) are deterministic, with rounding tolerances.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from alfi.simulators import Simulator, available, get_simulator, register
from alfi.simulators.linear_regression import LinearRegression
from alfi.simulators.multivariate import MIXING
from alfi.simulators.weinberg import asymmetry, log_density, support
from alfi.testing import check_simulator

P_MIN = 1e-3


def test_registry_has_the_four_paper_simulators():
    assert set(available()) >= {"poisson", "linear_regression", "multivariate", "weinberg"}
    with pytest.raises(ValueError, match="unknown simulator 'nope'"):
        get_simulator("nope")


@pytest.mark.parametrize("name", ["poisson", "linear_regression", "multivariate", "weinberg"])
def test_batched_shapes_and_prior(generator, name):
    sim = get_simulator(name)
    theta = sim.sample_prior((2, 3), generator(1))
    low, high = sim.bounds()
    assert theta.shape == (2, 3, sim.theta_dim)
    assert ((theta >= low) & (theta <= high)).all()
    x = sim.simulate(theta, 7, generator(2))
    assert x.shape == (2, 3, 7, sim.observation_dim)
    assert torch.isfinite(x).all()
    assert sim.mle(x).shape == (2, 3, sim.theta_dim)


def test_same_seed_same_draws(generator):
    sim = get_simulator("weinberg")
    theta = sim.sample_prior((4,), generator(3))
    a = sim.simulate(theta, 50, generator(9))
    b = sim.simulate(theta, 50, generator(9))
    assert torch.equal(a, b)


def test_poisson_law(generator):
    sim = get_simulator("poisson")
    rate, n = 5.0, 40_000
    x = sim.simulate(torch.tensor([math.log(rate)]), n, generator(0))[:, 0].numpy()
    assert abs(x.mean() - rate) < 4 * math.sqrt(rate / n)
    counts = np.bincount(x.astype(int), minlength=30)[:15]
    expected = stats.poisson(rate).pmf(np.arange(15)) * n
    tail = n - counts.sum(), n - expected.sum()
    chi2 = stats.chisquare(np.append(counts, tail[0]), np.append(expected, tail[1]))
    assert chi2.pvalue > P_MIN


def test_linear_regression_law(generator):
    sim = get_simulator("linear_regression")
    theta = torch.tensor([0.9, -0.3])
    x = sim.simulate(theta, 20_000, generator(0)).double()
    u, one, y = x[:, 0], x[:, 1], x[:, 2]
    assert torch.all(one == 1)
    assert stats.kstest(u.numpy(), stats.uniform(-1, 2).cdf).pvalue > P_MIN
    noise = y - math.tan(0.9) * u + 0.3
    assert stats.kstest(noise.numpy(), stats.norm(0, 0.1).cdf).pvalue > P_MIN


def test_multivariate_law(generator):
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
def test_weinberg_law_including_truncated_support(generator, a):
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
def test_mle_recovers_theta_on_large_samples(generator, name, theta, n, tol):
    sim = get_simulator(name)
    x = sim.simulate(torch.tensor(theta), n, generator(4))
    assert torch.allclose(sim.mle(x), torch.tensor(theta), atol=tol)


def test_weinberg_mle_recovers_asymmetry(generator):
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
def test_mle_matches_numerical_maximisation(generator, name):
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


def test_multivariate_mle_matches_numerical_maximisation(generator):
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
def test_weinberg_mle_matches_scalar_maximisation(generator, theta):
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


# --- The reusable checker on every built-in simulator, and its power on a broken MLE. ---


@pytest.mark.parametrize("name", ["poisson", "linear_regression", "multivariate", "weinberg"])
def test_check_simulator_passes_on_builtin(name):
    report = check_simulator(get_simulator(name), seed=0)
    assert "MLE optimality" in report.passed
    # An exact MLE is never beaten: the optimiser's gain is rounding (< 1e-12), except Poisson's
    # clamp to the float32 bound 0.2f = 0.2 + 3e-9: a loss <= n e^0.2 3e-9 = 1.1e-7 at n = 30.
    assert report.max_gap < 2e-7
    assert report.binding > 0, "no problem where the box binds: the check lost its hard cases"
    if name == "weinberg":
        assert "MLE arguments" in report.skipped  # only a(theta) is identified
    else:
        assert "MLE arguments" in report.passed


class _ClippedLeastSquares(LinearRegression):
    """The former estimator: offset clipped without refitting the slope (not the box MLE)."""

    def mle(self, x: torch.Tensor) -> torch.Tensor:
        u, y = x[..., 0], x[..., 2]
        du = u - u.mean(-1, keepdim=True)
        slope = ((du * y).sum(-1) / (du * du).sum(-1)).clamp_min(0.0)
        offset = y.mean(-1) - slope * u.mean(-1)
        return self.clamp(torch.stack((slope.atan(), offset), -1))


def test_check_simulator_rejects_an_inexact_mle():
    with pytest.raises(AssertionError, match="MLE log-likelihood .* found by L-BFGS-B"):
        check_simulator(_ClippedLeastSquares(), seed=0)


class _GaussianMean(Simulator):
    """The README's plugin: no log_likelihood."""

    name = "gaussian_mean_test"
    parameter_names = ("mean",)
    prior_low, prior_high = (-5.0,), (5.0,)

    def simulate(self, theta, n, generator):
        noise = torch.randn((*theta.shape[:-1], n, 1), generator=generator, device=theta.device)
        return theta.unsqueeze(-2) + noise

    def mle(self, x):
        return self.clamp(x.mean(dim=-2))


def test_check_simulator_without_log_likelihood_checks_the_rest():
    report = check_simulator(_GaussianMean())
    assert {"shapes", "prior box", "same seed same draws", "MLE in box"} <= set(report.passed)
    assert report.skipped == {"MLE optimality": "no log_likelihood"}

    class Unbatched(_GaussianMean):
        def mle(self, x):
            return self.clamp(x.reshape(-1, x.shape[-2]).mean(-1, keepdim=True))

    with pytest.raises(
        AssertionError, match=r"mle\(\(2, 3, n, X\)\) shape \(6, 1\); expected \(2, 3, 1\)"
    ):
        check_simulator(Unbatched())


# --- Linear regression: the exact box-constrained least squares. ---


def _line(u, y, dtype):
    u, y = torch.as_tensor(u, dtype=dtype), torch.as_tensor(y, dtype=dtype)
    return torch.stack((u, torch.ones_like(u), y), -1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_linear_regression_mle_issue_example(dtype):
    """u = .2..1, y = 1.5 + 0.5 u: the offset binds at 1 and the slope is refitted on c = 1."""
    sim = get_simulator("linear_regression")
    u = torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0], dtype=torch.float64)
    x = _line(u, 1.5 + 0.5 * u, dtype)
    mle = sim.mle(x)
    assert mle.dtype == dtype
    # On c = 1: b = sum u (y - 1) / sum u^2 = 0.5 * 3 / 2.2 + 0.5 = 13/11.
    expected = torch.tensor([math.atan(13 / 11), 1.0], dtype=dtype)
    assert torch.allclose(mle, expected, atol=1e-6)
    assert float(sim.log_likelihood(mle.double(), x.double())) == pytest.approx(-4.4454, abs=1e-4)
    # The former estimator: (0.4636, 1.0) at log-likelihood -55.6.
    old = _ClippedLeastSquares().mle(x.double())
    assert float(sim.log_likelihood(old, x.double())) == pytest.approx(-55.58, abs=0.01)


def test_linear_regression_mle_satisfies_kkt(generator):
    """KKT conditions of min S(b, c) s.t. b >= 0, |c| <= 1, sufficient as S is convex.

    dS/db = -2 sum u r is 0 where b > 0 and >= 0 where b = 0; dS/dc = -2 sum r is 0 inside,
    >= 0 at c = -1 and <= 0 at c = 1. Lines with slope in [-3, 3] and offset in [-2, 2] make
    every constraint bind in a good share of the 4000 problems.
    """
    sim = get_simulator("linear_regression")
    g = generator(11)
    shape = (4000, 1)
    n = torch.randint(2, 12, (4000,), generator=g)
    b, c = 6 * torch.rand(shape, generator=g) - 3, 4 * torch.rand(shape, generator=g) - 2
    u = (2 * torch.rand((4000, 12), generator=g) - 1).double()
    y = b * u + c + 0.3 * torch.randn((4000, 12), generator=g)
    # Ragged sizes by repetition: duplicating the first row of each problem n..12 times.
    keep = torch.arange(12) < n[:, None]
    u, y = torch.where(keep, u, u[:, :1]), torch.where(keep, y, y[:, :1])
    slope_angle, offset = sim.mle(_line(u, y, torch.float64)).unbind(-1)
    slope = slope_angle.tan()
    r = y - slope[:, None] * u - offset[:, None]
    grad_b, grad_c = -2 * (u * r).sum(-1), -2 * r.sum(-1)
    tol = 1e-9 * (1 + (y * y).sum(-1))
    on_b = slope == 0
    on_low, on_high = offset == -1, offset == 1
    assert (grad_b[~on_b].abs() <= tol[~on_b]).all()
    assert (grad_b[on_b] >= -tol[on_b]).all()
    inside = ~(on_low | on_high)
    assert (grad_c[inside].abs() <= tol[inside]).all()
    assert (grad_c[on_low] >= -tol[on_low]).all() and (grad_c[on_high] <= tol[on_high]).all()
    assert on_b.sum() > 200 and on_low.sum() > 200 and on_high.sum() > 200
    assert (on_b & (on_low | on_high)).sum() > 50  # corners


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("u0", [0.0, 0.3, -0.7])
def test_linear_regression_mle_degenerate_design(u0, dtype):
    """All u equal: only b u0 + c is identified; the MLE is finite, in the box and optimal."""
    sim = get_simulator("linear_regression")
    y = torch.tensor([[0.1, 0.5, 0.4], [2.5, 2.7, 2.6], [-3.0, -2.0, -2.5]], dtype=torch.float64)
    x = _line(torch.full_like(y, u0), y, dtype)
    mle = sim.mle(x)
    assert torch.isfinite(mle).all()
    low, high = (b.to(dtype) for b in sim.bounds())
    assert ((mle >= low) & (mle <= high)).all()
    fitted = mle[:, 0].double().tan() * u0 + mle[:, 1].double()
    # The best reachable level of b u0 + c: [-1, 1] for u0 = 0, else [-1, inf) or (-inf, 1].
    top, bottom = (1.0 if u0 <= 0 else math.inf), (-1.0 if u0 >= 0 else -math.inf)
    target = y.mean(-1).clamp(bottom, top)
    assert torch.allclose(fitted, target, atol=1e-5)


# --- Weinberg: the level-set point is exact and nearest to the prior centre. ---


def _weinberg_grid() -> torch.Tensor:
    a_max = get_simulator("weinberg").asymmetry_range()
    near_zero = torch.tensor([1e-6, 3e-7, 1e-8, 1e-10, 1e-12], dtype=torch.float64)
    fine = torch.linspace(-a_max, a_max, 20_001, dtype=torch.float64)
    return torch.cat((fine, near_zero, -near_zero, torch.zeros(1, dtype=torch.float64)))


def _log_likelihood_per_observation(name, theta, x):
    """The textbook sum over observations of log p(x_j | theta), float64 throughout."""
    theta, x = theta.double(), x.double()
    log_norm = -0.5 * math.log(2 * math.pi)
    if name == "linear_regression":
        mean = theta[..., :1].tan() * x[..., 0] + theta[..., 1:]
        z = (x[..., 2] - mean) / 0.1
        return (log_norm - math.log(0.1) - 0.5 * z**2).sum(-1)
    sim = get_simulator("multivariate")
    z, theta = sim.unmix(x), theta.unsqueeze(-2)
    scale = (theta[..., 1] / 3).exp()
    inside = (z[..., 3] >= -5.0) & (z[..., 3] <= theta[..., 2])
    uniform = torch.where(inside, -(theta[..., 2] + 5.0).log(), -math.inf)
    gauss = 2 * log_norm - 0.5 * (z[..., 0] - theta[..., 0]) ** 2 - scale.log()
    return (gauss - 0.5 * ((z[..., 1] - 3.0) / scale) ** 2 + uniform).sum(-1)


@pytest.mark.parametrize("name", ["linear_regression", "multivariate"])
def test_log_likelihood_from_sufficient_statistics_is_the_sum_over_observations(generator, name):
    """The O(C + n) form equals the sum of per-observation terms to float64 rounding, for a
    grid of cells broadcast against each problem (as the reference grids call it), including
    lines as steep as tan(pi/2 - 1e-6) ~ 1e6, where an expanded square would lose every digit."""
    sim, rng = get_simulator(name), generator(0)
    low, high = sim.bounds()
    theta = (low + (high - low) * torch.rand(30, sim.theta_dim, generator=rng)).double()
    if name == "linear_regression":
        theta[:4, 0] = math.pi / 2 - torch.tensor([1e-2, 1e-3, 1e-4, 1e-6], dtype=torch.float64)
    x = sim.simulate(theta, 200, rng).double()
    cells = theta.unsqueeze(1) + 1e-3 * torch.randn(30, 8, sim.theta_dim, generator=rng)
    fast = sim.log_likelihood(cells, x.unsqueeze(1))
    slow = _log_likelihood_per_observation(name, cells, x.unsqueeze(1))
    assert fast.shape == (30, 8)
    assert torch.equal(torch.isfinite(fast), torch.isfinite(slow))
    finite = torch.isfinite(slow)
    assert finite.float().mean() > 0.3  # the uniform's edge cuts some cells, not all
    # Each side rounds ~n terms of size |slow|: a few float64 ulps of |slow| apart.
    error = (fast - slow)[finite].abs() / slow[finite].abs().clamp_min(1.0)
    assert error.max() < 1e-12


def test_linear_regression_log_likelihood_one_observation_and_equal_designs():
    """n = 1 and all u equal: the least-squares fit is not unique; the shift term carries it."""
    sim = get_simulator("linear_regression")
    theta = torch.tensor([[0.3, 0.5], [math.pi / 2 - 1e-5, -0.2]], dtype=torch.float64)
    for x in (
        _line([[0.4], [-0.9]], [[0.7], [3.0e4]], torch.float64),
        _line([[0.3] * 5, [0.0] * 5], [[0.1, 0.2, 0.3, 0.2, 0.1]] * 2, torch.float64),
    ):
        expected = _log_likelihood_per_observation("linear_regression", theta, x)
        assert torch.allclose(sim.log_likelihood(theta, x), expected, rtol=1e-13, atol=1e-9)


def test_multivariate_mle_is_inside_the_support_in_float32(generator):
    """theta_2's MLE is max z_3: rounded to float32 it must not fall below it (likelihood 0)."""
    sim, rng = get_simulator("multivariate"), generator(0)
    low, high = sim.bounds()
    theta = low + (high - low) * torch.rand(64, 3, generator=rng)
    x = sim.simulate(theta, 200, rng)
    mle = sim.mle(x)
    assert mle.dtype == torch.float32
    assert torch.isfinite(sim.log_likelihood(mle, x)).all()


def test_weinberg_theta_on_level_set_is_exact():
    sim = get_simulator("weinberg")
    a = _weinberg_grid()
    theta = sim.theta_on_level_set(a)
    assert theta.dtype == torch.float64
    low, high = (b.double() for b in sim.bounds())
    assert ((theta >= low) & (theta <= high)).all()
    # Exact to rounding: the former grid search missed by up to 5e-4 near a = 0.
    assert (asymmetry(theta) - a).abs().max() < 1e-12
    assert theta[-1].tolist() == [45.0, 1.0]  # a = 0: the prior centre


def test_weinberg_theta_on_level_set_is_nearest():
    """Brute force: among 200001 energies with G = a / s(E) in [0.5, 1.5], none is closer.

    The returned point is feasible (previous test), so it cannot beat the true minimum; being
    no farther than the best grid point bounds its excess by the grid's resolution.
    """
    sim = get_simulator("weinberg")
    a = _weinberg_grid()[::50]
    theta = sim.theta_on_level_set(a)
    energy = torch.linspace(40.0, 50.0, 200_001, dtype=torch.float64)
    s = asymmetry(torch.stack((energy, torch.ones_like(energy)), -1))
    distances = []
    for chunk in a.split(64):
        fermi = chunk[:, None] / s
        d = 12 * (((energy - 45) / 10) ** 2 + (fermi - 1) ** 2)
        distances.append(torch.where((fermi >= 0.5) & (fermi <= 1.5), d, math.inf).amin(-1))
    brute = torch.cat(distances)
    found = 12 * (((theta[:, 0] - 45) / 10) ** 2 + (theta[:, 1] - 1) ** 2)
    finite = torch.isfinite(brute)
    assert finite.sum() > 350
    assert (found[finite] <= brute[finite] + 1e-12).all()


@pytest.mark.parametrize("name", ["poisson", "linear_regression", "multivariate", "weinberg"])
def test_simulators_and_mle_on_device(device, generator, name):
    """``--device cuda``: draws, simulation and the MLE run there; the MLE of the same data
    agrees with the CPU's (same algorithm, reductions in another order: Weinberg's golden section
    may end apart by the likelihood's flatness at rounding level, ~1e-7 in a)."""
    sim = get_simulator(name)
    on_device = torch.Generator(device=device).manual_seed(0)
    theta = sim.sample_prior((64,), on_device)
    x = sim.simulate(theta, 200, on_device)
    assert x.device.type == device.type and x.shape == (64, 200, sim.observation_dim)
    assert torch.isfinite(x).all()
    estimate = sim.mle(x)
    assert estimate.device.type == device.type and torch.isfinite(estimate).all()
    x = sim.simulate(sim.sample_prior((64,), generator(12)), 20, generator(13)).double()
    assert torch.allclose(sim.mle(x.to(device)).cpu(), sim.mle(x), atol=1e-6)


def test_register_refuses_an_empty_prior_box():
    class Backwards(_GaussianMean):
        name = "backwards_mean"
        prior_low, prior_high = (1.0,), (-1.0,)

    with pytest.raises(ValueError, match=r"prior box mean \[1.0, -1.0\] is empty"):
        register(Backwards)
