"""Report: tables against direct pandas computations, figure files and labels, bad inputs."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alfi import calibration, comparison, figures, histograms, report, tables
from alfi import metrics as alfi_metrics
from alfi.io import InputError, write_parquet

PARAMETERS = {"poisson": ["log_rate"], "weinberg": ["beam_energy", "fermi_constant"]}
BOUNDS = {"poisson": ([-1.0], [2.0]), "weinberg": ([40.0, 0.5], [50.0, 1.5])}
VARIANTS = ["nll-exp", "mse-last"]
SEEDS = [0, 1]
T_TESTS = [15, 30]
N_PROBLEMS = 20


def _asymmetry(theta: np.ndarray) -> np.ndarray:
    return np.tanh(theta[..., 0] / 50.0 - theta[..., 1])


def make_results(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Synthetic ``estimates``, ``metrics``, ``samples`` with errors shrinking along ``t``."""
    rng = np.random.default_rng(seed)
    est, met, smp = [], [], []
    for sim, names in PARAMETERS.items():
        low, high = (
            np.asarray(b, float) for b in BOUNDS.get(sim, ([0.0] * len(names), [1.0] * len(names)))
        )
        truth = rng.uniform(low, high, size=(N_PROBLEMS, len(names)))
        scale = (high - low) / 4
        derived = sim == "weinberg"
        runs = [("alfi", v, s, t) for v in VARIANTS for s in SEEDS for t in T_TESTS]
        for method, variant, run_seed, t_test in [*runs, ("mle", "exact", 0, 0)]:
            keys = {
                "simulator": sim,
                "method": method,
                "variant": variant,
                "seed": run_seed,
                "t_test": t_test,
                "fingerprint": "abc",
            }
            ts = np.arange(t_test + 1)
            quality = 1.0 if variant == "nll-exp" else 1.5
            spread = (0.1 * quality + np.exp(-ts / 4))[:, None, None] * scale
            if method == "mle":
                spread = np.full((1, 1, len(names)), 0.12) * scale
            value = truth + rng.normal(size=(len(ts), N_PROBLEMS, len(names))) * spread
            sigma = np.broadcast_to(spread, value.shape) * rng.uniform(0.7, 1.4, value.shape)
            if method == "mle":
                sigma = np.full(value.shape, np.nan)
            cols = {"name": names, "true": truth, "est": value, "sig": sigma}
            if derived:
                cols = {
                    "name": [*names, "asymmetry"],
                    "true": np.concatenate([truth, _asymmetry(truth)[:, None]], -1),
                    "est": np.concatenate([value, _asymmetry(value)[..., None]], -1),
                    "sig": np.concatenate([sigma, np.full((*value.shape[:2], 1), np.nan)], -1),
                }
            shape = cols["est"].shape
            est.append(
                pd.DataFrame(
                    {
                        "problem": np.broadcast_to(
                            np.arange(N_PROBLEMS)[None, :, None], shape
                        ).ravel(),
                        "t": np.broadcast_to(ts[:, None, None], shape).ravel(),
                        "parameter": np.broadcast_to(np.array(cols["name"], object), shape).ravel(),
                        "derived": np.broadcast_to(
                            np.array([c == "asymmetry" for c in cols["name"]]), shape
                        ).ravel(),
                        "true": np.broadcast_to(cols["true"][None], shape).ravel(),
                        "estimate": cols["est"].ravel(),
                        "sigma": cols["sig"].ravel(),
                        "truth_quantile": np.nan,
                    }
                ).assign(**keys)
            )
            calls = 0.0 if method == "mle" else 64.0 * t_test
            met.append(
                pd.DataFrame(
                    {
                        "problem": np.tile(np.arange(N_PROBLEMS), 2),
                        "metric": np.repeat(["ks_distance", "simulations"], N_PROBLEMS),
                        "value": np.concatenate(
                            [rng.uniform(0.02, 0.1, N_PROBLEMS), np.full(N_PROBLEMS, calls)]
                        ),
                    }
                ).assign(**keys)
            )
            if derived and method == "alfi":
                for problem in range(3):
                    real = np.clip(rng.normal(truth[problem, 1] - 1, 0.5, 300), -1, 1)
                    fake = np.clip(rng.normal(value[-1, problem, 1] - 1, 0.5, 300), -1, 1)
                    for source, x in (("real", real), ("simulated", fake)):
                        smp.append(
                            pd.DataFrame(
                                {"problem": problem, "source": source, "coordinate": 0, "value": x}
                            ).assign(**keys)
                        )
    frames = [pd.concat(f, ignore_index=True) for f in (est, met, smp)]
    for frame in frames:
        frame[["seed", "t_test"]] = frame[["seed", "t_test"]].astype("int64")
    return frames[0], frames[1], frames[2].drop(columns="fingerprint")


@pytest.fixture(scope="module")
def results() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return make_results()


def _direct_final(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per (simulator, method, variant, seed, t_test, problem) final RMSE, written out plainly."""
    rows = estimates[
        (estimates["t"] == estimates["t_test"]) & (estimates["parameter"] != "asymmetry")
    ].copy()
    rows["sq"] = (rows["estimate"] - rows["true"]) ** 2
    keys = ["simulator", "method", "variant", "seed", "t_test", "problem"]
    return (rows.groupby(keys)["sq"].mean() ** 0.5).rename("rmse").reset_index()


def test_summary_matches_direct_computation(results) -> None:
    estimates, metrics, _ = results
    summary = alfi_metrics.summary_table(estimates, metrics, t_train=15).set_index(
        ["simulator", "t_test"]
    )
    assert sorted(summary.index) == [(s, t) for s in ("poisson", "weinberg") for t in T_TESTS]
    final = _direct_final(estimates)
    for sim in PARAMETERS:
        mle = final[(final["simulator"] == sim) & (final["method"] == "mle")]["rmse"]
        for t_test in T_TESTS:
            row = summary.loc[(sim, t_test)]
            alfi = final[
                (final["simulator"] == sim)
                & (final["variant"] == "nll-exp")
                & (final["t_test"] == t_test)
            ]["rmse"]
            assert len(alfi) == len(SEEDS) * N_PROBLEMS
            assert row["alfi_mean"] == pytest.approx(alfi.mean())
            assert row["alfi_median"] == pytest.approx(alfi.median())
            assert row["alfi_iqr"] == pytest.approx(alfi.quantile(0.75) - alfi.quantile(0.25))
            assert row["mle_mean"] == pytest.approx(mle.mean())
            assert row["mle_iqr"] == pytest.approx(mle.quantile(0.75) - mle.quantile(0.25))
            assert row["ratio"] == pytest.approx(alfi.mean() / mle.mean())
            seed_means = (
                final[
                    (final["simulator"] == sim)
                    & (final["variant"] == "nll-exp")
                    & (final["t_test"] == t_test)
                ]
                .groupby("seed")["rmse"]
                .mean()
            )
            assert row["n_seeds"] == len(SEEDS)
            assert row["alfi_mean_sd"] == pytest.approx(seed_means.std(ddof=1))
            assert row["ratio_sd"] == pytest.approx(seed_means.std(ddof=1) / mle.mean())
            assert row["alfi_calls"] == pytest.approx(64.0 * t_test)
            assert row["mle_calls"] == 0.0
            assert row["extrapolated"] == (t_test > 15)
            ks = metrics[(metrics["simulator"] == sim) & (metrics["metric"] == "ks_distance")]
            sel = (ks["variant"] == "nll-exp") & (ks["t_test"] == t_test)
            assert row["alfi_ks"] == pytest.approx(ks.loc[sel, "value"].mean())
            assert row["mle_ks"] == pytest.approx(ks.loc[ks["method"] == "mle", "value"].mean())
    asym = estimates[
        (estimates["parameter"] == "asymmetry")
        & (estimates["t"] == 30)
        & (estimates["t_test"] == 30)
        & (estimates["variant"] == "nll-exp")
    ]
    expected = (asym["estimate"] - asym["true"]).abs().mean()
    assert summary.loc[("weinberg", 30), "alfi_asym"] == pytest.approx(expected)
    assert np.isnan(summary.loc[("poisson", 30), "alfi_asym"])
    mle_asym = estimates[(estimates["parameter"] == "asymmetry") & (estimates["method"] == "mle")]
    mle_error = (mle_asym["estimate"] - mle_asym["true"]).abs().mean()
    per_seed = (asym["estimate"] - asym["true"]).abs().groupby(asym["seed"]).mean() / mle_error
    assert summary.loc[("weinberg", 30), "asym_ratio"] == pytest.approx(per_seed.mean())
    assert summary.loc[("weinberg", 30), "asym_ratio_sd"] == pytest.approx(per_seed.std(ddof=1))
    # 90 % coverage per seed from the Gaussian (the synthetic runs keep no draws)
    final_rows = estimates[
        (estimates["simulator"] == "poisson")
        & (estimates["variant"] == "nll-exp")
        & (estimates["t_test"] == 15)
        & (estimates["t"] == 15)
    ]
    inside = (final_rows["estimate"] - final_rows["true"]).abs() <= 1.6448536 * final_rows["sigma"]
    cover = inside.groupby(final_rows["seed"]).mean()
    row = summary.loc[("poisson", 15)]
    assert row["alfi_cover90"] == pytest.approx(cover.mean())
    assert (row["alfi_cover90_min"], row["alfi_cover90_max"]) == (cover.min(), cover.max())


@pytest.mark.parametrize(("t_train", "t_used"), [(15, 15), (30, 30), (20, 15)])
def test_ablation_matches_direct_computation(results, t_train: int, t_used: int) -> None:
    estimates = results[0]
    ablation = alfi_metrics.ablation_table(estimates, t_train=t_train).set_index(
        ["simulator", "variant"]
    )
    final = _direct_final(estimates[estimates["method"] == "alfi"])
    for sim in PARAMETERS:
        for variant in VARIANTS:
            part = final[
                (final["simulator"] == sim)
                & (final["variant"] == variant)
                & (final["t_test"] == t_used)
            ]
            per_seed = part.groupby("seed")["rmse"].mean()
            row = ablation.loc[(sim, variant)]
            assert row["t_test"] == t_used
            assert row["mean"] == pytest.approx(per_seed.mean())
            assert row["std"] == pytest.approx(per_seed.std(ddof=1))
            assert row["n_seeds"] == len(SEEDS)
    assert list(ablation.loc["poisson"].index) == ["mse-last", "nll-exp"]


def test_coverage_matches_direct_computation(results) -> None:
    estimates = results[0]
    cov = calibration.coverage(estimates).set_index(["simulator", "level"])
    rows = estimates[
        (estimates["simulator"] == "poisson")
        & (estimates["variant"] == "nll-exp")
        & (estimates["t_test"] == 30)
        & (estimates["t"] == 30)
    ]
    inside = (rows["estimate"] - rows["true"]).abs() <= 1.959963984540054 * rows["sigma"]
    assert cov.loc[("poisson", 0.95), "coverage"] == pytest.approx(inside.mean())
    assert cov.loc[("weinberg", 0.5), "n"] == len(SEEDS) * N_PROBLEMS * 2  # asymmetry left out


def test_table_files(results, tmp_path: Path) -> None:
    estimates, metrics, _ = results
    paths = _write_inputs(results, tmp_path)
    written = report.write_tables(paths["estimates"], paths["metrics"], tmp_path / "tables")
    names = sorted(p.name for p in written)
    tables_written = ("ablation", "ablation_contrasts", "methods", "summary")
    assert names == [f"{n}.{x}" for n in tables_written for x in ("md", "tex")]
    # nll-exp and mse-last share neither loss nor weighting: no contrast, the header alone
    contrasts_md = (tmp_path / "tables" / "ablation_contrasts.md").read_text().splitlines()
    assert contrasts_md[0].startswith("| simulator") and "paired over seeds" in contrasts_md[0]
    assert len([line for line in contrasts_md if line.startswith("|")]) == 2
    methods_md = (tmp_path / "tables" / "methods.md").read_text().splitlines()
    # one row per simulator and entry: the MLE, and ALFI at each T_test (4 summary rows)
    assert len([line for line in methods_md if line.startswith("| ")]) == 1 + 4 + 2
    summary_md = (tmp_path / "tables" / "summary.md").read_text().splitlines()
    assert summary_md[0].startswith("| simulator") and "ALFI/MLE (means)" in summary_md[0]
    assert len([line for line in summary_md if line.startswith("|")]) == 2 + 4
    # two seeds: ALFI's mean and the ratios as mean ± sd, the coverage as mean (range)
    header = [cell.strip() for cell in summary_md[0].strip("|").split("|")]
    cells = dict(zip(header, (c.strip() for c in summary_md[2].strip("|").split("|")), strict=True))
    assert (
        cells["seeds"] == "2" and " ± " in cells["ALFI mean"] and " ± " in cells["ALFI/MLE (means)"]
    )
    assert re.fullmatch(r"[0-9.]+ \([0-9.]+–[0-9.]+\)", cells["ALFI 90 % cover"]), cells
    ablation_md = (tmp_path / "tables" / "ablation.md").read_text()
    assert " ± " in ablation_md and "mse-last" in ablation_md
    tex = (tmp_path / "tables" / "ablation.tex").read_text()
    assert r"\begin{tabular}{lrrr}" in tex and r"$\pm$" in tex and r"\caption{" in tex
    assert "±" not in tex and "T\\_test" in tex


def test_markdown_and_latex_formatters() -> None:
    frame = pd.DataFrame({"name": ["a_b", "c"], "value": ["1.5", "10 & 2"]})
    assert tables.to_markdown(frame).splitlines() == [
        "| name   |   value |",
        "|:-------|--------:|",
        "| a_b    |     1.5 |",
        "| c      |  10 & 2 |",
    ]
    assert tables.to_latex(frame).splitlines() == [
        r"\begin{tabular}{lr}",
        r"\toprule",
        r"name & value \\",
        r"\midrule",
        r"a\_b & 1.5 \\",
        r"c & 10 \& 2 \\",
        r"\bottomrule",
        r"\end{tabular}",
    ]
    wrapped = tables.to_latex(pd.DataFrame({"x > y": ["1 ± 2", "–"]}), "a_b").splitlines()
    assert wrapped[:3] == [r"\begin{table}[t]", r"\centering", r"\small"]
    assert wrapped[7:9] == [r"1 $\pm$ 2 \\", r"-- \\"] and wrapped[5] == r"x $>$ y \\"
    assert wrapped[-2:] == [r"\caption{a\_b}", r"\end{table}"]


def test_figures(results, tmp_path: Path) -> None:
    estimates, _, samples = results
    written = figures.write_figures(estimates, samples, tmp_path, t_train=15)
    stems = [
        "poisson_trajectory",
        "poisson_boxplot",
        "weinberg_trajectory",
        "weinberg_boxplot",
        "weinberg_histograms",
        "weinberg_asymmetry",
        "ablation",
        "calibration",
    ]
    expected = {tmp_path / f"{stem}.{ext}" for stem in stems for ext in ("png", "pdf")}
    assert set(written) == expected
    for path in expected:
        assert path.stat().st_size > 1000, path
    assert not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "ablation.pdf").read_bytes()[:5] == b"%PDF-"


def test_figure_labels(results) -> None:
    estimates, _, samples = results
    ax = figures.trajectory_figure(estimates, "poisson", t_train=15).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("iteration t", "RMSE (log scale)")
    assert ax.get_xlim() == (0, 30)
    assert "MLE (mean)" in ax.get_legend_handles_labels()[1]
    assert "mean of one seed" in ax.get_legend_handles_labels()[1]
    assert len(ax.get_lines()) == 1 + len(SEEDS) + 2  # mean, one per seed, MLE and T_train
    ax = figures.boxplot_figure(estimates, "poisson").axes[0]
    assert ax.get_ylabel() == "final RMSE"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ALFI\nT=15", "ALFI\nT=30", "MLE"]
    # a marker per seed on each ALFI box; the MLE, one run, has none
    assert [len(c.get_offsets()) for c in ax.collections] == [len(SEEDS)] * len(T_TESTS)
    assert ax.get_title() == f"poisson (nll-exp, {len(SEEDS)} seeds)"
    fig = histograms.histogram_figure(estimates, samples, "weinberg")
    assert len(fig.axes) == 3 and fig.axes[0].get_ylabel() == "density"
    assert fig.axes[0].get_title().startswith("true [") and "inferred [" in fig.axes[0].get_title()
    ax = figures.asymmetry_figure(estimates, "weinberg").axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("iteration t", "|error| on asymmetry (log scale)")
    fig = figures.ablation_figure(estimates)
    assert [a.get_ylabel() for a in fig.axes] == ["final RMSE"] * 2
    fig = figures.calibration_figure(estimates)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("nominal level", "coverage − nominal")
    legends = [a.get_legend() for a in fig.axes if a.get_legend() is not None]
    assert [lg.get_title().get_text() for lg in legends] == ["band: range over seeds"]
    labels = [t.get_text() for t in legends[0].get_texts()]
    assert labels == ["ideal", "alfi (T=15)", "alfi (T=30)"]
    one_seed = figures.calibration_figure(estimates[estimates["seed"] == 0])
    assert [a.get_legend().get_title().get_text() for a in one_seed.axes if a.get_legend()] == [""]


def test_calibration_figure_sets_the_baselines_apart(results) -> None:
    """ALFI beside the exact posterior and the prior in the first row, the other methods beside
    the exact posterior in the second, one legend per row (its band title only where a method
    of the row has several seeds); the curves are coverage minus the nominal level. The
    synthetic ALFI's Poisson rows of seed 0 stand in for the other methods, which the other
    simulators lack: their second-row panels stay empty."""
    estimates = results[0]
    alfi = estimates[(estimates["method"] == "alfi") & (estimates["variant"] == "nll-exp")]
    seed0 = alfi[(alfi["t_test"] == 15) & (alfi["seed"] == 0) & (alfi["simulator"] == "poisson")]
    others = [
        seed0.assign(method=method, variant=variant)
        for method, variant in [("posterior", "-"), ("prior_mean", "-"), ("npe", "n100")]
    ]
    fig = figures.calibration_figure(pd.concat([estimates, *others], ignore_index=True))
    sims = sorted(estimates["simulator"].unique())
    assert len(sims) > 1 and len(fig.axes) == 2 * len(sims)
    legends = [a.get_legend() for a in fig.axes if a.get_legend() is not None]
    labels = [[t.get_text() for t in lg.get_texts()] for lg in legends]
    first = ["ideal", "alfi (T=15)", "alfi (T=30)", "posterior", "prior_mean"]
    assert labels == [first, ["ideal", "npe (n=100)", "posterior"]]
    assert [lg.get_title().get_text() for lg in legends] == ["band: range over seeds", ""]
    other = next(sim for sim in sims if sim != "poisson")
    assert [line.get_label() for line in fig.axes[len(sims) + sims.index(other)].get_lines()] == [
        "ideal"
    ]
    table = comparison.calibration_table(estimates)
    row = table[(table["method"] == "alfi (T=15)") & (table["simulator"] == other)]
    mean = row.groupby("level")["coverage"].mean()
    expected = mean.to_numpy() - mean.index.to_numpy()
    curves = [
        np.asarray(line.get_ydata(), dtype=float)
        for line in fig.axes[sims.index(other)].get_lines()
    ]
    assert any(c.shape == expected.shape and np.allclose(c, expected) for c in curves)
    with pytest.raises(ValueError, match="no calibration"):
        figures.calibration_figure(others[0])


def _panels(fig) -> list:
    """The data panels of a figure (the legend is drawn on the figure, not on an axis)."""
    return [ax for ax in fig.axes if ax.get_xlabel()]


def test_histograms_draw_exact_densities(results) -> None:
    """Over the real data: p(x | theta*) and p(x | theta-hat) on a grid over Weinberg's [-1, 1],
    each a density (trapezoid rule), the truth's the exact one; no simulated histogram."""
    import torch

    from alfi.simulators.weinberg import asymmetry, log_density

    estimates, _, samples = results
    fig = histograms.histogram_figure(estimates, samples, "weinberg")
    panels = _panels(fig)
    assert len(panels) == 3
    finals = estimates[
        (estimates["simulator"] == "weinberg")
        & (estimates["variant"] == "nll-exp")
        & (estimates["seed"] == 0)
        & (estimates["t"] == estimates["t_test"])
        & (estimates["t_test"] == 30)
    ]
    for problem, ax in enumerate(panels):
        lines = ax.get_lines()
        labels = [line.get_label() for line in lines]
        assert len(lines) == 2 and "theta^*" in labels[0] and "hat" in labels[1], labels
        for line in lines:
            x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
            assert (x[0], x[-1]) == (-1.0, 1.0) and len(x) > 100 and (y >= 0).all()
            assert np.trapezoid(y, x) == pytest.approx(1.0, abs=2e-3)
        truth = finals[(finals["problem"] == problem) & ~finals["derived"]]
        theta = truth.set_index("parameter")["true"].loc[["beam_energy", "fermi_constant"]]
        a = asymmetry(torch.tensor(theta.to_numpy()))
        x = torch.tensor(np.asarray(lines[0].get_xdata()))
        np.testing.assert_allclose(lines[0].get_ydata(), log_density(x, a).exp(), rtol=1e-6)
        # One histogram only (the real data: 300 points, ceil(2 * 300^(1/3)) = 14 bins), filled:
        # the simulated one is not drawn.
        assert {type(p).__name__ for p in ax.patches} == {"Rectangle"} and len(ax.patches) == 14
    legend = fig.legends[0].get_texts()
    assert [t.get_text() for t in legend][0] == "real x" and len(legend) == 3


def test_histograms_discrete_and_fallback(results) -> None:
    """Counts get integer bins and the probability mass (sums to ~1); a simulator unknown here
    (a plugin not imported) gets the simulated histogram instead of densities."""
    estimates, _, samples = results
    rng = np.random.default_rng(1)
    keys = {"simulator": "poisson", "method": "alfi", "variant": "nll-exp", "seed": 0}
    truth = estimates[
        (estimates["simulator"] == "poisson") & (estimates["method"] == "alfi")
    ].query("variant == 'nll-exp' and seed == 0")
    rates = np.exp(truth.groupby("problem")["true"].first().to_numpy()[:2])
    counts = pd.concat(
        pd.DataFrame(
            {"problem": p, "source": s, "coordinate": 0, "value": rng.poisson(rates[p], 200)}
        ).assign(**keys, t_test=t)
        for p in range(2)
        for s in ("real", "simulated")
        for t in T_TESTS
    )
    fig = histograms.histogram_figure(estimates, counts, "poisson")
    assert fig.axes[0].get_ylabel() == "probability mass"
    for ax in _panels(fig):
        lines = ax.get_lines()
        assert len(lines) == 2
        for line in lines:
            x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
            assert np.array_equal(x, np.round(x)) and y.sum() == pytest.approx(1.0, abs=0.02)
        edges = [patch.get_x() for patch in ax.patches]
        assert np.allclose(np.asarray(edges) % 1, 0.5)  # bins centred on integers

    renamed = [
        frame.replace({"simulator": {"weinberg": "unregistered"}}) for frame in (estimates, samples)
    ]
    fig = histograms.histogram_figure(*renamed, "unregistered")
    for ax in _panels(fig):
        assert ax.get_lines() == []
        steps = [p for p in ax.patches if type(p).__name__ == "Polygon"]
        assert len(steps) == 1 and "simulated" in steps[0].get_label()


def _write_inputs(results, directory: Path) -> dict[str, Path]:
    paths = {}
    for name, frame in zip(("estimates", "metrics", "samples"), results, strict=True):
        paths[name] = directory / f"{name}.parquet"
        write_parquet(paths[name], frame)
    return paths


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    report.add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def _tables_argv(paths: dict[str, Path], out_dir: Path) -> list[str]:
    inputs = [f"--{name}={paths[name]}" for name in ("estimates", "metrics")]
    return ["tables", *inputs, "--out-dir", str(out_dir)]


def test_cli_commands(results, tmp_path: Path) -> None:
    paths = _write_inputs(results, tmp_path)
    args = _parse(_tables_argv(paths, tmp_path / "t"))
    assert args.t_train == 15
    args.run(args)
    assert (tmp_path / "t" / "summary.tex").stat().st_size > 0
    sub = results[0][results[0]["simulator"] == "poisson"]
    write_parquet(paths["estimates"], sub)
    args = _parse(
        [
            "figures",
            *[f"--{k}={v}" for k, v in paths.items()],
            "--out-dir",
            str(tmp_path / "f"),
            "--t-train",
            "20",
        ]
    )
    args.run(args)
    assert sorted(p.name for p in (tmp_path / "f").glob("*.png")) == [
        "ablation.png",
        "calibration.png",
        "methods.png",
        "poisson_boxplot.png",
        "poisson_trajectory.png",
    ]


def test_bad_inputs(results, tmp_path: Path) -> None:
    estimates, metrics, samples = results
    paths = _write_inputs((estimates.drop(columns="sigma"), metrics, samples), tmp_path)
    args = _parse(_tables_argv(paths, tmp_path / "t"))
    with pytest.raises(InputError, match="missing columns \\['sigma'"):
        args.run(args)
    with pytest.raises(InputError, match="empty"):
        alfi_metrics.summary_table(estimates.iloc[:0], metrics)
    with pytest.raises(InputError, match="no ALFI rows"):
        alfi_metrics.ablation_table(estimates[estimates["method"] == "mle"])
    with pytest.raises(InputError, match="variant 'nll-const'"):
        figures.write_figures(estimates, samples, tmp_path, variant="nll-const")
    assert not (tmp_path / "t").exists()
