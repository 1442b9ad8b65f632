"""Small models in other frameworks, exported with their own NIR exporter and run in float64.

Each ``make_*`` writes a .nir file and returns a function x [T, B, n_in] → spikes per NIR
neuron node name [T, B, n] recorded from the framework itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]


def spike_inputs(T: int, B: int, n: int, p: float = 0.3, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, B, n)) < p).astype(np.float64)


def make_snntorch(path: Path, n_in: int = 16, hidden: int = 32, n_out: int = 10,
                  betas: tuple[float, float] = (0.9, 0.8), seed: int = 0) -> Runner:
    """Linear → Leaky → Linear → Leaky; ``reset_mechanism="zero"``, the reset its exporter writes."""
    import nir
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(seed)

    def leaky(n: int, beta: float) -> snn.Leaky:  # vector parameters: the exporter needs shapes
        return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n), init_hidden=True,
                         reset_mechanism="zero", reset_delay=False)

    net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), leaky(hidden, betas[0]),
                              torch.nn.Linear(hidden, n_out), leaky(n_out, betas[1]))
    with torch.no_grad():
        for lin in (net[0], net[2]):
            lin.weight.mul_(2.0)
    nir.write(path, export_to_nir(net, torch.zeros(1, n_in), ignore_dims=[0]))
    return _snntorch_runner(net.double())


def _snntorch_runner(net: torch.nn.Sequential) -> Runner:
    """Step a Linear → neuron → Linear → neuron snnTorch stack (init_hidden) through x [T, N, n_in]
    and record both neuron layers' spikes ("1", "3")."""
    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        for m in (net[1], net[3]):
            m.reset_hidden()
        rec: dict[str, list] = {"1": [], "3": []}
        with torch.no_grad():
            for xt in torch.as_tensor(x):
                h = net[1](net[0](xt)).double()
                rec["1"].append(h.numpy().copy())
                rec["3"].append(net[3](net[2](h)).numpy().copy())
        return {k: np.stack(v) for k, v in rec.items()}
    return run


def make_norse(path: Path, n_in: int = 16, hidden: int = 32, n_out: int = 10, dt: float = 1e-3,
               tau_inv: tuple[float, float] = (100.0, 200.0), seed: int = 0) -> Runner:
    """Linear → LIFBoxCell → Linear → LIFBoxCell (forward-Euler LIF, no synaptic current)."""
    import nir
    from norse.torch import LIFBoxCell, LIFBoxParameters, SequentialState
    from norse.torch.utils.export_nir import to_nir

    torch.manual_seed(seed)
    def params(n: int, t: float, dtype: torch.dtype) -> LIFBoxParameters:  # vectors: NIR needs shapes
        return LIFBoxParameters(tau_mem_inv=torch.full((n,), t, dtype=dtype), v_th=torch.ones(n, dtype=dtype),
                                v_leak=torch.zeros(n, dtype=dtype), v_reset=torch.zeros(n, dtype=dtype))

    cells = [LIFBoxCell(params(n, t, torch.float32), dt=dt) for n, t in ((hidden, tau_inv[0]), (n_out, tau_inv[1]))]
    lin = [torch.nn.Linear(n_in, hidden), torch.nn.Linear(hidden, n_out)]
    with torch.no_grad():
        for m in lin:
            m.weight.mul_(8.0)
    net = SequentialState(lin[0], cells[0], lin[1], cells[1])
    nir.write(path, to_nir(net, torch.zeros(n_in), dt=dt))
    lin = [m.double() for m in lin]
    cells = [LIFBoxCell(params(n, t, torch.float64), dt=dt) for n, t in ((hidden, tau_inv[0]), (n_out, tau_inv[1]))]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        s1 = s2 = None
        rec: dict[str, list] = {"1": [], "3": []}
        with torch.no_grad():
            for xt in torch.as_tensor(x):
                z1, s1 = cells[0](lin[0](xt), s1)
                z2, s2 = cells[1](lin[1](z1), s2)
                rec["1"].append(z1.numpy().copy())
                rec["3"].append(z2.numpy().copy())
        return {k: np.stack(v) for k, v in rec.items()}
    return run


def make_snntorch_synaptic(path: Path, n_in: int = 16, hidden: int = 32, n_out: int = 10,
                           alphas: tuple[float, float] = (0.8, 0.6), betas: tuple[float, float] = (0.9, 0.7),
                           seed: int = 0) -> Runner:
    """Linear → Synaptic → Linear → Synaptic (current-based LIF, NIR CubaLIF);
    ``reset_mechanism="zero"``, ``reset_delay=False``, the reset its exporter writes."""
    import nir
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(seed)

    def synaptic(n: int, alpha: float, beta: float) -> snn.Synaptic:
        return snn.Synaptic(alpha=torch.full((n,), alpha), beta=torch.full((n,), beta), threshold=torch.ones(n),
                            init_hidden=True, reset_mechanism="zero", reset_delay=False)

    net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), synaptic(hidden, alphas[0], betas[0]),
                              torch.nn.Linear(hidden, n_out), synaptic(n_out, alphas[1], betas[1]))
    nir.write(path, export_to_nir(net, torch.zeros(1, n_in), ignore_dims=[0]))
    return _snntorch_runner(net.double())


class _Float64(torch.nn.Module):
    """snnTorch's spikes stay float32 in a float64 model: its recurrent layer reads them as float64."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.double())


def make_snntorch_recurrent(path: Path, kind: str = "rleaky", n_in: int = 16, hidden: int = 32, n_out: int = 10,
                            seed: int = 0) -> Runner:
    """Linear → RLeaky (recurrent) → Linear → Leaky. ``kind``: "rleaky" (all-to-all recurrent
    Linear with bias) or "rleaky-v" (one-to-one recurrent weights V). ``reset_mechanism="zero"``,
    ``reset_delay=False``, the reset its exporter writes. (``RSynaptic`` with that reset
    raises a TypeError in snnTorch 1.0.0's own forward, so it has no oracle here.)"""
    import nir
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(seed)
    common = dict(threshold=torch.ones(hidden), init_hidden=True, reset_mechanism="zero", reset_delay=False)
    if kind == "rleaky-v":
        rec = snn.RLeaky(beta=torch.full((hidden,), 0.9), all_to_all=False, V=torch.rand(hidden) - 0.6, **common)
    else:
        rec = snn.RLeaky(beta=torch.full((hidden,), 0.9), linear_features=hidden, **common)
    out = snn.Leaky(beta=torch.full((n_out,), 0.8), threshold=torch.ones(n_out), init_hidden=True,
                    reset_mechanism="zero", reset_delay=False)
    net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), rec, torch.nn.Linear(hidden, n_out), out)
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        if kind != "rleaky-v":
            rec.recurrent.weight.mul_(2.0)
    nir.write(path, export_to_nir(net, torch.zeros(1, n_in), ignore_dims=[0]))
    net = net.double()
    rec.recurrent = _Float64(rec.recurrent)

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        for m in (rec, out):   # a state of another shape is re-made like the input (float64)
            for state in ("spk", "mem"):
                if hasattr(m, state):
                    setattr(m, state, torch.zeros(0, dtype=torch.float64))
        spikes: dict[str, list] = {"1": [], "3": []}
        with torch.no_grad():
            for xt in torch.as_tensor(x):
                h = rec(net[0](xt)).double()
                spikes["1"].append(h.numpy().copy())
                spikes["3"].append(out(net[2](h)).numpy().copy())
        return {k: np.stack(v) for k, v in spikes.items()}
    return run


def make_norse_readout(path: Path, n_in: int = 16, hidden: int = 32, n_out: int = 10, dt: float = 1e-3,
                       tau_inv: tuple[float, float] = (100.0, 50.0), seed: int = 0,
                       current_based: bool = False) -> Runner:
    """Linear → LIFBoxCell (or LIFCell, current-based: NIR CubaLIF) → Linear → LIBoxCell
    (NIR LI, the non-spiking readout). Returns hidden spikes ("1") and readout values ("3")."""
    import nir
    from norse.torch import (
        LIBoxCell,
        LIBoxParameters,
        LIFBoxCell,
        LIFBoxParameters,
        LIFCell,
        LIFParameters,
        SequentialState,
    )
    from norse.torch.utils.export_nir import to_nir

    torch.manual_seed(seed)

    def cells(dtype: torch.dtype) -> list[torch.nn.Module]:
        def full(v: float, n: int) -> torch.Tensor:
            return torch.full((n,), v, dtype=dtype)
        if current_based:
            hid = LIFCell(LIFParameters(tau_mem_inv=full(tau_inv[0], hidden), tau_syn_inv=full(2 * tau_inv[0], hidden),
                                        v_th=full(1.0, hidden), v_leak=full(0.0, hidden),
                                        v_reset=full(0.0, hidden)), dt=dt)
        else:
            hid = LIFBoxCell(LIFBoxParameters(tau_mem_inv=full(tau_inv[0], hidden), v_th=full(1.0, hidden),
                                              v_leak=full(0.0, hidden), v_reset=full(0.0, hidden)), dt=dt)
        out = LIBoxCell(LIBoxParameters(tau_mem_inv=full(tau_inv[1], n_out), v_leak=full(0.0, n_out)), dt=dt)
        return [hid, out]

    lin = [torch.nn.Linear(n_in, hidden), torch.nn.Linear(hidden, n_out)]
    with torch.no_grad():
        for m in lin:
            m.weight.mul_(8.0)
    c32 = cells(torch.float32)
    nir.write(path, to_nir(SequentialState(lin[0], c32[0], lin[1], c32[1]), torch.zeros(n_in), dt=dt))
    lin = [m.double() for m in lin]
    c64 = cells(torch.float64)

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        s1 = s2 = None
        rec: dict[str, list] = {"1": [], "3": []}
        with torch.no_grad():
            for xt in torch.as_tensor(x):
                z1, s1 = c64[0](lin[0](xt), s1)
                v2, s2 = c64[1](lin[1](z1), s2)
                rec["1"].append(z1.numpy().copy())
                rec["3"].append(v2.numpy().copy())
        return {k: np.stack(v) for k, v in rec.items()}
    return run


def make_spikingjelly(path: Path, hidden_neuron: str = "if", n_in: int = 16, hidden: int = 32, n_out: int = 10,
                      seed: int = 0) -> Runner:
    """Linear → {IF, LIF(decay_input), LIF(not), CUBALIF} → Linear → IF in spikingjelly 2.0,
    exported with its ``export_to_nir`` (dt = 1e-4: IF r = 1/dt, LIF τ·dt). Keys "1", "3"."""
    import nir
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    torch.manual_seed(seed)
    hid = {"if": lambda: neuron.IFNode(v_reset=0.0),
           "lif": lambda: neuron.LIFNode(tau=2.0, decay_input=True),
           "lif_no_decay_input": lambda: neuron.LIFNode(tau=4.0, decay_input=False),
           "cubalif": lambda: neuron.CUBALIFNode(c_decay=0.5, v_decay=0.75)}[hidden_neuron]()
    net = torch.nn.Sequential(layer.Linear(n_in, hidden), hid, layer.Linear(hidden, n_out), neuron.IFNode(v_reset=0.0))
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.mul_(3.0)
    nir.write(path, export_to_nir(net, torch.zeros(1, n_in), dt=1e-4))
    net = net.double()

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        functional.reset_net(net)
        rec: dict[str, list] = {"1": [], "3": []}
        with torch.no_grad():
            for xt in torch.as_tensor(x):
                h = net[1](net[0](xt))
                rec["1"].append(h.numpy().copy())
                rec["3"].append(net[3](net[2](h)).numpy().copy())
        return {k: np.stack(v) for k, v in rec.items()}
    return run


def agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, int]:
    """Fraction of equal spike entries over the common layers, and the number compared."""
    same = total = 0
    for k in a:
        same += int(np.sum(a[k] == b[k].reshape(a[k].shape)))
        total += a[k].size
    return same / total, total
