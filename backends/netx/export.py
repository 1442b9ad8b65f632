"""Write a fixed-point netlist (netx rules, :mod:`snncompile.fixedpoint.netx`) as a lava-dl
netx HDF5 file: ``layer/0 … layer/n−1`` of ``input`` (shape only), ``conv``, ``flatten`` and
``dense`` blocks of CUBA neurons, in netx's (C, H, W) order.

Which block a population becomes is looked up by its class (:data:`BLOCK`); a kind netx
cannot load is refused by name, pointing at the emission that runs it. A convolution whose
source is 3-D stays a ``conv`` block (shared kernel); any other projection (a flattened
linear layer, pooling folded into a layer, a convolution after a dense block) is written as
``dense`` with its exact unrolled matrix.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace

import numpy as np

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.fixedpoint import neuron_int
from snncompile.fixedpoint.netx import HINT
from snncompile.ir import Conv2d
from snncompile.netlist import (
    DelayPopulation,
    FixedNetlist,
    HostPopulation,
    InputPopulation,
    NeuronPopulation,
    OrPopulation,
    PopulationRegistry,
    ProductPopulation,
    host_refusal,
)
from snncompile.netlist.netlist import Chain, OutputKind, Projection


@dataclass
class Block:
    """One netx layer group: its type and datasets; ``neuron`` the CUBA neuron's keys."""

    kind: str
    data: dict[str, np.ndarray] = field(default_factory=dict)
    neuron: dict[str, int] | None = None
    name: str = ""


@dataclass
class Layout:
    """The blocks of a file in order, and how to feed and read the network."""

    blocks: list[Block]
    conv_input: bool            # the first block is a conv: feed (W, H, C) frames
    latency: int                # one step per synapse block
    output_shape: tuple[int, ...]


GROUPS_MAX = 127   # Lava's Conv holds groups (and kernel, stride, padding, dilation) as int8
BLOCK = PopulationRegistry("netx export")   # (name, pop, proj, q, flat_source) → Block


def _refuse(what: str) -> SnnCompileError:
    return SnnCompileError(f"{what}, which a netx file cannot hold (netx loads input, conv, dense and flatten "
                           "blocks of LIF neurons only)", HINT, EXIT_UNSUPPORTED)


@BLOCK.register(ProductPopulation)
def _product(name: str, pop, proj, q, flat) -> Block:
    raise _refuse(f"`{name}` multiplies two spike trains (spiking attention)")


@BLOCK.register(DelayPopulation)
def _delay(name: str, pop, proj, q, flat) -> Block:
    raise _refuse(f"`{name}` is a delay line (a recurrent loop or a NIR Delay)")


@BLOCK.register(HostPopulation)
def _host(name: str, pop, proj, q, flat) -> Block:
    raise SnnCompileError(host_refusal(pop, "a netx file"), HINT, EXIT_UNSUPPORTED)


@BLOCK.register(InputPopulation)
def _input(name: str, pop, proj, q, flat) -> Block:
    return Block("input", {"shape": np.asarray(pop.shape, dtype=np.int64)}, name=name)


def _cuba(params: neuron_int.LoihiLIF) -> dict[str, int]:
    """netx's CUBA keys: du = iDecay − 1, dv = vDecay, vth = vThMant (Lava LIF, bias_exp 6)."""
    return {"iDecay": int(params.du) + 1, "vDecay": int(params.dv), "vThMant": int(params.vth), "refDelay": 1}


@BLOCK.register(NeuronPopulation, OrPopulation)
def _neurons(name: str, pop: NeuronPopulation, proj: Projection, q: FixedNetlist, flat: bool) -> Block:
    fixed = q.fixed[name]
    bias = np.asarray(fixed.bias, dtype=np.int64) >> 6     # mantissas: the loader shifts them back by 6
    kernel = proj.kernel
    if kernel is not None and len(proj.chains[0].nodes) == 1 and not flat and len(pop.shape) == 3 \
            and not proj.delay:
        data = _conv(name, pop, proj, kernel, bias)
    else:
        data = {"shape": np.asarray([pop.size], dtype=np.int64),
                "weight": proj.weights.toarray().astype(np.int64), "bias": bias}
    if proj.delay:
        raise _refuse(f"`{name}` is fed through a delay of {proj.delay} steps")
    kind = "conv" if "groups" in data else "dense"
    return Block(kind, data, _cuba(fixed.params), name)


def _conv(name: str, pop: NeuronPopulation, proj: Projection, node: Conv2d, bias: np.ndarray) -> dict:
    """A conv block: the integer kernel read back from the projection's integer matrix (the
    unrolled kernel must equal it: checked), bias per channel when uniform."""
    k, groups = _int_kernel(proj, node), int(node.groups)
    if groups > GROUPS_MAX:   # Lava's Conv stores groups in int8: the same map as one block-diagonal kernel
        k, groups = _ungrouped(k, groups, int(proj.in_shape[0])), 1
    C, H, W = pop.shape
    per_neuron = bias.reshape(C, H * W)
    uniform = bool(np.all(per_neuron == per_neuron[:, :1]))
    # netx broadcasts a (C,) bias over channels, or takes the whole layer in Lava's (W, H, C) order
    b = per_neuron[:, 0] if uniform else bias.reshape(C, H, W).transpose(2, 1, 0)
    return {"shape": np.asarray(pop.shape, dtype=np.int64), "weight": k, "bias": b,
            "stride": np.asarray(node.stride, dtype=np.int64), "padding": np.asarray(node.padding, dtype=np.int64),
            "dilation": np.asarray(node.dilation, dtype=np.int64), "groups": np.int64(groups)}


def _ungrouped(k: np.ndarray, groups: int, c_in: int) -> np.ndarray:
    """A grouped kernel (C_out, C_in/G, kH, kW) as the equal ungrouped one (C_out, C_in, kH, kW)."""
    c_out, per_in = k.shape[:2]
    full = np.zeros((c_out, c_in, *k.shape[2:]), dtype=k.dtype)
    for o in range(c_out):
        g = o // (c_out // groups)
        full[o, g * per_in:(g + 1) * per_in] = k[o]
    return full


def _int_kernel(proj: Projection, node: Conv2d) -> np.ndarray:
    """The integer kernel (C_out, C_in/G, kH, kW) whose convolution is the projection's matrix."""
    w = np.asarray(node.weight, dtype=np.float64)
    mask = np.ones(w.shape, dtype=bool) if node.mask is None else np.asarray(node.mask, dtype=bool)
    m = proj.weights.tocsr()
    # locate each tap once: unroll a kernel of tap numbers and read the integer matrix there
    taps = np.arange(1, w.size + 1, dtype=np.float64).reshape(w.shape) * mask
    numbered = Chain([replace(node, weight=taps, gain=None, bias=None, binary=False, alpha=None)],
                     proj.in_shape).matrix().tocsr()
    kernel = np.zeros(w.size, dtype=np.int64)
    rows = np.repeat(np.arange(numbered.shape[0]), np.diff(numbered.indptr))
    ids = numbered.data.astype(np.int64) - 1
    kernel[ids] = np.asarray(m[rows, numbered.indices]).ravel()
    kernel = kernel.reshape(w.shape)
    check = Chain([replace(node, weight=kernel.astype(np.float64), gain=None, bias=None, binary=False,
                           alpha=None)], proj.in_shape).matrix()
    if (check != m).nnz:   # pragma: no cover - a kernel's taps are shared by construction
        raise ValueError(f"{proj.src}→{proj.dst}: the integer matrix is not one shared kernel")
    return kernel


def layout(q: FixedNetlist) -> Layout:
    """The netx blocks of ``q``: a chain input → … → output population, one projection each."""
    if q.output_kind is not OutputKind.SPIKES:
        raise _refuse(f"the network's output is a {q.output_kind.value} readout (real values, not spikes)")
    for name, pop in q.populations.items():
        if not isinstance(pop, (InputPopulation, NeuronPopulation)):
            BLOCK(pop)(name, pop, None, q, False)           # refuses by name
    order = [q.source.name]
    blocks: list[Block] = []
    flat = False
    while order[-1] != q.output_pop:
        nxt = [p for p in q.projections if p.src == order[-1]]
        if len(nxt) != 1 or len(q.into(nxt[0].dst)) != 1:
            what = nxt[0].dst if len(nxt) == 1 else order[-1]
            raise _refuse(f"`{what}` joins or splits spike paths (a skip connection, concatenation or "
                          "residual add)")
        proj = nxt[0]
        pop = q.populations[proj.dst]
        src_shape = q.populations[proj.src].shape
        block = BLOCK(pop)(proj.dst, pop, proj, q, flat)
        if block.kind == "dense" and len(src_shape) == 3 and blocks:
            blocks.append(Block("flatten", name=f"{proj.src} flattened"))
        flat = flat or block.kind == "dense"
        blocks.append(block)
        order.append(proj.dst)
    conv_input = bool(blocks) and blocks[0].kind == "conv"
    head = [BLOCK(q.source)(q.source.name, q.source, None, q, False)] if conv_input else []
    synapse_blocks = sum(1 for b in blocks if b.kind in ("conv", "dense"))
    return Layout(head + blocks, conv_input, synapse_blocks, tuple(q.populations[q.output_pop].shape))


def write(q: FixedNetlist, target) -> Layout:
    """Write ``q``'s netx file to ``target`` (a path or a binary file object)."""
    import h5py

    lay = layout(q)
    with h5py.File(target, "w") as f:
        f.attrs["generator"] = "snncompile"
        f.attrs["input_scale"] = float(q.input_scale)
        f.attrs["latency_steps"] = lay.latency
        root = f.create_group("layer")
        for i, block in enumerate(lay.blocks):
            g = root.create_group(str(i))
            g.create_dataset("type", data=np.bytes_(block.kind))
            for key, value in block.data.items():
                g.create_dataset(key, data=value)
            if block.neuron is not None:
                n = g.create_group("neuron")
                n.create_dataset("type", data=np.bytes_("CUBA"))
                for key, value in block.neuron.items():
                    n.create_dataset(key, data=np.int64(value))
                n.create_dataset("gradedSpike", data=False)
    return lay


def netx_bytes(q: FixedNetlist) -> bytes:
    """The netx file of ``q`` as bytes (the target's ``model.net``)."""
    buf = io.BytesIO()
    write(q, buf)
    return buf.getvalue()
