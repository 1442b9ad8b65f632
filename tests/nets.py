"""Small spiking networks covering every supported layer and neuron option."""

from __future__ import annotations

import numpy as np
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.4)
    return model.eval()


def conv_net(mode: str = "s") -> nn.Module:
    """Conv-BN-LIF (hard reset), MaxPool, Conv-BN-IF (soft reset), AvgPool, Linear-PLIF."""
    torch.manual_seed(1)
    m = nn.Sequential(
        layer.Conv2d(1, 6, 3, padding=1), layer.BatchNorm2d(6), neuron.LIFNode(tau=2.0),
        layer.MaxPool2d(2),
        layer.Conv2d(6, 8, 3, padding=1, stride=1, bias=False), layer.BatchNorm2d(8),
        neuron.IFNode(v_reset=None, v_threshold=0.8),
        layer.AvgPool2d(2), layer.Flatten(), layer.Dropout(0.2),
        layer.Linear(32, 10), neuron.ParametricLIFNode(init_tau=3.0, decay_input=False, v_reset=-0.2),
    )
    functional.set_step_mode(m, mode)
    with torch.no_grad():
        m[0].weight.mul_(3.0)
        m[4].weight.mul_(3.0)
        m[10].weight.mul_(4.0)
    return randomize_bn(m)


def seq_container_net() -> nn.Module:
    """Multi-step model built from SeqToANNContainer blocks (spikingjelly's 'm' idiom)."""
    torch.manual_seed(2)
    m = nn.Sequential(
        layer.SeqToANNContainer(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4)),
        neuron.LIFNode(tau=4.0 / 3.0, decay_input=False, v_reset=0.0, step_mode="m"),
        layer.SeqToANNContainer(nn.Flatten(), nn.Linear(64, 12), nn.BatchNorm1d(12)),
        neuron.LIFNode(tau=2.0, v_reset=None, step_mode="m"),
        layer.SeqToANNContainer(nn.Linear(12, 5)),
        neuron.IFNode(v_reset=0.3, step_mode="m"),
    )
    with torch.no_grad():
        m[0][0].weight.mul_(4.0)
        m[2][1].weight.mul_(3.0)
    return randomize_bn(m)


class ResidualNet(nn.Module):
    """SEW-style residual: spikes of two depths added (needs a delayed synapse in Lava)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.fc1 = nn.Linear(20, 16)
        self.sn1 = neuron.LIFNode(tau=2.0)
        self.fc2 = nn.Linear(16, 16)
        self.sn2 = neuron.IFNode(v_reset=None)
        self.fc3 = nn.Linear(16, 6)
        self.sn3 = neuron.LIFNode(tau=2.0, decay_input=False, v_reset=None)
        with torch.no_grad():
            self.fc1.weight.mul_(3.0)
            self.fc2.weight.mul_(3.0)
            self.fc3.weight.mul_(2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.sn1(self.fc1(x))
        b = self.sn2(self.fc2(a))
        return self.sn3(self.fc3(a + b))


class ReadoutNet(nn.Module):
    """Ends in a non-spiking Linear readout (real-valued output, summed over time)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.conv = nn.Conv2d(1, 3, 3)
        self.sn = neuron.LIFNode(tau=2.0)
        self.fc = nn.Linear(3 * 4 * 4, 4)
        with torch.no_grad():
            self.conv.weight.mul_(3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.sn(self.conv(x)), 1))


def exact_threshold_net(v_reset: float | None, model: str, decay_input: bool = True) -> nn.Module:
    """Dyadic weights and thresholds: the membrane lands exactly on v_th, often.

    spikingjelly fires on v >= v_th; Lava's stock LIF on v > vth. Exact hits separate the two.
    """
    lin = nn.Linear(8, 6, bias=False)
    w = torch.tensor([[0.25, 0.5, 0.25, 0.0, 0.5, 0.25, 0.0, 0.25]] * 6)
    w = w * torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0, 2.0]).unsqueeze(1)
    with torch.no_grad():
        lin.weight.copy_(w)
    kw = dict(v_threshold=1.0, v_reset=v_reset)
    if model == "if":
        sn = neuron.IFNode(**kw)
    elif model == "lif":
        sn = neuron.LIFNode(tau=2.0, decay_input=decay_input, **kw)
    else:
        sn = neuron.ParametricLIFNode(init_tau=2.0, decay_input=decay_input, **kw)
    lin2 = nn.Linear(6, 3, bias=False)
    with torch.no_grad():
        lin2.weight.copy_(torch.full((3, 6), 0.5))
    return nn.Sequential(lin, sn, lin2, neuron.IFNode(v_threshold=1.0, v_reset=None)).eval()


def snntorch_soft_reset_net(beta: float = 0.5) -> nn.Module:
    """snnTorch's default reset (subtract, delayed): a soft reset by θ/β ≠ V_th (2 for β = ½),
    then an IF with reset_mechanism="none" (soft reset by 0). Dyadic weights, θ = 1."""
    import snntorch as snn

    lin = nn.Linear(8, 6, bias=False)
    w = torch.tensor([[0.25, 0.5, 0.25, 0.0, 0.5, 0.25, 0.0, 0.25]] * 6)
    with torch.no_grad():
        lin.weight.copy_(w * torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0, 2.0]).unsqueeze(1))
    lin2 = nn.Linear(6, 3, bias=False)
    with torch.no_grad():
        lin2.weight.copy_(torch.full((3, 6), 0.25))
    return nn.Sequential(lin, snn.Leaky(beta=beta, threshold=1.0, init_hidden=True), lin2,
                         snn.Leaky(beta=1.0, threshold=1.0, init_hidden=True, output=True,
                                   reset_mechanism="none")).eval()


def binary_spike_inputs(T: int, N: int, shape: tuple[int, ...], p: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((T, N, *shape)) < p).astype(np.float64)


class TicketNet(nn.Module):
    """A binary-weight lottery ticket with a ConvPEP stem and a static patch keep-mask.

    Stage 1: Conv-BN-LIF-MaxPool, stage 2: Conv-BN-LIF on a 4×4 patch grid, masked by
    ``patch_mask`` (applied in forward, as MultiSp does), then a binary Linear-LIF head.
    Weights are sign·α (per output channel for convs, per layer for the head) with
    ``sparsity`` of them zero.
    """

    def __init__(self, sparsity: float = 0.9, seed: int = 0, keep_ratio: float = 0.75,
                 head_alpha: float = 0.6) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.sn1 = neuron.LIFNode(tau=2.0)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.sn2 = neuron.LIFNode(tau=2.0, v_reset=None)
        self.fc = nn.Linear(16 * 4 * 4, 10, bias=False)
        self.sn3 = neuron.IFNode()
        keep = torch.ones(16)
        keep[torch.randperm(16, generator=g)[: int(round(16 * (1 - keep_ratio)))]] = 0
        self.register_buffer("patch_mask", keep.reshape(4, 4))
        with torch.no_grad():
            for m, per_channel, gain in ((self.conv1, True, 1.5), (self.conv2, True, 0.8),
                                         (self.fc, False, head_alpha)):
                w = torch.randn(m.weight.shape, generator=g)
                keep_w = torch.rand(m.weight.shape, generator=g) >= sparsity
                if per_channel:
                    alpha = (torch.rand(m.weight.shape[0], generator=g) + 0.5) * gain
                    alpha = alpha.reshape(-1, *([1] * (w.dim() - 1)))
                else:
                    alpha = torch.tensor(gain)
                m.weight.copy_(torch.sign(w) * alpha * keep_w)
        randomize_bn(self, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.sn1(self.bn1(self.conv1(x))))
        x = self.sn2(self.bn2(self.conv2(x))) * self.patch_mask
        return self.sn3(self.fc(torch.flatten(x, 1)))


def spikformer_net(seed: int = 0) -> nn.Module:
    """The example digits Spikformer (ConvPEP + SSA + MLP) with random, lively weights."""
    from models.digits_arch import digits_spikformer

    torch.manual_seed(seed)
    m = digits_spikformer()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.mul_(4.0)
        m.patch_mask[[0, 5, 10, 15]] = 0
    m.blocks[0].attn.attn_lif.v_threshold = 0.05  # make the attention path fire in tests
    return randomize_bn(m, seed)


class SDSANet(nn.Module):
    """Spike-driven self-attention (Hadamard form): q ⊙ LIF(Σ_tokens k ⊙ v). Input [T, B, N, C]."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.fq, self.fk, self.fv = (nn.Linear(dim, dim) for _ in range(3))
        self.q, self.k, self.v = (neuron.LIFNode(tau=2.0, step_mode="m") for _ in range(3))
        self.kv_lif = neuron.IFNode(v_threshold=0.5, step_mode="m")
        self.proj = nn.Linear(dim, 4)
        self.out = neuron.LIFNode(tau=2.0, v_reset=None, step_mode="m")
        with torch.no_grad():
            for fc in (self.fq, self.fk, self.fv, self.proj):
                fc.weight.mul_(3.0)
                fc.bias.add_(0.6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(self.fq(x)), self.k(self.fk(x)), self.v(self.fv(x))
        kv = self.kv_lif((k * v).sum(dim=-2, keepdim=True))
        return self.out(self.proj(q * kv))


# Networks every backend is checked on: name → (model factory, per-sample input shape, inputs).
CASES = {
    "conv_s": (lambda: conv_net("s"), (1, 8, 8), lambda: np.random.default_rng(0).random((6, 9, 1, 8, 8))),
    "conv_m": (lambda: conv_net("m"), (1, 8, 8), lambda: np.random.default_rng(5).random((6, 9, 1, 8, 8))),
    "seq_container": (seq_container_net, (2, 8, 8), lambda: np.random.default_rng(1).random((5, 7, 2, 8, 8))),
    "residual": (ResidualNet, (20,), lambda: binary_spike_inputs(6, 11, (20,), seed=2)),
    "readout": (ReadoutNet, (1, 6, 6), lambda: np.random.default_rng(3).random((4, 5, 1, 6, 6))),
}


def _prune_(model: nn.Module, sparsity: float, seed: int) -> None:
    """Zero each Conv2d/Linear weight with probability `sparsity` (seeded masks), scale the rest ×6."""
    g = torch.Generator().manual_seed(seed + 7919)  # not the init's stream: masks independent of weights
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                keep = torch.rand(mod.weight.shape, generator=g) >= sparsity
                mod.weight.mul_(keep).mul_(6.0)


def cifar_ticket(sparsity: float = 0.9, seed: int = 0) -> nn.Module:
    """CIFAR-size (3×32×32) pruned VGG-style ticket: 128 and 256 channels, BN, strides,
    padding, a non-square kernel/stride/padding, max-pool chains over ≥128 channels (past
    int8 group counts), IF/LIF/soft-reset IF, and a value readout."""
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(3, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), neuron.IFNode(),
        nn.MaxPool2d(2),                                                        # 16×16
        nn.Conv2d(128, 128, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(128),
        neuron.LIFNode(tau=2.0),                                                # 8×8
        nn.Conv2d(128, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256),
        neuron.IFNode(v_reset=None),                                            # 8×8, soft reset
        nn.MaxPool2d(2),                                                        # 4×4 over 256 channels
        nn.Conv2d(256, 128, (3, 1), stride=(2, 1), padding=(1, 0), bias=False), nn.BatchNorm2d(128),
        neuron.IFNode(),                                                        # 2×4
        nn.MaxPool2d((2, 1)), nn.MaxPool2d((1, 2)),                             # 1×4, then 1×2
        nn.Flatten(), nn.Linear(256, 10),
    )
    _prune_(m, sparsity, seed)
    return randomize_bn(m, seed)


def cifar_stock_ticket(sparsity: float = 0.9, seed: int = 0) -> nn.Module:
    """CIFAR-size (3×32×32) 90 %-pruned ticket whose neurons are all stock-Loihi expressible:
    128 channels at 32 px, a stride, max-pools over 128 channels (OR-pools), a spiking readout."""
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(3, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), neuron.IFNode(),
        nn.MaxPool2d(2),                                                        # 16×16
        nn.Conv2d(128, 128, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(128),
        neuron.LIFNode(tau=2.0),                                                # 8×8
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128 * 16, 10), neuron.IFNode(),
    )
    _prune_(m, sparsity, seed)
    return randomize_bn(m, seed)
