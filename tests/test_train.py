"""Meta-training: it learns, it resumes exactly and only from a checkpoint of the same inputs,
it refuses to go on with a non-finite loss and says whose fault it is."""

from __future__ import annotations

import copy
import functools
import logging

import pytest
import torch

from alfi.data import make_dataset, make_generator
from alfi.evaluate import run_mle
from alfi.evaluate_alfi import run_alfi
from alfi.io import MetaDataset, load_torch, save_torch
from alfi.simulators import get_simulator
from alfi.train import (
    NonFiniteLossError,
    TrainingDivergedError,
    load_model,
    save_model,
    train,
)

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
    result = train(
        sim, data, _settings(epochs=12), variant="nll-exp", seed=0, device=CPU, progress=False
    )
    trajectory = run_alfi(
        result.model,
        sim,
        test,
        steps=10,
        inits=5,
        n_theta=10,
        n_sim=10,
        generator=make_generator(3),
    )
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
    run = functools.partial(train, sim, data, settings, variant="nll-exp", seed=7, device=CPU)
    straight = run(checkpoint=tmp_path / "a.pt", progress=False)
    killed = run(checkpoint=tmp_path / "b.pt", stop_after=8, progress=False)
    assert killed.steps_done == 8 and load_torch(tmp_path / "b.pt")["step"] == 8
    resumed = run(checkpoint=tmp_path / "b.pt", progress=False)
    assert resumed.steps_done == straight.steps_done == 12
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], killed.model.state_dict()[k]) for k in a)


def test_same_seed_same_weights_and_different_seed_differs():
    sim = get_simulator("poisson")
    data = make_dataset(sim, 32, 20, seed=1)
    settings = _settings(steps=3)
    runs = [
        train(sim, data, settings, variant="mse-const", seed=s, device=CPU, progress=False)
        for s in (1, 1, 2)
    ]
    w = [r.model.x_encoder.phi[0].weight for r in runs]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_training_and_evaluation_on_device_are_reproducible(device):
    """``--device cuda``: the same seed gives the same weights there too, and evaluation runs."""
    sim = get_simulator("weinberg")
    data = make_dataset(sim, 64, 50, seed=1, device=device.type)
    settings = _settings(epochs=2, steps=4)
    runs = [
        train(sim, data, settings, variant="nll-exp", seed=3, device=device, progress=False)
        for _ in range(2)
    ]
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        assert p.device.type == device.type and torch.allclose(p, q)
    trajectory = run_alfi(
        runs[0].model,
        sim,
        data,
        steps=6,
        inits=4,
        n_theta=5,
        n_sim=7,
        generator=make_generator(2, device),
    )
    assert torch.isfinite(trajectory.estimate).all() and trajectory.estimate.shape == (7, 64, 2)
    mle = run_mle(sim, data, make_generator(3, device))
    assert torch.isfinite(mle.estimate).all()


def test_non_finite_loss_stops_with_the_step(monkeypatch):
    sim = get_simulator("poisson")
    data = make_dataset(sim, 32, 20, seed=1)
    monkeypatch.setattr(
        sim, "simulate", lambda theta, n, g: torch.full((*theta.shape[:-1], n, 1), float("nan"))
    )
    with pytest.raises(NonFiniteLossError, match="at step 0") as error:
        train(sim, data, _settings(steps=2), variant="nll-exp", seed=0, device=CPU, progress=False)
    assert "simulator 'poisson' returned non-finite observations" in str(error.value)
    assert not isinstance(error.value, TrainingDivergedError)  # the simulator's fault


def test_non_finite_loss_with_a_sound_simulator_blames_the_optimisation(monkeypatch):
    sim = get_simulator("poisson")
    data = make_dataset(sim, 32, 20, seed=1)
    monkeypatch.setattr("alfi.meta_step.meta_loss", lambda *args: torch.tensor(float("inf")))
    with pytest.raises(TrainingDivergedError, match="lower train.lr"):
        train(sim, data, _settings(steps=2), variant="nll-exp", seed=0, device=CPU, progress=False)


def test_diverging_weights_are_named_not_the_simulator_error():
    """A huge learning rate makes the weights non-finite; torch.poisson then refuses the NaN rate
    with an error of its own, which must not be what the user reads."""
    sim = get_simulator("poisson")
    data = make_dataset(sim, 32, 20, seed=1)
    with pytest.raises(TrainingDivergedError, match="proposal became non-finite at step 1"):
        train(
            sim,
            data,
            _settings(steps=2, lr=1e30, grad_clip=None),
            variant="nll-exp",
            seed=0,
            device=CPU,
            progress=False,
        )


def test_empty_meta_dataset_is_refused():
    sim = get_simulator("poisson")
    empty = MetaDataset("poisson", torch.zeros(0, 1), torch.zeros(0, 5, 1), 0)
    with pytest.raises(ValueError, match="holds no problems"):
        train(sim, empty, _settings(steps=2), variant="nll-exp", seed=0, device=CPU, progress=False)


def _other_data(sim):
    return make_dataset(sim, 48, 20, seed=99)


def _wider(settings):
    settings["model"]["hidden"] = 8
    return settings


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s, d, v, seed: (_settings(epochs=4, steps=3, lr=1e-2), d, v, seed), "train.lr"),
        (lambda s, d, v, seed: (s, d, "mse-last", seed), "variant"),
        (lambda s, d, v, seed: (s, d, v, seed + 1), "seed"),
        (lambda s, d, v, seed: (_wider(s), d, v, seed), "model.hidden"),
        (lambda s, d, v, seed: (s, _other_data(get_simulator("multivariate")), v, seed), "data"),
    ],
    ids=["lr", "variant", "seed", "width", "data"],
)
def test_checkpoint_of_other_inputs_is_set_aside(tmp_path, caplog, change, reason):
    sim = get_simulator("multivariate")
    data = make_dataset(sim, 48, 20, seed=1)
    settings = _settings(epochs=4, steps=3)
    checkpoint = tmp_path / "run.ckpt"
    # A finished run's checkpoint stays; the changed run must not resume from it.
    train(
        sim,
        data,
        settings,
        variant="nll-exp",
        seed=7,
        device=CPU,
        checkpoint=checkpoint,
        progress=False,
    )
    new_settings, new_data, new_variant, new_seed = change(
        copy.deepcopy(settings), data, "nll-exp", 7
    )
    with caplog.at_level(logging.WARNING, logger="alfi.checkpoints"):
        changed = train(
            sim,
            new_data,
            new_settings,
            variant=new_variant,
            seed=new_seed,
            device=CPU,
            checkpoint=checkpoint,
            progress=False,
        )
    (line,) = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert "made from other inputs" in line and reason in line
    assert len(list(tmp_path.glob("run.ckpt.set-aside-*"))) == 1
    fresh = train(
        sim, new_data, new_settings, variant=new_variant, seed=new_seed, device=CPU, progress=False
    )
    a, b = changed.model.state_dict(), fresh.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "the changed run did not start afresh"
    assert load_torch(checkpoint)["provenance"]["fingerprint"] == fresh.provenance["fingerprint"]


def test_checkpoint_every_is_no_change_of_inputs(tmp_path, caplog):
    sim = get_simulator("poisson")
    data = make_dataset(sim, 48, 20, seed=1)
    checkpoint = tmp_path / "run.ckpt"
    train(
        sim,
        data,
        _settings(epochs=1, steps=2),
        variant="nll-exp",
        seed=0,
        device=CPU,
        checkpoint=checkpoint,
        stop_after=2,
        progress=False,
    )
    with caplog.at_level(logging.INFO, logger="alfi.train"):
        train(
            sim,
            data,
            _settings(epochs=1, steps=2, checkpoint_every=1),
            variant="nll-exp",
            seed=0,
            device=CPU,
            checkpoint=checkpoint,
            progress=False,
        )
    assert any("resumed from" in r.getMessage() for r in caplog.records)
    assert not any("set aside" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("damage", ["truncated", "no_provenance"])
def test_unreadable_or_old_checkpoint_is_set_aside(tmp_path, caplog, damage):
    sim = get_simulator("poisson")
    data = make_dataset(sim, 32, 20, seed=1)
    settings = _settings(steps=2)
    checkpoint = tmp_path / "run.ckpt"
    train(
        sim,
        data,
        settings,
        variant="nll-exp",
        seed=0,
        device=CPU,
        checkpoint=checkpoint,
        progress=False,
    )
    if damage == "truncated":  # a job killed while writing without the atomic rename
        checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    else:  # written by a version of alfi without provenance
        state = load_torch(checkpoint)
        del state["provenance"]
        save_torch(checkpoint, state)
    # A temporary file left by a writer killed before its rename goes at the next write.
    stale = tmp_path / ".run.ckpt.abc123.tmp"
    stale.write_bytes(b"partial")
    with caplog.at_level(logging.WARNING, logger="alfi.checkpoints"):
        result = train(
            sim,
            data,
            settings,
            variant="nll-exp",
            seed=0,
            device=CPU,
            checkpoint=checkpoint,
            progress=False,
        )
    assert result.steps_done == 2
    assert any("set aside" in r.getMessage() for r in caplog.records)
    assert load_torch(checkpoint)["step"] == 2 and not stale.exists()


def test_saved_model_round_trip(tmp_path):
    sim = get_simulator("weinberg")
    data = make_dataset(sim, 16, 20, seed=1)
    result = train(
        sim, data, _settings(steps=2), variant="nll-last", seed=0, device=CPU, progress=False
    )
    save_model(
        tmp_path / "m.pt",
        result.model,
        sim,
        SETTINGS,
        variant="nll-last",
        seed=0,
        history=result.history,
        provenance=result.provenance,
    )
    model, state = load_model(tmp_path / "m.pt")
    assert state["simulator"] == "weinberg" and state["variant"] == "nll-last"
    record = state["provenance"]["record"]
    assert record["data"] == data.fingerprint and record["settings"]["train"]["steps"] == 2
    for key, value in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    assert model.x_std.shape == (1,) and model.theta_mean.tolist() == pytest.approx([45.0, 1.0])
