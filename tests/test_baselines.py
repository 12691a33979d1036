"""The methods beside ALFI: mixture draws, the prior, the exact posterior as a method, the
regressor, sbi's NPE, the truth quantiles they report, the comparison table and the check for a
missing optional package.

Statistical tolerances are 4 standard errors at fixed seeds: the binomial sd of a coverage,
sqrt(a (1 - a) / n), and the Monte-Carlo sd of a mean.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from alfi.baselines import missing_requirements
from alfi.columns import ESTIMATE_COLUMNS
from alfi.comparison import calibration_table, comparison_table, entry_label
from alfi.config import load_config
from alfi.data import make_dataset
from alfi.evaluate import run_mle, run_prior, truth_quantiles
from alfi.evaluate_alfi import mixture_draws
from alfi.reference import run_reference
from alfi.regressor import fit_regressor, run_regressor
from alfi.simulators import get_simulator
from alfi.stages import stage_settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "model": {"encoding": 16, "hidden": 32, "recurrent": 16, "x_hidden": [32]},
    "train": {"meta_batch": 16},
    "baselines": {
        "regressor": {"epochs": 15, "lr": 3e-3},
        "npe": {
            "density": "maf",
            "batch": 32,
            "lr": 1e-3,
            "max_epochs": 40,
            "stop_after_epochs": 5,
            "squash": "asinh",
        },
    },
}


def _rmse(trajectory, data) -> float:
    return float(((trajectory.estimate[-1] - data.theta) ** 2).mean(-1).sqrt().mean())


def _coverage(quantiles: np.ndarray, level: float = 0.9) -> float:
    return float((np.abs(quantiles - 0.5) <= level / 2).mean())


def test_mixture_draws_match_the_mixture_moments(generator) -> None:
    mean = torch.tensor([[[0.0], [2.0]]])  # N = 1, K = 2, D = 1
    scale = torch.tensor([[[1.0], [0.5]]])
    draws = mixture_draws(mean, scale, 40_000, generator(1))
    # mixture mean 1, variance (1 + 0.25) / 2 + 1 = 1.625; sd of the mean sqrt(1.625 / 40000)
    assert draws.shape == (1, 40_000, 1)
    assert abs(draws.mean().item() - 1.0) < 4 * math.sqrt(1.625 / 40_000)
    assert abs(draws.var().item() - 1.625) < 0.05  # sd of the variance ~ 0.012


def test_truth_quantiles_of_the_prior_and_posterior_are_calibrated(generator) -> None:
    """Truths drawn from the prior are in the prior's and in the exact posterior's central 90 %
    intervals 90 % of the time (binomial sd 0.015 at n = 400)."""
    sim = get_simulator("poisson")
    data = make_dataset(sim, 400, 20, seed=3)
    prior = run_prior(sim, data, generator(4), draws=500)
    mean, std = sim.prior_moments()
    assert torch.allclose(prior.estimate[0], mean.expand(400, -1))
    assert torch.allclose(prior.sigma[0], std.expand(400, -1))
    exact = run_reference(sim, data, generator(5), draws=500)
    for trajectory in (prior, exact):
        quantiles = truth_quantiles(sim, trajectory.draws, data.theta.double())
        assert quantiles.shape == (400, 1)
        assert abs(_coverage(quantiles) - 0.9) < 4 * math.sqrt(0.09 / 400)
    # the posterior mean is as accurate as the MLE (here within 10 %), the prior far worse
    mle = _rmse(run_mle(sim, data, generator(6)), data)
    assert _rmse(exact, data) < 1.1 * mle < _rmse(prior, data) / 3


def test_truth_quantiles_of_derived_quantities() -> None:
    sim = get_simulator("weinberg")
    true = sim.sample_prior((3,), torch.Generator().manual_seed(0)).double()
    draws = true.unsqueeze(1).expand(-1, 10, -1) + 1e-9  # every draw just above the truth
    quantiles = truth_quantiles(sim, draws, true)
    assert quantiles.shape == (3, 3)  # two parameters and the asymmetry
    assert (quantiles[:, :2] == 0).all()
    without = truth_quantiles(sim, None, true)
    assert without.shape == (3, 3) and np.isnan(without).all()


def test_regressor_learns_and_is_reproducible(generator) -> None:
    sim = get_simulator("poisson")
    train = make_dataset(sim, 256, 50, seed=1)
    test = make_dataset(sim, 64, 50, seed=2)
    runs = []
    for _ in range(2):
        model, cost = fit_regressor(sim, train, SETTINGS, seed=0, device=torch.device("cpu"))
        runs.append(run_regressor(model, sim, test, generator(7)))
    assert torch.equal(runs[0].estimate, runs[1].estimate)
    assert cost["train_simulations"] == 256 * 50 and cost["train_seconds"] > 0
    prior = _rmse(run_prior(sim, test, generator(8)), test)
    assert _rmse(runs[0], test) < prior / 3, (_rmse(runs[0], test), prior)


@pytest.mark.baselines
@pytest.mark.parametrize(  # mdn: config.yaml's; mean-max: ALFI's set encoder as the embedding
    ("density", "pooling"), [("maf", "mean"), ("mdn", "mean"), ("mdn", "mean-max")]
)
def test_npe_learns_and_is_reproducible(generator, require_sbi, density, pooling) -> None:
    from alfi.npe import fit_npe, run_npe

    sim = get_simulator("poisson")
    train = make_dataset(sim, 256, 50, seed=1)
    test = make_dataset(sim, 64, 50, seed=2)
    npe_settings = SETTINGS["baselines"]["npe"] | {"density": density, "pooling": pooling}
    settings = SETTINGS | {"baselines": {"npe": npe_settings}}
    runs = []
    for _ in range(2):
        npe, cost = fit_npe(sim, train, settings, seed=0, device=torch.device("cpu"))
        runs.append(run_npe(npe, sim, test, generator(9), seed=0, draws=200))
    assert torch.equal(runs[0].estimate, runs[1].estimate)
    assert runs[0].draws.shape == (64, 200, 1)
    low, high = sim.bounds()
    assert ((runs[0].draws >= low) & (runs[0].draws <= high)).all()  # rejected outside the box
    prior = _rmse(run_prior(sim, test, generator(8)), test)
    assert _rmse(runs[0], test) < prior / 3, (_rmse(runs[0], test), prior)


@pytest.mark.baselines
@pytest.mark.parametrize(("components", "expected"), [(3, 3), (None, 10)])
def test_npe_mixture_has_the_configured_components(require_sbi, components, expected) -> None:
    """``baselines.npe.components`` sets the mixture density network's Gaussians (the mixture
    weights' logits layer has one output per component); absent, sbi's default 10."""
    from alfi.npe import fit_npe

    sim = get_simulator("poisson")
    npe_settings = SETTINGS["baselines"]["npe"] | {"density": "mdn", "max_epochs": 1}
    if components is not None:
        npe_settings["components"] = components
    settings = SETTINGS | {"baselines": {"npe": npe_settings}}
    npe, _ = fit_npe(
        sim, make_dataset(sim, 32, 10, seed=1), settings, seed=0, device=torch.device("cpu")
    )
    shapes = dict(npe.posterior.posterior_estimator.named_parameters())
    assert shapes["net._logits_layer.weight"].shape[0] == expected


@pytest.mark.baselines
def test_npe_anneal_goes_on_at_the_lower_rate_until_its_patience(require_sbi, monkeypatch) -> None:
    """``baselines.npe.anneal``: after sbi's early stopping, training resumes on the same split
    at ``factor`` times the rate and stops after exactly ``stop_after_epochs`` epochs without a
    better validation loss (sbi then keeps the best weights of both phases)."""
    from alfi import npe as npe_module

    sim = get_simulator("poisson")
    anneal = {"factor": 0.1, "stop_after_epochs": 3}
    cfg = SETTINGS["baselines"]["npe"] | {"density": "mdn", "max_epochs": 400, "anneal": anneal}
    seen = {}

    def record(inference, cfg):
        seen["before"] = list(inference.summary["validation_loss"])
        seen["split"] = inference.val_indices.clone()
        real_anneal(inference, cfg)
        seen["after"] = list(inference.summary["validation_loss"])
        seen["lr"] = [group["lr"] for group in inference.optimizer.param_groups]
        seen["same split"] = torch.equal(inference.val_indices, seen["split"])

    real_anneal = npe_module._anneal
    monkeypatch.setattr(npe_module, "_anneal", record)
    settings = SETTINGS | {"baselines": {"npe": cfg}}
    npe_module.fit_npe(
        sim, make_dataset(sim, 128, 20, seed=1), settings, seed=0, device=torch.device("cpu")
    )
    before, after = seen["before"], seen["after"]
    second = after[len(before) :]
    assert second and seen["same split"], "the second phase ran on the same split"
    assert seen["lr"] == [cfg["lr"] * anneal["factor"]] * len(seen["lr"])
    best = min(range(len(after)), key=after.__getitem__)
    fruitless = len(after) - 1 - best if best >= len(before) else len(second)
    assert fruitless == anneal["stop_after_epochs"], after


@pytest.mark.baselines
@pytest.mark.parametrize(
    ("first", "second", "max_epochs", "epochs"),
    [
        ([10, 9, 8, 7, 6, 5, 6, 6, 6, 6, 6], [7] * 20, 100, 4),  # no better loss: 4 epochs
        ([10, 9, 8, 7, 6, 5, 6, 6, 6, 6, 6], [7, 7, 7, 4] + [7] * 20, 100, 4 + 4),  # better at 4
        ([10, 9, 8, 7], [7] * 20, 3, 4),  # the first phase ended at max_epochs, not patience
    ],
)
def test_npe_anneal_counts_its_patience_from_the_second_phase(
    require_sbi, first, second, max_epochs, epochs
) -> None:
    """The second phase's patience (4 epochs here) counts from its start or its last better
    validation loss, whichever way the first phase ended (sbi's validation losses stubbed)."""
    from sbi.inference import NPE
    from sbi.utils import BoxUniform

    from alfi.npe import _anneal

    torch.manual_seed(0)
    prior = BoxUniform(torch.zeros(1), torch.ones(1))
    inference = NPE(prior=prior, density_estimator="mdn", show_progress_bars=False)
    theta = prior.sample((40,))
    inference.append_simulations(theta, theta + 0.1 * torch.randn_like(theta))
    losses = iter(first)
    inference._train_epoch = lambda *args, **kwargs: 0.0
    inference._validate_epoch = lambda *args, **kwargs: float(next(losses))
    inference.train(training_batch_size=8, max_num_epochs=max_epochs, stop_after_epochs=3)
    start = inference.epoch
    losses = iter(second)
    cfg = {
        "lr": 1e-3,
        "batch": 8,
        "max_epochs": 100,
        "anneal": {"factor": 0.1, "stop_after_epochs": 4},
    }
    _anneal(inference, cfg)
    assert inference.epoch - start == epochs
    assert inference._best_val_loss == min(first[:start] + second[:epochs])


@pytest.mark.baselines
@pytest.mark.parametrize("pooling", ["mean", "mean-max", "mean-max-std"])
def test_npe_embedding_is_permutation_invariant(require_sbi, pooling: str) -> None:
    from alfi.npe import _embedding, _sbi

    sbi = _sbi()
    sim = get_simulator("multivariate")
    torch.manual_seed(0)
    net = _embedding(sbi, sim, SETTINGS["model"], pooling)
    x = torch.randn(5, 40, sim.observation_dim)
    shuffled = x[:, torch.randperm(40)]
    out = net(x)
    assert out.shape == (5, SETTINGS["model"]["encoding"])
    torch.testing.assert_close(net(shuffled), out)
    with pytest.raises(ValueError, match="'max'.*expected 'mean', 'mean-max' or 'mean-max-std'"):
        _embedding(sbi, sim, SETTINGS["model"], "max")


class _GaussianPosterior:
    """sbi's ``sample_batched`` for q(theta | x) = N(x[:, 0, 0], 0.01^2) per problem. Its
    rejection mode refuses a batch holding a problem with under 1e-3 of its mass in the box,
    where sbi's own sampler would not finish."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def sample_batched(self, shape, x, reject_outside_prior=True, show_progress_bars=False):
        mean = x[:, 0, :1]  # (N, 1)
        if not reject_outside_prior:
            return mean + 0.01 * torch.randn(*shape, *mean.shape)
        assert ((mean > self.low - 0.03) & (mean < self.high + 0.03)).all(), "would not finish"
        draws = mean + 0.01 * torch.randn(20 * shape[0], *mean.shape)
        inside = (draws >= self.low) & (draws <= self.high)
        order = torch.sort(inside.int(), dim=0, descending=True, stable=True).indices
        return torch.gather(draws, 0, order)[: shape[0]]


def test_npe_draws_survive_a_density_outside_the_box(caplog) -> None:
    from alfi.npe import sample_truncated
    from alfi.seeds import derive_seed

    sim = get_simulator("poisson")  # prior box [0.2, 7]
    posterior = _GaussianPosterior(0.2, 7.0)
    inside = torch.tensor([1.0, 3.0, 6.0]).reshape(3, 1, 1)
    draws = sample_truncated(posterior, sim, inside, 50, seed=4)
    torch.manual_seed(derive_seed(4, "npe-draws", "poisson"))
    direct = posterior.sample_batched((50,), x=inside).transpose(0, 1)
    assert torch.equal(draws, direct)  # the usual path: sbi's rejection, the same draws

    leaky = torch.tensor([1.0, -5.0, 3.0, 12.0]).reshape(4, 1, 1)
    with caplog.at_level("WARNING", logger="alfi.npe"):
        draws = sample_truncated(posterior, sim, leaky, 50, seed=4)
    assert draws.shape == (4, 50, 1)
    assert torch.equal(draws[1], torch.full((50, 1), 0.2))  # projected onto the box
    assert torch.equal(draws[3], torch.full((50, 1), 7.0))
    assert ((draws[[0, 2]] - leaky[[0, 2]]).abs() < 0.06).all()  # 6 sds
    assert "2 of 4 problems" in caplog.text and "[1, 3]" in caplog.text


def test_missing_package_names_it_and_the_install_command(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sbi" else real(name, *a)
    )
    assert missing_requirements(["alfi", "mle", "posterior", "regressor"]) == []
    (message,) = missing_requirements(["npe"])
    assert "'npe'" in message and "sbi" in message and "pip install -e '.[baselines]'" in message


def _rows(method, seed, errors, quantiles, t_test=0, variant=None):
    variant = variant or ("nll-exp" if method == "alfi" else method)
    return [
        {
            "simulator": "toy",
            "method": method,
            "variant": variant,
            "seed": seed,
            "problem": p,
            "t_test": t_test,
            "t": t_test,
            "parameter": "a",
            "derived": False,
            "true": 0.0,
            "estimate": e,
            "sigma": 1.0,
            "truth_quantile": q,
            "fingerprint": "f",
        }
        for p, (e, q) in enumerate(zip(errors, quantiles, strict=True))
    ]


def test_comparison_table_by_hand() -> None:
    estimates = pd.DataFrame(
        _rows("mle", 0, [1.0, -1.0], [np.nan, np.nan])
        + _rows("npe", 0, [2.0, 2.0], [0.5, 0.99])
        + _rows("npe", 1, [4.0, 4.0], [0.5, 0.5])
        + _rows("alfi", 0, [3.0, 1.0], [0.01, 0.5], t_test=5)
        + _rows("abc_smc", 0, [-2.0], [0.5], variant="budget1000")  # on the first problem only
    )[ESTIMATE_COLUMNS]
    metrics = pd.DataFrame(
        [
            {
                **{
                    k: r[k] for k in ("simulator", "method", "variant", "seed", "problem", "t_test")
                },
                "metric": m,
                "value": v,
                "fingerprint": "f",
            }
            for r in estimates.to_dict("records")
            for m, v in (
                ("simulations", {"alfi": 10.0, "abc_smc": 7.0}.get(r["method"], 0.0)),
                ("train_simulations", 100.0 * (r["seed"] + 1)),
            )
        ]
    )
    table = comparison_table(estimates, metrics).set_index("method")
    assert list(table.index) == ["mle", "alfi (T=5)", "npe", "abc_smc (1e+03)"]
    assert table.loc["npe", "rmse"] == 3.0 and table.loc["npe", "rmse_sd"] == pytest.approx(
        math.sqrt(2)
    )
    assert table.loc["npe", "ratio"] == 3.0 and table.loc["alfi (T=5)", "ratio"] == 2.0
    assert table.loc["npe", "coverage90"] == 0.75  # 0.99 is outside the central 90 %
    # per seed 0.5 and 1.0: their sd over seeds
    assert table.loc["npe", "coverage90_sd"] == pytest.approx(math.sqrt(0.125))
    assert table.loc["alfi (T=5)", "coverage90"] == 0.5
    assert np.isnan(table.loc["alfi (T=5)", "coverage90_sd"])  # one seed
    assert np.isnan(table.loc["mle", "coverage90"])
    assert table.loc["npe", "train_simulations"] == 150.0  # mean over seeds
    assert table.loc["alfi (T=5)", "total_simulations"] == 100.0 + 10.0 * 2
    # SMC-ABC's spend on the whole test set (2 problems) at its rate on the one it ran on
    assert table.loc["abc_smc (1e+03)", "total_simulations"] == 100.0 + 7.0 * 2
    # SMC-ABC ran on problem 0 alone: its ratio is to the MLE's error there (1)
    assert table.loc["abc_smc (1e+03)", "problems"] == 1
    assert table.loc["abc_smc (1e+03)", "ratio"] == 2.0


ABC = {
    "baselines": {
        "abc_smc": {"particles": 50, "epsilon_decay": 0.5, "pilot_fraction": 0.1, "squash": "asinh"}
    }
}


@pytest.mark.baselines
def test_abc_smc_spends_its_budget_and_learns(generator, require_sbi) -> None:
    from alfi.abc import run_abc

    sim = get_simulator("poisson")
    test = make_dataset(sim, 4, 50, seed=2)
    drawn = []
    counting = copy.copy(sim)  # every observation simulated, as the simulator sees it
    counting.simulate = lambda theta, n, g: (
        drawn.append(theta.shape[:-1].numel() * n) or (sim.simulate(theta, n, g))
    )
    run = run_abc(
        counting, test, generator(3), settings=ABC, budget=20_000, problems=3, seed=0, draws=100
    )
    assert run.estimate.shape == (1, 3, 1) and run.draws.shape == (3, 100, 1)
    # Each problem spends its 400 datasets of 50 observations (the shared pilot's 40 charged a
    # third each: 386 + 13.3), and what is reported is what was simulated; one more dataset per
    # problem is simulated at the estimate, for the KS distance, not by the method.
    spent = (sum(drawn) - 3 * 50) / 3
    assert 0.99 * 20_000 <= spent <= 20_000
    assert run.simulations_per_problem == pytest.approx(spent, abs=1)
    prior = _rmse(run_prior(sim, test.head(3), generator(8)), test.head(3))
    assert _rmse(run, test.head(3)) < prior / 3
    with pytest.raises(ValueError, match="abc_smc budget 1000 is 20 datasets of 50"):
        run_abc(sim, test, generator(3), settings=ABC, budget=1000, problems=1, seed=0)


def test_calibration_table_from_draws_or_sigma() -> None:
    """From the truth quantiles where a method has draws, else from its Gaussian sigma; point
    estimates are left out."""
    estimates = pd.DataFrame(
        _rows("npe", 0, [0.0] * 4, [0.5, 0.7, 0.9, 0.99])  # |u - 1/2| = 0, .2, .4, .49
        + _rows("alfi", 0, [0.5, 1.5, 2.5, 0.1], [np.nan] * 4, t_test=5)  # sigma 1: z = |error|
        + _rows("regressor", 0, [0.0] * 4, [np.nan] * 4)
    )[ESTIMATE_COLUMNS]
    estimates.loc[estimates.method == "regressor", "sigma"] = np.nan
    table = calibration_table(estimates, levels=(0.5, 0.9)).set_index(["method", "level"])
    assert set(table.index.get_level_values(0)) == {"npe", "alfi (T=5)"}
    assert table.loc[("npe", 0.5), "coverage"] == 0.5  # 0 and 0.2 <= 0.25
    assert table.loc[("npe", 0.9), "coverage"] == 0.75  # all but 0.49 <= 0.45
    # Gaussian: z_0.5 = 0.674, z_0.9 = 1.645
    assert table.loc[("alfi (T=5)", 0.5), "coverage"] == 0.5
    assert table.loc[("alfi (T=5)", 0.9), "coverage"] == 0.75


def test_calibration_table_per_seed() -> None:
    """Each seed's run is counted on its own, so the figure can draw the spread over seeds."""
    estimates = pd.DataFrame(
        _rows("npe", 0, [0.0] * 4, [0.5, 0.7, 0.9, 0.99])  # |u - 1/2| = 0, .2, .4, .49
        + _rows("npe", 1, [0.0] * 2, [0.5, 0.99])
    )[ESTIMATE_COLUMNS]
    table = calibration_table(estimates, levels=(0.9,)).set_index("seed")
    assert table["coverage"].to_dict() == {0: 0.75, 1: 0.5}
    assert table["n"].to_dict() == {0: 4, 1: 2}


@pytest.mark.baselines
def test_reference_c2st_reads_the_exact_draws(generator, tmp_path, require_sbi) -> None:
    """The C2ST the workflow computes: a method's draws against the posterior rule's draws.npz,
    on the first problems; chance level for the same posterior, near 1 for a shifted one."""
    from alfi.baselines import reference_c2st, save_draws

    sim = get_simulator("poisson")
    data = make_dataset(sim, 3, 100, seed=4)
    exact = run_reference(sim, data, generator(5), draws=400)
    save_draws(tmp_path / "draws.npz", exact.draws)
    same = run_reference(sim, data, generator(6), draws=400).draws
    evaluate = {"c2st_problems": 2, "c2st_trees": 25}
    assert (reference_c2st(same, tmp_path / "draws.npz", evaluate, seed=0) < 0.6).all()
    # 4 posterior sds apart: Bayes accuracy Phi(2) = 0.977 for Gaussians
    shifted = same + 4 * exact.sigma[0].unsqueeze(1)
    scores = reference_c2st(shifted, tmp_path / "draws.npz", evaluate, seed=0)
    assert scores.shape == (2,) and (scores > 0.9).all()


def test_entry_labels_name_the_budget() -> None:
    assert entry_label("alfi", "nll-exp", 15) == "alfi (T=15)"
    assert entry_label("abc_smc", "budget120000", 0) == "abc_smc (1.2e+05)"
    assert entry_label("npe", "n250", 0) == "npe (n=250)"
    assert entry_label("posterior", "exact", 0) == "posterior"


BASELINE_STAGES = ("regressor", "npe", "abc_smc")


def _baseline_stamps(config: dict) -> dict[str, dict]:
    return {stage: stage_settings(config, "poisson", stage) for stage in BASELINE_STAGES}


def test_a_new_budget_or_training_share_changes_no_other_run() -> None:
    """The baselines' settings stamps leave out what names a run's outputs (ABC budgets,
    training shares), so adding one reruns no other run; any other setting of a method is in
    its stamp and in no other baseline's."""
    config = load_config(ROOT / "configs" / "tiny.yaml")
    before = _baseline_stamps(config)
    baselines = config["defaults"]["baselines"]
    baselines["abc_smc"]["budgets"] = [1000, 5000]
    baselines["train_fractions"] = [0.5, 1.0]
    assert _baseline_stamps(config) == before
    for method, setting in (("npe", "lr"), ("regressor", "lr"), ("abc_smc", "epsilon_decay")):
        baselines[method][setting] /= 2
        after = _baseline_stamps(config)
        assert [s for s in BASELINE_STAGES if after[s] != before[s]] == [method]
        before = after


@pytest.mark.parametrize(
    ("setting", "value", "reruns"),
    [
        ("hidden", 7, ["regressor", "npe"]),
        ("x_hidden", [7, 7], ["regressor", "npe"]),
        ("encoding", 7, ["regressor", "npe"]),
        ("pooling", "mean-max", ["regressor"]),
        ("recurrent", 7, []),
    ],
)
def test_alfi_only_model_settings_rerun_no_baseline(
    setting: str, value: object, reruns: list[str]
) -> None:
    """The regressor takes ALFI's encoder (sizes, pooling, squash) and head size, NPE's
    embedding the sizes only (their stamps hold what each reads); ALFI's recurrent update is its
    own, and SMC-ABC reads no model setting."""
    config = load_config(ROOT / "configs" / "tiny.yaml")
    before = _baseline_stamps(config)
    config["defaults"]["model"][setting] = value
    after = _baseline_stamps(config)
    assert [s for s in BASELINE_STAGES if after[s] != before[s]] == reruns


def test_the_model_squash_reruns_the_regressor_not_npe() -> None:
    """NPE reads its own squash (baselines.npe.squash); the regressor ALFI's (model.squash)."""
    config = load_config(ROOT / "configs" / "tiny.yaml")
    before = _baseline_stamps(config)
    model = config["defaults"]["model"]
    model["squash"] = "none" if model["squash"] == "asinh" else "asinh"
    after = _baseline_stamps(config)
    assert [s for s in BASELINE_STAGES if after[s] != before[s]] == ["regressor"]
    npe = config["defaults"]["baselines"]["npe"]
    npe["squash"] = "none" if npe["squash"] == "asinh" else "asinh"
    assert [s for s in BASELINE_STAGES if _baseline_stamps(config)[s] != after[s]] == ["npe"]


@pytest.mark.parametrize("stage", ["evaluate", "regressor", "npe", "abc_smc", "reference"])
def test_the_c2st_forest_is_in_the_stamps_of_the_runs_it_scores(stage: str) -> None:
    """Every run that reports a C2ST reruns when its forest changes."""
    config = load_config(ROOT / "configs" / "tiny.yaml")
    before = stage_settings(config, "poisson", stage)
    config["defaults"]["evaluate"]["c2st_trees"] = 7
    assert stage_settings(config, "poisson", stage) != before


def test_the_exact_posterior_reruns_on_its_draws_not_on_the_c2st() -> None:
    """No C2ST scores the exact posterior: its forest and problems leave its stamp alone."""
    config = load_config(ROOT / "configs" / "tiny.yaml")
    before = stage_settings(config, "poisson", "posterior")
    config["defaults"]["evaluate"] |= {"c2st_trees": 7, "c2st_problems": 3}
    assert stage_settings(config, "poisson", "posterior") == before
    assert stage_settings(config, "poisson", "reference") != stage_settings(
        load_config(ROOT / "configs" / "tiny.yaml"), "poisson", "reference"
    )
    config["defaults"]["evaluate"]["draws"] += 1
    assert stage_settings(config, "poisson", "posterior") != before
