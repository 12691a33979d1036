"""Write one simulator's resolved settings as a config file for the ``alfi`` CLI."""

import sys

import yaml

from alfi.io import atomic_path

with open(snakemake.log[0], "w") as log:  # noqa: F821 (snakemake injects it)
    sys.stderr = log
    with atomic_path(snakemake.output[0]) as tmp:  # noqa: F821
        tmp.write_text(yaml.safe_dump(snakemake.params.settings, sort_keys=False))  # noqa: F821
