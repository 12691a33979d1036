"""Write one simulator's resolved settings as a config file for the ``alfi`` CLI."""

import sys

from alfi.io import write_yaml

with open(snakemake.log[0], "w") as log:  # noqa: F821 (snakemake injects it)
    sys.stderr = log
    write_yaml(snakemake.output[0], snakemake.params.settings)  # noqa: F821
