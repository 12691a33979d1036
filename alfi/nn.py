r"""Building blocks of the recurrent inference machine (Figure 1 of the paper).

* :class:`MLP` — fully-connected layers with ReLU activations.
* :class:`SetEncoder` — :math:`\operatorname{enc}(X) = \frac1M \sum_j \phi(x_j)`, a per-observation
  MLP averaged over the set, so it can express any learned moment of the data.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["MLP", "SetEncoder"]


class MLP(nn.Sequential):
    """``in_features -> hidden... -> out_features``, ReLU between layers (none after the last)."""

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int) -> None:
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            if i > 0:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(a, b))
        super().__init__(*layers)


class SetEncoder(nn.Module):
    r"""Mean of a per-element MLP over the set axis: ``(*, M, X)`` to ``(*, E)``.

    The last layer is affine, so it commutes with the mean:
    :math:`\frac1M \sum_j (W h_j + b) = W \bar h + b`. It is applied after averaging, on ``M``
    times fewer rows, with the same result.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int) -> None:
        super().__init__()
        self.phi = MLP(in_features, hidden, out_features)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``context`` ``(*, H)``, if given, is added to the first layer's output of every element:
        the same as concatenating a per-set input to each element, without copying it ``M``
        times (a linear layer on ``[c, x]`` is ``W_c c + W_x x + b``)."""
        *body, last = self.phi
        for i, layer in enumerate(body):
            x = layer(x)
            if i == 0 and context is not None:
                x = x + context.unsqueeze(-2)
        return last(x.mean(dim=-2))
