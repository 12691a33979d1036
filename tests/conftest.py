from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(2)
    yield


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
