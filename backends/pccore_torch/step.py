"""Compiled training steps for torch: the step runs under ``no_grad`` with in-place
updates; on CUDA, with static shapes and no host-side stop test, the whole step (inference
loop, local gradients, weight update) is captured once as a CUDA graph and replayed."""

from __future__ import annotations

from typing import Any

import torch


def _leaves(tree: Any) -> list:
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree] if isinstance(tree, torch.Tensor) else []


def _clone(tree: Any) -> Any:
    if isinstance(tree, (tuple, list)):
        return type(tree)(_clone(item) for item in tree)
    return tree.clone() if isinstance(tree, torch.Tensor) else tree


class NoGradStep:
    """``fn`` under ``torch.no_grad()`` (CPU, or CUDA when a graph cannot be used)."""

    def __init__(self, fn: Any):
        self.fn = fn

    def __call__(self, carry: Any, batch: Any) -> Any:
        with torch.no_grad():
            return self.fn(carry, batch)


class CudaGraphStep:
    """``fn`` captured as a CUDA graph on the first call, then replayed: the batch is copied
    into static buffers and the carry tensors are updated in place by the graph. Captured
    again when the batch shape or the carry tensors change."""

    def __init__(self, fn: Any):
        self.fn, self.key, self.graph = fn, None, None

    def __call__(self, carry: Any, batch: Any) -> Any:
        key = tuple((tuple(b.shape), b.dtype) for b in batch) + tuple(id(t) for t in _leaves(carry))
        if key != self.key:
            self._capture(carry, batch)
            self.key = key
        for static, b in zip(self.static_batch, batch):
            static.copy_(b, non_blocking=True)
        self.graph.replay()
        return self.carry, tuple(None if o is None else o.clone() for o in self.out)

    def _capture(self, carry: Any, batch: Any) -> None:
        self.static_batch = tuple(b.clone() for b in batch)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():  # warm-up on copies: the weights stay as they are
            for _ in range(2):
                self.fn(_clone(carry), self.static_batch)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            new_carry, out = self.fn(carry, self.static_batch)
        if any(a is not b for a, b in zip(_leaves(new_carry), _leaves(carry))):
            raise RuntimeError("a CUDA-graph training step must update its carry in place")
        self.graph, self.carry, self.out = graph, new_carry, out


class CompiledStep:
    """Picks, on the first call, a CUDA graph (batch on a CUDA device, no host-side stop
    test in the inference loop) or ``no_grad``; one per training session."""

    def __init__(self, fn: Any):
        self.fn, self.impl = fn, None

    def __call__(self, carry: Any, batch: Any) -> Any:
        if self.impl is None:
            graph = batch[0].is_cuda and getattr(self.fn, "until", None) is None
            self.impl = CudaGraphStep(self.fn) if graph else NoGradStep(self.fn)
        return self.impl(carry, batch)
