"""Random spiking models in the styles users write, for differential fuzzing of the frontend
(issue #27 item 8): ``nn.Sequential`` or a custom ``forward``; spikingjelly IF/LIF neurons, snnTorch's Leaky
(``init_hidden``) or a hand-written stateful LIF (tests/corpus/hand.py); SEW connections (ADD, AND, IAND), concat
of two branches, avg/max pooling; weights used as stored or computed in ``forward``
(``w * mask``, ``torch.where(mask, w, 0)``, ``sign(w) * alpha``). A :class:`FuzzSpec` is the
whole description: ``describe()`` prints the model as code, ``build()`` makes it again."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from corpus.hand import HandLIF
from hypothesis import strategies as st
from spikingjelly.activation_based import neuron
from torch import nn

NEURONS = ("if", "lif", "hand", "snntorch")
BLOCKS = ("conv", "sew_add", "sew_and", "sew_iand", "concat", "avgpool", "maxpool")
WEIGHTS = ("plain", "mask_mul", "where", "sign_alpha")


@dataclass(frozen=True)
class FuzzSpec:
    style: str                 # "sequential" (only without branches) | "custom"
    neuron: str                # one of NEURONS
    threshold: float
    channels: int
    size: int                  # input H = W
    blocks: tuple[str, ...]
    weights: str               # one of WEIGHTS, for every synaptic layer
    gain: float
    seed: int
    steps: int = 4
    batch: int = 2

    def describe(self) -> str:
        return (f"FuzzSpec(style={self.style!r}, neuron={self.neuron!r}, threshold={self.threshold}, "
                f"channels={self.channels}, size={self.size}, blocks={self.blocks!r}, weights={self.weights!r}, "
                f"gain={self.gain}, seed={self.seed}, steps={self.steps}, batch={self.batch})\n"
                "rebuild: tests/property/frontgen.py build(spec), inputs(spec)")


class WConv(nn.Conv2d):
    """A 3×3 convolution whose weight is computed in forward() as ``how`` says."""

    def __init__(self, cin: int, cout: int, how: str, rng: np.random.Generator, gain: float) -> None:
        super().__init__(cin, cout, 3, padding=1, bias=False)
        self.how = how
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(rng.normal(0, gain / np.sqrt(cin * 9), self.weight.shape)))
        self.register_buffer("mask", torch.from_numpy((rng.random(self.weight.shape) < 0.5).astype(np.float32)))
        # a power of two: sums of ±alpha that land on a threshold do so exactly in float64 in
        # any summation order (PyTorch's and the simulator's), so ties are ties in both
        self.alpha = float(2.0 ** np.round(np.log2(gain / np.sqrt(cin * 9))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "mask_mul":
            w = self.weight * self.mask
        elif self.how == "where":
            w = torch.where(self.mask > 0, self.weight, 0)
        elif self.how == "sign_alpha":
            w = torch.sign(self.weight) * self.alpha
        else:
            w = self.weight
        return F.conv2d(x, w, None, 1, 1)


def _neuron(spec: FuzzSpec) -> nn.Module:
    if spec.neuron == "if":
        return neuron.IFNode(v_threshold=spec.threshold)
    if spec.neuron == "lif":
        return neuron.LIFNode(tau=2.0, v_threshold=spec.threshold)
    if spec.neuron == "snntorch":   # its hidden-state style: one call per step, state on the module
        import snntorch as snn

        return snn.Leaky(beta=0.5, threshold=spec.threshold, init_hidden=True)
    return HandLIF(beta=0.5, threshold=spec.threshold)


class Block(nn.Module):
    """One block of the custom-forward model (a SEW block keeps the channel count)."""

    def __init__(self, kind: str, c: int, spec: FuzzSpec, rng: np.random.Generator) -> None:
        super().__init__()
        self.kind = kind
        if kind in ("avgpool", "maxpool"):
            self.pool = nn.AvgPool2d(2) if kind == "avgpool" else nn.MaxPool2d(2)
            return
        self.conv, self.sn = WConv(c, c, spec.weights, rng, spec.gain), _neuron(spec)
        if kind == "concat":
            self.conv_b, self.sn_b = WConv(c, c, spec.weights, rng, spec.gain), _neuron(spec)
            self.merge, self.sn_m = WConv(2 * c, c, spec.weights, rng, spec.gain), _neuron(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind in ("avgpool", "maxpool"):
            return self.pool(x)
        out = self.sn(self.conv(x))
        if self.kind == "sew_add":
            return out + x
        if self.kind == "sew_and":
            return out * x
        if self.kind == "sew_iand":
            return x * (1.0 - out)
        if self.kind == "concat":
            return self.sn_m(self.merge(torch.cat([out, self.sn_b(self.conv_b(x))], dim=1)))
        return out


class FuzzNet(nn.Module):
    """stem conv + neuron → blocks → flatten → Linear → neuron, called once per time step."""

    def __init__(self, spec: FuzzSpec) -> None:
        super().__init__()
        rng = np.random.default_rng(spec.seed)
        c, size = spec.channels, spec.size
        self.stem, self.sn0 = WConv(2, c, spec.weights, rng, spec.gain), _neuron(spec)
        self.blocks = nn.ModuleList()
        for kind in spec.blocks:
            self.blocks.append(Block(kind, c, spec, rng))
            size //= 2 if kind.endswith("pool") else 1
        self.fc = nn.Linear(c * size * size, 5, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(rng.normal(0, 2 * spec.gain / np.sqrt(c * size * size),
                                                             self.fc.weight.shape)))
        self.sn_out = _neuron(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sn0(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.sn_out(self.fc(x.flatten(1)))


def build(spec: FuzzSpec) -> nn.Module:
    net = FuzzNet(spec)
    if spec.style == "sequential":   # the same modules, as a Sequential (no branches here)
        mods = [net.stem, net.sn0, *[b.pool if b.kind.endswith("pool") else nn.Sequential(b.conv, b.sn)
                                     for b in net.blocks], nn.Flatten(), net.fc, net.sn_out]
        net = nn.Sequential(*mods)
    return net.eval()


def inputs(spec: FuzzSpec) -> np.ndarray:
    rng = np.random.default_rng(spec.seed + 1)
    return (rng.random((spec.steps, spec.batch, 2, spec.size, spec.size)) < 0.5).astype(np.float64)


def _next(kind: str, spikes: bool) -> bool:
    """Whether the block's output is spikes, given whether its input is."""
    if kind in ("conv", "concat", "sew_and", "sew_iand"):
        return True
    return spikes if kind == "maxpool" else False   # ADD sums, avg-pool averages


@st.composite
def fuzz_specs(draw: st.DrawFn) -> FuzzSpec:
    """SEW AND/IAND and max-pooling only where the input is spikes: a product with a sum of
    spikes is not a spike gate, and a max-pool of real values is a host partition
    (test_maxpool_of_a_sew_sum in test_frontend_fuzz.py)."""
    size = draw(st.sampled_from((4, 8)))
    pools_left = 1 if size == 4 else 2
    blocks: list[str] = []
    spikes = True
    for _ in range(draw(st.integers(0, 4))):
        allowed = [k for k in BLOCKS if (spikes or k not in ("sew_and", "sew_iand", "maxpool"))
                   and (pools_left or not k.endswith("pool"))]
        kind = draw(st.sampled_from(allowed))
        pools_left -= kind.endswith("pool")
        spikes = _next(kind, spikes)
        blocks.append(kind)
    branches = any(k not in ("conv", "avgpool", "maxpool") for k in blocks)
    style = "custom" if branches else draw(st.sampled_from(("sequential", "custom")))
    return FuzzSpec(style, draw(st.sampled_from(NEURONS)), draw(st.sampled_from((0.5, 1.0, 0.75))),
                    draw(st.sampled_from((2, 4))), size, tuple(blocks), draw(st.sampled_from(WEIGHTS)),
                    draw(st.sampled_from((1.0, 2.0, 3.0))), draw(st.integers(0, 2 ** 16)))
