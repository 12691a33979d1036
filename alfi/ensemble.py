r"""Many ALFI models of one shape as one batched ensemble.

``G`` models with the same :class:`~alfi.model.ModelConfig` (seeds, loss variants of one
simulator) have their weights stacked along a leading axis (``torch.func.stack_module_state``):
every weight ``(*S)`` becomes ``(G, *S)``, and the network half of each update
(:meth:`ALFI.forward`) runs for all members at once under ``torch.func.vmap``, so the ``G``
models cost one pass of batched kernels instead of ``G`` passes of small ones.

The random half (:meth:`ALFI.propose`: proposal draws and simulations) runs member by member,
each from its own generator, so member ``g`` draws exactly what it would draw alone: its
proposals, simulations and initial :math:`\psi_1` do not depend on which group it trains in.
Only the rounding of the batched network kernels may differ from a model trained alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from alfi.model import ALFI, propose
from alfi.simulators import Simulator

__all__ = ["Ensemble"]


class _Call(torch.nn.Module):
    """``model.<method>`` (with keyword arguments ``fixed``) as a module's forward, for
    :func:`torch.func.functional_call`."""

    def __init__(self, model: ALFI, method: str, **fixed: object) -> None:
        super().__init__()
        self.model, self.method, self.fixed = model, method, fixed

    def forward(self, *args):
        return getattr(self.model, self.method)(*args, **self.fixed)


class Ensemble:
    """``G`` ALFI models stacked: ``params`` and ``buffers`` map each name of
    :meth:`ALFI.state_dict` to a ``(G, *S)`` tensor; the parameters are leaves that train."""

    def __init__(self, models: Sequence[ALFI]) -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        configs = {m.config for m in models}
        if len(configs) != 1:
            raise ValueError(f"the models of an ensemble must share one config, got {configs}")
        self.config = models[0].config
        self.size = len(models)
        self.params, self.buffers = stack_module_state(list(models))
        template = ALFI(self.config).to("meta")
        self._calls = {name: _Call(template, name) for name in ("encode", "real_context")}
        # an update up to the horizon T, and one past it (ModelConfig.tail_clip_scale)
        self._updates = (_Call(template, "forward"), _Call(template, "forward", past_horizon=True))

    def parameters(self) -> list[Tensor]:
        return list(self.params.values())

    def to(self, device: torch.device | str) -> Ensemble:
        self.params = {
            k: v.detach().to(device).requires_grad_(v.requires_grad) for k, v in self.params.items()
        }
        self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        return self

    def member_state(self, g: int) -> dict[str, Tensor]:
        """Member ``g``'s weights as :meth:`ALFI.state_dict` names them (detached copies)."""
        stacked = {**self.params, **self.buffers}
        return {k: v[g].detach().clone() for k, v in stacked.items()}

    def member(self, g: int) -> ALFI:
        """Member ``g`` as a stand-alone :class:`ALFI` (a copy)."""
        model = ALFI(self.config).to(next(iter(self.params.values())).device)
        model.load_state_dict(self.member_state(g))
        return model

    def _weights(self) -> dict[str, Tensor]:
        """The stacked weights under the names :class:`_Call` gives them."""
        return {f"model.{k}": v for k, v in (self.params | self.buffers).items()}

    def _vmapped(
        self,
        call: _Call,
        weights: dict[str, Tensor],
        *args: Tensor,
        simulator: Simulator | None = None,
    ):
        """``call`` for every member: ``weights`` (:meth:`_weights`) and ``args`` ``(G, ...)``,
        member ``g`` reading slice ``g``; ``simulator``, if given, is the method's first
        argument."""
        lead = () if simulator is None else (simulator,)

        def one(member_weights: dict[str, Tensor], *inputs: Tensor):
            return functional_call(call, member_weights, (*lead, *inputs))

        return vmap(one)(weights, *args)

    def _prior_moments(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Each member's ``theta_mean``, ``theta_std`` shaped to broadcast against ``(G, *, D)``."""
        shape = (self.size,) + (1,) * (theta.dim() - 2) + (theta.shape[-1],)
        return self.buffers["theta_mean"].reshape(shape), self.buffers["theta_std"].reshape(shape)

    def raw_theta(self, theta: Tensor) -> Tensor:
        """De-standardise ``theta`` ``(G, *, D)`` with each member's statistics."""
        mean, std = self._prior_moments(theta)
        return theta * std + mean

    def standardise_theta(self, theta: Tensor) -> Tensor:
        """Standardise raw ``theta`` ``(G, *, D)`` with each member's statistics."""
        mean, std = self._prior_moments(theta)
        return (theta - mean) / std

    def unroll(
        self,
        simulator: Simulator,
        x_real: Tensor,
        psi: Tensor,
        *,
        steps: int,
        n_theta: int,
        n_sim: int,
        generators: Sequence[torch.Generator],
    ) -> Tensor:
        r""":meth:`ALFI.unroll` for every member: raw real data ``x_real`` ``(G, P, M_r, X)``,
        initial proposals ``psi`` ``(G, P, 2D)``, one generator per member. Returns the
        trajectories ``(T + 1, G, P, 2D)``."""
        if len(generators) != self.size:
            raise ValueError(
                f"expected {self.size} generators, one per member, got {len(generators)}"
            )
        weights = self._weights()
        real_code = self._vmapped(self._calls["encode"], weights, x_real, simulator=simulator)
        context = self._vmapped(self._calls["real_context"], weights, real_code)
        state = psi.new_zeros(*psi.shape[:2], self.config.recurrent)
        trajectory = [psi]
        for update in range(steps):
            draws = [  # member by member: each from its own generator
                propose(
                    simulator,
                    psi[g],
                    self.buffers["theta_mean"][g],
                    self.buffers["theta_std"][g],
                    n_theta=n_theta,
                    n_sim=n_sim,
                    generator=generator,
                )
                for g, generator in enumerate(generators)
            ]
            theta = torch.stack([d[0] for d in draws])
            x = torch.stack([d[1] for d in draws])
            psi, state = self._vmapped(
                self._updates[self.config.past_horizon(update)],
                weights,
                context,
                psi,
                state,
                theta,
                x,
                simulator=simulator,
            )
            trajectory.append(psi)
        return torch.stack(trajectory)
