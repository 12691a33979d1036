"""Write one stage's code stamp (the digest of its modules, from the rule's params)."""

import sys

from alfi.io import write_yaml

with open(snakemake.log[0], "w") as log:  # noqa: F821 (snakemake injects it)
    sys.stderr = log
    write_yaml(snakemake.output[0], snakemake.params.stamp)  # noqa: F821
    print(f"{snakemake.output[0]}: code {snakemake.params.stamp['code']}", file=log)  # noqa: F821
