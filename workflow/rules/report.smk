# Each simulator's training horizon (overrides included), as `alfi figures --t-train` reads it.
T_TRAIN = ",".join(
    f"{s}={settings_for(config, s)['train']['steps']}" for s in SIMULATORS
)


rule figures:
    input:
        **{t: expand(rules.aggregate.output[0], table=t) for t in TABLES},
        code=report_code_file("figures"),  # with the drawn simulators' code
    output:
        [
            report(
                f,
                caption=f"../report/figure_{kind}.rst",
                category="Figures",
                subcategory=kind,
            )
            for kind, files in figures_by_kind().items()
            for f in files
        ],
    log:
        f"{RESULTS}/logs/figures.log",
    benchmark:
        f"{RESULTS}/logs/figures.benchmark.tsv"
    conda:
        "../../envs/alfi.yaml"
    params:
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        t_train=T_TRAIN,
    shell:
        "alfi figures --estimates {input.estimates} --metrics {input.metrics}"
        " --samples {input.samples} --out-dir {params.out_dir} --t-train {params.t_train}"
        " > {log} 2>&1"


rule tables:
    input:
        **{
            t: expand(rules.aggregate.output[0], table=t)
            for t in ("estimates", "metrics")
        },
        code=report_code_file("tables"),
    output:
        [
            report(f, caption="../report/tables.rst", category="Tables")
            for f in table_files()
        ],
    log:
        f"{RESULTS}/logs/tables.log",
    benchmark:
        f"{RESULTS}/logs/tables.benchmark.tsv"
    localrule: True  # seconds of formatting: not worth a cluster job
    conda:
        "../../envs/alfi.yaml"
    params:
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        t_train=T_TRAIN,
    shell:
        "alfi tables --estimates {input.estimates} --metrics {input.metrics}"
        " --out-dir {params.out_dir} --t-train {params.t_train} > {log} 2>&1"


rule timing:
    """Where the run's time went: its jobs' benchmark files summed per method and simulator.
    Read, not declared as inputs: a removed results/logs must not rerun the jobs that wrote it
    (every job that reruns reruns the aggregation, and so this table)."""
    input:
        **{t: expand(rules.aggregate.output[0], table=t) for t in TABLES},
        code=report_code_file("timing"),
    output:
        jobs=f"{RESULTS}/timing.parquet",
        table=report(
            f"{RESULTS}/tables/timing.md",
            caption="../report/timing.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/timing.log",
    benchmark:
        f"{RESULTS}/logs/timing.benchmark.tsv"
    localrule: True  # a second of reading: not worth a cluster job
    conda:
        "../../envs/alfi.yaml"
    params:
        benchmarks=job_benchmarks(),
        simulators=",".join(SIMULATORS),
    shell:
        "alfi timing {params.benchmarks} --skip-missing --simulators {params.simulators}"
        " --out {output.jobs} --markdown {output.table} > {log} 2>&1"


rule bench:
    """Speed, memory and time-to-accuracy benchmarks (not part of `all`: `snakemake bench`)."""
    input:
        code=report_code_file("bench"),  # with the benched simulators' code
        paper="configs/paper.yaml",  # the settings benchmarked
    output:
        **{
            part: f"{RESULTS}/benchmarks/{part}.parquet"
            for part in config["bench"]["parts"]
        },
    log:
        f"{RESULTS}/logs/bench.log",
    benchmark:
        f"{RESULTS}/logs/bench.benchmark.tsv"
    conda:
        "../../envs/alfi.yaml"
    threads: RES["train_threads"]
    params:
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        device=config["device"],
        parts=",".join(config["bench"]["parts"]),
        quick="--quick" if config["bench"]["quick"] else "",
        poisson_seconds=config["bench"]["poisson_seconds"],
        weinberg_seconds=config["bench"]["weinberg_seconds"],
    shell:
        "alfi bench --device {params.device} --threads {threads} --only {params.parts}"
        " --poisson-seconds {params.poisson_seconds}"
        " --weinberg-seconds {params.weinberg_seconds} {params.quick}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule readme_figures:
    """Refresh the figures the README shows from the results (not part of `all`):
    `snakemake --cores all readme_figures`, so they never drift from the README's numbers.
    """
    input:
        readme_figures(),
    output:
        [f"docs/figures/{Path(f).name}" for f in readme_figures()],
    log:
        f"{RESULTS}/logs/readme_figures.log",
    benchmark:
        f"{RESULTS}/logs/readme_figures.benchmark.tsv"
    localrule: True
    conda:
        "../../envs/alfi.yaml"
    params:
        folder=lambda wildcards, output: Path(output[0]).parent,
    shell:
        "cp {input} {params.folder}/ > {log} 2>&1"
