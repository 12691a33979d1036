"""Gradient clipping that survives a float32 overflow of the norm (alfi.clipping)."""

from __future__ import annotations

import torch

from alfi.clipping import _rescued, clip_grad_norm_, clip_member_grad_norms_


def _parameters(*grads: torch.Tensor) -> list[torch.Tensor]:
    parameters = []
    for grad in grads:
        parameter = torch.zeros_like(grad, requires_grad=True)
        parameter.grad = grad.clone()
        parameters.append(parameter)
    return parameters


def _grads(seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(shape, generator=generator) for shape in ((7, 5), (5,), (3, 2, 4))]


def test_finite_norms_are_clipped_bit_for_bit_as_torch_clips_them():
    for scale in (1e-3, 1.0, 1e3):
        ours, theirs = _parameters(*_grads(0, scale)), _parameters(*_grads(0, scale))
        norm = clip_grad_norm_(ours, 1.0)
        assert torch.equal(norm, torch.nn.utils.clip_grad_norm_(theirs, 1.0))
        assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, theirs, strict=True))


def test_an_overflowing_norm_keeps_the_direction_where_torch_loses_the_step():
    """Elements of 1e19-1e20 are finite in float32 but the sum of their squares is not: torch's
    norm is infinite and its clipped gradients are all 0; ours have norm 1 (to float32
    rounding) and point where the gradients do."""
    grads = _grads(1, 1e20)
    theirs = _parameters(*grads)
    assert torch.isinf(torch.nn.utils.clip_grad_norm_(theirs, 1.0))
    assert all(not p.grad.any() for p in theirs)
    ours = _parameters(*grads)
    assert torch.isfinite(clip_grad_norm_(ours, 1.0))
    clipped = torch.cat([p.grad.flatten() for p in ours])
    direction = torch.cat([g.flatten() for g in grads]).double()
    assert abs(float(clipped.norm()) - 1.0) < 1e-5
    cosine = torch.nn.functional.cosine_similarity(clipped.double(), direction, dim=0)
    assert float(cosine) > 1 - 1e-6


def test_each_member_is_clipped_on_its_own_norm():
    """Member 0's gradients overflow, member 1's do not: member 1 is clipped bit for bit as
    torch clips it alone, member 0 to norm 1 along its gradients."""
    small, huge = _grads(2), _grads(3, 1e20)
    stacked = [torch.stack([h, s]) for h, s in zip(huge, small, strict=True)]
    norms = clip_member_grad_norms_(stacked, 1.0)
    alone = _parameters(*small)
    assert torch.equal(norms[1], torch.nn.utils.clip_grad_norm_(alone, 1.0))
    assert all(torch.equal(g[1], p.grad) for g, p in zip(stacked, alone, strict=True))
    member = torch.cat([g[0].flatten() for g in stacked])
    assert abs(float(member.norm()) - 1.0) < 1e-5 and torch.isfinite(norms[0])


def test_the_rescue_a_gpu_runs_every_step_changes_nothing_where_norms_are_finite():
    """On a GPU the rescue runs without a branch: with finite norms it must leave every
    gradient and norm bit for bit as they were (a multiplication by exactly 1)."""
    grads = _grads(4, 1e3)
    stacked = [torch.stack([g, 2 * g]) for g in grads]
    copies = [g.clone() for g in stacked]
    norms = torch.stack([torch.nn.utils.get_total_norm([g[m] for g in stacked]) for m in (0, 1)])
    rescued = _rescued(stacked, norms, lambda: torch.full_like(norms, float("nan")))
    assert torch.equal(rescued, norms)
    assert all(torch.equal(a, b) for a, b in zip(stacked, copies, strict=True))
