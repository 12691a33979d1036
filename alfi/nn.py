r"""Building blocks of the recurrent inference machine (Figure 1 of the paper).

* :class:`MLP` — fully-connected layers with ReLU activations.
* :func:`gru_cell` — the GRU update of a :class:`torch.nn.GRUCell`'s weights, in plain tensor
  operations so that ``torch.func.vmap`` batches it over an ensemble of models.
* :class:`SetEncoder` — :math:`\operatorname{enc}(X) = \frac1M \sum_j \phi(x_j)`, a per-observation
  MLP averaged over the set, so it can express any learned moment of the data; with
  ``pooling="mean-max"`` the last layer reads the mean and the coordinate-wise max of the hidden
  features, so extremes (the MLE of a uniform's bound is a max) are one layer away; with
  ``"mean-max-std"`` also their standard deviation over the set, so spreads (the MLE of a scale
  is a root mean square deviation; a regression's slope is a ratio of second moments) are too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["POOLINGS", "MLP", "SetEncoder", "gru_cell", "mean_max_pool", "mean_max_std_pool"]

try:  # None outside every torch.func transform; private, so without it assume one
    from torch._C._functorch import maybe_current_level as _functorch_level
except ImportError:  # pragma: no cover

    def _functorch_level() -> int | None:
        return 0


#: Each pooling and how many statistics of the hidden features it hands the last layer.
POOLINGS = {"mean": 1, "mean-max": 2, "mean-max-std": 3}

#: Added to the variance under the square root of ``"mean-max-std"``: a feature constant over
#: the set (a unit that never fires) has a finite gradient.
STD_EPS = 1e-8


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


def _max_gradient(h: Tensor, high: Tensor, grad_max: Tensor) -> Tensor:
    """The max's gradient, ``grad_max`` ``(*, 1, H)`` shared by the elements of ``h``
    ``(*, M, H)`` that attain ``high`` ``(*, 1, H)``, in a fresh buffer the caller may add to."""
    # h <= max, so 1 - sign(max - h) is 1 exactly where h attains the max, else 0
    at_max = (high - h).sign_().neg_().add_(1)
    ties = at_max.sum(dim=-2, keepdim=True)
    return at_max.mul_(grad_max / ties)


class _MeanMaxPool(torch.autograd.Function):
    """:func:`mean_max_pool` with a backward pass of float arithmetic only (see there)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(h: Tensor) -> Tensor:
        return torch.cat((h.mean(dim=-2), h.amax(dim=-2)), dim=-1)

    @staticmethod
    def setup_context(ctx, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0], output)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        h, pooled = ctx.saved_tensors
        width, count = h.shape[-1], h.shape[-2]
        grad_mean, grad_max = grad.unsqueeze(-2).split(width, dim=-1)
        high = pooled[..., width:].unsqueeze(-2)
        return _max_gradient(h, high, grad_max).add_(grad_mean / count)


def mean_max_pool(h: Tensor) -> Tensor:
    r"""``[mean_j h_j, max_j h_j]`` over the set axis: ``(*, M, H)`` to ``(*, 2H)``.

    The gradient is autograd's for ``torch.cat((h.mean(-2), h.amax(-2)), -1)``, bit for bit:
    :math:`\partial/\partial h_{jk} = \bar g_k / M + [h_{jk} = \max_i h_{ik}]\, g^{\max}_k / n_k`,
    the max's gradient shared by the :math:`n_k` tied elements (for finite ``h``). Autograd
    builds that indicator as a boolean tensor and counts it in a second pass, slow on the CPU;
    here it is ``1 - sign(max - h)`` (exact, as :math:`h \le \max`) in vectorised float
    arithmetic, written into one buffer that becomes the gradient.
    """
    return _MeanMaxPool.apply(h)


class _MeanMaxStdPool(_MeanMaxPool):
    """:func:`mean_max_std_pool` with its gradient written into one buffer (see there); it saves
    what :class:`_MeanMaxPool` saves, the input and the pooled output."""

    @staticmethod
    def forward(h: Tensor) -> Tensor:
        # torch.var_mean over the set axis: about 30x slower on the CPU (torch 2.13)
        mean = h.mean(dim=-2)
        centred = h - mean.unsqueeze(-2)
        std = centred.mul_(centred).mean(dim=-2).add_(STD_EPS).sqrt_()
        return torch.cat((mean, h.amax(dim=-2), std), dim=-1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        h, pooled = ctx.saved_tensors
        width, count = h.shape[-1], h.shape[-2]
        grad_mean, grad_max, grad_std = grad.unsqueeze(-2).split(width, dim=-1)
        mean, high, std = pooled.unsqueeze(-2).split(width, dim=-1)
        # the std's term a (h - mean) with a = g_std / (M std), as a h plus a per-set constant
        slope = grad_std / (count * std)
        offset = grad_mean / count - slope * mean
        grad_h = _max_gradient(h, high, grad_max)
        if _functorch_level() is None:  # plain autograd: in place, no second buffer
            grad_h.addcmul_(h, slope)
        else:  # under vmap (a training group): batched out of place only, the same rounding
            grad_h = torch.addcmul(grad_h, h, slope)
        return grad_h.add_(offset)


def mean_max_std_pool(h: Tensor) -> Tensor:
    r"""``[mean_j h_j, max_j h_j, std_j h_j]`` over the set axis: ``(*, M, H)`` to ``(*, 3H)``,
    the standard deviation :math:`s_k = \sqrt{\frac1M \sum_j (h_{jk} - \bar h_k)^2 + \epsilon}`
    (:math:`\epsilon` = :data:`STD_EPS`, so that a feature constant over the set, a unit that
    never fires, keeps a finite gradient).

    The gradient is :func:`mean_max_pool`'s plus
    :math:`\partial s_k/\partial h_{jk} = (h_{jk} - \bar h_k) / (M s_k)`, computed in one
    buffer as there (autograd's for the same expression, to rounding).
    """
    return _MeanMaxStdPool.apply(h)


class SetEncoder(nn.Module):
    r"""Mean of a per-element MLP over the set axis: ``(*, M, X)`` to ``(*, E)``.

    The last layer is affine, so it commutes with the mean:
    :math:`\frac1M \sum_j (W h_j + b) = W \bar h + b`. It is applied after averaging, on ``M``
    times fewer rows, with the same result. With ``pooling="mean-max"`` (at least one hidden
    layer) the last layer reads ``[mean_j h_j, max_j h_j]``, with ``"mean-max-std"``
    ``[mean_j h_j, max_j h_j, std_j h_j]``; all are permutation-invariant.
    """

    def __init__(
        self, in_features: int, hidden: Sequence[int], out_features: int, pooling: str = "mean"
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
        if pooling != "mean" and not hidden:
            raise ValueError(f"pooling {pooling!r} needs at least one hidden layer")
        self.pooling = pooling
        self.phi = MLP(in_features, hidden, out_features)
        if POOLINGS[pooling] > 1:  # the last layer reads every pooled statistic
            last = self.phi[-1]
            self.phi[-1] = nn.Linear(POOLINGS[pooling] * last.in_features, last.out_features)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``context`` ``(*, H)``, if given, is added to the first layer's output of every element:
        the same as concatenating a per-set input to each element, without copying it ``M``
        times (a linear layer on ``[c, x]`` is ``W_c c + W_x x + b``)."""
        *body, last = self.phi
        for i, layer in enumerate(body):
            x = layer(x)
            if i == 0 and context is not None:
                x = x + context.unsqueeze(-2)
        if self.pooling == "mean-max":
            return last(mean_max_pool(x))
        if self.pooling == "mean-max-std":
            return last(mean_max_std_pool(x))
        return last(x.mean(dim=-2))


def gru_cell(x: Tensor, h: Tensor, cell: nn.GRUCell) -> Tensor:
    r"""``cell(x, h)`` for ``x`` ``(*, I)``, ``h`` ``(*, R)``, written out:

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}),

    .. math::
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})), \quad
        h' = (h - n) \odot z + n.

    The same operations in the same order as PyTorch's CPU kernel (the results agree bit for
    bit there); unlike the fused ``torch.gru_cell``, ``vmap`` has batching rules for all of them.
    """
    input_gates = F.linear(x, cell.weight_ih, cell.bias_ih).chunk(3, dim=-1)
    hidden_gates = F.linear(h, cell.weight_hh, cell.bias_hh).chunk(3, dim=-1)
    reset = (hidden_gates[0] + input_gates[0]).sigmoid()
    update = (hidden_gates[1] + input_gates[1]).sigmoid()
    new = (input_gates[2] + hidden_gates[2] * reset).tanh()
    return (h - new) * update + new
