# ALFI-bench: meta-datasets -> training -> evaluation (ALFI and MLE) -> tables and figures.
# Laptop:  snakemake --cores all            Paper scale:  add --configfile configs/paper.yaml
# SLURM:   snakemake --profile profiles/slurm [--configfile configs/paper.yaml]


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
