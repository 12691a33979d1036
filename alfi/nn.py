r"""Building blocks of the recurrent inference machine (Figure 1 of the paper).

* :class:`MLP` — fully-connected layers with ReLU activations.
* :class:`SetEncoder` — :math:`\operatorname{enc}(X) = \frac1M \sum_j \phi(x_j)`, a per-observation
  MLP averaged over the set, so it can express any learned moment of the data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLP", "SetEncoder"]


class MLP(nn.Sequential):
    """``in_features -> hidden... -> out_features`` with ReLU between layers (none after the last)."""

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int) -> None:
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            if i > 0:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(a, b))
        super().__init__(*layers)


class SetEncoder(nn.Module):
    r"""Mean of a per-element MLP over the set axis: ``(*, M, X)`` to ``(*, E)``."""

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int) -> None:
        super().__init__()
        self.phi = MLP(in_features, hidden, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.phi(x).mean(dim=-2)


def chunked(fn, x: Tensor, chunk: int | None) -> Tensor:
    """Apply ``fn`` over the leading axis of ``x`` in chunks of ``chunk`` rows (all at once if None)."""
    if chunk is None or x.shape[0] <= chunk:
        return fn(x)
    return torch.cat([fn(part) for part in x.split(chunk)], dim=0)
