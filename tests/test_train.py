"""Meta-training: it learns, it resumes exactly, it refuses to go on with a non-finite loss."""

from __future__ import annotations

import copy

import pytest
import torch

from alfi.data import make_dataset, make_generator
from alfi.evaluate import run_alfi, run_mle
from alfi.io import load_torch
from alfi.simulators import get_simulator
from alfi.train import NonFiniteLossError, load_model, save_model, train

SETTINGS = {
    "dataset": {"n_train": 200, "n_test": 50, "n_real": 100},
    "model": {"encoding": 16, "hidden": 32, "recurrent": 32, "x_hidden": [32]},
    "train": {
        "epochs": 1,
        "steps": 10,
        "meta_batch": 16,
        "n_theta": 10,
        "n_sim": 10,
        "lr": 3e-3,
        "clip": 0.5,
        "beta": 5.0,
        "grad_clip": 1.0,
        "initial_log_scale": 0.5,
        "checkpoint_every": 4,
    },
    "evaluate": {"inits": 5, "histograms": 2, "chunk": 1024},
}
CPU = torch.device("cpu")


def _settings(**train):
    settings = copy.deepcopy(SETTINGS)
    settings["train"].update(train)
    return settings


def test_short_poisson_training_beats_the_prior(tmp_path):
    sim = get_simulator("poisson")
    data = make_dataset(sim, 400, 100, seed=1)
    test = make_dataset(sim, 100, 100, seed=2)
    result = train(sim, data, _settings(epochs=12), "nll-exp", 0, CPU, progress=False)
    trajectory = run_alfi(result.model, sim, test, 10, 5, 10, 10, make_generator(3))
    rmse = float(((trajectory.estimate[-1] - test.theta) ** 2).mean().sqrt())
    prior_rmse = float(sim.prior_moments()[1])  # RMSE of the prior mean
    mle = run_mle(sim, test, make_generator(4))
    mle_rmse = float(((mle.estimate[0] - test.theta) ** 2).mean().sqrt())
    print(f"ALFI RMSE {rmse:.4f}, MLE {mle_rmse:.4f}, prior {prior_rmse:.4f}")
    assert rmse < prior_rmse / 3
    # The estimate improves along the iterations, from the prior draw to the end.
    first = float(((trajectory.estimate[0] - test.theta) ** 2).mean().sqrt())
    assert rmse < first / 3


def test_resume_gives_identical_weights(tmp_path):
    sim = get_simulator("multivariate")
    data = make_dataset(sim, 48, 20, seed=1)
    settings = _settings(epochs=4, steps=3)  # 12 steps, checkpoints every 4
    straight = train(
        sim, data, settings, "nll-exp", 7, CPU, checkpoint=tmp_path / "a.pt", progress=False
    )
    killed = train(
        sim,
        data,
        settings,
        "nll-exp",
        7,
        CPU,
        checkpoint=tmp_path / "b.pt",
        stop_after=8,
        progress=False,
    )
    assert killed.steps_done == 8 and load_torch(tmp_path / "b.pt")["step"] == 8
    resumed = train(
        sim, data, settings, "nll-exp", 7, CPU, checkpoint=tmp_path / "b.pt", progress=False
    )
    assert resumed.steps_done == straight.steps_done == 12
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], killed.model.state_dict()[k]) for k in a)


def test_same_seed_same_weights_and_different_seed_differs():
    sim = get_simulator("poisson")
    data = make_dataset(sim, 32, 20, seed=1)
    settings = _settings(steps=3)
    runs = [train(sim, data, settings, "mse-const", s, CPU, progress=False) for s in (1, 1, 2)]
    w = [r.model.x_encoder.phi[0].weight for r in runs]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_non_finite_loss_stops_with_the_step(monkeypatch):
    sim = get_simulator("poisson")
    data = make_dataset(sim, 32, 20, seed=1)
    monkeypatch.setattr(
        sim, "simulate", lambda theta, n, g: torch.full((*theta.shape[:-1], n, 1), float("nan"))
    )
    with pytest.raises(NonFiniteLossError, match="at step 0"):
        train(sim, data, _settings(steps=2), "nll-exp", 0, CPU, progress=False)


def test_saved_model_round_trip(tmp_path):
    sim = get_simulator("weinberg")
    data = make_dataset(sim, 16, 20, seed=1)
    result = train(sim, data, _settings(steps=2), "nll-last", 0, CPU, progress=False)
    save_model(tmp_path / "m.pt", result.model, sim, SETTINGS, "nll-last", 0, result.history)
    model, state = load_model(tmp_path / "m.pt")
    assert state["simulator"] == "weinberg" and state["variant"] == "nll-last"
    for key, value in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    assert model.x_std.shape == (1,) and model.theta_mean.tolist() == pytest.approx([45.0, 1.0])
