"""The same code on CUDA: simulators, training and evaluation run there and stay reproducible.

Skipped, with the reason, where torch sees no CUDA device (the CPU path is tested everywhere).
"""

from __future__ import annotations

import copy

import pytest
import torch
from test_train import SETTINGS

from alfi.data import make_dataset, make_generator
from alfi.evaluate import run_alfi, run_mle
from alfi.simulators import available, get_simulator
from alfi.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("name", available())
def test_simulators_and_mle_on_cuda(name):
    sim = get_simulator(name)
    generator = make_generator(0, CUDA)
    theta = sim.sample_prior((64,), generator)
    x = sim.simulate(theta, 200, generator)
    assert x.device.type == "cuda" and x.shape == (64, 200, sim.observation_dim)
    assert torch.isfinite(x).all()
    estimate = sim.mle(x)
    assert estimate.device.type == "cuda" and torch.isfinite(estimate).all()


def test_training_and_evaluation_on_cuda_are_reproducible():
    sim = get_simulator("weinberg")
    data = make_dataset(sim, 64, 50, seed=1, device="cuda")
    settings = copy.deepcopy(SETTINGS)
    settings["train"].update(epochs=2, steps=4)
    runs = [train(sim, data, settings, "nll-exp", 3, CUDA, progress=False) for _ in range(2)]
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        assert p.device.type == "cuda" and torch.allclose(p, q)
    trajectory = run_alfi(runs[0].model, sim, data, 6, 4, 5, 7, make_generator(2, CUDA))
    assert torch.isfinite(trajectory.estimate).all() and trajectory.estimate.shape == (7, 64, 2)
    mle = run_mle(sim, data, make_generator(3, CUDA))
    assert torch.isfinite(mle.estimate).all()
