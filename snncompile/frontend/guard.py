"""The per-layer equivalence guard, always on: every traced synaptic layer is compared with
what the source model computes for it, before anything is compiled.

Each synaptic IR node (Conv2d, Linear) is applied, from its own fields (weight ⊙ mask, bias,
stride, padding, dilation, groups), to a small random probe (batch 1, a few output positions),
and compared with the source on the same probe: the module's own ``forward`` for a leaf layer,
the functional call (``F.conv2d``, ``F.linear``, ``x @ W``) with its operands evaluated on the
model's real tensors otherwise. Any difference beyond rounding means the IR holds weights the
model does not use (a layer subclass whose ``forward`` computes its weight, a wrong capture):
an error naming the layer, never a compiled network. The probes are tiny, so the guard costs
a few milliseconds even for ResNet-18 at 224 px.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir import Conv2d, IRGraph, Linear
from snncompile.threads import one_thread

# largest difference allowed, relative to max(1, |source output|), by the model's float type
_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-1}
_NUMPY_DTYPE = {torch.float64: np.dtype(np.float64), torch.float32: np.dtype(np.float32)}


@dataclass(frozen=True)
class Site:
    """Where a synaptic IR node came from: a leaf ``module`` called by the model, or a
    functional ``call`` in the traced program (its operands constants of the model)."""

    ir_name: str
    path: str
    module: nn.Module | None = None
    call: fx.Node | None = None


def _probe_shape(node: Conv2d | Linear, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """A per-sample input one kernel wide: every weight meets a random input value at the
    centre output, the border outputs (⌊2p/s⌋ + 1 per axis) check the padding. The check then
    costs about one multiply-add per weight (ResNet-18: ~11.7 M, a few ms)."""
    if isinstance(node, Linear):
        return (in_shape[-1],)
    c, h, w = in_shape
    k_h, k_w = node.weight.shape[2:]
    return (c, min(h, node.dilation[0] * (k_h - 1) + 1), min(w, node.dilation[1] * (k_w - 1) + 1))


def _view(a: np.ndarray) -> torch.Tensor:
    """A float64 tensor sharing ``a``'s memory (read only: IR arrays are never written)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # torch warns about read-only arrays
        return torch.from_numpy(a)


def apply_ir(node: Conv2d | Linear, x: torch.Tensor) -> torch.Tensor:
    """The IR node's equation on a float64 batch ``x``, read from its fields (no copy of the
    weights: VGG-16's first Linear alone holds 100 M of them)."""
    w = _view(node.effective_weight)
    b = None if node.bias is None else _view(node.bias)
    if isinstance(node, Linear):
        return F.linear(x, w, b)
    return F.conv2d(x, w, b, node.stride, node.padding, node.dilation, node.groups)


class _Operands(fx.Interpreter):
    """Evaluates the operands of functional calls on the real model (each fx node once)."""

    def value(self, n: Any) -> Any:
        if not isinstance(n, fx.Node):
            return n
        if n not in self.env:
            for dep in n.all_input_nodes:
                self.value(dep)
            with torch.no_grad():
                self.env[n] = self.run_node(n)
        return self.env[n]


def _source(site: Site, x: torch.Tensor, operands: _Operands | None, mask: np.ndarray | None) -> torch.Tensor:
    """What the source model computes for the layer at ``site`` on input batch ``x``."""
    with torch.no_grad():
        if site.module is not None:
            m = site.module
            # a multi-step spikingjelly layer takes [T, N, ...]: the probe is one step
            multi = getattr(m, "step_mode", "s") == "m" and not isinstance(m, nn.Linear)
            inp = x[None] if multi else x
            if mask is not None:   # --masks: the ticket the user asked to apply to this layer
                masked = m.weight.detach() * torch.from_numpy(mask).to(m.weight.dtype)
                out = torch.func.functional_call(m, {"weight": masked}, (inp,))
            else:
                out = m(inp)
            return out[0] if multi else out
        n = site.call
        args = [operands.value(a) for a in n.args[1:]]
        kwargs = {k: operands.value(v) for k, v in n.kwargs.items()}
        if mask is not None:
            weight = args[0] if args else kwargs["weight"]
            masked = weight * torch.from_numpy(mask.T if weight.shape != mask.shape else mask).to(weight.dtype)
            if args:
                args[0] = masked
            else:
                kwargs["weight"] = masked
        return n.target(x, *args, **kwargs)


def _source_input(site: Site, node: Conv2d | Linear, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The probe as the source layer takes it: a Conv1d's (C, L) for its 1 × k IR conv."""
    conv1d = isinstance(site.module, nn.Conv1d) or (site.call is not None and site.call.target is torch.conv1d)
    return (shape[0], shape[2]) if conv1d and isinstance(node, Conv2d) else shape


def check_layers(graph: IRGraph, sites: list[Site], root: fx.GraphModule, masks: dict[str, np.ndarray],
                 dtype: torch.dtype) -> None:
    """Raise an error naming the first traced synaptic layer that does not compute what the
    source computes on a random probe (see the module docstring)."""
    with one_thread():   # each probe is tiny: thread start-up would cost more than the work
        _check(graph, sites, _Operands(root) if any(s.call is not None for s in sites) else None, masks, dtype)


def _stock_layer(m: nn.Module | None) -> bool:
    """A torch Conv2d/Linear whose forward is torch's own, run as written: no parametrization,
    no hooks (old-style weight_norm recomputes the weight in a pre-hook), zero padding."""
    if not isinstance(m, (nn.Conv2d, nn.Linear)):
        return False
    cls = type(m)
    if isinstance(m, nn.Conv2d):
        if cls.forward is not nn.Conv2d.forward or cls._conv_forward is not nn.Conv2d._conv_forward:
            return False
    elif cls.forward is not nn.Linear.forward:
        return False
    if torch.nn.utils.parametrize.is_parametrized(m) or m._forward_hooks or m._forward_pre_hooks:
        return False
    return getattr(m, "padding_mode", "zeros") == "zeros" and not isinstance(getattr(m, "padding", None), str)


def _same_view(ir: np.ndarray, src: torch.Tensor) -> bool:
    """``ir`` is a view of ``src``'s memory with the same start, dtype, shape and strides:
    the same values by construction (the frontend keeps float32/64 weights uncopied)."""
    if src.device.type != "cpu" or ir.dtype != _NUMPY_DTYPE.get(src.dtype):
        return False
    strides = tuple(s * src.element_size() for s in src.stride())
    return ir.__array_interface__["data"][0] == src.data_ptr() and tuple(ir.shape) == tuple(src.shape) \
        and ir.strides == strides


def _equal(ir: np.ndarray | None, source: torch.Tensor | None) -> bool:
    if ir is None or source is None:
        return ir is None and source is None
    src = source.detach()
    if tuple(ir.shape) != tuple(src.shape):
        return False
    return _same_view(ir, src) or bool(np.array_equal(ir, src.numpy()))


def _same_fields(node: Conv2d | Linear, m: nn.Module) -> bool:
    """For a stock layer, its forward is F.conv2d/F.linear of its own fields: the IR node
    computes the same iff the fields are equal (exactly, weights included). Comparing them
    costs one read per weight, no arithmetic (the probe below needs float64 copies)."""
    if node.gain is not None or not _equal(node.weight, m.weight):
        return False
    if not node.dense and not (node.mask.shape == node.weight.shape and (node.mask | (node.weight == 0)).all()):
        return False   # a masked-off nonzero weight: the layer computes with it, the IR without
    if not _equal(node.bias, m.bias):
        return False
    if isinstance(node, Linear):
        return True
    return (tuple(node.stride), tuple(node.padding), tuple(node.dilation), node.groups) == \
        (tuple(m.stride), tuple(m.padding), tuple(m.dilation), m.groups)


def _check(graph: IRGraph, sites: list[Site], operands: _Operands | None, masks: dict[str, np.ndarray],
           dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    tol = _TOLERANCE.get(dtype, 1e-4)
    for site in sites:
        node = graph.node(site.ir_name)
        if site.path not in masks and _stock_layer(site.module) and _same_fields(node, site.module):
            continue   # exactly the layer's own fields: nothing a probe could find
        in_shape = tuple(graph.node(graph.inputs(site.ir_name)[0]).shape)
        shape = _probe_shape(node, in_shape)
        x = torch.rand((1, *_source_input(site, node, shape)), generator=gen).to(dtype)
        try:
            ref = _source(site, x, operands, masks.get(site.path)).to(torch.float64)
        except Exception as exc:   # the layer does not run on a probe of its input: nothing to compare
            raise SnnCompileError(f"cannot check the traced layer `{site.path}` against the model: "
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                                  "report this model to snncompile: the layer's source could not be run "
                                  "on a probe input", EXIT_UNSUPPORTED) from None
        out = apply_ir(node, x.to(torch.float64).reshape((1, *shape)))
        if ref.numel() != out.numel():
            raise _mismatch(site, f"{out.numel()} output values where the model gives {ref.numel()}")
        ref, out = ref.reshape(-1), out.reshape(-1)
        finite = torch.isfinite(ref)
        if not torch.equal(finite, torch.isfinite(out)):
            raise _mismatch(site, "NaN or infinite outputs where the other side's are finite")
        ref, out = ref[finite], out[finite]   # non-finite weights are named later, by the compile stage
        if not ref.numel():
            continue
        diff = float((ref - out).abs().max())
        scale = max(1.0, float(ref.abs().max()))
        if not diff <= tol * scale:
            raise _mismatch(site, f"largest difference {diff:.3g} (outputs up to {scale:.3g})")


def _mismatch(site: Site, what: str) -> SnnCompileError:
    source = f"its module's forward() ({type(site.module).__qualname__})" if site.module is not None \
        else f"`{site.call.format_node()}`"
    return SnnCompileError(
        f"the traced layer `{site.path}` does not compute what the model computes: on a probe input the "
        f"compiled synapses and {source} differ, {what}; nothing was compiled",
        "this is snncompile capturing other weights than the ones forward() uses: please report it with the "
        "model. A layer class that computes its weight in forward() is traced through; if it subclasses a "
        "torch layer, make sure it overrides forward() (not a helper the stock forward calls)", EXIT_UNSUPPORTED)
