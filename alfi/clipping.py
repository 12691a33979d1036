r"""Gradient clipping by the global L2 norm that survives a norm too large for float32.

Clipping scales the gradients :math:`g` by :math:`\min(1, c / (\lVert g \rVert_2 + 10^{-6}))`. When
every element is finite but :math:`\lVert g \rVert_2` exceeds float32's range (about :math:`3.4
\cdot 10^{38}`, reached once elements pass about :math:`10^{19}`), torch's
:func:`torch.nn.utils.clip_grad_norm_` computes an infinite norm and multiplies every gradient by
0: the step is lost without a sign, and a run that stays there never moves again. That is how a
late tail froze Poisson's training (docs/studies/accuracy.md). Here the gradients are first divided
by their largest magnitude when, and only when, their norm is not finite (and every element is),
then scaled to norm :math:`c`: the step keeps its direction; otherwise they are multiplied by
exactly 1 and clipped by torch's factor, bit for bit torch's result. On the host the rescue runs
only when needed; on a GPU it runs every step without a branch on the data, so that a CUDA graph
can hold it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

__all__ = ["clip_grad_norm_", "clip_member_grad_norms_"]


def _rescued(
    grads: Sequence[Tensor], norms: Tensor, norm: Callable[[], Tensor], max_norm: float
) -> Tensor:
    """Rescue where ``norms`` (the leading dimensions of ``grads``) overflowed but every element
    is finite: divide those gradients by their largest magnitude (elsewhere by exactly 1) and
    return the factor that clips every gradient: ``max_norm`` over the recomputed norm where
    rescued (the true norm is past float32, so the clip applies whatever ``max_norm``), torch's
    ``min(1, max_norm / (norm + 1e-6))`` elsewhere. An actual inf or NaN is not rescued: its
    factor is torch's 0 or NaN. Branch-free, so a CUDA graph can hold it."""
    dims = norms.dim()
    present = [g for g in grads if g.numel()]
    largest = torch.stack([g.abs().reshape(*g.shape[:dims], -1).amax(-1) for g in present])
    largest = largest.amax(0)
    rescue = ~torch.isfinite(norms) & torch.isfinite(largest) & (largest > 0)
    scale = torch.where(rescue, largest.reciprocal(), torch.ones_like(largest))
    for grad in grads:
        grad.mul_(scale.reshape(*scale.shape, *(1,) * (grad.dim() - dims)))
    found = torch.where(rescue, norm(), norms)
    factor = max_norm / (found + 1e-6)
    return torch.where(rescue, factor, torch.clamp(factor, max=1.0))


def _settled(norms: Tensor) -> bool:
    """Whether ``norms`` need no rescue: on the host, reading them costs nothing, so the rescue
    runs only when one is not finite; on a GPU it always runs (reading would wait for the
    device, and a graph cannot branch)."""
    return norms.device.type == "cpu" and bool(torch.isfinite(norms).all())


def clip_grad_norm_(parameters: Iterable[Tensor], max_norm: float) -> Tensor:
    """:func:`torch.nn.utils.clip_grad_norm_` (L2) of ``parameters``' gradients in place, safe
    from float32 overflow of the norm; returns the norm before clipping, as torch's does."""
    parameters = [p for p in parameters if p.grad is not None]
    grads = [p.grad for p in parameters]
    norm = torch.nn.utils.get_total_norm(grads)
    if _settled(norm):
        torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm)
        return norm
    factor = _rescued(grads, norm, lambda: torch.nn.utils.get_total_norm(grads), max_norm)
    torch._foreach_mul_(grads, factor)
    return norm


def clip_member_grad_norms_(grads: Sequence[Tensor], max_norm: float) -> Tensor:
    """The same for each member of an ensemble: ``grads`` are stacked ``(G, ...)`` and member
    ``g``'s (slice ``g`` of every one) are scaled by ``min(1, max_norm / (‖grad_g‖ + 1e-6))``;
    returns the members' norms ``(G,)`` before clipping."""

    def norms() -> Tensor:
        return torch.stack(
            [
                torch.nn.utils.get_total_norm([grad[g] for grad in grads])
                for g in range(grads[0].shape[0])
            ]
        )

    found = norms()
    if _settled(found):
        factor = torch.clamp(max_norm / (found + 1e-6), max=1.0)
    else:
        factor = _rescued(grads, found, norms, max_norm)
    for grad in grads:
        grad.mul_(factor.reshape(-1, *(1,) * (grad.dim() - 1)))
    return found
