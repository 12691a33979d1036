"""Training steps replayed from CUDA graphs compute what eager steps compute.

Device-aware (``--device cuda``): on a GPU the graphed runs capture one graph per batch shape
and must match eager training; on the CPU graphs are off, and the same runs check that asking
for them changes nothing there.

Tolerance: a replayed step runs the eager step's kernels on the eager step's random numbers, but
on another stream, where cuBLAS may pick another reduction order: float32 rounding (relative
~1e-7 per operation) that nine Adam steps at lr 3e-3 carry into the weights at well under 1e-5.
A wrong random stream (a generator not registered, an offset not advanced) changes every draw,
and the weights by O(lr) = 3e-3 after one step.
"""

from __future__ import annotations

import copy

import pytest
import torch

from alfi import cuda_graph
from alfi.data import make_dataset
from alfi.simulators import get_simulator
from alfi.simulators.poisson import Poisson
from alfi.train import train
from alfi.train_ensemble import train_ensemble

SETTINGS = {
    "dataset": {"n_train": 20, "n_test": 4, "n_real": 24},
    "model": {"encoding": 16, "hidden": 32, "recurrent": 32, "x_hidden": [32]},
    "train": {
        "epochs": 3,  # 3 batches an epoch: 9 steps
        "steps": 4,
        "tail_steps": 2,
        "tail_weight": 0.5,
        "meta_batch": 8,  # batches of 8, 8, 4: two shapes, two graphs
        "n_theta": 5,
        "n_sim": 6,
        "lr": 3e-3,
        "clip": 0.5,
        "beta": 5.0,
        "grad_clip": 1.0,
        "initial_log_scale": 0.5,
        "checkpoint_every": 4,
    },
}
STEPS = 9  # each shape: two eager warm-up calls, one capture, then replays
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture
def captures(monkeypatch) -> list[tuple]:
    """The batch shapes captured as graphs during a test."""
    seen: list[tuple] = []
    capture = cuda_graph.GraphedGradients._capture

    def spy(self, key, inputs):
        seen.append(key)
        return capture(self, key, inputs)

    monkeypatch.setattr(cuda_graph.GraphedGradients, "_capture", spy)
    return seen


def _expected_captures(device: torch.device, graphs: int) -> int:
    return graphs if device.type == "cuda" else 0


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], **TOLERANCE, msg=name)


@pytest.mark.parametrize("name", ["poisson", "linear_regression", "multivariate", "weinberg"])
def test_graphed_training_is_eager_training(device, name, captures):
    sim = get_simulator(name)
    data = make_dataset(sim, 20, 24, seed=5, device=device.type)
    runs = {}
    for graphed in (False, True):
        runs[graphed] = train(
            sim,
            data,
            SETTINGS,
            variant="nll-exp",
            seed=3,
            device=device,
            stop_after=STEPS,
            progress=False,
            cuda_graph=graphed,
        )
    assert len(captures) == _expected_captures(device, 2)
    assert runs[True].steps_done == runs[False].steps_done == STEPS
    _assert_same_weights(runs[False].model.state_dict(), runs[True].model.state_dict())
    losses = [[h["loss"] for h in runs[g].history] for g in (False, True)]
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), **TOLERANCE)


def test_graphed_ensemble_is_eager_ensemble(device, captures):
    sim = get_simulator("linear_regression")
    data = make_dataset(sim, 20, 24, seed=6, device=device.type)
    members = [("nll-exp", 0), ("mse-last", 1), ("nll-const", 2)]
    runs = {
        graphed: train_ensemble(
            sim,
            data,
            SETTINGS,
            members,
            device=device,
            stop_after=STEPS,
            progress=False,
            cuda_graph=graphed,
        )
        for graphed in (False, True)
    }
    assert len(captures) == _expected_captures(device, 2)
    for eager, graphed in zip(runs[False], runs[True], strict=True):
        _assert_same_weights(eager.model.state_dict(), graphed.model.state_dict())


def test_graphed_training_resumes_exactly(device, tmp_path):
    """A run killed after step 5 and resumed (new graphs, the generator restored) ends where
    one that never stopped ends."""
    sim = get_simulator("poisson")
    data = make_dataset(sim, 20, 24, seed=7, device=device.type)
    run = dict(variant="nll-exp", seed=4, device=device, progress=False, cuda_graph=True)
    whole = train(sim, data, SETTINGS, stop_after=STEPS, **run)
    checkpoint = tmp_path / "run.ckpt"
    train(sim, data, SETTINGS, checkpoint=checkpoint, stop_after=5, **run)
    resumed = train(sim, data, SETTINGS, checkpoint=checkpoint, stop_after=STEPS, **run)
    assert resumed.steps_done == STEPS
    _assert_same_weights(whole.model.state_dict(), resumed.model.state_dict())


class _HostConstant(Poisson):
    """Poisson, but each simulation copies a constant from the host: not capturable."""

    def simulate(self, theta, n, generator):
        one = torch.tensor([1.0], device=theta.device)  # a host-to-device copy per call
        return super().simulate(theta * one, n, generator)


def test_an_uncapturable_simulator_is_named(device):
    """On CUDA the capture fails with the setting that turns graphs off; eager, it trains."""
    sim = _HostConstant()
    data = make_dataset(sim, 20, 24, seed=8, device=device.type)
    settings = copy.deepcopy(SETTINGS)
    run = dict(variant="nll-exp", seed=1, device=device, stop_after=STEPS, progress=False)
    if device.type == "cuda":
        with pytest.raises(cuda_graph.CaptureError, match="cuda_graphs: false"):
            train(sim, data, settings, cuda_graph=True, **run)
    eager = train(sim, data, settings, cuda_graph=False, **run)
    assert eager.steps_done == STEPS
