"""The training options of the accuracy study (issue 9): each is off by default (today's
behaviour and fingerprint), and each does what it says when on."""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings

import pytest
import torch
from test_train import SETTINGS

from alfi import proposal
from alfi.config import load_config, settings_for
from alfi.data import make_dataset
from alfi.io import InputError, load_torch
from alfi.losses import meta_loss
from alfi.model import ALFI, SCORE_FLOOR, ModelConfig
from alfi.nn import STD_EPS, SetEncoder, mean_max_pool, mean_max_std_pool
from alfi.schedule import (
    phase_steppers,
    restarts_optimiser,
    step_settings,
    tail_length,
    tail_start,
    unrolled_updates,
)
from alfi.simulators import get_simulator
from alfi.train import (
    fresh_observations,
    fresh_problems,
    learning_rate,
    train,
    training_record,
)

CPU = torch.device("cpu")


def _settings(model=None, **train_options):
    settings = copy.deepcopy(SETTINGS)
    settings["train"].update(train_options)
    settings["model"].update(model or {})
    return settings


def test_schema_defaults_reproduce_the_record_from_before_the_options(tmp_path):
    """configs/paper.yaml leaves the options at their schema defaults (config.yaml sets them)."""
    config = load_config("configs/paper.yaml")
    settings = settings_for(config, "poisson")
    assert settings["train"]["fresh_real"] is False and settings["model"]["pooling"] == "mean"
    sim = get_simulator("poisson")
    data = make_dataset(sim, 8, 5, seed=1)
    record = training_record(sim, data, settings, "nll-exp", 0, "cpu")
    for key in ("fresh_real", "lr_schedule", "warmup", "tail_steps", "tail_clip_scale"):
        assert key not in record["settings"]["train"]
    assert "pooling" not in record["settings"]["model"]
    on = copy.deepcopy(settings)
    on["train"]["fresh_real"] = True
    assert training_record(sim, data, on, "nll-exp", 0, "cpu")["settings"]["train"]["fresh_real"]


def test_overrides_do_not_reset_an_option_set_in_defaults(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "defaults:\n  model: {encoding: 8, hidden: 8, recurrent: 8, x_hidden: [8], "
        "pooling: mean-max}\n  dataset: {n_train: 4, n_test: 4, n_real: 4}\n"
        "  train: {epochs: 1, steps: 2, meta_batch: 2, n_theta: 2, n_sim: 2, lr: 1.0e-3, "
        "clip: 0.5, beta: 5.0, grad_clip: 1.0, initial_log_scale: 0.5, checkpoint_every: 5}\n"
        "  evaluate: {inits: 2, histograms: 0, chunk: 16}\n"
        "overrides:\n  poisson:\n    model: {hidden: 16}\n"
    )
    settings = settings_for(load_config(path), "poisson")
    assert settings["model"]["pooling"] == "mean-max" and settings["model"]["hidden"] == 16


def test_constant_rate_by_default_and_warmup_then_cosine():
    assert learning_rate({"lr": 1e-3}, 0, 100) == 1e-3
    cfg = {"lr": 1e-3, "lr_schedule": "cosine", "warmup": 0.1}
    assert learning_rate(cfg, 0, 100) == pytest.approx(1e-4)
    assert learning_rate(cfg, 9, 100) == pytest.approx(1e-3)
    assert learning_rate(cfg, 10, 100) == pytest.approx(1e-3)
    assert learning_rate(cfg, 55, 100) == pytest.approx(0.5e-3)
    assert learning_rate(cfg, 99, 100) == pytest.approx(
        1e-3 * 0.5 * (1 + math.cos(math.pi * 89 / 90))
    )
    assert learning_rate({"lr": 2e-3, "warmup": 0.5}, 80, 100) == 2e-3


def test_fresh_observations_differ_between_visits_and_repeat_from_the_seed():
    sim = get_simulator("linear_regression")
    theta = sim.sample_prior((4,), torch.Generator().manual_seed(0))
    a = fresh_observations(sim, theta, 10, 0, 3, "lr")
    assert torch.equal(a, fresh_observations(sim, theta, 10, 0, 3, "lr"))
    assert not torch.equal(a, fresh_observations(sim, theta, 10, 0, 4, "lr"))
    assert not torch.equal(a, fresh_observations(sim, theta, 10, 1, 3, "lr"))
    assert a.shape == (4, 10, 3)


def test_fresh_observations_change_training():
    sim = get_simulator("poisson")
    data = make_dataset(sim, 32, 20, seed=1)
    plain = train(
        sim, data, _settings(steps=3), variant="nll-exp", seed=0, device=CPU, progress=False
    )
    fresh = train(
        sim,
        data,
        _settings(steps=3, fresh_real=True),
        variant="nll-exp",
        seed=0,
        device=CPU,
        progress=False,
    )
    a, b = plain.model.state_dict(), fresh.model.state_dict()
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_fresh_problems_are_prior_draws_that_differ_between_steps_and_repeat_from_the_seed():
    sim = get_simulator("linear_regression")
    theta, x = fresh_problems(sim, 500, 10, 0, 3, "lr", CPU)
    again, x_again = fresh_problems(sim, 500, 10, 0, 3, "lr", CPU)
    assert torch.equal(theta, again) and torch.equal(x, x_again)
    assert theta.shape == (500, 2) and x.shape == (500, 10, 3)
    assert not torch.equal(theta, fresh_problems(sim, 500, 10, 0, 4, "lr", CPU)[0])
    assert not torch.equal(theta, fresh_problems(sim, 500, 10, 1, 3, "lr", CPU)[0])
    low, high = sim.bounds(CPU)
    assert bool(((theta >= low) & (theta <= high)).all())
    # Uniform on the box: each coordinate's mean within 4 standard errors of the box's centre
    # (sd of a uniform's mean over 500 draws: width / sqrt(12 * 500)).
    se = (high - low) / math.sqrt(12 * 500)
    assert bool(((theta.mean(0) - (low + high) / 2).abs() < 4 * se).all())


def test_fresh_problems_train_on_no_stored_parameter():
    """With fresh problems the stored parameters play no part (the stored observations still set
    the normalisation); without, they do."""
    sim = get_simulator("poisson")
    data = make_dataset(sim, 32, 20, seed=1)
    shuffled = dataclasses.replace(data, theta=data.theta.flip(0))
    run = {"variant": "nll-exp", "seed": 0, "device": CPU, "progress": False}

    def weights(d, **options):
        return train(sim, d, _settings(steps=3, **options), **run).model.state_dict()

    a, b = weights(data, fresh_problems=True), weights(shuffled, fresh_problems=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    a, b = weights(data), weights(shuffled)
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_mean_max_encoder_is_permutation_invariant_and_uses_the_max():
    torch.manual_seed(0)
    encoder = SetEncoder(3, [16], 4, pooling="mean-max")
    x = torch.randn(2, 7, 3)
    permuted = x[:, torch.randperm(7)]
    assert torch.allclose(encoder(x), encoder(permuted), atol=1e-6)
    # Changing one element changes the max-based code even if the mean of the inputs is kept.
    y = x.clone()
    y[:, 0] += 5.0
    y[:, 1] -= 5.0
    assert not torch.allclose(encoder(x), encoder(y))
    with pytest.raises(ValueError, match="unknown pooling"):
        SetEncoder(3, [16], 4, pooling="median")


def _autograd_mean_max(h: torch.Tensor) -> torch.Tensor:
    return torch.cat((h.mean(dim=-2), h.amax(dim=-2)), dim=-1)


def test_std_pooling_reads_the_spread_the_mean_and_max_miss():
    """Two sets with the same mean (1) and max (2), different spreads: ``[0, 1, 1, 2]``
    (population variance 1/2) and ``[0.5, 0.5, 1, 2]`` (3/8), through one ReLU unit that passes
    them unchanged. Only ``mean-max-std`` tells them apart; a feature constant over the set (a
    dead unit) keeps a finite gradient."""
    sets = torch.tensor([[0.0, 1.0, 1.0, 2.0], [0.5, 0.5, 1.0, 2.0]]).unsqueeze(-1)
    codes = {}
    for pooling in ("mean-max", "mean-max-std"):
        encoder = SetEncoder(1, [1], 3, pooling=pooling)
        with torch.no_grad():
            encoder.phi[0].weight.fill_(1.0)
            encoder.phi[0].bias.zero_()
        codes[pooling] = encoder(sets)
    assert torch.allclose(codes["mean-max"][0], codes["mean-max"][1], atol=1e-7)
    assert not torch.allclose(codes["mean-max-std"][0], codes["mean-max-std"][1], atol=1e-3)
    spreads = mean_max_std_pool(sets)[:, 2]
    expected = torch.tensor([0.5, 0.375]).add(STD_EPS).sqrt()
    torch.testing.assert_close(spreads, expected)
    dead = torch.zeros(1, 5, 3, requires_grad=True)
    mean_max_std_pool(dead).sum().backward()
    assert torch.isfinite(dead.grad).all()
    x = torch.randn(2, 7, 1)
    encoder = SetEncoder(1, [8], 3, pooling="mean-max-std")
    assert torch.allclose(encoder(x), encoder(x[:, torch.randperm(7)]), atol=1e-6)


def _autograd_mean_max_std(h: torch.Tensor) -> torch.Tensor:
    std = h.var(dim=-2, unbiased=False).add(STD_EPS).sqrt()
    return torch.cat((h.mean(dim=-2), h.amax(dim=-2), std), dim=-1)


def _assert_equal(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    "pool, reference, check",
    [
        (mean_max_pool, _autograd_mean_max, _assert_equal),
        (mean_max_std_pool, _autograd_mean_max_std, torch.testing.assert_close),
    ],
    ids=["mean-max", "mean-max-std"],
)
def test_pool_matches_autograd(pool, reference, check):
    """Values and gradients against autograd's for the same expression, alone and under vmap
    (as in an ensemble), with tied maxima (a shared gradient) and zeros as after a ReLU. The
    mean-max pool is autograd's bit for bit; mean-max-std sums the std's terms in another order,
    so it agrees to float32 rounding (a few 1e-7 relative), not bit for bit, where a wrong term
    (the std's 1/M, a missing tie share) would be off by O(1)."""
    generator = torch.Generator().manual_seed(0)
    h = torch.randint(0, 4, (3, 5, 9, 6), generator=generator).float() / 3
    h[0, 0] = 0.0
    grad = torch.randn(3, 5, reference(h).shape[-1], generator=generator)
    for pooling in (pool, torch.func.vmap(pool)):
        ours = h.clone().requires_grad_()
        theirs = h.clone().requires_grad_()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check(pooling(ours), reference(theirs))
            pooling(ours).backward(grad)
        reference(theirs).backward(grad)
        check(ours.grad, theirs.grad)
        # every operation has a batching rule: vmap does not fall back to a loop over members
        assert not [w for w in caught if "batching rule" in str(w.message)]
    # the tie-sharing is exercised: some max is attained twice or more in its set
    assert ((h == h.amax(dim=-2, keepdim=True)).sum(dim=-2) > 1).any()


def test_bounded_means_stay_in_the_prior_box():
    sim = get_simulator("multivariate")
    model = ALFI(ModelConfig(3, 5, 8, 8, 8, (8,), clip=2.0, bound_mean=True))
    with torch.no_grad():
        model.post[-1].bias.fill_(10.0)  # every update pushes the mean up by ~clip
    psi = torch.zeros(4, 6)
    x = sim.simulate(torch.zeros(4, 3), 10, torch.Generator().manual_seed(0))
    trajectory = model.unroll(
        sim, x, psi, steps=5, n_theta=3, n_sim=4, generator=torch.Generator().manual_seed(1)
    )
    mean = model.raw_theta(trajectory[..., :3]).detach()
    assert float(mean.max()) <= 3.0 + 1e-5 and float(mean[-1].min()) == pytest.approx(3.0)


def test_tail_steps_weigh_like_the_last_update():
    theta = torch.zeros(2, 1)
    trajectory = torch.zeros(6, 2, 2)  # T = 3 plus a tail of 2
    trajectory[4:, :, 0] = 1.0  # the tail misses by 1
    base = meta_loss(trajectory[:4], theta, "mse", "exp")
    assert base == 0
    assert meta_loss(trajectory, theta, "mse", "exp", tail=2) == pytest.approx(2.0)
    # spread: the whole tail carries one update's weight
    assert meta_loss(trajectory, theta, "mse", "exp", 5.0, 2, 0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tail_weight must be > 0, got 0"):
        meta_loss(trajectory, theta, "mse", "exp", 5.0, 2, 0.0)


def test_the_tail_joins_the_unroll_at_its_step():
    """``tail_from``: the first ``ceil(tail_from * S)`` of ``S`` steps unroll the horizon alone;
    the settings of every other step are the run's own."""
    cfg = {"steps": 15, "tail_steps": 15, "tail_from": 2 / 3}
    assert tail_start(cfg, 7500) == 5000 and tail_start(cfg, 10) == 7
    assert step_settings(cfg, 4999, 7500) == {**cfg, "tail_steps": 0}
    assert step_settings(cfg, 5000, 7500) is cfg
    assert tail_start({"tail_steps": 15}, 7500) == 0
    assert tail_start({"tail_from": 0.07}, 100) == 7  # 0.07 * 100 is 7.000000000000001


def test_before_its_step_the_tail_trains_nothing():
    """Until ``tail_from`` a run trains exactly as one without a tail (the same draws, rates and
    losses); at the next step the tail's updates enter the loss and the weights part."""
    sim = get_simulator("poisson")
    data = make_dataset(sim, 48, 20, seed=1)
    curriculum = _settings(epochs=4, steps=3, tail_steps=2, tail_from=0.5)  # 12 steps, tail at 6
    horizon = _settings(epochs=4, steps=3)
    run = {"variant": "nll-exp", "seed": 3, "device": CPU, "progress": False}
    for stop, same in ((6, True), (7, False)):
        a = train(sim, data, curriculum, stop_after=stop, **run).model.state_dict()
        b = train(sim, data, horizon, stop_after=stop, **run).model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a) is same, f"after {stop} steps"


def test_each_phase_unrolls_its_own_length(monkeypatch):
    """12 steps at T = 3 with 2 tail updates from half of them: 6 unrolls of 3, then 6 of 5;
    with ``tail_ramp: 0.25`` the tail grows over 3 steps: one unroll of 4 between."""
    lengths = []
    unroll = ALFI.unroll

    def counted(self, *args, steps, **kwargs):
        lengths.append(steps)
        return unroll(self, *args, steps=steps, **kwargs)

    monkeypatch.setattr(ALFI, "unroll", counted)
    sim = get_simulator("poisson")
    data = make_dataset(sim, 48, 20, seed=1)
    settings = _settings(epochs=4, steps=3, tail_steps=2, tail_from=0.5)
    train(sim, data, settings, device=CPU, progress=False)
    assert lengths == [3] * 6 + [5] * 6
    lengths.clear()
    ramped = _settings(epochs=4, steps=3, tail_steps=2, tail_from=0.5, tail_ramp=0.25)
    train(sim, data, ramped, device=CPU, progress=False)
    assert lengths == [3] * 6 + [4] + [5] * 5
    assert sum(lengths) == unrolled_updates(ramped["train"], 12, 12)


def test_a_tail_left_no_step_is_refused():
    """0.95 of 12 steps is 11.4: the tail would start at step 12, after the last."""
    sim = get_simulator("poisson")
    settings = _settings(epochs=4, steps=3, tail_steps=2, tail_from=0.95)
    expected = "train.tail_from 0.95 leaves none of the 12 training steps to the tail; expected "
    with pytest.raises(InputError, match=expected + r"at most 0\.9167 \(or tail_steps: 0\)"):
        train(sim, make_dataset(sim, 48, 20, seed=1), settings, device=CPU, progress=False)


def test_a_ramped_tail_grows_one_update_at_a_time():
    """``tail_ramp: 1`` from the first of 630 steps: each of 15 lengths for 42 steps; from
    ``tail_from: 0.5`` of 12 steps over a quarter (3 steps), 2 updates: 1 at step 6, 2 from 7."""
    cfg = {"steps": 15, "tail_steps": 15, "tail_ramp": 1.0}
    lengths = [tail_length(cfg, s, 630) for s in range(630)]
    assert lengths == [k for k in range(1, 16) for _ in range(42)]
    assert unrolled_updates(cfg, 630, 630) == 630 * 15 + 42 * sum(range(1, 16))
    late = {"steps": 3, "tail_steps": 2, "tail_from": 0.5, "tail_ramp": 0.25}
    assert [tail_length(late, s, 12) for s in range(12)] == [0] * 6 + [1] + [2] * 5
    assert step_settings(late, 6, 12) == {**late, "tail_steps": 1}
    assert step_settings(late, 7, 12) is late


def test_each_unroll_length_is_built_once_and_the_shorter_let_go():
    """Lengths only grow: one step function per length, the previous one dropped (on CUDA its
    graph's memory is released)."""
    made = []
    step_of = phase_steppers(
        lambda c: made.append(c["tail_steps"]) or object(),
        {"steps": 3, "tail_steps": 2, "tail_from": 0.5, "tail_ramp": 0.25},
        12,
    )
    functions = [step_of(s) for s in range(12)]
    assert made == [0, 1, 2]
    assert len({id(f) for f in functions}) == 3 and functions[6] is not functions[5]


def test_a_tail_ramp_past_the_last_step_is_refused():
    """Refused before any work where the last step would unroll less than the whole tail (a
    ramp that runs past the end with the tail already whole is harmless)."""
    sim = get_simulator("poisson")
    settings = _settings(epochs=4, steps=3, tail_steps=15, tail_from=0.5, tail_ramp=0.75)
    expected = r"train.tail_ramp 0.75 from train.tail_from 0.5 ends past the last of the 12"
    with pytest.raises(InputError, match=expected):
        train(sim, make_dataset(sim, 48, 20, seed=1), settings, device=CPU, progress=False)
    # 0.3 + 0.7 is 1 as fractions, but in whole steps the tail starts at 4 and grows over 9
    rounded = _settings(epochs=4, steps=3, tail_steps=15, tail_from=0.3, tail_ramp=0.7)
    with pytest.raises(InputError, match="expected tail_from \\+ tail_ramp <= 1 in whole steps"):
        train(sim, make_dataset(sim, 48, 20, seed=1), rounded, device=CPU, progress=False)


def test_adams_moments_restart_only_where_a_late_tail_joins():
    cfg = {"steps": 15, "tail_steps": 15, "tail_from": 2 / 3, "tail_restart": True}
    assert [s for s in range(7500) if restarts_optimiser(cfg, s, 7500)] == [5000]
    assert not restarts_optimiser({**cfg, "tail_restart": False}, 5000, 7500)
    assert not any(restarts_optimiser({**cfg, "tail_from": 0}, s, 10) for s in range(10))
    assert not restarts_optimiser({**cfg, "tail_steps": 0}, 5000, 7500)


def test_with_tail_restart_adam_counts_its_steps_from_the_tail(tmp_path):
    """12 steps, the tail from step 6: with ``tail_restart`` Adam's state after the run holds
    the 6 steps of the tail alone (its bias correction starts again there), without it all 12;
    the two runs are the same weights until step 6 and part at step 7."""
    sim = get_simulator("poisson")
    data = make_dataset(sim, 48, 20, seed=1)
    run = {"variant": "nll-exp", "seed": 3, "device": CPU, "progress": False}
    counts, weights = {}, {}
    for restart in (True, False):
        settings = _settings(epochs=4, steps=3, tail_steps=2, tail_from=0.5, tail_restart=restart)
        path = tmp_path / f"{restart}.pt"
        train(sim, data, settings, checkpoint=path, **run)
        counts[restart] = {int(v["step"]) for v in load_torch(path)["optimiser"]["state"].values()}
        weights[restart] = [
            train(sim, data, settings, stop_after=stop, **run).model.state_dict() for stop in (6, 7)
        ]
    assert counts == {True: {6}, False: {12}}
    for stop, (a, b) in zip((6, 7), zip(weights[True], weights[False], strict=True), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a) is (stop == 6), f"after {stop} steps"


@pytest.mark.parametrize(
    "options",
    [
        {"fresh_real": True, "lr_schedule": "cosine", "warmup": 0.2, "tail_steps": 2},
        {"fresh_problems": True},
        {"model": {"pooling": "mean-max", "bound_mean": True}},
        {"tail_steps": 2, "tail_from": 0.75},
        {"tail_steps": 2, "tail_from": 0.6666, "tail_restart": True},
        {"tail_steps": 3, "tail_ramp": 1.0},
    ],
    ids=[
        "train-options",
        "fresh-problems",
        "model-options",
        "tail-after-the-resume",
        "adam-restart-at-the-resume",
        "tail-growing-across-the-resume",
    ],
)
def test_resume_is_exact_with_the_options_on(tmp_path, options):
    """12 steps, stopped after 8 (with ``tail_from: 0.75`` the tail joins at step 9, after the
    resumption; at 0.6666 with ``tail_restart`` at step 8, the first after it, where the resumed
    run clears the Adam state it has just loaded)."""
    sim = get_simulator("multivariate")
    data = make_dataset(sim, 48, 20, seed=1)
    settings = _settings(epochs=4, steps=3, **options)
    run = {"variant": "nll-exp", "seed": 7, "device": CPU, "progress": False}
    straight = train(sim, data, settings, checkpoint=tmp_path / "a.pt", **run)
    train(sim, data, settings, checkpoint=tmp_path / "b.pt", stop_after=8, **run)
    resumed = train(sim, data, settings, checkpoint=tmp_path / "b.pt", **run)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_asinh_squash_standardises_the_squashed_observations():
    sim = get_simulator("linear_regression")
    data = make_dataset(sim, 64, 50, seed=1)
    from alfi.train import build_model

    model = build_model(sim, _settings(model={"squash": "asinh"}), data)
    z = (model.features(sim, data.x) - model.x_mean) / model.x_std
    assert torch.allclose(model.features(sim, data.x), torch.asinh(data.x))
    assert z[..., 2].std() == pytest.approx(1.0, abs=1e-3)


def test_an_unknown_squash_is_named():
    with pytest.raises(ValueError, match="unknown squash 'log'"):
        ModelConfig(1, 1, squash="log")


def test_clip_scale_bounds_the_log_scale_update_alone():
    """``train.clip_scale``: the mean's components move by less than ``clip``, the
    log-scale's by less than ``clip_scale``, and both reach their bounds when saturated."""
    from alfi.train import build_model

    sim = get_simulator("linear_regression")
    data = make_dataset(sim, 8, 6, seed=1)
    model = build_model(sim, _settings(clip=0.25, clip_scale=0.5), data)
    assert (model.config.clip, model.config.clip_scale) == (0.25, 0.5)
    with torch.no_grad():
        model.post[-1].bias.fill_(40.0)  # tanh saturates: every step at its bound
    x = data.x[:, :5].unsqueeze(1).expand(-1, 3, -1, -1)
    context = model.real_context(model.encode(sim, data.x))
    psi, state = torch.zeros(8, 4), torch.zeros(8, model.config.recurrent)
    new, _ = model(sim, context, psi, state, torch.randn(8, 3, 2), x)
    assert torch.allclose(new - psi, torch.tensor([0.25, 0.25, 0.5, 0.5]).expand(8, 4))


def test_tail_clip_scale_bounds_the_log_scale_past_the_horizon_alone():
    """``train.tail_clip_scale``: saturated, updates 1..T move log sigma by ``clip_scale`` and
    every update after the T-th by ``tail_clip_scale``, the mean by ``clip`` throughout; unset,
    the model and its recorded configuration are those from before the option."""
    from alfi.train import build_model

    sim = get_simulator("linear_regression")
    data = make_dataset(sim, 8, 6, seed=1)
    steps = _settings()["train"]["steps"]
    model = build_model(sim, _settings(clip=0.25, clip_scale=0.5, tail_clip_scale=0.05), data)
    assert (model.config.tail_clip_scale, model.config.horizon) == (0.05, steps)
    with torch.no_grad():
        model.post[-1].bias.fill_(40.0)
        trajectory = model.unroll(
            sim,
            data.x,
            torch.zeros(8, 4),
            steps=steps + 3,
            n_theta=3,
            n_sim=5,
            generator=torch.Generator().manual_seed(0),
        )
    moves = trajectory.diff(dim=0)  # (T + 3, P, 2D): update t is row t - 1
    inside = torch.tensor([0.25, 0.25, 0.5, 0.5]).expand(steps, 8, 4)
    past = torch.tensor([0.25, 0.25, 0.05, 0.05]).expand(3, 8, 4)
    assert torch.allclose(moves[:steps], inside) and torch.allclose(moves[steps:], past)
    plain = build_model(sim, _settings(clip=0.25, clip_scale=0.5), data).config
    assert (plain.tail_clip_scale, plain.horizon) == (None, None)
    assert not {"tail_clip_scale", "horizon"} & set(plain.to_dict())
    assert ModelConfig(**model.config.to_dict()) == model.config
    with pytest.raises(ValueError, match="needs the training horizon"):
        ModelConfig(1, 1, tail_clip_scale=0.1)


def _mean_sensitivity(score_gradient: str, log_scale: float) -> float:
    """Norm of the gradient of one update's step with respect to the proposal mean, at fixed
    standardised draws eps, on a fixed small Poisson model."""
    sim = get_simulator("poisson")
    torch.manual_seed(0)
    model = ALFI(ModelConfig(1, 1, 8, 16, 16, (16,), score_gradient=score_gradient))
    theta = torch.randn(4, 5, 1)
    x = sim.simulate(torch.full((4, 5), 3.0).unsqueeze(-1), 6, torch.Generator().manual_seed(1))
    context = model.real_context(model.encode(sim, x[:, 0]))
    mean = torch.zeros(4, 1, requires_grad=True)
    psi = torch.cat((mean, torch.full((4, 1), log_scale)), dim=-1)
    draws = theta * math.exp(log_scale)  # the same standardised draws eps at each sigma
    new_psi, _ = model(sim, context, psi, torch.zeros(4, 16), draws, x)
    (gradient,) = torch.autograd.grad((new_psi - psi).sum(), mean)  # the update's
    return float(gradient.norm())


@pytest.mark.parametrize("score_gradient", ["full", "scale", "none"])
def test_the_score_path_of_the_backward_pass_scales_as_one_over_sigma(score_gradient):
    # d eps / d mu = -1 / sigma at fixed draws: with the score's gradient on, the update's
    # sensitivity to the mean grows like 1 / sigma as the proposal contracts; with the mean's
    # path cut ("scale": d eps / d log sigma = -eps stays of order 1; "none") only the direct
    # paths remain ("bounded": the next test).
    # 1 / sigma = e^6 ~ 400; the sigma-free paths change by O(1) factors (sigma and the draws
    # are inputs too), so a tenth of 1 / sigma separates the two cases.
    ratio = _mean_sensitivity(score_gradient, -6.0) / _mean_sensitivity(score_gradient, 0.0)
    assert (ratio > math.exp(6.0) / 10) == (score_gradient == "full"), ratio
    with pytest.raises(ValueError, match="unknown score_gradient 'partial'; expected one of full"):
        ModelConfig(1, 1, score_gradient="partial")


def test_the_bounded_score_path_is_full_above_its_floor_and_capped_below():
    # above the floor (sigma = e^-3 > e^-4) the same gradient as full's, bit for bit; at
    # sigma = e^-6 the mean's path, which dominates there (~400 against O(1)), is e^-2 of full's
    above = _mean_sensitivity("bounded", -3.0)
    assert above == _mean_sensitivity("full", -3.0)
    below = _mean_sensitivity("bounded", -6.0) / _mean_sensitivity("full", -6.0)
    assert math.exp(-2.0) / 2 < below < math.exp(-2.0) * 2, below
    # exactly, at the score itself: its value is full's, bit for bit, and d eps / d mu summed
    # over 3 draws is -3 / max(sigma, floor), below the floor and above it
    bounded = ALFI(ModelConfig(1, 1, score_gradient="bounded"))
    theta = torch.randn(3, 1, generator=torch.Generator().manual_seed(2))
    for log_scale in (-6.0, -2.0):
        mean = torch.full((1, 1), 0.3, requires_grad=True)
        psi = torch.cat((mean, torch.full((1, 1), log_scale)), dim=-1)
        seen = bounded._score_input(psi)
        assert torch.equal(seen, psi)
        eps = proposal.whitened_score(seen, theta)[:, :1]
        assert torch.equal(eps, proposal.whitened_score(psi, theta)[:, :1])
        (gradient,) = torch.autograd.grad(eps.sum(), mean)
        expected = -3.0 / max(math.exp(log_scale), SCORE_FLOOR)
        assert float(gradient) == pytest.approx(expected, rel=1e-5)


def test_head_init_scales_the_first_updates():
    """The update head's last layer at head_init times PyTorch's initialisation: at 0 the first
    update leaves every proposal where it is; the default, 0.1, is today's model bit for bit and
    stays out of the model's record (and of the training record, where a config sets it); a
    negative scale is refused."""
    sim = get_simulator("poisson")
    psi = torch.tensor([[0.3, -0.2]])
    state = torch.zeros(1, 16)
    x_real = sim.simulate(torch.tensor([[1.0]]), 20, torch.Generator().manual_seed(0))
    steps = {}
    for scale in (0.0, 0.1, 1.0):
        torch.manual_seed(3)
        model = ALFI(ModelConfig(1, 1, encoding=8, hidden=8, recurrent=16, head_init=scale))
        theta, x = model.propose(sim, psi, n_theta=4, n_sim=5, generator=torch.Generator())
        real = model.real_context(model.encode(sim, x_real))
        steps[scale] = (model(sim, real, psi, state, theta, x)[0] - psi).abs().max().item()
    assert steps[0.0] == 0.0 and 0 < steps[0.1] < steps[1.0]
    # the same draws of the initial weights, the head's last layer scaled: 0.1 is the factor
    # the model was built with before the option
    layers = {}
    for scale in (0.1, 1.0):
        torch.manual_seed(3)
        config = ModelConfig(1, 1, encoding=8, hidden=8, recurrent=16, head_init=scale)
        layers[scale] = ALFI(config).post[-1]
    assert torch.equal(layers[0.1].weight, layers[1.0].weight * 0.1)
    assert not layers[0.1].bias.any() and not layers[1.0].bias.any()
    default = ALFI(ModelConfig(1, 1, encoding=8, hidden=8, recurrent=16))
    assert "head_init" not in default.config.to_dict()
    assert ModelConfig(1, 1, head_init=0.0).to_dict()["head_init"] == 0.0
    sim_settings = settings_for(load_config("configs/tiny.yaml"), "poisson")
    data = make_dataset(sim, 8, 5, seed=1)
    explicit = copy.deepcopy(sim_settings)
    explicit["model"]["head_init"] = 0.1
    assert training_record(sim, data, explicit, "nll-exp", 0, "cpu") == training_record(
        sim, data, sim_settings, "nll-exp", 0, "cpu"
    )
    with pytest.raises(ValueError, match="head_init must be >= 0, got -0.1"):
        ModelConfig(1, 1, head_init=-0.1)


def test_a_scaled_mean_step_moves_the_mean_in_proposal_widths():
    """mean_step: scaled multiplies the mean's clipped update by the current sigma (and leaves
    log sigma's alone): with the same weights and draws, a proposal of sigma = 2 moves its mean
    twice as far as under the absolute step. The default stays out of the records; an unknown
    value is refused by name."""
    sim = get_simulator("poisson")
    psi = torch.tensor([[0.3, math.log(2.0)]])
    state = torch.zeros(1, 16)
    x_real = sim.simulate(torch.tensor([[1.0]]), 20, torch.Generator().manual_seed(0))
    deltas = {}
    for mean_step in ("absolute", "scaled"):
        torch.manual_seed(3)
        config = ModelConfig(1, 1, encoding=8, hidden=8, recurrent=16, mean_step=mean_step)
        model = ALFI(config)
        theta, x = model.propose(sim, psi, n_theta=4, n_sim=5, generator=torch.Generator())
        real = model.real_context(model.encode(sim, x_real))
        deltas[mean_step] = model(sim, real, psi, state, theta, x)[0] - psi
    absolute, scaled = deltas["absolute"], deltas["scaled"]
    assert absolute[0, 0] != 0
    # the meta-gradient flows through sigma_t too: with d_abs the absolute update (the same
    # network), d_scaled = sigma d_abs, so d d_scaled / d log sigma = d_scaled + sigma d d_abs /
    # d log sigma
    slopes = {}
    for mean_step in ("absolute", "scaled"):
        torch.manual_seed(3)
        config = ModelConfig(1, 1, encoding=8, hidden=8, recurrent=16, mean_step=mean_step)
        model = ALFI(config)
        log_scale = torch.tensor([[math.log(2.0)]], requires_grad=True)
        start = torch.cat((psi[:, :1], log_scale), dim=-1)
        theta, x = model.propose(sim, start, n_theta=4, n_sim=5, generator=torch.Generator())
        real = model.real_context(model.encode(sim, x_real))
        moved = model(sim, real, start, state, theta, x)[0][0, 0]
        slopes[mean_step] = torch.autograd.grad(moved, log_scale)[0].item()
    through_sigma = scaled[0, 0].item() + 2.0 * slopes["absolute"]
    assert slopes["scaled"] == pytest.approx(through_sigma, rel=1e-4)
    assert abs(scaled[0, 0].item()) > 1e-3 * abs(slopes["scaled"])  # the sigma path is seen
    # each update read back as psi_new - psi: float32 rounding of psi_new, up to 2^-25 near 0.3
    assert torch.allclose(scaled[0, 0], 2.0 * absolute[0, 0], rtol=0, atol=2 * 2**-25)
    assert torch.equal(scaled[0, 1], absolute[0, 1])
    assert "mean_step" not in ModelConfig(1, 1).to_dict()
    assert ModelConfig(1, 1, mean_step="scaled").to_dict()["mean_step"] == "scaled"
    sim_settings = settings_for(load_config("configs/tiny.yaml"), "poisson")
    data = make_dataset(sim, 8, 5, seed=1)
    explicit = copy.deepcopy(sim_settings)
    explicit["model"]["mean_step"] = "absolute"
    assert training_record(sim, data, explicit, "nll-exp", 0, "cpu") == training_record(
        sim, data, sim_settings, "nll-exp", 0, "cpu"
    )
    with pytest.raises(ValueError, match="unknown mean_step 'relative'; expected one of absolute"):
        ModelConfig(1, 1, mean_step="relative")
