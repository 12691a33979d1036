"""Batched ensembles: each member draws what it would draw alone and follows the same updates up
to rounding; checkpoints are per member, resumed exactly and only by the same group."""

from __future__ import annotations

import copy
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alfi import proposal
from alfi.clipping import clip_member_grad_norms_
from alfi.data import make_dataset
from alfi.ensemble import Ensemble
from alfi.io import InputError
from alfi.simulators import get_simulator
from alfi.train import (
    TrainingDivergedError,
    initial_model,
    load_model,
    train,
    training_generator,
)
from alfi.train_ensemble import train_ensemble

SETTINGS = {
    "dataset": {"n_train": 96, "n_test": 20, "n_real": 30},
    "model": {"encoding": 16, "hidden": 32, "recurrent": 32, "x_hidden": [32]},
    "train": {
        "epochs": 1,
        "steps": 5,
        "meta_batch": 16,
        "n_theta": 6,
        "n_sim": 8,
        "lr": 3e-3,
        "clip": 0.5,
        "beta": 5.0,
        "grad_clip": 1.0,
        "initial_log_scale": 0.5,
        "checkpoint_every": 2,
    },
}
# Different losses, weightings and seeds: a member mixed up with another would show.
MEMBERS = [("nll-exp", 0), ("mse-last", 1), ("nll-const", 2)]
CPU = torch.device("cpu")


def _settings(model: dict | None = None, **train):
    settings = copy.deepcopy(SETTINGS)
    settings["train"].update(train)
    settings["model"].update(model or {})
    return settings


def _weights(result) -> dict[str, torch.Tensor]:
    return result.model.state_dict()


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def linear_regression():
    sim = get_simulator("linear_regression")
    return sim, make_dataset(sim, 96, 30, seed=4)


def test_members_draw_what_they_draw_alone(linear_regression):
    """The same proposals' draws and simulations, from the member's own generator: after an
    unroll each generator stands exactly where the lone model's does, and the trajectories
    agree to float rounding."""
    sim, data = linear_regression
    models = [initial_model(sim, data, SETTINGS, variant=v, seed=s, device=CPU) for v, s in MEMBERS]
    x = data.x[:8]
    alone, generators = [], []
    for model, (variant, seed) in zip(models, MEMBERS, strict=True):
        generator = training_generator(sim, variant=variant, seed=seed, device=CPU)
        psi = proposal.initial((8,), sim.theta_dim, generator)
        with torch.no_grad():
            alone.append(
                model.unroll(sim, x, psi, steps=4, n_theta=6, n_sim=8, generator=generator)
            )
        generators.append(generator.get_state())
    fresh = [training_generator(sim, variant=v, seed=s, device=CPU) for v, s in MEMBERS]
    psi = torch.stack([proposal.initial((8,), sim.theta_dim, g) for g in fresh])
    with torch.no_grad():
        together = Ensemble(models).unroll(
            sim, x.expand(3, *x.shape), psi, steps=4, n_theta=6, n_sim=8, generators=fresh
        )
    assert together.shape == (5, 3, 8, 2 * sim.theta_dim)
    for g in range(3):
        assert torch.equal(fresh[g].get_state(), generators[g])
        torch.testing.assert_close(together[:, g], alone[g], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"tail_steps": 2, "tail_weight": 0.25},
        {"tail_steps": 2, "tail_from": 0.1},
        {"tail_steps": 2, "tail_from": 0.1, "tail_restart": True},
        {"tail_steps": 2, "tail_ramp": 0.5},
        {"tail_steps": 2, "tail_clip_scale": 0.05},
        {"model": {"score_gradient": "scale"}},
        {"model": {"score_gradient": "bounded"}},
        {"fresh_problems": True},
        {"model": {"pooling": "mean-max"}},
        {"model": {"pooling": "mean-max-std"}},
    ],
    ids=[
        "horizon",
        "spread-tail",
        "tail-from-step-1",
        "adam-restart-at-step-1",
        "tail-growing-from-step-0",
        "tail-clip",
        "scale-score-gradient",
        "bounded-score-gradient",
        "fresh-problems",
        "mean-max",
        "mean-max-std",
    ],
)
def test_members_follow_their_lone_training_to_rounding(linear_regression, options):
    """Two steps of three different members (each its own meta-batches, loss, generator and
    clip) against the same three models trained alone. The batched kernels round differently
    (float32: relative 1.2e-7 per operation), and a run amplifies that: here about tenfold per
    step, since Adam's first steps move every weight by about lr whatever its gradient's size.
    After two steps that is ~1e-7 of the distance trained; a member given another's batch, loss,
    generator or clip would be apart by O(1) of it. 1e-4 separates the two. With a tail past
    the horizon, each member's loss weighs its tail as the lone model's does (from step 1 of
    6 with ``tail_from: 0.1``: both phases in two steps; with ``tail_restart`` the ensemble's
    Adam starts afresh there, as each lone one does); with the score's
    gradient through the scale only, the detach of the mean holds under ``vmap``; with fresh
    problems, each member draws the problems it would draw alone."""
    sim, data = linear_regression
    settings = _settings(**options)
    start = [
        initial_model(sim, data, settings, variant=v, seed=s, device=CPU).state_dict()
        for v, s in MEMBERS
    ]
    alone = [
        train(sim, data, settings, variant=v, seed=s, device=CPU, stop_after=2, progress=False)
        for v, s in MEMBERS
    ]
    together = train_ensemble(sim, data, settings, MEMBERS, stop_after=2, progress=False)
    for first, lone, member in zip(start, alone, together, strict=True):
        a, b = _weights(lone), _weights(member)
        moved = sum(((a[k] - first[k]) ** 2).sum() for k in a).sqrt()
        apart = sum(((a[k] - b[k]) ** 2).sum() for k in a).sqrt()
        assert member.steps_done == lone.steps_done == 2
        assert apart < 1e-4 * moved, f"{apart:.3g} apart after moving {moved:.3g}"
        assert member.history[-1]["loss"] == pytest.approx(lone.history[-1]["loss"], rel=1e-5)


def test_gradient_clipping_is_per_member():
    """Each member's gradient is clipped on its own norm, as clip_grad_norm_ would alone."""
    torch.manual_seed(0)
    stacked = [torch.zeros(3, 4, 5, requires_grad=True), torch.zeros(3, 7, requires_grad=True)]
    stacked[0].grad = torch.randn(3, 4, 5) * torch.tensor([0.01, 1.0, 100.0]).reshape(3, 1, 1)
    stacked[1].grad = torch.randn(3, 7)
    alone = []
    for g in range(3):
        members = [torch.zeros_like(p[g], requires_grad=True) for p in stacked]
        for m, p in zip(members, stacked, strict=True):
            m.grad = p.grad[g].clone()
        torch.nn.utils.clip_grad_norm_(members, 1.0)
        alone.append([m.grad for m in members])
    clip_member_grad_norms_([p.grad for p in stacked], 1.0)
    for g in range(3):
        for p, expected in zip(stacked, alone[g], strict=True):
            assert torch.equal(p.grad[g], expected)


def test_resume_is_exact_and_only_by_the_same_group(linear_regression, tmp_path, caplog):
    sim, data = linear_regression
    settings = _settings(epochs=2)
    whole = train_ensemble(sim, data, settings, MEMBERS, progress=False)
    checkpoints = [tmp_path / f"{v}-{s}.ckpt" for v, s in MEMBERS]
    train_ensemble(
        sim, data, settings, MEMBERS, checkpoints=checkpoints, stop_after=5, progress=False
    )
    with caplog.at_level(logging.INFO, logger="alfi.train_ensemble"):
        resumed = train_ensemble(
            sim, data, settings, MEMBERS, checkpoints=checkpoints, progress=False
        )
    assert "resumed 3 members at step 5" in caplog.text
    for a, b in zip(whole, resumed, strict=True):
        assert _equal(_weights(a), _weights(b))

    # A member's checkpoint records its group: trained alone, the model starts afresh.
    with caplog.at_level(logging.WARNING, logger="alfi.checkpoints"):
        variant, seed = MEMBERS[0]
        train(
            sim,
            data,
            settings,
            variant=variant,
            seed=seed,
            checkpoint=checkpoints[0],
            progress=False,
        )
    assert "ensemble: " in caplog.text and "set aside" in caplog.text


def test_resume_is_exact_with_fresh_problems(linear_regression, tmp_path):
    """Each member's new problems are keyed by its seed and the step, not by a generator a
    checkpoint must carry: a group resumed at step 5 ends where one that never stopped does."""
    sim, data = linear_regression
    settings = _settings(epochs=2, fresh_problems=True)
    whole = train_ensemble(sim, data, settings, MEMBERS, progress=False)
    checkpoints = [tmp_path / f"{v}-{s}.ckpt" for v, s in MEMBERS]
    train_ensemble(
        sim, data, settings, MEMBERS, checkpoints=checkpoints, stop_after=5, progress=False
    )
    resumed = train_ensemble(sim, data, settings, MEMBERS, checkpoints=checkpoints, progress=False)
    for a, b in zip(whole, resumed, strict=True):
        assert a.steps_done == b.steps_done > 5
        assert _equal(_weights(a), _weights(b))


def test_checkpoints_at_different_steps_restart_the_group(linear_regression, tmp_path, caplog):
    sim, data = linear_regression
    settings = _settings(epochs=2)
    whole = train_ensemble(sim, data, settings, MEMBERS, progress=False)
    checkpoints = [tmp_path / f"{v}-{s}.ckpt" for v, s in MEMBERS]
    train_ensemble(
        sim, data, settings, MEMBERS, checkpoints=checkpoints, stop_after=4, progress=False
    )
    checkpoints[1].unlink()  # as if the job died between two members' writes
    with caplog.at_level(logging.WARNING, logger="alfi.train_ensemble"):
        again = train_ensemble(
            sim, data, settings, MEMBERS, checkpoints=checkpoints, progress=False
        )
    assert "stand at different steps (4, none, 4)" in caplog.text
    for a, b in zip(whole, again, strict=True):
        assert _equal(_weights(a), _weights(b))


def test_a_group_of_one_is_training_alone(linear_regression):
    sim, data = linear_regression
    (lone,) = train_ensemble(sim, data, SETTINGS, [("nll-exp", 3)], progress=False)
    alone = train(sim, data, SETTINGS, variant="nll-exp", seed=3, progress=False)
    assert _equal(_weights(lone), _weights(alone)) and lone.provenance == alone.provenance


def test_bad_groups_are_refused(linear_regression):
    sim, data = linear_regression
    with pytest.raises(InputError, match="members must differ"):
        train_ensemble(sim, data, SETTINGS, [("nll-exp", 0), ("nll-exp", 0)])
    with pytest.raises(InputError, match="expected 2 checkpoints"):
        train_ensemble(sim, data, SETTINGS, MEMBERS[:2], checkpoints=[None])
    with pytest.raises(ValueError, match="invalid variant 'kl-exp'"):
        train_ensemble(sim, data, SETTINGS, [("kl-exp", 0), ("nll-exp", 0)])
    models = [initial_model(sim, data, SETTINGS, variant="nll-exp", seed=0, device=CPU)]
    wider = copy.deepcopy(SETTINGS)
    wider["model"]["hidden"] = 16
    models.append(initial_model(sim, data, wider, variant="nll-exp", seed=0, device=CPU))
    with pytest.raises(ValueError, match="share one config"):
        Ensemble(models)


def test_a_diverging_member_is_named():
    sim = get_simulator("poisson")
    data = make_dataset(sim, 32, 20, seed=1)
    settings = _settings(steps=2, lr=1e30, grad_clip=None)
    named = r"non-finite at step 1 \(poisson, nll-exp, seed"
    with pytest.raises(TrainingDivergedError, match=named):
        train_ensemble(sim, data, settings, [("nll-exp", 0), ("mse-exp", 0)], progress=False)


def test_cli_trains_a_group_into_one_file_per_model(linear_regression, tmp_path):
    """`alfi train` with several --out: one model file per member, as a lone run writes it."""
    from alfi.io import save_dataset

    sim, data = linear_regression
    save_dataset(tmp_path / "train.npz", data)
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    outs = [tmp_path / "a.pt", tmp_path / "b.pt"]
    base = [sys.executable, "-m", "alfi", "-q", "train", "--config", str(config)]
    base += ["--simulator", "linear_regression", "--dataset", str(tmp_path / "train.npz")]
    done = subprocess.run(
        [*base, "--variant", "nll-exp", "--seed", "0", "1", "--out", *map(str, outs)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    for out, seed in zip(outs, (0, 1), strict=True):
        _, state = load_model(out)
        assert state["seed"] == seed and state["variant"] == "nll-exp"
        assert len(state["provenance"]["record"]["ensemble"]) == 2
    wrong = subprocess.run(
        [*base, "--seed", "0", "1", "2", "--out", *map(str, outs)], capture_output=True, text=True
    )
    assert wrong.returncode == 2
    assert (
        wrong.stderr.strip()
        .splitlines()[-1]
        .endswith("--seed has 3 values for 2 --out paths; expected 1 or 2")
    )


def test_ensemble_trains_and_resumes_on_the_device(device, tmp_path):
    """``--device cuda``: the batched ensemble runs there, and resumes exactly."""
    sim = get_simulator("weinberg")
    data = make_dataset(sim, 48, 20, seed=2, device=device.type)
    settings = _settings(epochs=2)
    members = MEMBERS[:2]
    whole = train_ensemble(sim, data, settings, members, device=device, progress=False)
    checkpoints = [tmp_path / f"{v}-{s}.ckpt" for v, s in members]
    train_ensemble(
        sim,
        data,
        settings,
        members,
        device=device,
        checkpoints=checkpoints,
        stop_after=3,
        progress=False,
    )
    resumed = train_ensemble(
        sim, data, settings, members, device=device, checkpoints=checkpoints, progress=False
    )
    for a, b in zip(whole, resumed, strict=True):
        assert next(a.model.parameters()).device.type == device.type
        assert _equal(_weights(a), _weights(b))
