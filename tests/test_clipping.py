"""Gradient clipping that survives a float32 overflow of the norm (alfi.clipping)."""

from __future__ import annotations

import torch

from alfi import clipping
from alfi.clipping import clip_grad_norm_, clip_member_grad_norms_


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
    assert torch.isinf(clip_grad_norm_(ours, 1.0))  # the norm before clipping, as torch's
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
    assert abs(float(member.norm()) - 1.0) < 1e-5 and torch.isinf(norms[0])


def test_the_path_a_gpu_runs_every_step_is_bit_for_bit_torchs_where_norms_are_finite(
    monkeypatch,
):
    """On a GPU the rescue runs without a branch (the host's shortcut is off here): with finite
    norms it must leave every clipped gradient and norm bit for bit torch's."""
    monkeypatch.setattr(clipping, "_settled", lambda norms: False)
    for scale in (1e-3, 1e3):
        ours, theirs = _parameters(*_grads(4, scale)), _parameters(*_grads(4, scale))
        assert torch.equal(
            clipping.clip_grad_norm_(ours, 1.0), torch.nn.utils.clip_grad_norm_(theirs, 1.0)
        )
        assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, theirs, strict=True))
        grads = _grads(5, scale)
        stacked = [torch.stack([g, 2 * g]) for g in grads]
        clipping.clip_member_grad_norms_(stacked, 1.0)
        for member, factor in ((0, 1), (1, 2)):
            alone = _parameters(*[factor * g for g in grads])
            torch.nn.utils.clip_grad_norm_(alone, 1.0)
            assert all(torch.equal(g[member], p.grad) for g, p in zip(stacked, alone, strict=True))


def test_a_rescued_step_takes_the_clips_norm_whatever_it_is():
    """Four elements of 1e20: divided by the largest their norm is 2, so a clip of 10 must
    scale them up to 10 (the true norm, 2e20, is far past it)."""
    for max_norm in (0.5, 10.0):
        (parameter,) = _parameters(torch.full((4,), 1e20))
        clip_grad_norm_([parameter], max_norm)
        assert abs(float(parameter.grad.norm()) - max_norm) < 1e-5 * max_norm


def test_an_actual_infinity_is_left_to_torch():
    """A gradient holding inf is not an overflow of the norm: the result is torch's (NaN where
    the inf was, the finite gradients zeroed), which the next step reports as non-finite."""
    grads = _grads(6)
    grads[0][0, 0] = float("inf")
    ours, theirs = _parameters(*grads), _parameters(*grads)
    clip_grad_norm_(ours, 1.0)
    torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a.grad.isnan(), b.grad.isnan())
        assert torch.equal(a.grad.nan_to_num(), b.grad.nan_to_num())
