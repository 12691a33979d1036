"""The workflow's stages: what each one's outputs depend on, and which models train together.

A stage's settings stamp (``results/settings/{simulator}/{stage}.yaml``, written by the
workflow's ``stage_settings`` rule) holds exactly the part of the config that stage reads
(:func:`stage_settings`): the workflow reruns a stage's jobs when, and only when, its stamp
changes. :func:`training_sets` splits a simulator's models ``(variant, seed)`` into the groups
whose training settings agree, which may train together as one ensemble; :func:`variants_for`
names the variants a config trains for a simulator. (The code a stage's jobs run is
:data:`alfi.provenance.STAGE_MODULES`', keyed by the workflow's job kinds.)
"""

from __future__ import annotations

import json
from typing import Any

from alfi.config import settings_for

__all__ = ["STAGES", "SHARED_MODEL_KEYS", "stage_settings", "training_sets", "variants_for"]

#: The settings stamps, one per stage kind: each holds what that stage's outputs depend on besides
#: code and input files (the MLE and the datasets share ``data``; the prior-mean control is
#: stamped by ``reference``).
STAGES = ("data", "train", "evaluate", "regressor", "npe", "abc_smc", "reference", "posterior")

#: The model settings each amortised baseline shares with ALFI: the regressor is ALFI's
#: observation encoder (sizes, pooling, squash) with a head of ``hidden`` units; NPE's embedding
#: takes the sizes only (it reads its own squash and pooling, ``baselines.npe.squash`` and
#: ``baselines.npe.pooling``). The rest of ``model`` (the recurrent update, its bounds and score
#: input) is ALFI's alone.
SHARED_MODEL_KEYS = {
    "regressor": ("encoding", "hidden", "x_hidden", "pooling", "squash"),
    "npe": ("encoding", "hidden", "x_hidden"),
}


def stage_settings(
    config: dict[str, Any], simulator: str, stage: str, variant: str | None = None
) -> dict[str, Any]:
    """The settings one workflow stage of ``simulator`` depends on, and nothing else.

    ``data`` (meta-datasets and the MLE): the root seed, device, dataset sizes and how many
    problems keep their samples; ``train``: the root seed, device, model and training settings
    except how often checkpoints are written (no effect on the result); ``evaluate``: the root
    seed, device, evaluation settings and the ``T_test`` values (evaluated together);
    ``regressor`` and ``npe`` (the amortised baselines): the root seed, device, the model
    settings each shares with ALFI (:data:`SHARED_MODEL_KEYS`), its own settings (the
    regressor's also the meta-batch size, its mini-batch) and the draws' and C2ST's;
    ``abc_smc``: the root seed, device, its settings but the budgets (which name each run's
    outputs, as the training shares do the amortised runs') and the draws' and C2ST's;
    ``reference`` (the prior-mean control, scored against the exact
    posterior): the root seed, device and the draws' and C2ST's settings; ``posterior`` (the
    exact posterior itself, which no C2ST scores): the root seed, device, how many draws and
    how many problems keep their samples. A setting changes a stage's
    outputs only through these, which is what lets the workflow rerun exactly the jobs a change
    concerns. ``variant``: the training settings of that variant's models (``train`` only), so
    that a variant's override retrains that variant alone.
    """
    if variant is not None and stage != "train":
        raise ValueError(f"only the train stage is per variant; got variant for {stage!r}")
    resolved = settings_for(config, simulator, variant)
    common = {"seed": config["seed"], "device": config["device"]}
    if stage == "data":
        return {
            **common,
            "dataset": resolved["dataset"],
            "histograms": resolved["evaluate"]["histograms"],
        }
    if stage == "train":
        train = {k: v for k, v in resolved["train"].items() if k != "checkpoint_every"}
        return {**common, "model": resolved["model"], "train": train}
    if stage == "evaluate":  # every T_test comes from one unroll to the largest
        return {**common, "evaluate": resolved["evaluate"], "t_test": config["t_test"]}
    ev = resolved["evaluate"]
    kept = {k: ev[k] for k in ("draws", "c2st_problems", "c2st_trees", "histograms")}
    # Training shares and ABC budgets name the runs (paths), so adding one reruns no other.
    baselines = resolved["baselines"]
    if stage in SHARED_MODEL_KEYS:
        model = resolved["model"]
        batch = {"meta_batch": resolved["train"]["meta_batch"]} if stage == "regressor" else {}
        return {
            **common,
            "model": {k: model[k] for k in SHARED_MODEL_KEYS[stage] if k in model},
            **batch,
            "baselines": {stage: baselines[stage]},
            **kept,
        }
    if stage == "abc_smc":
        abc = {k: v for k, v in baselines["abc_smc"].items() if k != "budgets"}
        return {**common, "baselines": {"abc_smc": abc}, **kept}
    if stage == "reference":
        return {**common, **kept}
    if stage == "posterior":
        return {**common, "draws": ev["draws"], "histograms": ev["histograms"]}
    raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")


def training_sets(
    config: dict[str, Any], simulator: str, members: list[tuple[str, int]]
) -> list[list[tuple[str, int]]]:
    """``members`` ``(variant, seed)`` split by the training settings of their variant (the
    ``train`` stage's, per variant: :func:`stage_settings`), in order of first appearance: the
    models that may train together as one ensemble."""
    sets: dict[str, list[tuple[str, int]]] = {}
    for variant, seed in members:
        key = json.dumps(stage_settings(config, simulator, "train", variant), sort_keys=True)
        sets.setdefault(key, []).append((variant, seed))
    return list(sets.values())


def variants_for(config: dict[str, Any], simulator: str) -> list[str]:
    """Variants (``loss-weighting``) trained for ``simulator``."""
    return list(config["variants"].get(simulator, config["variants"].get("default", ["nll-exp"])))
