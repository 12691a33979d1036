rule evaluate:
    """Every T_test from one unroll to the largest (alfi.evaluate_alfi.run_alfi_horizons)."""
    input:
        settings=ancient(SETTINGS),
        stage=stage_file("evaluate"),
        model=MODEL,
        dataset=split_file("test"),
        reference=alfi_reference_draws,
        code=code_file("evaluate"),
    output:
        **{
            f"{table}_T{t}": expand(
                ALFI_RUN, t_test=t, table=table, allow_missing=True
            )[0]
            for t in T_TEST
            for table in TABLES
        },
    log:
        f"{RESULTS}/logs/evaluate/{{simulator}}_{{variant}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/logs/evaluate/{{simulator}}_{{variant}}_seed{{seed}}.benchmark.tsv"
    conda:
        EVALUATE_ENV
    threads: RES["train_threads"]
    resources:
        mem_mb=RES["evaluate_mem_mb"],
        runtime=RES["evaluate_runtime"],
        gpu=GPU,
    params:
        **{
            table: lambda wildcards, output, table=table: [
                output[f"{table}_T{t}"] for t in T_TEST
            ]
            for table in TABLES
        },
        reference=reference_option,
        t_test=T_TEST,
    shell:
        "alfi --quiet evaluate --config {input.settings} --model {input.model}"
        " --t-test {params.t_test} --dataset {input.dataset} --threads {threads}"
        " {params.reference}"
        " --estimates {params.estimates} --metrics {params.metrics}"
        " --samples {params.samples} > {log} 2>&1"


rule mle:
    input:
        settings=ancient(SETTINGS),
        stage=stage_file("data"),
        dataset=split_file("test"),
        code=code_file("mle"),
    output:
        **{t: f"{RESULTS}/runs/{{simulator}}/mle/{t}.parquet" for t in TABLES},
    log:
        f"{RESULTS}/logs/mle/{{simulator}}.log",
    benchmark:
        f"{RESULTS}/logs/mle/{{simulator}}.benchmark.tsv"
    conda:
        "../../envs/alfi.yaml"
    shell:
        "alfi --quiet mle --config {input.settings} --simulator {wildcards.simulator}"
        " --dataset {input.dataset} --estimates {output.estimates}"
        " --metrics {output.metrics} --samples {output.samples} > {log} 2>&1"


rule aggregate:
    input:
        lambda wildcards: run_tables(wildcards.table),
    output:
        f"{RESULTS}/{{table}}.parquet",
    log:
        f"{RESULTS}/logs/aggregate/{{table}}.log",
    benchmark:
        f"{RESULTS}/logs/aggregate/{{table}}.benchmark.tsv"
    localrule: True  # seconds of concatenation: not worth a cluster job
    conda:
        "../../envs/alfi.yaml"
    shell:
        "alfi aggregate {input} --out {output} > {log} 2>&1"
