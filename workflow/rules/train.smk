# Each model in its own job (resources.train_group_size: 1, the default), or groups of models of
# one simulator trained together in one job as one batched ensemble (alfi.train_ensemble).


if RES["train_group_size"] == 1:

    rule train:
        input:
            settings=ancient(SETTINGS),
            stage=train_stage_file("{variant}"),
            dataset=split_file("train"),
            code=code_file("train"),
        output:
            MODEL,
        log:
            f"{RESULTS}/logs/train/{{simulator}}_{{variant}}_seed{{seed}}.log",
        benchmark:
            f"{RESULTS}/logs/train/{{simulator}}_{{variant}}_seed{{seed}}.benchmark.tsv"
        priority: lambda wildcards: training_updates(wildcards.simulator, wildcards.variant)
        conda:
            "../../envs/alfi.yaml"
        threads: RES["train_threads"]
        resources:
            mem_mb=RES["train_mem_mb"],
            runtime=RES["train_runtime"],
            gpu=GPU,
        params:
            checkpoint=CHECKPOINT,
        shell:
            "alfi train --config {input.settings} --simulator {wildcards.simulator}"
            " --variant {wildcards.variant} --seed {wildcards.seed} --threads {threads}"
            " --dataset {input.dataset} --checkpoint {params.checkpoint} --out {output}"
            " > {log} 2>&1"

else:
    for simulator, index, members in training_groups():

        rule:
            name:
                f"train_{simulator}_group{index}"
            input:
                settings=ancient(expand(SETTINGS, simulator=simulator)),
                stage=sorted(
                    {
                        expand(train_stage_file(variant), simulator=simulator)[0]
                        for variant, _ in members
                    }
                ),
                dataset=expand(split_file("train"), simulator=simulator),
                code=code_file("train", simulator),
            output:
                [model_file(simulator, variant, seed) for variant, seed in members],
            log:
                f"{RESULTS}/logs/train/{simulator}_group{index}.log",
            benchmark:
                f"{RESULTS}/logs/train/{simulator}_group{index}.benchmark.tsv"
            priority: sum(training_updates(simulator, v) for v, _ in members)
            conda:
                "../../envs/alfi.yaml"
            threads: RES["train_threads"]
            resources:
                mem_mb=RES["train_mem_mb"],
                runtime=RES["train_runtime"],
                gpu=GPU,
            params:
                simulator=simulator,
                variants=[variant for variant, _ in members],
                seeds=[seed for _, seed in members],
                checkpoints=[
                    expand(
                        CHECKPOINT, simulator=simulator, variant=variant, seed=seed
                    )[0]
                    for variant, seed in members
                ],
            shell:
                "alfi train --config {input.settings} --simulator {params.simulator}"
                " --variant {params.variants} --seed {params.seeds} --threads {threads}"
                " --dataset {input.dataset} --checkpoint {params.checkpoints} --out {output}"
                " > {log} 2>&1"
