r"""A training step's gradients, replayed from a CUDA graph.

On a GPU a meta-training step of ALFI is bound by kernel launches, not arithmetic: the unroll of
``T`` updates (a few dozen small kernels each) and its backward issue about a thousand kernels
of a few microseconds each, faster than the host can launch them. A CUDA graph records the
kernels of one step once and replays them with a single launch.

:class:`GraphedGradients` wraps a function ``outputs = fn(*inputs)`` that zeroes the gradients
in place, computes the loss, back-propagates it and clips the gradients. The optimiser's step
stays outside the graph: it is a handful of ``foreach`` kernels, and eager it keeps a float
learning rate and the checkpoint format of an eager run. ``fn`` must keep the contract of a
capture:

- inputs of fixed shapes: each call copies them into static tensors (one graph per shape);
- gradients accumulated into persistent ``.grad`` tensors (``zero_grad(set_to_none=False)``),
  so every graph and every eager call writes the same buffers the optimiser reads;
- randomness from the ``generators`` named only: each is registered with the graph, so a
  replay advances its Philox offset by exactly what the eager call draws, and a replayed step
  draws the numbers the eager step would draw;
- nothing that synchronises the host: no ``.item()``, no data-dependent shapes, no tensor made
  from host data (make such constants with :meth:`Simulator.constant`, cached per device).

The first ``warmup`` calls at each shape run eagerly on a side stream, so the lazy set-up of
cuBLAS and autograd happens outside the capture, the last of them with CUDA's sync debugging set
to raise, so a step that breaks the contract is named before any capture; the next call
captures and replays. Replayed, a step runs the eager step's operations on the eager step's
random numbers (plus the in-place zeroing of the gradient buffers, which changes no value), so
it computes what the eager step computes up to the rounding of kernels run on another stream
(``tests/test_cuda_graph.py`` checks it on a GPU; ``scripts/gpu_check.sh`` reports whether the
weights are bitwise equal). On a CPU, or with ``enabled=False``, every call is ``fn`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["CaptureError", "GraphedGradients", "training_stepper"]


class CaptureError(RuntimeError):
    """A step that could not be captured as a CUDA graph, with the setting that turns it off."""


class GraphedGradients:
    """Call ``fn(*inputs)``: eagerly for the first ``warmup`` calls at each input shape, then
    from a CUDA graph captured at that shape. Returns ``fn``'s tensors (copies when replayed,
    so the next replay does not overwrite them)."""

    def __init__(
        self,
        fn: Callable[..., tuple[Tensor, ...]],
        generators: Sequence[torch.Generator],
        *,
        enabled: bool = True,
        warmup: int = 2,
    ) -> None:
        self.fn, self.generators, self.warmup = fn, list(generators), warmup
        devices = {g.device.type for g in self.generators}
        self.enabled = enabled and devices == {"cuda"}
        self._seen: dict[tuple, int] = {}
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[Tensor], tuple[Tensor, ...]]]
        self._graphs = {}
        self._stream = torch.cuda.Stream() if self.enabled else None

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if not self.enabled:
            return self.fn(*inputs)
        key = tuple((tuple(x.shape), x.dtype) for x in inputs)
        if key in self._graphs:
            graph, static, outputs = self._graphs[key]
            for buffer, value in zip(static, inputs, strict=True):
                buffer.copy_(value)
            graph.replay()
            return tuple(t.clone() for t in outputs)
        seen = self._seen.get(key, 0)
        self._seen[key] = seen + 1
        if seen < self.warmup:
            return self._eager(inputs, check=seen == self.warmup - 1)
        return self._capture(key, inputs)

    def _eager(self, inputs: Sequence[Tensor], check: bool) -> tuple[Tensor, ...]:
        """A warm-up call on the side stream. The last one (``check``) runs with CUDA's sync
        debugging set to raise, so a host synchronisation or a host-to-device copy in ``fn``
        fails here, at its own line, before any capture begins: a failed capture would leave
        the process's allocator and streams in capture mode."""
        self._stream.wait_stream(torch.cuda.current_stream())
        mode = torch.cuda.get_sync_debug_mode()
        try:
            with torch.cuda.stream(self._stream):
                if check:
                    torch.cuda.set_sync_debug_mode("error")
                outputs = self.fn(*inputs)
        except RuntimeError as exc:
            if not check or "synchroniz" not in str(exc):
                raise
            raise CaptureError(
                f"the training step cannot be captured as a CUDA graph: it synchronises with "
                f"the host ({exc}). A simulator must draw only from the generator it is given "
                "and make no tensor from host data in simulate() (cache such constants per "
                "device with Simulator.constant); or set cuda_graphs: false in the config to "
                "train eagerly"
            ) from exc
        finally:
            torch.cuda.set_sync_debug_mode(mode)
        torch.cuda.current_stream().wait_stream(self._stream)
        return outputs

    def _capture(self, key: tuple, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        static = [x.clone() for x in inputs]
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:  # torch >= 2.4, below the package's floor
            graph.register_generator_state(generator)
        stream = torch.cuda.current_stream()
        try:
            with torch.cuda.graph(graph):
                outputs = self.fn(*static)
        except RuntimeError as exc:
            torch.cuda.set_stream(stream)  # a failed capture_end leaves the capture stream set
            cause = exc.__context__ or exc  # capture_end's error hides the failing operation's
            raise CaptureError(
                f"the training step could not be captured as a CUDA graph ({cause}); set "
                "cuda_graphs: false in the config to train eagerly. Restart the process: a "
                "failed capture can leave CUDA's allocator in capture mode"
            ) from exc
        self._graphs[key] = (graph, static, outputs)
        graph.replay()
        return tuple(t.clone() for t in outputs)


def training_stepper(
    eager: Callable[..., Tensor],
    gradients: Callable[..., tuple[Tensor, ...]],
    generators: Sequence[torch.Generator],
    check: Callable[..., None],
    optimiser: torch.optim.Optimizer,
    *,
    enabled: bool,
) -> Callable[..., Tensor]:
    """A training step ``step_fn(*inputs, step=k)``: ``eager`` itself, unless ``enabled`` on
    CUDA; then ``gradients`` replayed (:class:`GraphedGradients`), ``check(*outputs, step=k)``
    on the host (it raises on a non-finite loss, before the optimiser steps), and an eager
    ``optimiser.step()``. Returns the loss, ``gradients``' first output."""
    graphed = GraphedGradients(gradients, generators, enabled=enabled)
    if not graphed.enabled:
        return eager

    def step_fn(*inputs: Tensor, step: int) -> Tensor:
        outputs = graphed(*inputs)
        check(*outputs, step=step)
        optimiser.step()
        return outputs[0]

    return step_fn
