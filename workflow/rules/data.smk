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


# A stage's jobs take its code stamp as input, so they rerun exactly when the code that decides
# their numbers changes (an edit of a comment, a docstring or the layout changes no digest:
# alfi.provenance.code_stamp). The stamp is a job's output with the digest as params, not a file
# written when the workflow is parsed: every cluster job parses the workflow, and a stamp
# rewritten there while an older job still ran made that job's output look current.
rule code_stamp:
    output:
        CODE,
    log:
        f"{RESULTS}/logs/code_stamps/{{simulator}}_{{code_stage}}.log",
    benchmark:
        f"{RESULTS}/logs/code_stamps/{{simulator}}_{{code_stage}}.benchmark.tsv"
    priority: SETUP_PRIORITY
    localrule: True
    conda:
        "../../envs/alfi.yaml"
    params:
        stamp=lambda wildcards: stage_code_stamp(
            wildcards.simulator, wildcards.code_stage
        ),
    script:
        "../scripts/write_code_stamp.py"


rule report_code_stamp:
    output:
        REPORT_CODE,
    log:
        f"{RESULTS}/logs/code_stamps/{{report}}.log",
    benchmark:
        f"{RESULTS}/logs/code_stamps/{{report}}.benchmark.tsv"
    priority: SETUP_PRIORITY
    localrule: True
    conda:
        "../../envs/alfi.yaml"
    params:
        stamp=lambda wildcards: report_code_stamp(wildcards.report),
    script:
        "../scripts/write_code_stamp.py"


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
