rule settings:
    output:
        f"{RESULTS}/settings/{{simulator}}.yaml",
    log:
        f"{RESULTS}/logs/settings/{{simulator}}.log",
    benchmark:
        f"{RESULTS}/logs/settings/{{simulator}}.benchmark.tsv"
    localrule: True
    conda:
        "../../envs/alfi.yaml"
    params:
        settings=lambda wildcards: settings(wildcards.simulator),
    script:
        "../scripts/write_settings.py"


rule dataset:
    input:
        settings=ancient(f"{RESULTS}/settings/{{simulator}}.yaml"),
        code=simulator_code,
    output:
        f"{RESULTS}/data/{{simulator}}/{{split}}.npz",
    log:
        f"{RESULTS}/logs/dataset/{{simulator}}_{{split}}.log",
    benchmark:
        f"{RESULTS}/logs/dataset/{{simulator}}_{{split}}.benchmark.tsv"
    conda:
        "../../envs/alfi.yaml"
    params:
        depends_on=data_settings,
    shell:
        "alfi --quiet dataset --config {input.settings} --simulator {wildcards.simulator}"
        " --split {wildcards.split} --out {output} > {log} 2>&1"
