"""Containers kept as units (spikingjelly's SeqToANNContainer and the Sequentials inside it)
and the layers that are the identity at inference."""

from __future__ import annotations

import torch
from torch import nn

from snncompile.frontend.ops.common import PASS_THROUGH, SEQ_CONTAINERS, SJ_PREFIX, is_neuron
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import layer
from snncompile.frontend.shape_rules import module_output


@layer(nn.Sequential, *SEQ_CONTAINERS)
def sequential(cx: Converter, m: nn.Module, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    """Each child in turn; the last one's output shape is the container's."""
    children = list(m.named_children())
    if not children:
        return src
    for i, (cname, child) in enumerate(children):
        last = i == len(children) - 1
        shape = out_shape if last else child_shape(cx, child, f"{path}.{cname}", src)
        src = cx.module(child, f"{path}.{cname}", src, shape)
    return src


@layer(*PASS_THROUGH)
def identity(cx: Converter, m: nn.Module, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    return src   # Dropout and Identity: the identity at inference


def child_shape(cx: Converter, child: nn.Module, path: str, src: str) -> tuple[int, ...]:
    """Per-sample output shape of ``child`` applied to ``src`` (probed like the model)."""
    shape = cx.g.node(src).shape
    if is_neuron(child) or isinstance(child, PASS_THROUGH):
        return shape
    fn = cx.probe_modules.get(path, child)
    ref = next((t for t in fn.parameters() if t.is_floating_point()), None)
    probe = (torch.zeros((2, *shape)) if ref is None else
             torch.zeros((2, *shape), dtype=ref.dtype, device=ref.device))
    with torch.no_grad():
        if type(fn).__module__.startswith(SJ_PREFIX) and hasattr(fn, "step_mode"):
            saved = fn.step_mode
            fn.step_mode = "s"
            try:
                return _probed(fn, probe)
            finally:
                fn.step_mode = saved
        return _probed(fn, probe)


def _probed(fn: nn.Module, probe: torch.Tensor) -> tuple[int, ...]:
    # the shape rules first: a meta conv or pool run by torch imports sympy on a first trace
    out = module_output(fn, (probe,), {})
    return tuple((fn(probe) if out is None else out).shape[1:])
