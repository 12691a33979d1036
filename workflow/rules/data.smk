rule stage_settings:
    output:
        f"{RESULTS}/settings/{{simulator}}/{{stage}}.yaml",
    log:
        f"{RESULTS}/logs/settings/{{simulator}}_{{stage}}.log",
    benchmark:
        f"{RESULTS}/logs/settings/{{simulator}}_{{stage}}.benchmark.tsv"
    priority: SETUP_PRIORITY
    localrule: True
    conda:
        "../../envs/alfi.yaml"
    params:
        settings=lambda wildcards: canonical(
            stage_settings(config, wildcards.simulator, wildcards.stage)
        ),
    script:
        "../scripts/write_settings.py"


rule variant_settings:
    output:
        f"{RESULTS}/settings/{{simulator}}/train_{{variant}}.yaml",
    log:
        f"{RESULTS}/logs/settings/{{simulator}}_train_{{variant}}.log",
    benchmark:
        f"{RESULTS}/logs/settings/{{simulator}}_train_{{variant}}.benchmark.tsv"
    priority: SETUP_PRIORITY
    localrule: True
    conda:
        "../../envs/alfi.yaml"
    params:
        settings=lambda wildcards: canonical(
            stage_settings(
                config, wildcards.simulator, "train", variant=wildcards.variant
            )
        ),
    script:
        "../scripts/write_settings.py"


rule dataset:
    input:
        settings=ancient(SETTINGS),
        stage=stage_file("data"),
        code=code_file("dataset"),
    output:
        f"{RESULTS}/data/{{simulator}}/{{split}}.npz",
    log:
        f"{RESULTS}/logs/dataset/{{simulator}}_{{split}}.log",
    benchmark:
        f"{RESULTS}/logs/dataset/{{simulator}}_{{split}}.benchmark.tsv"
    priority: SETUP_PRIORITY
    conda:
        "../../envs/alfi.yaml"
    shell:
        "alfi --quiet dataset --config {input.settings} --simulator {wildcards.simulator}"
        " --split {wildcards.split} --out {output} > {log} 2>&1"
