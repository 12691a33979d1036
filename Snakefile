# ALFI-bench: meta-datasets -> training -> evaluation (ALFI and MLE) -> tables and figures.
# Laptop:  snakemake --cores all            Paper scale:  add --configfile configs/paper.yaml
# SLURM:   snakemake --profile profiles/slurm [--configfile configs/paper.yaml]


from snakemake.utils import min_version

# Checksum-based rerun decisions (a touched but unchanged file reruns nothing) need 9.18.
min_version("9.18")


report: "workflow/report/workflow.rst"


# Jobs find the `alfi` command on PATH (common.smk puts Snakemake's own environment first).
envvars:
    "PATH",


# A config file named with --configfile is complete by itself: config.yaml is the default, not a
# base layer under it (--config KEY=VALUE still applies on top of either).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
