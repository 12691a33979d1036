r"""Checks a :class:`~alfi.simulators.Simulator`, built-in or a plugin's, against its contract.

:func:`check_simulator` raises :class:`AssertionError` naming the first broken promise:

* shapes: ``sample_prior`` gives ``(*shape, D)``; ``simulate`` maps ``(*, D)`` to ``(*, n, X)``
  and ``mle`` maps ``(*, n, X)`` to ``(*, D)``, batched and unbatched (the batched MLE equals the
  per-problem one);
* the prior draws and the MLE lie in the prior box; draws, observations and MLE are finite;
  observations lie in ``observation_support`` and are integers where ``discrete_observations``;
* reproducibility: the same seed gives the same prior draws and the same observations;
* optimality, when ``log_likelihood`` is implemented: on small samples (``n`` in ``sizes``) at
  random parameters and at parameters near every corner of the box (where the box binds), the
  MLE's log-likelihood :math:`\ell(\hat\theta)` is at least that of the best of several bounded
  L-BFGS-B runs (``scipy.optimize``) of :math:`\ell` over the box, minus ``atol + rtol |\ell|``.
  An exact MLE can only do at least as well as a numerical optimiser, and one run starts at
  :math:`\hat\theta`, so any ascent found from there is a failure. Where the maximiser is unique
  (``compare_arguments``; by default when :meth:`~alfi.simulators.Simulator.derived` is empty,
  i.e. :math:`\theta` is identifiable) the arguments must also agree to ``argument_tol`` times
  the box width. Non-identifiable simulators are compared by log-likelihood only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import optimize
from torch import Tensor

from alfi.simulators.base import Simulator

__all__ = ["CheckReport", "check_simulator"]


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_simulator` verified: names of passed checks, skipped ones with reasons."""

    simulator: str
    passed: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    #: Largest ``l(optimiser) - l(mle)`` over the problems (``nan`` when not checked).
    max_gap: float = float("nan")
    #: Number of (parameter, sample size) problems of the optimality check.
    problems: int = 0
    #: How many of them have an MLE component on the box's boundary (the box binds).
    binding: int = 0


def _require(condition: bool, sim: Simulator, message: str) -> None:
    if not condition:
        raise AssertionError(f"{sim!r}: {message}")


def _in_box(theta: Tensor, sim: Simulator) -> bool:
    low, high = (b.to(theta) for b in sim.bounds(theta.device))
    return bool(((theta >= low) & (theta <= high)).all())


def _require_shape(sim: Simulator, call: str, value: torch.Tensor, want: tuple[int, ...]) -> None:
    got = tuple(value.shape)
    _require(got == want, sim, f"{call} shape {got}; expected {want}")


def _check_shapes(sim: Simulator, seed: int, n: int, device: str) -> None:
    """Shapes, box, finiteness, reproducibility and batch consistency of the three methods."""
    D, X = sim.theta_dim, sim.observation_dim
    _require(D > 0 and len(sim.prior_low) == len(sim.prior_high) == D, sim, "prior box size != D")
    _require(
        all(lo < hi for lo, hi in zip(sim.prior_low, sim.prior_high, strict=True)), sim, "empty box"
    )
    draw = sim.sample_prior((2, 3), torch.Generator(device).manual_seed(seed))
    _require_shape(sim, "sample_prior((2, 3))", draw, (2, 3, D))
    _require(bool(torch.isfinite(draw).all()) and _in_box(draw, sim), sim, "prior draw off box")
    again = sim.sample_prior((2, 3), torch.Generator(device).manual_seed(seed))
    _require(torch.equal(draw, again), sim, "sample_prior differs for the same seed")
    x = sim.simulate(draw, n, torch.Generator(device).manual_seed(seed + 1))
    _require_shape(sim, f"simulate((2, 3, D), n={n})", x, (2, 3, n, X))
    _require(bool(torch.isfinite(x).all()), sim, "simulate returned non-finite observations")
    low, high = sim.observation_support
    _require(bool(((x >= low) & (x <= high)).all()), sim, f"observation off {(low, high)}")
    _require(
        not sim.discrete_observations or torch.equal(x, x.round()),
        sim,
        "discrete_observations but simulate returned non-integers",
    )
    again = sim.simulate(draw, n, torch.Generator(device).manual_seed(seed + 1))
    _require(torch.equal(x, again), sim, "simulate differs for the same seed")
    single = sim.simulate(draw[0, 0], n, torch.Generator(device).manual_seed(seed))
    _require_shape(sim, f"simulate((D,), n={n})", single, (n, X))
    mle = sim.mle(x)
    _require_shape(sim, "mle((2, 3, n, X))", mle, (2, 3, D))
    _require(bool(torch.isfinite(mle).all()) and _in_box(mle, sim), sim, "MLE off the box")
    one = sim.mle(x[1, 2])
    _require_shape(sim, "mle((n, X))", one, (D,))
    _require(torch.allclose(one, mle[1, 2], rtol=1e-5, atol=1e-6), sim, "batched MLE != single")


def _problems(sim: Simulator, random: int, margin: float, seed: int) -> Tensor:
    """Parameters ``(P, D)`` (float64) of the optimality problems.

    ``random`` prior draws, then the box's corners pulled in by ``margin`` of its width (all
    ``2^D`` of them up to ``D = 3``, else 8 drawn at random), where the box binds the MLE often.
    """
    low, high = (np.asarray(b, dtype=np.float64) for b in (sim.prior_low, sim.prior_high))
    inner_low, inner_high = low + margin * (high - low), high - margin * (high - low)
    if sim.theta_dim <= 3:
        signs = np.array(list(itertools.product((0, 1), repeat=sim.theta_dim)))
    else:
        signs = np.random.default_rng(seed).integers(0, 2, (8, sim.theta_dim))
    corners = torch.from_numpy(np.where(signs == 1, inner_high, inner_low))
    draws = sim.sample_prior((random,), torch.Generator().manual_seed(seed)).double()
    return torch.cat((draws, corners), 0)


def _maximise(sim: Simulator, x: Tensor, starts: Tensor) -> tuple[float, np.ndarray]:
    r"""Best :math:`\ell` and argument over bounded L-BFGS-B runs from each row of ``starts``.

    ``x`` ``(n, X)`` and ``starts`` ``(S, D)`` in float64. The gradient is a central difference
    on points clamped to the box, all ``2D + 1`` evaluations in one batched call. A non-finite
    :math:`\ell` (data off the support) becomes a large flat penalty: the line search backs away
    from it, and a start inside it stays put and is ignored (its :math:`\ell` is ``-inf``).
    """
    low, high = np.asarray(sim.prior_low, float), np.asarray(sim.prior_high, float)
    step = 1e-6 * (high - low)
    batch = x.unsqueeze(0).expand(2 * sim.theta_dim + 1, *x.shape)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        shifts = np.concatenate((np.zeros((1, theta.size)), np.diag(step), -np.diag(step)))
        points = np.clip(theta + shifts, low, high)
        ll = sim.log_likelihood(torch.from_numpy(points).to(x), batch).double().cpu().numpy()
        nll = np.where(np.isfinite(ll), -ll, 1e12)
        d = theta.size
        width = points[1 : d + 1].diagonal() - points[d + 1 :].diagonal()
        return float(nll[0]), (nll[1 : d + 1] - nll[d + 1 :]) / np.where(width > 0, width, 1.0)

    best, argument = -np.inf, starts[0].cpu().numpy()
    bounds = list(zip(low, high, strict=True))
    options = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500}
    for start in starts.cpu().numpy():
        result = optimize.minimize(objective, start, jac=True, bounds=bounds, options=options)
        theta = torch.from_numpy(np.clip(result.x, low, high)).to(x)
        value = float(sim.log_likelihood(theta, x))
        if value > best:
            best, argument = value, theta.cpu().numpy()
    return best, argument


def check_simulator(
    sim: Simulator,
    *,
    seed: int = 0,
    device: str = "cpu",
    sizes: tuple[int, ...] = (5, 30),
    random_problems: int = 4,
    random_starts: int = 2,
    edge_margin: float = 0.01,
    atol: float = 1e-6,
    rtol: float = 1e-9,
    compare_arguments: bool | None = None,
    argument_tol: float = 1e-3,
) -> CheckReport:
    """Check ``sim`` against the simulator contract (module docstring); raise on failure.

    Args:
        sim: the simulator instance.
        seed: seeds every draw, so a failure reproduces.
        device: where draws, simulation and the MLE run; the optimiser runs on the host.
        sizes: sample sizes ``n`` of the optimality problems.
        random_problems: parameters drawn from the prior (near-corner ones are added); each
            is simulated at every size, and the MLE runs on float64 observations.
        random_starts: optimiser starts drawn from the prior, besides the MLE and the centre.
        edge_margin: corners are pulled into the box by this fraction of its width.
        atol, rtol: allowed shortfall of the MLE's log-likelihood, ``atol + rtol * |l|``.
        compare_arguments: also require equal arguments; default: when ``sim.derived`` is empty.
        argument_tol: allowed argument difference, as a fraction of the box width.

    Returns:
        A :class:`CheckReport` of the checks passed and those skipped, with reasons.
    """
    name = sim.name or type(sim).__name__
    _check_shapes(sim, seed, max(sizes), device)
    passed = [
        "shapes",
        "prior box",
        "finite",
        "observation support",
        "same seed same draws",
        "MLE in box",
    ]
    theta = _problems(sim, random_problems, edge_margin, seed)
    try:
        sim.log_likelihood(theta[:1], sim.simulate(theta[:1].float(), 2, torch.Generator()))
    except NotImplementedError:
        return CheckReport(name, tuple(passed), {"MLE optimality": "no log_likelihood"})
    if compare_arguments is None:
        compare_arguments = not sim.derived(theta)
    skipped = {} if compare_arguments else {"MLE arguments": "compared by log-likelihood only"}
    low, high = np.asarray(sim.prior_low, float), np.asarray(sim.prior_high, float)
    width = high - low
    gap, binding = -np.inf, 0
    for n in sizes:
        x = sim.simulate(theta.to(device).float(), n, torch.Generator(device).manual_seed(seed + n))
        x = x.double()
        mle = sim.mle(x).double()
        starts_rng = torch.Generator(device).manual_seed(seed + 2 * n)
        starts = sim.sample_prior((len(theta), random_starts), starts_rng).double()
        centre = sim.prior_moments(device)[0].double().expand(len(theta), 1, -1)
        starts = torch.cat((mle.unsqueeze(1), centre, starts), 1)
        for k in range(len(theta)):
            value = float(sim.log_likelihood(mle[k], x[k]))
            best, argument = _maximise(sim, x[k], starts[k])
            where = f"n={n}, theta*={theta[k].tolist()}, MLE={mle[k].tolist()}"
            _require(
                value >= best - atol - rtol * abs(best),
                sim,
                f"MLE log-likelihood {value} < {best} at {argument.tolist()} found by L-BFGS-B"
                f" ({where})",
            )
            gap = max(gap, best - value)
            estimate = mle[k].cpu().numpy()
            binding += bool(np.any(np.minimum(estimate - low, high - estimate) <= 1e-6 * width))
            error = np.abs(estimate - argument) / width
            _require(
                not compare_arguments or bool(np.all(error <= argument_tol)),
                sim,
                f"MLE argument differs from the optimiser's {argument.tolist()} ({where})",
            )
    passed += ["MLE optimality"] + (["MLE arguments"] if compare_arguments else [])
    return CheckReport(name, tuple(passed), skipped, float(gap), len(sizes) * len(theta), binding)
