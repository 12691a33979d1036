"""The allocator tuning of the command line: freed tensor memory is reused, not faulted in anew."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys

import pytest

from alfi import allocator

# The observation encoder's forward and backward pass at Poisson's training shapes: its hidden
# features (16, 20, 20, 64) are 1.6 MB, above glibc's default mmap threshold.
PROBE = """
import json, resource, sys, torch
from alfi.allocator import retain_freed_memory
from alfi.nn import SetEncoder
tuned = retain_freed_memory() if sys.argv[1] == "tuned" else None
torch.manual_seed(0)
torch.set_num_threads(1)
encoder = SetEncoder(1, [64], 32, "mean-max")
x = torch.randn(16, 20, 20, 1)
for _ in range(20):
    encoder(x).sum().backward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    encoder(x).sum().backward()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"tuned": tuned, "faults_per_step": faults / 100}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


#: Probes per arm. Under glibc's defaults a fresh process faults in one 1.6 MB buffer or more per
#: pass in most runs, but not all: whether a freed block is trimmed off the heap's top depends on
#: where the process's blocks land. Of 15 control probes measured on 2026-12-02, 13 gave 166-1304
#: faults per pass and 2 gave 3.7 and 104, so one probe misses the threshold of 100 about one
#: time in seven; the median of 7 misses it only if 4 do, about 35 (2/15)^4 (13/15)^3 < 1 %.
PROBES = 7


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the tuning applies to glibc only (elsewhere it is a no-op, tested below)",
)
def test_freed_blocks_are_reused_without_page_faults():
    untuned, tuned = [], []
    for _ in range(PROBES):  # alternating, so a change of the machine's state meets both arms
        untuned.append(_probe("default")["faults_per_step"])
        probe = _probe("tuned")
        assert probe["tuned"] is True
        tuned.append(probe["faults_per_step"])
    control, result = statistics.median(untuned), statistics.median(tuned)
    # one 1.6 MB buffer faulted in anew is 400 pages of 4 KiB; the tuning leaves a few stray
    # pages (0.03-14 per pass in the 15 probes above)
    assert control > 100, (
        f"control: glibc's defaults gave a median of {control} page faults per pass "
        f"({untuned}); this probe no longer shows the cost the tuning removes"
    )
    assert result < control / 10, (untuned, tuned)


def test_elsewhere_than_glibc_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert allocator.retain_freed_memory() is False
