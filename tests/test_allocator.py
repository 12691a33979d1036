"""The allocator tuning of the command line: freed tensor memory is reused, not faulted in anew."""

from __future__ import annotations

import json
import platform
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


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the tuning applies to glibc only (elsewhere it is a no-op, tested below)",
)
def test_freed_blocks_are_reused_without_page_faults():
    untuned, tuned = _probe("default"), _probe("tuned")
    assert tuned["tuned"] is True
    # one 1.6 MB buffer faulted in anew is 400 pages of 4 KiB; the defaults fault in about one
    # such buffer per pass (185-985 faults measured), the tuning leaves a few stray pages
    assert untuned["faults_per_step"] > 100, (
        f"control: glibc's defaults gave {untuned['faults_per_step']} page faults per pass; "
        "this probe no longer shows the cost the tuning removes"
    )
    assert tuned["faults_per_step"] < untuned["faults_per_step"] / 10, (untuned, tuned)


def test_elsewhere_than_glibc_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert allocator.retain_freed_memory() is False
