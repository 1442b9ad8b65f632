"""Random small spiking networks for the property tests: a description, a strategy that
draws it, and a builder that turns it into a spikingjelly model and its inputs.

A network is a list of stages after the input (stage 0). A ``neuron`` stage reads one
earlier stage or the sum of two equal-shape spiking stages (a SEW residual), optionally
average-pools and flattens it, applies Linear or Conv2d (optionally BatchNorm), then a
spiking neuron layer, optionally gated by a static 0/1 keep-mask buffer. A ``maxpool``
stage max-pools the spikes of one spiking stage (masked or not) or a residual sum of two.
An optional Linear readout (real-valued output) reads the last stage or a residual sum;
otherwise the last stage's spikes are the output. Half the networks are ``exact``: dyadic
weights, inputs, thresholds, resets, BatchNorm statistics and decays, so that membranes
land exactly on thresholds. An average pool whose windows hold 3, 6 or 9 values (a
rounded mean) feeds float weights only: with dyadic weights its rounded means would meet
thresholds in exact arithmetic, and the side of the threshold they land on would depend
on the order of float operations (see ``_neuron_stage``). Weights, biases, BatchNorm statistics, masks and inputs come
from numpy with the description's seed: the description alone reproduces the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn
from torch.nn.utils import prune

THRESHOLDS = (0.5, 0.75, 1.0, 1.25, 2.0, 0.3)   # 0.3: not dyadic
RESETS = (None, 0.0, -0.5, 0.25)                 # None: soft (subtractive) reset
TAUS = (2.0, 4.0, 1.5, 3.0)
ALPHAS = (0.25, 0.5, 0.75, 1.0, 1.5, 0.3)        # binary weight magnitudes (0.3: not dyadic)
DYADIC = {  # the choices of an exact network: every value and every operation exact in float64
    "thresholds": (0.5, 0.75, 1.0, 1.25, 2.0), "taus": (2.0, 4.0), "alphas": (0.25, 0.5, 0.75, 1.0, 1.5),
    "inputs": ("binary", "dyadic", "signed"), "weights": ("dyadic", "binary"),
}
SPARSITIES = (0.0, 0.0, 0.25, 0.5, 0.75, 0.9, 0.95)
INPUT_STYLES = ("binary", "dyadic", "float", "signed")
WEIGHT_STYLES = ("dyadic", "binary", "float")


@dataclass(frozen=True)
class NeuronSpec:
    """A spikingjelly neuron: IFNode, LIFNode (tau) or ParametricLIFNode (init_tau)."""

    model: str = "if"                 # "if" | "lif" | "plif"
    v_threshold: float = 1.0
    v_reset: float | None = 0.0       # None: soft reset
    tau: float = 2.0
    decay_input: bool = True

    def text(self) -> str:
        leak = "" if self.model == "if" else f" tau={self.tau:g} decay_input={self.decay_input}"
        reset = "soft" if self.v_reset is None else f"hard({self.v_reset:g})"
        return f"{self.model.upper()}(th={self.v_threshold:g} reset={reset}{leak})"


@dataclass(frozen=True)
class WeightSpec:
    """How a synaptic layer's weights are drawn.

    ``dyadic``: multiples of scale/8; ``float``: Gaussian; ``binary``: sign·α·scale with α
    per layer or per output channel. A fraction ``sparsity`` of the weights is zero: by
    zeroing (``explicit_mask`` False) or by a torch.nn.utils.prune mask (kept in the IR).
    """

    style: str = "dyadic"             # "dyadic" | "float" | "binary"
    scale: float = 1.0
    sparsity: float = 0.0
    explicit_mask: bool = False
    alpha: str = "layer"              # binary: "layer" | "channel"
    bias: bool = False
    dyadic_alpha: bool = False        # binary: α from the dyadic magnitudes only

    def text(self) -> str:
        parts = [self.style, f"x{self.scale:g}"]
        if self.style == "binary":
            parts.append(f"alpha per {self.alpha}")
        if self.sparsity:
            parts.append(f"{self.sparsity:.0%} zero" + (" (prune mask)" if self.explicit_mask else ""))
        parts.append("bias" if self.bias else "no bias")
        return ", ".join(parts)


@dataclass(frozen=True)
class Stage:
    """One population-producing stage (see the module docstring)."""

    kind: str                                   # "neuron" | "maxpool"
    src: tuple[int, ...]                        # stage indices, 0 = the input
    shape: tuple[int, ...]                      # per-sample output shape
    layer: str = ""                             # "linear" | "conv"
    out: int = 0
    kernel: int = 1                             # conv or max-pool geometry
    stride: int = 1
    padding: int = 0
    avgpool: tuple[int, int, int, bool] | None = None  # (kernel, stride, padding, count_include_pad)
    flatten: bool = False
    bn: str | None = None                       # "dyadic" (eps 0, exact) | "float"
    weights: WeightSpec | None = None
    neuron: NeuronSpec | None = None
    mask: bool = False                          # spikes gated by a static keep-mask buffer


@dataclass(frozen=True)
class Readout:
    """A non-spiking Linear head (value output)."""

    src: tuple[int, ...]
    flatten: bool
    out: int
    weights: WeightSpec


@dataclass(frozen=True)
class NetSpec:
    """A whole generated network with its input."""

    input_shape: tuple[int, ...]
    steps: int
    batch: int
    step_mode: str                    # "s" | "m"
    input_style: str                  # one of INPUT_STYLES
    stages: tuple[Stage, ...]
    readout: Readout | None = None
    mean_output: bool = False         # multi-step only: the model returns out.mean(0)
    seed: int = 0
    input_p: float = 0.5              # binary inputs: spike probability
    exact: bool = False               # drawn from the dyadic choices only (see DYADIC)

    def shape_of(self, i: int) -> tuple[int, ...]:
        return self.input_shape if i == 0 else self.stages[i - 1].shape

    def describe(self) -> str:
        """A readable listing of the network (printed with every failing example)."""
        lines = [f"input x0: shape {self.input_shape}, {self.input_style} values"
                 + (f" (p={self.input_p})" if self.input_style == "binary" else "")
                 + f", T={self.steps}, N={self.batch}, step_mode={self.step_mode!r}, seed={self.seed}"
                 + (", exact (dyadic values only)" if self.exact else "")]
        for i, s in enumerate(self.stages, 1):
            src = " + ".join(f"x{j}" for j in s.src)
            if s.kind == "maxpool":
                lines.append(f"x{i} = MaxPool2d(k={s.kernel}, s={s.stride}, p={s.padding})({src})"
                             f"  -> {s.shape}")
                continue
            ops = []
            if s.avgpool:
                k, st_, p, inc = s.avgpool
                ops.append(f"AvgPool2d(k={k}, s={st_}, p={p}, count_include_pad={inc})")
            if s.flatten:
                ops.append("Flatten")
            if s.layer == "conv":
                ops.append(f"Conv2d(out={s.out}, k={s.kernel}, s={s.stride}, p={s.padding}; {s.weights.text()})")
            else:
                ops.append(f"Linear(out={s.out}; {s.weights.text()})")
            if s.bn:
                ops.append(f"BatchNorm[{s.bn}]")
            ops.append(s.neuron.text())
            if s.mask:
                ops.append("* keep_mask")
            lines.append(f"x{i} = " + " -> ".join(ops) + f"  applied to {src}  -> {s.shape}")
        if self.readout:
            r = self.readout
            src = " + ".join(f"x{j}" for j in r.src)
            lines.append(f"out = {'Flatten -> ' if r.flatten else ''}Linear(out={r.out}; {r.weights.text()})"
                         f"({src})  (value output)")
        else:
            lines.append(f"out = x{len(self.stages)} (spikes)")
        if self.mean_output:
            lines.append("the model returns out.mean(0) (time-reduced)")
        return "\n".join(lines)

    def repro(self) -> str:
        """Python that rebuilds the network and its inputs from this description."""
        return ("from tests.property.netgen import *  # from the repository root\n"
                f"spec = {self!r}\n"
                "model, x = build_model(spec), make_inputs(spec)")


# -- strategies ---------------------------------------------------------------------------

@st.composite
def neuron_specs(draw: st.DrawFn, exact: bool = False) -> NeuronSpec:
    """A neuron; ``exact``: dyadic threshold and reset, decays 1/2 or 1/4 (PLIF: 1/2)."""
    model = draw(st.sampled_from(("if", "lif", "plif")))
    th = draw(st.sampled_from(DYADIC["thresholds"] if exact else THRESHOLDS))
    reset = draw(st.sampled_from([r for r in RESETS if r is None or r < th]))
    if model == "if":
        return NeuronSpec("if", th, reset)
    taus = (2.0,) if exact and model == "plif" else DYADIC["taus"] if exact else TAUS
    return NeuronSpec(model, th, reset, draw(st.sampled_from(taus)), draw(st.booleans()))


@st.composite
def weight_specs(draw: st.DrawFn, exact: bool = False) -> WeightSpec:
    """A synaptic layer's weights; ``exact``: dyadic values only."""
    style = draw(st.sampled_from(DYADIC["weights"] if exact else WEIGHT_STYLES))
    return WeightSpec(style=style, scale=2.0 ** draw(st.integers(-1, 1)),
                      sparsity=draw(st.sampled_from(SPARSITIES)), explicit_mask=draw(st.booleans()),
                      alpha=draw(st.sampled_from(("layer", "channel"))), bias=draw(st.booleans()),
                      dyadic_alpha=exact)


def _pool_out(n: int, k: int, s: int, p: int) -> int:
    """Output size of a window k, stride s, padding p over n (floor mode)."""
    return (n + 2 * p - k) // s + 1


def avgpool_divisors(shape: tuple[int, ...], avg: tuple[int, int, int, bool]) -> set[int]:
    """The divisors of AvgPool2d ``avg`` (kernel, stride, padding, count_include_pad) over
    a (C, H, W) input: k² with count_include_pad, else each window's in-bounds size."""
    k, s, p, inc = avg
    if inc:
        return {k * k}
    counts = [[min(n, i * s - p + k) - max(0, i * s - p) for i in range(_pool_out(n, k, s, p))]
              for n in shape[1:]]
    return {a * b for a in counts[0] for b in counts[1]}


def dyadic_avgpool(shape: tuple[int, ...], avg: tuple[int, int, int, bool] | None) -> bool:
    """True if every window of ``avg`` divides by a power of two (exact in float64)."""
    return avg is None or all(d & (d - 1) == 0 for d in avgpool_divisors(shape, avg))


@st.composite
def _avgpool(draw: st.DrawFn, shape: tuple[int, ...], dyadic: bool) -> tuple[int, int, int, bool] | None:
    """An optional AvgPool2d (kernel, stride, padding, count_include_pad) before a synapse;
    ``dyadic``: windows of 1, 2 or 4 only (k = 2), whose means are exact in float64."""
    _, h, w = shape
    if min(h, w) < 2 or not draw(st.integers(0, 3)) == 0:
        return None
    k = 2 if dyadic else draw(st.integers(2, min(3, h, w)))
    s = draw(st.integers(1, k))
    p = draw(st.integers(0, k // 2))
    return k, s, p, draw(st.booleans())


@st.composite
def _neuron_stage(draw: st.DrawFn, src: tuple[int, ...], in_shape: tuple[int, ...],
                  same_shape: bool, conv_ok: bool, exact: bool) -> Stage:
    """A neuron stage on a value of shape ``in_shape``; ``same_shape``: output == input shape
    (so that a later stage can add the two, a residual)."""
    avg = None
    shape = in_shape
    ws = draw(weight_specs(exact))
    if len(shape) == 3 and not same_shape:
        # a mean over 3, 6 or 9 values is rounded: with dyadic weights, membranes then meet
        # thresholds in exact arithmetic but land a rounding error either side of them, and
        # which side depends on the order of float operations (a folded BatchNorm adds its
        # shift inside the sum), not on the compiler being right; random float weights make
        # such ties vanishingly rare, so only they read inexact means
        avg = draw(_avgpool(shape, dyadic=ws.style != "float"))
        if avg:
            k, s, p, _ = avg
            shape = (shape[0], _pool_out(shape[1], k, s, p), _pool_out(shape[2], k, s, p))
    use_conv = len(shape) == 3 and conv_ok and (same_shape or draw(st.integers(0, 3)) > 0)
    bn = draw(st.sampled_from((None, None, "dyadic") if exact else (None, None, "dyadic", "float")))
    nspec = draw(neuron_specs(exact))
    mask = draw(st.integers(0, 4)) == 0
    if use_conv:
        c, h, w = shape
        if same_shape:
            k = draw(st.sampled_from((1, 3)))
            out, s, p = c, 1, k // 2
        else:
            out = draw(st.integers(1, 4))
            p = draw(st.integers(0, 1))
            k = draw(st.integers(1, min(3, h + 2 * p, w + 2 * p)))
            s = draw(st.integers(1, 2))
        oshape = (out, _pool_out(h, k, s, p), _pool_out(w, k, s, p))
        return Stage("neuron", src, oshape, "conv", out, k, s, p, avg, False, bn, ws, nspec, mask)
    flat = len(shape) == 3
    fin = int(np.prod(shape))
    out = fin if same_shape else draw(st.integers(2, 12))
    return Stage("neuron", src, (out,), "linear", out, avgpool=avg, flatten=flat, bn=bn, weights=ws,
                 neuron=nspec, mask=mask)


@st.composite
def net_specs(draw: st.DrawFn, max_stages: int = 4, max_batch: int = 4, max_steps: int = 6) -> NetSpec:
    """Draw a :class:`NetSpec` (see the module docstring for what it covers)."""
    conv = draw(st.booleans())
    if conv:
        in_shape: tuple[int, ...] = (draw(st.integers(1, 3)), draw(st.integers(4, 8)), draw(st.integers(4, 8)))
    else:
        in_shape = (draw(st.integers(4, 24)),)
    steps, batch = draw(st.integers(2, max_steps)), draw(st.integers(1, max_batch))
    mode = draw(st.sampled_from(("s", "m")))
    exact = draw(st.booleans())
    style = draw(st.sampled_from(DYADIC["inputs"] if exact else INPUT_STYLES))
    n = draw(st.integers(1, max_stages))
    stages: list[Stage] = []
    shapes = [in_shape]
    kinds = ["input"]
    conv_ok = True  # once flattened, Linear only

    def residual_pairs() -> list[tuple[int, int]]:
        idx = [i for i in range(1, len(shapes)) if kinds[i] != "input"]
        return [(a, b) for a in idx for b in idx if a < b and shapes[a] == shapes[b]]

    same_next = False
    for i in range(1, n + 1):
        pairs = residual_pairs()
        if pairs and draw(st.integers(0, 2)) == 0:
            src: tuple[int, ...] = draw(st.sampled_from(pairs))
        elif i > 2 and draw(st.integers(0, 7)) == 0:
            src = (draw(st.integers(0, i - 2)),)        # a skip: stage i-1 may become a dead end
        else:
            src = (i - 1,)
        shape = shapes[src[0]]
        # max-pool of spikes: of one stage (masked or not) or of a residual sum of spikes
        can_pool = (all(kinds[j] in ("neuron", "maxpool") for j in src)
                    and len(shape) == 3 and min(shape[1:]) >= 2)
        if can_pool and not same_next and draw(st.booleans()):
            k = draw(st.integers(2, min(3, *shape[1:])))
            s = draw(st.integers(1, k))
            p = draw(st.integers(0, k // 2))
            oshape = (shape[0], _pool_out(shape[1], k, s, p), _pool_out(shape[2], k, s, p))
            stage = Stage("maxpool", src, oshape, kernel=k, stride=s, padding=p)
        else:
            stage = draw(_neuron_stage(src, shape, same_next, conv_ok, exact))
            if stage.layer == "linear":
                conv_ok = False
        stages.append(stage)
        shapes.append(stage.shape)
        kinds.append(stage.kind)
        # next stage keeps this shape, so that a later one can add the two (a residual)
        same_next = stage.kind == "neuron" and i < n and draw(st.integers(0, 3)) == 0
    readout = None
    if draw(st.booleans()):
        pairs = residual_pairs()
        src = draw(st.sampled_from(pairs)) if pairs and draw(st.integers(0, 2)) == 0 else (n,)
        readout = Readout(src, len(shapes[src[0]]) > 1, draw(st.integers(2, 6)), draw(weight_specs(exact)))
    mean_output = mode == "m" and draw(st.booleans())
    return NetSpec(in_shape, steps, batch, mode, style, tuple(stages), readout, mean_output,
                   seed=draw(st.integers(0, 2**31 - 1)), input_p=draw(st.sampled_from((0.3, 0.5, 0.7))),
                   exact=exact)


# -- building -------------------------------------------------------------------------------

def _weights(ws: WeightSpec, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(weight values, keep mask) of the given shape. Weights are scaled by the power of two
    nearest 16 / (fan-in · kept fraction) (dyadic ones stay dyadic), so that small, large
    and sparse layers all receive a drive of the order of the thresholds."""
    rows, fan_in = shape[0], int(np.prod(shape[1:]))
    base = 2.0 ** round(math.log2(16.0 / (fan_in * (1.0 - ws.sparsity))))
    if ws.style == "dyadic":
        w = rng.integers(-3, 6, size=shape) / 8.0 * ws.scale * base
    elif ws.style == "float":
        w = (rng.standard_normal(shape) + 0.4) * (2.0 * ws.scale / math.sqrt(fan_in * (1.0 - ws.sparsity)))
    else:
        sign = np.where(rng.random(shape) < 0.7, 1.0, -1.0)
        n_alpha = rows if ws.alpha == "channel" else 1
        alphas = DYADIC["alphas"] if ws.dyadic_alpha else ALPHAS
        alpha = rng.choice(alphas, size=n_alpha).reshape((-1,) + (1,) * (len(shape) - 1))
        w = sign * alpha * ws.scale * base / 4.0
    keep = rng.random(shape) >= ws.sparsity
    return w, keep


def _bias(ws: WeightSpec, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Biases: Gaussian for float layers, multiples of scale/8 otherwise."""
    if ws.style == "float":
        return rng.standard_normal(rows) * 0.2 * ws.scale
    return rng.integers(-2, 3, size=rows) / 8.0 * ws.scale


def _init_synapse(m: nn.Module, ws: WeightSpec, rng: np.random.Generator) -> None:
    """Set a Linear/Conv2d's weights, bias and (explicit_mask) torch.nn.utils.prune mask."""
    w, keep = _weights(ws, tuple(m.weight.shape), rng)
    with torch.no_grad():
        m.weight.copy_(torch.as_tensor(w if ws.explicit_mask else w * keep))
        if m.bias is not None:
            m.bias.copy_(torch.as_tensor(_bias(ws, m.weight.shape[0], rng)))
        if ws.explicit_mask:
            prune.custom_from_mask(m, "weight", torch.as_tensor(keep))


def _init_bn(m: nn.Module, style: str, rng: np.random.Generator) -> None:
    """Set a BatchNorm's running statistics and affine parameters (``dyadic``: γ may be 0)."""
    c = m.num_features
    with torch.no_grad():
        if style == "dyadic":  # exact in floating point: eps 0, √var a power of two
            m.eps = 0.0
            m.running_mean.copy_(torch.as_tensor(rng.integers(-2, 3, c) / 8.0))
            m.running_var.copy_(torch.as_tensor(rng.choice([0.25, 1.0, 4.0], c)))
            m.weight.copy_(torch.as_tensor(rng.choice([-0.5, 0.0, 0.5, 1.0, 2.0], c)))
            m.bias.copy_(torch.as_tensor(rng.integers(-2, 4, c) / 8.0))
        else:
            m.running_mean.copy_(torch.as_tensor(rng.random(c) - 0.5))
            m.running_var.copy_(torch.as_tensor(rng.random(c) + 0.5))
            m.weight.copy_(torch.as_tensor(rng.random(c) + 0.5))
            m.bias.copy_(torch.as_tensor(rng.random(c) * 0.4))


def _neuron(ns: NeuronSpec) -> nn.Module:
    """The spikingjelly neuron module ``ns`` describes."""
    kw = dict(v_threshold=ns.v_threshold, v_reset=ns.v_reset)
    if ns.model == "if":
        return neuron.IFNode(**kw)
    if ns.model == "lif":
        return neuron.LIFNode(tau=ns.tau, decay_input=ns.decay_input, **kw)
    return neuron.ParametricLIFNode(init_tau=ns.tau, decay_input=ns.decay_input, **kw)


def _keep_mask(shape: tuple[int, ...], rng: np.random.Generator) -> torch.Tensor:
    """0/1 keep-mask over the patch grid (H, W) of a conv output, or over features."""
    grid = shape[1:] if len(shape) == 3 else shape
    return torch.as_tensor((rng.random(grid) >= 0.35).astype(np.float32))


class SpecNet(nn.Module):
    """The model a :class:`NetSpec` describes. ``pre{i}``: stage i's stateless part (pools,
    flatten, synapse, BatchNorm), ``sn{i}``: its neurons, ``keep{i}``: its keep-mask;
    ``pool{i}``: a max-pool stage; ``head``: the readout."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        for i, s in enumerate(spec.stages, 1):
            if s.kind == "maxpool":
                setattr(self, f"pool{i}", layer.MaxPool2d(s.kernel, s.stride, s.padding))
                continue
            in_shape = spec.shape_of(s.src[0])
            mods: list[nn.Module] = []
            if s.avgpool:
                k, st_, p, inc = s.avgpool
                mods.append(layer.AvgPool2d(k, st_, p, count_include_pad=inc))
            if s.flatten:
                mods.append(layer.Flatten())
            if s.layer == "conv":
                syn: nn.Module = layer.Conv2d(in_shape[0], s.out, s.kernel, s.stride, s.padding,
                                              bias=s.weights.bias)
            else:
                fin = int(np.prod(in_shape))
                if s.avgpool:
                    k, st_, p, _ = s.avgpool
                    fin = in_shape[0] * _pool_out(in_shape[1], k, st_, p) * _pool_out(in_shape[2], k, st_, p)
                syn = layer.Linear(fin, s.out, bias=s.weights.bias)
            _init_synapse(syn, s.weights, rng)
            mods.append(syn)
            if s.bn:
                bn = layer.BatchNorm2d(s.out) if s.layer == "conv" else layer.BatchNorm1d(s.out)
                _init_bn(bn, s.bn, rng)
                mods.append(bn)
            setattr(self, f"pre{i}", nn.Sequential(*mods))
            setattr(self, f"sn{i}", _neuron(s.neuron))
            if s.mask:
                self.register_buffer(f"keep{i}", _keep_mask(s.shape, rng))
        if spec.readout:
            r = spec.readout
            fin = int(np.prod(spec.shape_of(r.src[0])))
            head = layer.Linear(fin, r.out, bias=r.weights.bias)
            _init_synapse(head, r.weights, rng)
            self.head = nn.Sequential(*([layer.Flatten()] if r.flatten else []), head)
        functional.set_step_mode(self, spec.step_mode)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for i, s in enumerate(self.spec.stages, 1):
            v = outs[s.src[0]] if len(s.src) == 1 else outs[s.src[0]] + outs[s.src[1]]
            if s.kind == "maxpool":
                outs.append(getattr(self, f"pool{i}")(v))
                continue
            y = getattr(self, f"sn{i}")(getattr(self, f"pre{i}")(v))
            if s.mask:
                y = y * getattr(self, f"keep{i}")
            outs.append(y)
        if self.spec.readout:
            src = self.spec.readout.src
            v = outs[src[0]] if len(src) == 1 else outs[src[0]] + outs[src[1]]
            out = self.head(v)
        else:
            out = outs[-1]
        return out.mean(0) if self.spec.mean_output else out


def build_model(spec: NetSpec) -> SpecNet:
    """The model ``spec`` describes (eval mode, weights from the seed)."""
    return SpecNet(spec)


def make_inputs(spec: NetSpec) -> np.ndarray:
    """Inputs [T, N, *input_shape] (float64), from the seed."""
    rng = np.random.default_rng(spec.seed + 1)
    shape = (spec.steps, spec.batch, *spec.input_shape)
    if spec.input_style == "binary":
        return (rng.random(shape) < spec.input_p).astype(np.float64)
    if spec.input_style == "dyadic":
        return rng.integers(0, 5, size=shape) / 4.0
    if spec.input_style == "signed":
        return rng.integers(-4, 5, size=shape) / 4.0
    return rng.random(shape)
