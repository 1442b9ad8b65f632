"""NIR nodes → IR nodes: the converter of each NIR node type (layers and neurons, with the
equations in ``snncompile.frontend.nir_import``'s docstring) and the builder they add to."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir import IRGraph
from snncompile.ir.dynamics import IF, LI, PLIF, CubaLI, CubaLIF, Dynamics, Integrator, Threshold, make
from snncompile.ir.nodes import (
    Add,
    BatchNorm,
    Conv2d,
    Delay,
    Linear,
    Neuron,
    Output,
    Pool2d,
    Reshape,
    Scale,
)

META_KEY = "snncompile"   # node metadata written by backends.nir: the exact IR neuron
UNIT_TOL = 1e-6           # r·dt/τ within this of 1 is 1 (exporters write r = τ/dt, which rounds)


def unsupported(node: str, why: str, hint: str) -> SnnCompileError:
    return SnnCompileError(f"NIR node `{node}`: {why}", hint, EXIT_UNSUPPORTED)


class Builder:
    """The IR graph being built and what the NIR → IR conversion needs to remember."""

    def __init__(self, g: IRGraph, dt: float | None) -> None:
        self.g = g
        self.dt = dt
        self.names: dict[str, str] = {}      # NIR node → IR node holding its output
        self.neurons: dict[str, str] = {}    # IR neuron → NIR node
        self.output = ""                     # the graph's Output node (inner ones pass through)
        self.delays: dict[tuple, str] = {}   # (NIR sources, steps) → IR Delay, inputs joined last

    def shape(self, ir_name: str) -> tuple[int, ...]:
        return tuple(self.g.node(ir_name).shape)

    def add(self, nir_name: str, node: Any, inputs: list[str], suffix: str = "") -> str:
        return self.g.add(self.g.unique_name(nir_name + suffix), node, inputs)

    def delay(self, name: str, shape: tuple[int, ...], steps: int | np.ndarray, srcs: list[str]) -> str:
        """An IR Delay of the sum of NIR nodes ``srcs`` (which may not be built yet)."""
        k = np.asarray(steps)
        key = (tuple(srcs), k.tobytes(), k.shape)
        if key not in self.delays:
            suffix = "" if len(srcs) > 1 or srcs[0] != name else "_delay"
            if k.ndim and k.size != int(np.prod(shape)):
                raise unsupported(name, f"{k.size} delays for {int(np.prod(shape))} elements",
                                  "the delay array must match the layer's size")
            node = Delay(shape, name, steps=k.reshape(shape) if k.ndim else int(k))
            self.delays[key] = self.add(name, node, [], suffix)
        return self.delays[key]

    def join_delays(self) -> None:
        """Connect every Delay to its (now built) sources."""
        for (srcs, *_), ir_name in self.delays.items():
            src = self.summed(srcs[0], [self.names[s] for s in srcs])
            if self.shape(src) != self.shape(ir_name):
                raise unsupported(srcs[0], f"the delayed output has shape {self.shape(src)}, its node declares "
                                  f"{self.shape(ir_name)}", "check the exported shapes")
            self.g.set_inputs(ir_name, [src])

    def summed(self, name: str, srcs: list[str]) -> str:
        """NIR sums the inputs of a node: a chain of Add nodes."""
        out = srcs[0]
        for other in srcs[1:]:
            if self.shape(other) != self.shape(out):
                raise unsupported(name, f"its inputs have shapes {self.shape(out)} and {self.shape(other)}",
                                  "every edge into a NIR node must carry the same shape")
            out = self.add(name, Add(self.shape(out), name), [out, other], "_sum")
        return out


def as_array(v: Any) -> np.ndarray:
    return np.asarray(v, dtype=np.float64)


def _uniform(name: str, what: str, v: Any) -> float:
    a = as_array(v).ravel()
    if a.size == 0 or not np.all(a == a[0]):
        raise unsupported(name, f"per-neuron {what} is not supported (values differ)",
                          f"use one {what} for the whole layer")
    return float(a[0])


def _per_neuron(name: str, what: str, v: Any, shape: tuple[int, ...]) -> float | np.ndarray:
    a = as_array(v)
    if a.size == 1 or np.all(a == a.ravel()[0]):
        return float(a.ravel()[0])
    if a.size != int(np.prod(shape)):
        raise unsupported(name, f"{what} has {a.size} values for {int(np.prod(shape))} neurons",
                          "the parameter arrays must match the layer's size")
    return a.reshape(shape)


def _scaled(b: Builder, name: str, src: str, factor: Any) -> str:
    """x·factor elementwise: Scale (uniform), BatchNorm (per channel) or diagonal Linear (1-d)."""
    shape = b.shape(src)
    f = as_array(factor)
    if f.size == 1 or np.all(f == f.ravel()[0]):
        c = float(f.ravel()[0])
        return src if c == 1.0 else b.add(name, Scale(shape, name, factor=c), [src], "_scale")
    full = np.broadcast_to(f, shape) if f.ndim <= len(shape) else f.reshape(shape)
    per_c = full.reshape(shape[0], -1)
    if len(shape) > 1 and np.all(per_c == per_c[:, :1]):
        ch = per_c[:, 0].copy()
        bn = BatchNorm(shape, name, mean=np.zeros_like(ch), var=np.ones_like(ch), weight=ch,
                       bias=np.zeros_like(ch), eps=0.0)
        return b.add(name, bn, [src], "_scale")
    if len(shape) == 1:
        w = np.diag(full.astype(np.float64))
        return b.add(name, Linear(shape, name, weight=w, mask=np.eye(shape[0], dtype=bool)), [src], "_scale")
    raise unsupported(name, "an elementwise scale that varies within a channel", "flatten before scaling")


def _affine(b: Builder, name: str, node: Any, src: str) -> str:
    w = as_array(node.weight)
    bias = as_array(node.bias) if getattr(node, "bias", None) is not None else None
    shape = b.shape(src)
    if w.ndim != 2 or shape[-1] != w.shape[1]:
        raise unsupported(name, f"weight {w.shape} does not fit its input {shape}", "check the exported shapes")
    if bias is not None and not np.any(bias):
        bias = None
    lin = Linear((*shape[:-1], w.shape[0]), name, weight=w, bias=bias, mask=w != 0)
    return b.add(name, lin, [src])


def _pair(v: Any) -> tuple[int, int]:
    a = np.asarray(v).ravel()
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _padding(name: str, pad: Any, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    if isinstance(pad, bytes):
        pad = pad.decode()
    if isinstance(pad, str):
        if pad == "valid":
            return (0, 0)
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in total):
            raise unsupported(name, "padding 'same' with an even kernel pads asymmetrically",
                              "pad explicitly with an odd kernel")
        return (total[0] // 2, total[1] // 2)
    return _pair(pad)


def _conv2d(b: Builder, name: str, node: Any, src: str) -> str:
    w = as_array(node.weight)
    shape = b.shape(src)
    if len(shape) != 3 or shape[0] != w.shape[1] * int(node.groups):
        raise unsupported(name, f"weight {w.shape} does not fit its input {shape} (C, H, W)",
                          "check the exported shapes (NIR Conv2d reads C, H, W per sample)")
    k = (w.shape[2], w.shape[3])
    stride, dil = _pair(node.stride), _pair(node.dilation)
    pad = _padding(name, node.padding, k, dil)
    ho = (shape[1] + 2 * pad[0] - dil[0] * (k[0] - 1) - 1) // stride[0] + 1
    wo = (shape[2] + 2 * pad[1] - dil[1] * (k[1] - 1) - 1) // stride[1] + 1
    bias = as_array(node.bias) if node.bias is not None and np.any(node.bias) else None
    conv = Conv2d((w.shape[0], ho, wo), name, weight=w, bias=bias, stride=stride, padding=pad, dilation=dil,
                  groups=int(node.groups), mask=w != 0)
    return b.add(name, conv, [src])


def _conv1d(b: Builder, name: str, node: Any, src: str) -> str:
    """Conv1d over (C, L) as a Conv2d over (C, 1, L) between two reshapes."""
    shape = b.shape(src)
    if len(shape) != 2:
        raise unsupported(name, f"Conv1d reads (C, L), got {shape}", "check the exported shapes")
    w = as_array(node.weight)
    up = b.add(name, Reshape((shape[0], 1, shape[1]), name), [src], "_2d")
    pad = node.padding
    if not isinstance(pad, (str, bytes)):
        pad = (0, int(np.asarray(pad).ravel()[0]))
    node2 = type("Conv", (), dict(weight=w[:, :, None, :], stride=(1, int(np.asarray(node.stride).ravel()[0])),
                                  dilation=(1, int(np.asarray(node.dilation).ravel()[0])), padding=pad,
                                  groups=node.groups, bias=node.bias))
    c = _conv2d(b, name, node2, up)
    cs = b.shape(c)
    return b.add(name, Reshape((cs[0], cs[2]), name), [c], "_1d")


def _flatten(b: Builder, name: str, node: Any, src: str) -> str:
    shape = b.shape(src)
    start, end = int(node.start_dim), int(node.end_dim)
    nd = len(shape)
    s = start + nd if start < 0 else start
    e = end + nd if end < 0 else end
    out = (*shape[:s], int(np.prod(shape[s:e + 1])), *shape[e + 1:]) if 0 <= s <= e < nd else (int(np.prod(shape)),)
    return b.add(name, Reshape(tuple(out), name), [src])


def _pool(mode: str) -> Callable[..., str]:
    def conv(b: Builder, name: str, node: Any, src: str) -> str:
        shape = b.shape(src)
        k, s, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
        ho, wo = ((shape[i + 1] + 2 * p[i] - k[i]) // s[i] + 1 for i in (0, 1))
        pool = Pool2d((shape[0], ho, wo), name, mode=mode, kernel=k, stride=s, padding=p, count_include_pad=True)
        return b.add(name, pool, [src])
    return conv


def _scale(b: Builder, name: str, node: Any, src: str) -> str:
    out = _scaled(b, name, src, node.scale)
    return out if out != src else b.add(name, Reshape(b.shape(src), name), [src])


def _identity(b: Builder, name: str, node: Any, src: str) -> str:
    if name == b.output:
        return b.add(name, Output(b.shape(src), name), [src])
    return src


def _stored(node: Any) -> dict | None:
    meta = getattr(node, "metadata", None) or {}
    return meta.get(META_KEY)


def _membrane(b: Builder, name: str, node: Any, tau: Any, r: Any) -> tuple[float, bool, Any]:
    """(q, decay_input, input factor) of a leaky membrane: q = dt/τ; decay_input False when
    r·q = 1 (snnTorch: V − V·q + X), else True with the input scaled by r."""
    if np.any(as_array(node.v_leak) != 0):
        raise unsupported(name, "v_leak ≠ 0 (a constant drive) is not supported", "export with v_leak = 0")
    q = b.dt / _uniform(name, "tau", tau)
    r = as_array(r)
    if np.all(np.abs(r * q - 1.0) <= UNIT_TOL):
        return q, False, 1.0
    return q, True, r


def _neuron(b: Builder, name: str, node: Any, src: str) -> str:
    import nir

    shape = b.shape(src)
    kind = type(node).__name__
    spiking = isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold))
    th: Any = 1.0
    if spiking:
        th = _per_neuron(name, "v_threshold", node.threshold if isinstance(node, nir.Threshold)
                         else node.v_threshold, shape)
    if isinstance(node, nir.Threshold):
        n = Neuron(shape, name, dynamics=Threshold(v_threshold=th, v_reset=0.0, strict=True))
        return _add_neuron(b, name, n, src)
    v_reset = _uniform(name, "v_reset", node.v_reset) if spiking else 0.0
    stored = _stored(node)
    if v_reset != 0.0 and stored is None:
        raise unsupported(name, f"v_reset = {v_reset:g}: snncompile's neurons start at v_reset, NIR's at 0",
                          "export with v_reset = 0")
    if stored is not None:  # our own export: the exact IR neuron, equal to the NIR equations
        alive = stored.get("alive")
        if alive is not None:   # removed neurons were written with an infinite threshold
            alive = np.asarray(alive).astype(bool).reshape(shape)
            if isinstance(th, np.ndarray):
                th = np.where(alive, th, np.max(th[alive], initial=1.0))
                th = float(th.ravel()[0]) if np.all(th == th.ravel()[0]) else th
            alive = None if alive.all() else alive
        params = {"decay_input": True, "strict": True, **{k: v for k, v in stored.items() if k != "alive"},
                  "v_threshold": th, "v_reset": v_reset}
        n = Neuron(shape, name, dynamics=_stored_dynamics(name, params), alive=alive)
        return _add_neuron(b, name, n, src)
    if kind in ("IF", "I", "Integrator"):
        n = Neuron(shape, name, dynamics=IF(v_threshold=th, v_reset=0.0, strict=True) if kind == "IF"
                   else Integrator(v_reset=0.0))
        r = as_array(node.r)
        if b.dt is not None and np.all(np.abs(r * b.dt - 1.0) <= UNIT_TOL):
            r = np.ones(1)   # r = 1/dt: v += dt·r·x = x (spikingjelly's export)
        return _add_neuron(b, name, n, _scaled(b, name, src, r))
    if kind in ("LIF", "LI"):
        q, decay_input, factor = _membrane(b, name, node, node.tau, node.r)
        n = Neuron(shape, name, dynamics=PLIF(v_threshold=th, v_reset=0.0, decay=q, decay_input=decay_input,
                                              strict=True) if kind == "LIF"
                   else LI(v_reset=0.0, decay=q, decay_input=decay_input))
        return _add_neuron(b, name, n, _scaled(b, name, src, factor))
    # CubaLIF, CubaLI
    q, decay_input, factor = _membrane(b, name, node, node.tau_mem, node.r)
    q_s = b.dt / _uniform(name, "tau_syn", node.tau_syn)
    gain = q_s * as_array(node.w_in)
    if np.all(np.abs(gain - 1.0) <= UNIT_TOL):
        gain = 1.0
    n = Neuron(shape, name, dynamics=CubaLIF(v_threshold=th, v_reset=0.0, decay=q, syn_decay=q_s,
                                             decay_input=decay_input, strict=True) if kind == "CubaLIF"
               else CubaLI(v_reset=0.0, decay=q, syn_decay=q_s, decay_input=decay_input))
    return _add_neuron(b, name, n, _scaled(b, name, src, as_array(gain) * as_array(factor)))


def _stored_dynamics(name: str, params: dict) -> Dynamics:
    """The exact dynamics our export wrote in the node metadata (``model`` names the type)."""
    try:
        return make(str(params.pop("model")), params)
    except (KeyError, ValueError, TypeError) as exc:
        raise unsupported(name, f"its {META_KEY} metadata is not a neuron snncompile wrote ({exc})",
                          "re-export it, or remove the metadata") from None


def _add_neuron(b: Builder, name: str, n: Neuron, src: str) -> str:
    """Add the neuron; spiking ones are recorded as neuron sources (compared spike for spike)."""
    out = b.add(name, n, [src])
    if n.emits_spikes:
        b.neurons[out] = name
    return out


@functools.cache
def table() -> dict[type, Callable[..., str]]:
    """NIR node type → its converter (built on first use: nir is imported lazily)."""
    import nir

    table: dict[type, Callable[..., str]] = {
        nir.Input: _identity, nir.Output: _identity, nir.Affine: _affine, nir.Linear: _affine,
        nir.Scale: _scale, nir.Conv2d: _conv2d, nir.Conv1d: _conv1d, nir.Flatten: _flatten,
        nir.SumPool2d: _pool("sum"), nir.AvgPool2d: _pool("avg"), nir.IF: _neuron, nir.LIF: _neuron,
        nir.Threshold: _neuron, nir.LI: _neuron, nir.I: _neuron, nir.CubaLIF: _neuron, nir.CubaLI: _neuron,
        nir.Delay: _identity,   # a zero delay; others are built as IR Delays (import_nir)
    }
    for extra in ("Integrator", "Identity"):
        cls = getattr(nir, extra, None)
        if cls is not None:
            table[cls] = _identity if extra == "Identity" else _neuron
    return table
