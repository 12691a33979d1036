"""CPU compile study: does ``torch.compile`` make ALFI's training step faster on the CPU?

The default run's time is mostly ALFI's training (about 60 % of its job-seconds), which is
compute-bound on the CPU: an ensemble of models costs about as much per model as one model does
(README, "Benchmarks"). A compiler that fuses the many small elementwise operations of the
update network (squash, standardisation, ReLU, mean-max pooling, the GRU's gates) could still cut
the time of a step. The candidate is :meth:`alfi.model.ALFI.forward`, steps 3 and 4 of an update,
which draws nothing at random; the proposal draws and simulations, which use an explicit
``torch.Generator``, stay eager.

For each simulator at ``config.yaml``'s settings (meta-batch, B, M, T + tail, its overrides), on
``--threads`` threads (the workflow trains on one):

* one call of ``forward`` at the training shapes, eager against ``torch.compile`` (inductor,
  static shapes), without gradients and with the backward pass, median of ``--calls``;
* the whole training step (:func:`alfi.meta_step.batch_loss` then
  :func:`alfi.meta_step.apply_gradients`) with ``forward`` eager or compiled, median and quartiles
  of ``--steps`` steps after ``--warmup`` (the warm-up's seconds, compilation included, in the
  CSV; the compiled graphs of the first measurement are reused from the cache).

Everything is measured ``--repeats`` times, one simulator after another, to show the spread.

    python docs/studies/cpu_compile.py --out docs/studies/cpu_compile

Writes ``OUT/cpu_compile.csv`` (one row per simulator and measurement) and ``OUT/summary.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from alfi import proposal
from alfi.columns import MAIN_VARIANT
from alfi.config import config_path, load_config, settings_for
from alfi.data import make_dataset, make_generator
from alfi.io import MetaDataset
from alfi.meta_step import apply_gradients, batch_loss
from alfi.simulators import Simulator, get_simulator
from alfi.train import build_model

SIMULATORS = ("poisson", "linear_regression", "multivariate", "weinberg")
N_PROBLEMS = 256


def _median_ms(run: Callable[[], None], calls: int, warmup: int) -> tuple[float, float, float]:
    """Median, first and third quartile of ``calls`` timed calls after ``warmup`` untimed."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        times.append(1e3 * (time.perf_counter() - start))
    q1, _, q3 = statistics.quantiles(times, n=4)
    return statistics.median(times), q1, q3


def _problem(name: str, n_problems: int) -> tuple[dict, dict, Simulator, MetaDataset]:
    """``name``'s settings in ``config.yaml`` (overrides applied), its training settings, the
    simulator and ``n_problems`` problems to draw meta-batches from."""
    settings = settings_for(load_config(config_path("laptop")), name, MAIN_VARIANT)
    sim = get_simulator(name)
    data = make_dataset(sim, n_problems, settings["dataset"]["n_real"], seed=1, device="cpu")
    return settings, settings["train"], sim, data


def forward_calls(name: str, calls: int) -> list[dict]:
    """One ``forward`` at the training shapes, eager and compiled, with and without backward."""
    settings, cfg, sim, data = _problem(name, 64)
    model = build_model(sim, settings, data)
    generator = make_generator(2, "cpu")
    batch = cfg["meta_batch"]
    psi = proposal.initial((batch,), sim.theta_dim, generator, cfg["initial_log_scale"])
    psi.requires_grad_()
    with torch.no_grad():
        context = model.real_context(model.encode(sim, data.x[:batch]))
        theta, x = model.propose(
            sim, psi, n_theta=cfg["n_theta"], n_sim=cfg["n_sim"], generator=generator
        )
    state = torch.zeros(batch, model.config.recurrent)
    rows = []
    for compiled in (False, True):
        forward = torch.compile(model.forward, dynamic=False) if compiled else model.forward

        def inference(forward=forward) -> None:
            with torch.no_grad():
                forward(sim, context, psi, state, theta, x)

        def with_backward(forward=forward) -> None:
            new_psi, new_state = forward(sim, context, psi, state, theta, x)
            (new_psi.sum() + new_state.sum()).backward()

        for label, run in (("forward", inference), ("forward + backward", with_backward)):
            median, q1, q3 = _median_ms(run, calls, warmup=5)
            rows.append(dict(measure=label, compiled=compiled, ms=median, q1=q1, q3=q3))
    return rows


def training_steps(name: str, steps: int, warmup: int) -> list[dict]:
    """The training step with ``forward`` eager, then compiled (a fresh model each time)."""
    settings, cfg, sim, data = _problem(name, N_PROBLEMS)
    rows = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = build_model(sim, settings, data)
        if compiled:
            model.forward = torch.compile(model.forward, dynamic=False)
        optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        generator = make_generator(2, "cpu")
        theta = model.standardise_theta(data.theta)

        def step(model=model, optimiser=optimiser, generator=generator, theta=theta) -> None:
            index = torch.randint(0, len(data), (cfg["meta_batch"],), generator=generator)
            loss = batch_loss(model, sim, data.x[index], theta[index], cfg=cfg, generator=generator)
            apply_gradients(model, optimiser, loss, cfg["grad_clip"])

        start = time.perf_counter()
        for _ in range(warmup):
            step()
        warmup_s = time.perf_counter() - start
        median, q1, q3 = _median_ms(step, steps, warmup=0)
        rows.append(
            dict(measure="training step", compiled=compiled, ms=median, q1=q1, q3=q3,
                 warmup_s=warmup_s)
        )  # fmt: skip
    return rows


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per simulator and measure: eager and compiled ms and eager / compiled, medians
    over the repeats, and the speed-up of each repeat."""
    per_repeat = frame.pivot_table(
        index=["simulator", "measure", "repeat"], columns="compiled", values="ms"
    )
    per_repeat["speed-up"] = per_repeat[False] / per_repeat[True]
    grouped = per_repeat.groupby(level=["simulator", "measure"])
    table = grouped[[False, True, "speed-up"]].median()
    table.columns = ["eager ms", "compiled ms", "speed-up"]
    table["speed-up, each repeat"] = grouped["speed-up"].agg(
        lambda s: " / ".join(f"{v:.2f}" for v in s)
    )
    return table.reset_index().round(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/studies/cpu_compile"))
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for repeat in range(args.repeats):
        for name in args.simulators:
            measured = forward_calls(name, args.calls) + training_steps(
                name, args.steps, args.warmup
            )
            for row in measured:
                rows.append(
                    dict(simulator=name, repeat=repeat, threads=args.threads,
                         torch=torch.__version__, **row)
                )  # fmt: skip
            print(f"{name}, repeat {repeat}: done", flush=True)
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "cpu_compile.csv", index=False)
    summary = summarise(frame)
    (args.out / "summary.md").write_text(summary.to_markdown(index=False) + "\n")
    print(summary.to_markdown(index=False))


if __name__ == "__main__":
    main()
