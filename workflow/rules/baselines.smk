# Methods beside ALFI and the MLE (alfi.baselines), each on the same test problems.


rule posterior:
    input:
        settings=ancient(SETTINGS),
        stage=stage_file("posterior"),
        dataset=split_file("test"),
        code=code_file("posterior"),
    output:
        **{t: f"{RESULTS}/runs/{{simulator}}/posterior/{t}.parquet" for t in TABLES},
        draws=f"{RESULTS}/runs/{{simulator}}/posterior/draws.npz",
    log:
        f"{RESULTS}/logs/posterior/{{simulator}}.log",
    benchmark:
        f"{RESULTS}/logs/posterior/{{simulator}}.benchmark.tsv"
    conda:
        "../../envs/alfi.yaml"
    threads: RES["train_threads"]
    resources:
        mem_mb=RES["evaluate_mem_mb"],
        runtime=RES["evaluate_runtime"],
    shell:
        "alfi --quiet baseline --method posterior --config {input.settings}"
        " --simulator {wildcards.simulator} --threads {threads} --dataset {input.dataset}"
        " --draws-out {output.draws} --estimates {output.estimates}"
        " --metrics {output.metrics} --samples {output.samples} > {log} 2>&1"


rule prior_mean:
    input:
        settings=ancient(SETTINGS),
        stage=stage_file("reference"),
        dataset=split_file("test"),
        reference=reference_draws,
        code=code_file("prior_mean"),
    output:
        **{t: f"{RESULTS}/runs/{{simulator}}/prior_mean/{t}.parquet" for t in TABLES},
    log:
        f"{RESULTS}/logs/prior_mean/{{simulator}}.log",
    benchmark:
        f"{RESULTS}/logs/prior_mean/{{simulator}}.benchmark.tsv"
    conda:
        "../../envs/baselines.yaml"
    params:
        reference=reference_option,
    shell:
        "alfi --quiet baseline --method prior_mean --config {input.settings}"
        " --simulator {wildcards.simulator} --dataset {input.dataset} {params.reference}"
        " --estimates {output.estimates} --metrics {output.metrics}"
        " --samples {output.samples} > {log} 2>&1"


rule amortised:
    input:
        settings=ancient(SETTINGS),
        stage=method_stage_file,
        train=split_file("train"),
        dataset=split_file("test"),
        reference=reference_draws,
        code=code_file("{method}"),
    output:
        **{
            t: f"{RESULTS}/runs/{{simulator}}/{{method}}/n{{size}}/seed{{seed}}/{t}.parquet"
            for t in TABLES
        },
    log:
        f"{RESULTS}/logs/{{method}}/{{simulator}}_n{{size}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/logs/{{method}}/{{simulator}}_n{{size}}_seed{{seed}}.benchmark.tsv"
    # the larger training sets first, after the ALFI trainings (see training_updates)
    priority: lambda wildcards: int(wildcards.size) // 100
    conda:
        "../../envs/baselines.yaml"
    threads: RES["train_threads"]
    resources:
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
        gpu=GPU,
    params:
        reference=reference_option,
    shell:
        "alfi --quiet baseline --method {wildcards.method} --config {input.settings}"
        " --simulator {wildcards.simulator} --seed {wildcards.seed} --threads {threads}"
        " --train-dataset {input.train} --train-size {wildcards.size}"
        " --dataset {input.dataset} {params.reference}"
        " --estimates {output.estimates} --metrics {output.metrics}"
        " --samples {output.samples} > {log} 2>&1"


rule abc_smc:
    input:
        settings=ancient(SETTINGS),
        stage=stage_file("abc_smc"),
        dataset=split_file("test"),
        reference=reference_draws,
        code=code_file("abc_smc"),
    output:
        **{
            t: f"{RESULTS}/runs/{{simulator}}/abc_smc/budget{{budget}}/{t}.parquet"
            for t in TABLES
        },
    log:
        f"{RESULTS}/logs/abc_smc/{{simulator}}_budget{{budget}}.log",
    benchmark:
        f"{RESULTS}/logs/abc_smc/{{simulator}}_budget{{budget}}.benchmark.tsv"
    conda:
        "../../envs/baselines.yaml"
    threads: RES["train_threads"]
    resources:
        mem_mb=RES["evaluate_mem_mb"],
        runtime=RES["evaluate_runtime"],
    params:
        reference=reference_option,
    shell:
        "alfi --quiet baseline --method abc_smc --budget {wildcards.budget}"
        " --config {input.settings} --simulator {wildcards.simulator} --threads {threads}"
        " --dataset {input.dataset} {params.reference} --estimates {output.estimates}"
        " --metrics {output.metrics} --samples {output.samples} > {log} 2>&1"
