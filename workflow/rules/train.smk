rule train:
    input:
        settings=ancient(rules.settings.output[0]),
        stage=stage_file("train"),
        dataset=split_file("train"),
        code=stage_code("train"),
    output:
        f"{RESULTS}/models/{{simulator}}/{{variant}}/seed{{seed}}.pt",
    log:
        f"{RESULTS}/logs/train/{{simulator}}_{{variant}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/logs/train/{{simulator}}_{{variant}}_seed{{seed}}.benchmark.tsv"
    conda:
        "../../envs/alfi.yaml"
    threads: RES["train_threads"]
    resources:
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
        gpu=GPU,
    params:
        # Outside the declared outputs: a failed or preempted job keeps it, and the rerun resumes.
        checkpoint=f"{RESULTS}/checkpoints/{{simulator}}/{{variant}}/seed{{seed}}.ckpt",
    shell:
        "alfi train --config {input.settings} --simulator {wildcards.simulator}"
        " --variant {wildcards.variant} --seed {wildcards.seed} --threads {threads}"
        " --dataset {input.dataset} --checkpoint {params.checkpoint} --out {output}"
        " > {log} 2>&1"
