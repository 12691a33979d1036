r"""ALFI: the recurrent inference machine and its batched unroll.

At step :math:`t` with proposal :math:`\psi_t` (standardised space) and recurrent state
:math:`s_t`, for every problem :math:`p` of a batch of ``P``:

1. draw :math:`\theta_{p,i} \sim q(\cdot \mid \psi_{p,t})`, :math:`i \le B`;
2. simulate :math:`X_{p,i} = (x_{p,i,j})_{j \le M}` at the de-standardised, prior-clipped
   :math:`\theta_{p,i}`;
3. :math:`e_{p,i} = g([\operatorname{enc}(X^r_p), \operatorname{enc}(X_{p,i}), \theta_{p,i},
   \tilde\nabla_\psi \log q(\theta_{p,i} \mid \psi_{p,t})])` and
   :math:`\bar e_p = \frac1B \sum_i e_{p,i}`, with :math:`\tilde\nabla` the whitened score of
   :func:`alfi.proposal.whitened_score`;
4. :math:`s_{t+1} = \operatorname{GRU}(h([\bar e_p, \psi_{p,t}]), s_t)`,
   :math:`\Delta\psi = c \tanh(o(s_{t+1}))`, :math:`\psi_{t+1} = \psi_t + \Delta\psi`.

The clip is smooth (``c * tanh``): every component of :math:`\Delta\psi` lies in
:math:`(-c, c)` as the paper asks, and the gradient does not vanish at the bound as it would with a
hard clamp. Tensors hold all ``P * B * M`` observations at once; the only Python loop is over ``t``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from alfi import proposal
from alfi.nn import MLP, SetEncoder, gru_cell
from alfi.simulators import Simulator

__all__ = [
    "ModelConfig",
    "ALFI",
    "HEAD_INIT",
    "MEAN_STEPS",
    "SCORE_FLOOR",
    "SCORE_GRADIENTS",
    "SQUASHES",
    "propose",
    "squash",
]

#: Where the meta-gradient flows through the score input (:class:`ModelConfig`).
SCORE_GRADIENTS = ("full", "scale", "none", "bounded")
#: ``score_gradient: bounded``: the mean's path through the score is at most ``1 / SCORE_FLOOR``
#: per update (σ floored there, in the standardised θ space; the forward values unchanged).
SCORE_FLOOR = math.exp(-4.0)
#: The update head's last layer at this multiple of PyTorch's initialisation (:class:`ModelConfig`).
HEAD_INIT = 0.1
#: Units of the mean's update (:class:`ModelConfig`): the standardised θ space, or the proposal's σ.
MEAN_STEPS = ("absolute", "scaled")
#: Transforms of the preprocessed observations before the encoder (:func:`squash`).
SQUASHES = ("none", "asinh")


def squash(x: Tensor, kind: str) -> Tensor:
    r"""``kind="asinh"``: :math:`\sinh^{-1}(x)` elementwise; ``"none"``: ``x`` unchanged."""
    return torch.asinh(x) if kind == "asinh" else x


@dataclass(frozen=True)
class ModelConfig:
    r"""Network sizes and the update clip ``c``.

    ``clip_scale``: the clip of the log-scale's components alone (``None``: ``clip``). Over
    ``T`` updates :math:`\log\sigma` falls by less than :math:`T c`, so :math:`c` bounds how
    narrow the proposal can be at the horizon: :math:`\sigma_{T+1} > \sigma_1 e^{-Tc}`.
    ``tail_clip_scale``: that clip for the updates past the training horizon ``horizon`` alone
    (update :math:`t > T`, in a training tail and at test time beyond T; ``None``: the clip
    above): past T the proposal can narrow by at most :math:`e^{-c_\mathrm{tail}}` per update,
    however the machine extrapolates.

    ``pooling``: the observation encoder's pooling (:class:`alfi.nn.SetEncoder`);
    ``squash``: ``asinh`` passes the preprocessed observations through :math:`\sinh^{-1}` before
    they are standardised (linear near 0, logarithmic in the tails: heavy tails, such as a steep
    line's responses, no longer dominate the standardisation); ``bound_mean``: clamp the proposal
    mean to the prior box after every update, so a machine run past its training horizon cannot
    wander outside the support; ``score_gradient``: where the meta-gradient flows through the
    score input :math:`\epsilon = (\theta - \mu) / \sigma` into :math:`\psi`. The draws
    :math:`\theta` carry no gradient, so that path has :math:`\partial\epsilon/\partial\mu =
    -1/\sigma`: as the proposal contracts it multiplies the backward pass by up to
    :math:`1/\sigma` per update, and over a long unroll the gradient can overflow. ``"full"``
    keeps both paths; ``"scale"`` only the one through :math:`\log\sigma`
    (:math:`\partial\epsilon/\partial\log\sigma = -\epsilon`, of order 1); ``"none"`` reads
    the score as data, like the simulations beside it (the learned-optimiser convention of
    dropping the optimisee's second-order terms); ``"bounded"`` keeps both with the mean's
    factor at :math:`1/\max(\sigma, \sigma_0)` (:data:`SCORE_FLOOR` :math:`= \sigma_0`).
    :math:`\psi` always reaches the network directly and through the update. ``head_init``:
    the update head's last layer starts at that multiple of PyTorch's default initialisation,
    its bias at 0 (0.1: small first steps, so early training does not diverge; 0: every
    proposal stands still until the head has learnt). ``mean_step``: ``"absolute"`` moves the
    mean by :math:`\Delta\mu = c \tanh(o_\mu)` in the standardised space; ``"scaled"`` by
    :math:`\sigma_t c \tanh(o_\mu)`, at most :math:`c` of the current proposal's widths per
    coordinate: wide proposals take long steps, narrow ones short ones, whatever the problem's
    scale (the meta-gradient flows through :math:`\sigma_t` too, a path ``score_gradient``
    leaves alone: its factor is :math:`\sigma_t`, not :math:`1/\sigma_t`, so it cannot
    overflow as the proposal contracts).
    """

    theta_dim: int
    observation_dim: int
    encoding: int = 32
    hidden: int = 64
    recurrent: int = 64
    x_hidden: tuple[int, ...] = (64,)
    clip: float = 0.5
    clip_scale: float | None = None
    tail_clip_scale: float | None = None
    horizon: int | None = None
    pooling: str = "mean"
    bound_mean: bool = False
    squash: str = "none"
    score_gradient: str = "full"
    head_init: float = HEAD_INIT
    mean_step: str = "absolute"

    def __post_init__(self) -> None:
        if self.squash not in SQUASHES:
            raise ValueError(
                f"unknown squash {self.squash!r}; expected one of " + ", ".join(SQUASHES)
            )
        if self.score_gradient not in SCORE_GRADIENTS:
            raise ValueError(
                f"unknown score_gradient {self.score_gradient!r}; expected one of "
                + ", ".join(SCORE_GRADIENTS)
            )
        if self.mean_step not in MEAN_STEPS:
            raise ValueError(
                f"unknown mean_step {self.mean_step!r}; expected one of " + ", ".join(MEAN_STEPS)
            )
        if not self.head_init >= 0:
            raise ValueError(f"head_init must be >= 0, got {self.head_init!r}")
        if self.tail_clip_scale is not None and self.horizon is None:
            raise ValueError("tail_clip_scale needs the training horizon (horizon=T)")
        object.__setattr__(self, "x_hidden", tuple(self.x_hidden))

    def past_horizon(self, update: int) -> bool:
        """Whether unrolled update ``update`` (0-based: the ``update + 1``-th) comes after the
        T-th, where ``tail_clip_scale`` applies (never without a horizon)."""
        return self.horizon is not None and update >= self.horizon

    def to_dict(self) -> dict:
        """The fields, the tail clip's two left out when unset and ``head_init`` and
        ``mean_step`` at their defaults (files an earlier version reads)."""
        fields = {**asdict(self), "x_hidden": list(self.x_hidden)}
        if self.tail_clip_scale is None:
            del fields["tail_clip_scale"], fields["horizon"]
        if self.head_init == HEAD_INIT:
            del fields["head_init"]
        if self.mean_step == "absolute":
            del fields["mean_step"]
        return fields


@torch.no_grad()
def propose(
    simulator: Simulator,
    psi: Tensor,
    theta_mean: Tensor,
    theta_std: Tensor,
    *,
    n_theta: int,
    n_sim: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Steps 1 and 2 (no gradient flows through them): ``B`` draws ``theta`` ``(P, B, D)`` from
    the proposals ``psi`` ``(P, 2D)`` (standardised space) and ``M`` simulations ``x``
    ``(P, B, M, X)`` at each de-standardised (``theta * theta_std + theta_mean``), prior-clipped
    draw, both from ``generator``."""
    theta = proposal.sample(psi, n_theta, generator)
    x = simulator.simulate(simulator.clamp(theta * theta_std + theta_mean), n_sim, generator)
    return theta, x


class ALFI(nn.Module):
    """The networks of Figure 1 plus the fixed normalisation of ``theta`` and ``x``.

    Buffers ``theta_mean``/``theta_std`` ``(D,)`` standardise parameters (prior moments);
    ``x_mean``/``x_std`` ``(X,)`` standardise preprocessed observations (training-set statistics).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d, x_dim, e, h = config.theta_dim, config.observation_dim, config.encoding, config.hidden
        self.x_encoder = SetEncoder(x_dim, config.x_hidden, e, config.pooling)
        # The theta-encoder reads [enc(X^r), enc(X_i), theta_i, score_i]; the real-data part is
        # the same for every i and step, so its projection is computed once per unroll.
        self.theta_encoder = SetEncoder(e + 3 * d, [h], e)
        self.real_projection = nn.Linear(e, h, bias=False)
        self.pre = nn.Sequential(nn.Linear(e + 2 * d, config.recurrent), nn.ReLU())
        self.cell = nn.GRUCell(config.recurrent, config.recurrent)
        self.post = MLP(config.recurrent, [h], 2 * d)
        with torch.no_grad():  # start with small steps so early training does not diverge
            self.post[-1].weight.mul_(config.head_init)
            self.post[-1].bias.zero_()
        for name, size in (("theta", d), ("x", x_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))

    def set_normalisation(
        self, theta_mean: Tensor, theta_std: Tensor, x_mean: Tensor, x_std: Tensor
    ) -> None:
        """Fix the standardisation statistics (stored with the weights)."""
        for name, value in (
            ("theta_mean", theta_mean),
            ("theta_std", theta_std),
            ("x_mean", x_mean),
            ("x_std", x_std),
        ):
            getattr(self, name).copy_(value)

    def standardise_theta(self, theta: Tensor) -> Tensor:
        return (theta - self.theta_mean) / self.theta_std

    def raw_theta(self, theta: Tensor) -> Tensor:
        return theta * self.theta_std + self.theta_mean

    def features(self, simulator: Simulator, x: Tensor) -> Tensor:
        """Raw observations ``(*, X)`` to the encoder's input before standardisation."""
        return squash(simulator.preprocess(x), self.config.squash)

    def encode(self, simulator: Simulator, x: Tensor) -> Tensor:
        """Encode raw observations ``(*, M, X)`` into ``(*, E)``."""
        return self.x_encoder((self.features(simulator, x) - self.x_mean) / self.x_std)

    def real_context(self, real_code: Tensor) -> Tensor:
        """The real data's contribution to the theta-encoder, ``(P, E)`` to ``(P, H)``."""
        return self.real_projection(real_code)

    def propose(
        self,
        simulator: Simulator,
        psi: Tensor,
        *,
        n_theta: int,
        n_sim: int,
        generator: torch.Generator,
    ) -> tuple[Tensor, Tensor]:
        """Steps 1 and 2: :func:`propose` with this model's prior standardisation."""
        return propose(
            simulator,
            psi,
            self.theta_mean,
            self.theta_std,
            n_theta=n_theta,
            n_sim=n_sim,
            generator=generator,
        )

    def forward(
        self,
        simulator: Simulator,
        real_context: Tensor,
        psi: Tensor,
        state: Tensor,
        theta: Tensor,
        x: Tensor,
        *,
        past_horizon: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Steps 3 and 4: the update of ``psi`` ``(P, 2D)`` and ``state`` ``(P, R)`` from the
        draws of :meth:`propose` and ``real_context`` ``(P, H)`` (:meth:`real_context`);
        ``past_horizon``: an update after the T-th (clipped by ``tail_clip_scale``, if set)."""
        sim_code = self.encode(simulator, x)  # (P, B, E)
        score = proposal.whitened_score(self._score_input(psi).unsqueeze(1), theta)
        features = torch.cat((sim_code, theta, score), dim=-1)
        summary = self.theta_encoder(features, context=real_context)  # (P, E)
        state = gru_cell(self.pre(torch.cat((summary, psi), dim=-1)), state, self.cell)
        delta = self._clipped(torch.tanh(self.post(state)), past_horizon)
        if self.config.mean_step == "scaled":
            step, log_step = proposal.split(delta)
            delta = proposal.join(step * proposal.split(psi)[1].exp(), log_step)
        psi = psi + delta
        if self.config.bound_mean:
            mean, log_scale = proposal.split(psi)
            low, high = (self.standardise_theta(b) for b in simulator.bounds(psi.device))
            psi = proposal.join(torch.maximum(torch.minimum(mean, high), low), log_scale)
        return psi, state

    def _clipped(self, step: Tensor, past_horizon: bool = False) -> Tensor:
        """``step`` ``(*, 2D)`` in ``(-1, 1)`` times the clip: ``clip`` on the mean's components,
        ``clip_scale`` (if set) on the log-scale's, ``tail_clip_scale`` (if set) there past T."""
        scale = self.config.clip_scale
        if past_horizon and self.config.tail_clip_scale is not None:
            scale = self.config.tail_clip_scale
        if scale is None:
            return self.config.clip * step
        mean, log_scale = proposal.split(step)
        return proposal.join(self.config.clip * mean, scale * log_scale)

    def _score_input(self, psi: Tensor) -> Tensor:
        """``psi`` ``(P, 2D)`` as the score sees it: detached where ``score_gradient`` says."""
        if self.config.score_gradient == "full":
            return psi
        if self.config.score_gradient == "none":
            return psi.detach()
        mean, log_scale = proposal.split(psi)
        if self.config.score_gradient == "scale":
            return proposal.join(mean.detach(), log_scale)
        # the mean's value, its gradient scaled by sigma / max(sigma, floor): d eps / d mean is
        # then -1 / max(sigma, floor) (mean - mean.detach() is exactly 0, so the value is kept)
        scale = log_scale.detach().exp()
        shrink = scale / scale.clamp(min=SCORE_FLOOR)
        return proposal.join(mean.detach() + (mean - mean.detach()) * shrink, log_scale)

    def step(
        self,
        simulator: Simulator,
        real_context: Tensor,
        psi: Tensor,
        state: Tensor,
        *,
        n_theta: int,
        n_sim: int,
        generator: torch.Generator,
        past_horizon: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """One update, :meth:`propose` then :meth:`forward`: ``real_context`` ``(P, H)``
        (:meth:`real_context`), ``psi`` ``(P, 2D)``, ``state`` ``(P, R)``."""
        theta, x = self.propose(simulator, psi, n_theta=n_theta, n_sim=n_sim, generator=generator)
        return self(simulator, real_context, psi, state, theta, x, past_horizon=past_horizon)

    def unroll(
        self,
        simulator: Simulator,
        x_real: Tensor,
        psi: Tensor,
        *,
        steps: int,
        n_theta: int,
        n_sim: int,
        generator: torch.Generator,
    ) -> Tensor:
        r"""Run ``steps`` updates from ``psi`` ``(P, 2D)`` given raw real data ``(P, M_r, X)``.

        Returns the trajectory :math:`(\psi_1, \dots, \psi_{T+1})`, shape ``(T + 1, P, 2D)``.
        """
        real_code = self.encode(simulator, x_real)  # encoded once, reused at every step
        return self.unroll_codes(
            simulator,
            real_code,
            psi,
            steps=steps,
            n_theta=n_theta,
            n_sim=n_sim,
            generator=generator,
        )

    def unroll_codes(
        self,
        simulator: Simulator,
        real_code: Tensor,
        psi: Tensor,
        *,
        steps: int,
        n_theta: int,
        n_sim: int,
        generator: torch.Generator,
    ) -> Tensor:
        """:meth:`unroll` from already encoded real data ``(P, E)``."""
        state = psi.new_zeros(psi.shape[0], self.config.recurrent)
        context = self.real_context(real_code)
        trajectory = [psi]
        for update in range(steps):
            psi, state = self.step(
                simulator,
                context,
                psi,
                state,
                n_theta=n_theta,
                n_sim=n_sim,
                generator=generator,
                past_horizon=self.config.past_horizon(update),
            )
            trajectory.append(psi)
        return torch.stack(trajectory)
