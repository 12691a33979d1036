"""The Python API: the README's "From Python" example runs as shown, and the exports resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import alfi

ROOT = Path(__file__).resolve().parents[1]


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- from-python -->\s*```python\n(.*?)```", text, flags=re.DOTALL)
    assert match, "README.md lost its From Python example"
    return match.group(1)


def test_readme_from_python_runs(capsys):
    torch.set_num_threads(1)  # tiny tensors: a second thread only waits on a shared machine
    exec(compile(_readme_example(), "README.md (From Python)", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    rmse = {line.split(" mean RMSE")[0].strip(): float(line.split(": ")[1]) for line in lines}
    assert set(rmse) == {"prior draw", "ALFI", "MLE"}
    # A few hundred tiny steps: far from the MLE, but far better than the prior draw.
    assert rmse["MLE"] < rmse["ALFI"] < rmse["prior draw"] / 3


def test_every_export_resolves():
    for name in alfi.__all__:
        assert getattr(alfi, name) is not None, name
    assert alfi.train_alfi is alfi.train.train  # the module keeps the plain name
    assert "run_alfi" in dir(alfi)


def test_settings_resolve_named_configs_as_the_workflow_does():
    from alfi.config import ConfigError, config_path, load_config, settings_for

    for name in ("laptop", "paper", "tiny"):
        expected = settings_for(load_config(config_path(name)), "weinberg")
        assert alfi.settings("weinberg", name) == expected
    assert alfi.settings("weinberg", config_path("paper")) == alfi.settings("weinberg", "paper")
    mapping = {"defaults": alfi.settings("poisson", "tiny"), "overrides": {}}
    assert alfi.settings("poisson", mapping) == alfi.settings("poisson", "tiny")
    settings = alfi.settings("poisson")
    settings["train"]["lr"] = 1.0  # a fresh copy: editing it changes nothing else
    assert alfi.settings("poisson")["train"]["lr"] != 1.0
    for bad in (("nope", "tiny"), ("poisson", "nope.yaml")):
        with pytest.raises(ConfigError):
            alfi.settings(*bad)


def test_bench_measures_the_training_step_at_the_paper_settings():
    from alfi.bench_harness import paper_settings
    from alfi.bench_speed import bench_step

    paper = alfi.settings("weinberg", "paper")
    bench = paper_settings("weinberg")
    assert bench["train"] == paper["train"] | {"epochs": 1, "checkpoint_every": 10**9}
    assert bench["model"] == paper["model"] and bench["evaluate"]["histograms"] == 0
    torch.set_num_threads(1)
    row = bench_step("poisson", torch.device("cpu"), steps=2, warmup=0)
    parts = ("simulate_ms", "forward_ms", "backward_step_ms")
    assert all(row[k] > 0 for k in parts)
    assert sum(row[k] for k in parts) == pytest.approx(row["step_ms_median"], rel=0.5)


def test_training_step_updates_the_weights_and_returns_the_loss():
    from alfi.meta_step import training_step
    from alfi.train import build_model

    simulator = alfi.get_simulator("poisson")
    settings = alfi.settings("poisson", "tiny")
    data = alfi.make_dataset(simulator, 8, 10, seed=1)
    model = build_model(simulator, settings, data)
    before = [p.detach().clone() for p in model.parameters()]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = training_step(
        model,
        optimiser,
        simulator,
        data.x,
        model.standardise_theta(data.theta),
        cfg=settings["train"],
        generator=alfi.make_generator(0),
    )
    assert loss.dim() == 0 and torch.isfinite(loss) and not loss.requires_grad
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_edited_settings_and_mismatched_inputs_are_named_before_any_work():
    """The README edits `alfi.settings(...)` in place: a misspelt or out-of-range key, data of
    another simulator, a count of 0 or a model of another simulator is one clear error."""
    from alfi.config import ConfigError
    from alfi.io import InputError

    poisson, weinberg = alfi.get_simulator("poisson"), alfi.get_simulator("weinberg")
    data = alfi.make_dataset(poisson, 16, 10, seed=1)
    other = alfi.make_dataset(weinberg, 16, 10, seed=1)
    for edit, message in (
        ({"epoch": 20}, "'epoch' was unexpected"),
        ({"meta_batch": 0}, "'train.meta_batch': 0 is less than the minimum of 1"),
        ({"epochs": "20"}, "'train.epochs': '20' is not of type 'number'"),
    ):
        settings = alfi.settings("poisson", "tiny")
        settings["train"].update(edit)
        with pytest.raises(ConfigError, match=re.escape(message)):
            alfi.train_alfi(poisson, data, settings, progress=False)
    settings = alfi.settings("poisson", "tiny")
    with pytest.raises(InputError, match="holds 'weinberg' data with D=2, X=1; expected 'poisson'"):
        alfi.train_alfi(poisson, other, settings, progress=False)
    with pytest.raises(InputError, match="holds 'poisson' data"):
        alfi.run_mle(weinberg, data, alfi.make_generator(0))
    model = alfi.train_alfi(poisson, data, settings, progress=False).model
    run = dict(steps=2, inits=2, n_theta=2, n_sim=3, generator=alfi.make_generator(0))
    with pytest.raises(InputError, match="inits=0: expected an integer >= 1"):
        alfi.run_alfi(model, poisson, data, **{**run, "inits": 0})
    with pytest.raises(InputError, match="the model was built for D=1, X=1"):
        alfi.run_alfi(model, weinberg, other, **run)
    for config, message in (("Tiny", "unknown config 'Tiny'"), (None, "got NoneType")):
        with pytest.raises(ConfigError, match=message):
            alfi.settings("poisson", config)


def test_a_simulator_that_mishandles_batched_parameters_is_named():
    """A plugin whose simulate() flattens (P, B, D) parameters passes a dataset (2-D theta) but
    would fail deep in the network; the probe before training names it and the shapes."""
    from alfi.data import SimulatorError

    class Flattening(alfi.get_simulator("poisson").__class__):
        name = "flattening_poisson"

        def simulate(self, theta, n, generator):
            return super().simulate(theta.reshape(-1, theta.shape[-1]), n, generator)

    sim = Flattening()
    data = alfi.make_dataset(sim, 16, 10, seed=1)
    with pytest.raises(SimulatorError, match=r"'flattening_poisson' returned observations of sh"):
        alfi.train_alfi(sim, data, alfi.settings("poisson", "tiny"), progress=False)
