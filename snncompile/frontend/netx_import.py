"""netx frontend: a lava-dl netx HDF5 file (``.net``/``.h5``) becomes an IR graph.

The file holds ``layer/0 … layer/n−1`` in feed-forward order (lava-dl 0.6.0's
``lava.lib.dl.netx.hdf5``); each layer has a ``type`` and a ``shape`` in (C, H, W) or
(features,) order. Supported: ``input`` (a shape), ``conv``, ``flatten`` (C-order over
(C, H, W), as netx connects it) and ``dense``, each with a CUBA neuron. netx's units become
Lava's membrane units, the units of :class:`~snncompile.ir.dynamics.LoihiCuba`: a synapse of
weight W delivers 64·W (Lava's LIF shifts its input by 6), a bias b is 64·b (``bias_exp`` = 6),
the threshold is 64·vThMant, du = iDecay − 1, dv = vDecay. So the reference simulation steps
Lava's bit-accurate LIF, and ``--fixed-point`` quantizes the network to the same integers
(weights of at most 7 bits + sign keep exactly).

A dense layer's ``delay`` (netx builds a ``DelayDense``: a synapse of delay d delivers d steps
later than one without) becomes one ``Linear`` per distinct delay value, fed by a ``Delay`` of
the layer's input by d steps, the branches summed into the neuron.

Refused by name: an input layer with a neuron (netx writes the input into that neuron's bias
from the host), pool, average, concat, convT, unpool, recurrent and complex dense (netx itself
cannot load most of them), synaptic delays on a conv (netx's loader ignores them), delays past
62 steps (netx clamps them), Sigma-Delta and resonate-and-fire neurons, graded spikes, and a bias on a neuron with current memory (iDecay < 4096: Lava adds the bias to v,
our model to the current, which differ then). Every declared size is checked before an array
is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.ir import IRGraph
from snncompile.ir.dynamics import LoihiCuba
from snncompile.ir.nodes import Add, Conv2d, Delay, Input, Linear, Neuron, Output, Reshape
from snncompile.limits import check_memory, check_regular_file

SUFFIXES = (".net", ".h5", ".hdf5")
BIAS_RANGE = (-4096, 4095)      # bias_mant: signed 13 bit (netx writes bias_exp 6 beside it)
SHIFT = 64                      # Lava's LIF shifts the synaptic input and the bias by 6 bits
WEIGHT_RANGE = (-256, 255)      # netx weights are 8-bit mantissas (mixed sign)
NEURONS = ("CUBA", "LOIHI")
_FIX = "write the file with lava-dl's netx export (or snncompile export --format netx)"


def is_netx(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def _bad(path: Path, what: str, hint: str = _FIX, code: int = EXIT_USAGE) -> SnnCompileError:
    return SnnCompileError(f"netx file {path}: {what}", hint, code)


def _text(v: Any) -> str:
    a = np.asarray(v)
    item = a.reshape(-1)[0] if a.size else b""
    return item.decode("ascii", "replace") if isinstance(item, bytes) else str(item)


def _ints(path: Path, where: str, v: Any, n: int | None = None) -> tuple[int, ...]:
    a = np.asarray(v).reshape(-1)
    if a.size == 0 or not np.all(np.isfinite(a.astype(np.float64))) or np.any(a != np.round(a)):
        raise _bad(path, f"{where} must be whole numbers, got {a.tolist()}")
    if n is not None and a.size == 1:
        a = np.repeat(a, n)
    if n is not None and a.size != n:
        raise _bad(path, f"{where} has {a.size} values, expected {n}")
    return tuple(int(x) for x in a)


class _Reader:
    """One netx file, read layer by layer into an IR graph."""

    def __init__(self, path: Path, fh: Any) -> None:
        self.path, self.fh = path, fh
        self.g = IRGraph(path.stem)
        self.last = ""                    # IR node holding the previous layer's output
        self.shape: tuple[int, ...] = ()  # its shape, (C, H, W) or (features,)
        self.flatten = False

    def read(self, key: str, what: str, layer: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """A dataset of ``layer``, its declared shape checked before it is read."""
        ds = _dataset(self.path, what, layer, key)
        if ds is None:
            raise _bad(self.path, f"layer {what} has no `{key}`")
        if shape is not None and tuple(ds.shape) != shape and int(np.prod(ds.shape)) != int(np.prod(shape)):
            raise _bad(self.path, f"layer {what}: `{key}` declares shape {tuple(ds.shape)}, expected {shape}")
        return np.asarray(ds[()], dtype=np.float64)

    def neuron(self, what: str, layer: Any, shape: tuple[int, ...], bias: np.ndarray | None) -> LoihiCuba:
        if "neuron" not in layer:
            raise _bad(self.path, f"layer {what} has no `neuron`", "give every conv/dense layer a CUBA neuron",
                       EXIT_UNSUPPORTED)
        cfg = layer["neuron"]
        kind = _text(cfg["type"][()]) if "type" in cfg else ""
        if kind not in NEURONS:
            raise _bad(self.path, f"layer {what} has a {kind or 'untyped'} neuron: only CUBA (Lava's LIF) is "
                       "supported", "Sigma-Delta (SDNN) and resonate-and-fire neurons have no snncompile model",
                       EXIT_UNSUPPORTED)
        if "gradedSpike" in cfg and bool(np.asarray(cfg["gradedSpike"][()]).reshape(-1)[0]):
            raise _bad(self.path, f"layer {what} sends graded spikes", "use binary spikes", EXIT_UNSUPPORTED)
        vth, i_decay, v_decay = (_ints(self.path, f"layer {what} neuron {k}", cfg[k][()], 1)[0]
                                 if k in cfg else None for k in ("vThMant", "iDecay", "vDecay"))
        if vth is None or i_decay is None or v_decay is None:
            raise _bad(self.path, f"layer {what}: a CUBA neuron needs vThMant, iDecay and vDecay")
        if not (1 <= i_decay <= 4096 and 0 <= v_decay <= 4095 and 0 <= vth < 1 << 17):
            raise _bad(self.path, f"layer {what}: iDecay={i_decay}, vDecay={v_decay}, vThMant={vth} outside Lava's "
                       "LIF ranges (iDecay 1..4096, vDecay 0..4095, vThMant 17-bit)", code=EXIT_UNSUPPORTED)
        if bias is not None and np.any(bias) and i_decay != 4096:
            raise _bad(self.path, f"layer {what} has a bias and iDecay={i_decay} < 4096",
                       "snncompile adds a bias through the current: exact only without current memory "
                       "(iDecay = 4096)", EXIT_UNSUPPORTED)
        return LoihiCuba(du=i_decay - 1, dv=v_decay, v_threshold=float(vth * SHIFT))

    def add_neuron(self, what: str, layer: Any, synapse: str, shape: tuple[int, ...],
                   bias: np.ndarray | None) -> None:
        dyn = self.neuron(what, layer, shape, bias)
        self.last = self.g.add(self.g.unique_name(f"layer{what}"), Neuron(shape, f"layer{what}", dynamics=dyn),
                               [synapse])
        self.shape = shape

    def bias(self, what: str, layer: Any, n: int) -> np.ndarray | None:
        if "bias" not in layer:
            return None
        b = self.read("bias", what, layer)
        if b.size not in (1, n):
            raise _bad(self.path, f"layer {what}: {b.size} biases for {n} neurons or channels")
        if not np.all(np.isfinite(b)) or np.any(b != np.round(b)) or b.min(initial=0) < BIAS_RANGE[0] \
                or b.max(initial=0) > BIAS_RANGE[1]:
            raise _bad(self.path, f"layer {what}: biases must be whole numbers in [{BIAS_RANGE[0]}, {BIAS_RANGE[1]}] "
                       "(Loihi's signed 13-bit bias mantissa)")
        return np.broadcast_to(b.reshape(-1), (n,)) * SHIFT

    def weights(self, what: str, layer: Any, shape: tuple[int, ...]) -> np.ndarray:
        w = self.read("weight", what, layer, shape).reshape(shape)
        if w.min(initial=0) < WEIGHT_RANGE[0] or w.max(initial=0) > WEIGHT_RANGE[1] or np.any(w != np.round(w)):
            raise _bad(self.path, f"layer {what}: weights must be 8-bit integers in [-256, 255]")
        return w


def _dataset(path: Path, what: str, layer: Any, key: str) -> Any:
    """``layer[key]`` if present (None if not), refused unless an array (a group there is malformed)."""
    import h5py

    if key not in layer:
        return None
    ds = layer[key]
    if not isinstance(ds, h5py.Dataset):
        raise _bad(path, f"layer {what}: `{key}` is a {type(ds).__name__.lower()}, not an array")
    return ds


def _declared(path: Path, fh: Any) -> None:
    """Refuse, from the headers alone, a file whose arrays cannot fit in memory."""
    import h5py

    total = 0

    def visit(name: str, obj: Any) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            total += int(np.prod(obj.shape, dtype=object)) * 8
    fh.visititems(visit)
    check_memory(f"netx file {path} (its arrays)", total * 4, "use a smaller network")


def _input(r: _Reader, what: str, layer: Any) -> None:
    shape = _ints(r.path, f"layer {what} shape", r.read("shape", what, layer))
    if len(r.g):
        raise _bad(r.path, f"layer {what} is a second input", "a netx network has one input layer first")
    if any(s <= 0 for s in shape) or len(shape) not in (1, 3):
        raise _bad(r.path, f"layer {what}: input shape {shape} is not (features,) or (C, H, W)")
    r.last = r.g.add("input", Input(shape, "input"))
    r.g.input_shape = shape
    r.shape = shape
    if "neuron" in layer:
        # netx's Input block leaves its in-port unconnected: the host writes the input into the
        # neuron's bias each step (on the chip); its CPU model does not even compile in lava-nc 0.10
        raise _bad(r.path, f"input layer {what} has a neuron, which netx drives through the neuron's bias "
                   "from the host", "write the input layer with only a shape (the first conv/dense layer "
                   "then receives the input)", EXIT_UNSUPPORTED)


def _need_input(r: _Reader, what: str) -> None:
    if not len(r.g):
        raise _bad(r.path, f"layer {what} comes before any input layer", "start the file with an `input` layer "
                   "that declares the input shape")


def _conv(r: _Reader, what: str, layer: Any) -> None:
    _need_input(r, what)
    if len(r.shape) != 3 or r.flatten:
        raise _bad(r.path, f"layer {what}: a conv needs a (C, H, W) input, got {r.shape}", code=EXIT_UNSUPPORTED)
    c, h, w = r.shape
    out = _ints(r.path, f"layer {what} shape", r.read("shape", what, layer))
    groups = _ints(r.path, f"layer {what} groups", layer["groups"][()], 1)[0] if "groups" in layer else 1
    if "delay" in layer:   # lava-dl 0.6's create_conv never reads it: netx would run the layer without
        raise _bad(r.path, f"layer {what} is a conv with synaptic delays, which netx's loader ignores",
                   "remove the conv layer's `delay` (netx delays exist on dense layers only)", EXIT_UNSUPPORTED)
    ds = _dataset(r.path, what, layer, "weight")
    if ds is None or len(ds.shape) not in (4, 5) or ds.shape[0] != out[0] or groups <= 0 or c % groups \
            or ds.shape[1] * groups != c:
        raise _bad(r.path, f"layer {what}: conv weight {None if ds is None else tuple(ds.shape)} does not match "
                   f"{out[0]} output and {c} input channels in {groups} groups")
    k = tuple(ds.shape[2:4])
    geo = {key: _ints(r.path, f"layer {what} {key}", layer[key][()], 2) if key in layer else dflt
           for key, dflt in (("stride", (1, 1)), ("padding", (0, 0)), ("dilation", (1, 1)))}
    if min(k) < 1 or min(geo["stride"]) < 1 or min(geo["dilation"]) < 1 or min(geo["padding"]) < 0:
        raise _bad(r.path, f"layer {what}: conv kernel {k}, stride {geo['stride']}, dilation {geo['dilation']}, "
                   f"padding {geo['padding']}: kernel, stride and dilation must be >= 1, padding >= 0")
    ho = (h + 2 * geo["padding"][0] - geo["dilation"][0] * (k[0] - 1) - 1) // geo["stride"][0] + 1
    wo = (w + 2 * geo["padding"][1] - geo["dilation"][1] * (k[1] - 1) - 1) // geo["stride"][1] + 1
    if tuple(out) != (out[0], ho, wo) or len(out) != 3:
        raise _bad(r.path, f"layer {what}: declared shape {out}, the convolution gives {(out[0], ho, wo)}")
    if min(out) < 1:
        raise _bad(r.path, f"layer {what}: the convolution gives shape {out}, with no neurons",
                   "use a kernel no larger than the padded input")
    weight = r.weights(what, layer, (out[0], c // groups, *k)) * SHIFT
    bias = r.bias(what, layer, out[0])
    node = Conv2d(tuple(out), f"layer{what}_conv", weight=weight, bias=bias, stride=geo["stride"],
                  padding=geo["padding"], dilation=geo["dilation"], groups=groups, mask=weight != 0)
    syn = r.g.add(r.g.unique_name(f"layer{what}_conv"), node, [r.last])
    r.add_neuron(what, layer, syn, tuple(out), bias)


def _flatten(r: _Reader, what: str, layer: Any) -> None:
    _need_input(r, what)
    n = int(np.prod(r.shape))
    r.last = r.g.add(r.g.unique_name(f"layer{what}_flatten"), Reshape((n,), f"layer{what}_flatten"), [r.last])
    r.shape = (n,)


def _dense(r: _Reader, what: str, layer: Any) -> None:
    _need_input(r, what)
    if len(r.shape) != 1:
        raise _bad(r.path, f"layer {what}: a dense layer after a {r.shape} layer needs a `flatten` layer between")
    out = _ints(r.path, f"layer {what} shape", r.read("shape", what, layer))
    if len(out) != 1 or out[0] < 1:
        raise _bad(r.path, f"layer {what}: dense shape {out} is not (features,) with at least one feature")
    weight = r.weights(what, layer, (out[0], r.shape[0])) * SHIFT
    bias = r.bias(what, layer, out[0])
    delay = _delays(r, what, layer, weight.shape) if "delay" in layer else np.zeros(weight.shape, np.int64)
    groups = [int(d) for d in np.unique(delay[weight != 0])] or [0]
    syn = ""
    for i, d in enumerate(groups):   # one Linear per delay value, fed by the input d steps ago; summed
        w = np.where(delay == d, weight, 0.0) if len(groups) > 1 else weight
        src = r.last if d == 0 else r.g.add(r.g.unique_name(f"layer{what}_delay{d}"),
                                            Delay(r.shape, f"layer{what}_delay{d}", steps=d), [r.last])
        suffix = "" if len(groups) == 1 else f"_d{d}"
        node = Linear(tuple(out), f"layer{what}_dense{suffix}", weight=w, bias=bias if i == 0 else None, mask=w != 0)
        branch = r.g.add(r.g.unique_name(f"layer{what}_dense{suffix}"), node, [src])
        syn = branch if not syn else r.g.add(r.g.unique_name(f"layer{what}_sum"), Add(tuple(out), f"layer{what}_sum"),
                                             [syn, branch])
    r.add_neuron(what, layer, syn, tuple(out), bias)


MAX_DELAY = 62   # Loihi's longest synaptic delay (netx clamps longer ones to it, with a warning)


def _delays(r: _Reader, what: str, layer: Any, shape: tuple[int, int]) -> np.ndarray:
    """A dense layer's ``delay`` as netx reads it: one value, per output neuron, per input
    (when the count matches neither, it is refused) or per synapse ([out, in]); whole steps in
    0 … 62. DelayDense adds d steps to the one every synapse takes."""
    n_out, n_in = shape
    d = np.asarray(layer["delay"][()], dtype=np.float64)
    if d.ndim == 0:
        d = np.full(shape, float(d))
    elif d.ndim == 1 and d.size == n_out:   # netx tests the output count first
        d = np.repeat(d.reshape(-1, 1), n_in, axis=1)
    elif d.ndim == 1 and d.size == n_in:
        d = np.repeat(d.reshape(1, -1), n_out, axis=0)
    elif d.shape != shape:
        raise _bad(r.path, f"layer {what}: `delay` has shape {d.shape}, expected one value, {n_out} (per output), "
                   f"{n_in} (per input) or {shape} (per synapse)")
    if not np.all(np.isfinite(d)) or np.any(d != np.round(d)) or d.min() < 0 or d.max() > MAX_DELAY:
        raise _bad(r.path, f"layer {what}: delays must be whole steps in 0 … {MAX_DELAY}, got {d.min():g} … "
                   f"{d.max():g}", "netx clamps delays above 62 (Loihi's longest); clamp them in the file",
                   EXIT_UNSUPPORTED)
    return d.astype(np.int64)


LAYERS = {"input": _input, "conv": _conv, "flatten": _flatten, "dense": _dense}
REFUSED = {"pool": "max/avg pooling", "average": "averaging", "concat": "concatenation", "convT": "transposed conv",
           "unpool": "unpooling", "dense_rec": "recurrent dense", "dense_comp": "complex (resonate-and-fire) dense"}


def import_netx(path: str | Path) -> IRGraph:
    """Read the netx file ``path`` into an IR graph (rules in the module docstring)."""
    import h5py

    path = check_regular_file(path, "netx file")
    if not path.is_file():
        raise SnnCompileError(f"netx file not found: {path}", "check the path", EXIT_USAGE)
    if not h5py.is_hdf5(path):
        raise _bad(path, "not an HDF5 file")
    try:
        with h5py.File(path, "r") as fh:
            _declared(path, fh)
            return _layers(path, fh)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:   # RuntimeError: h5py's link loops
        raise _bad(path, f"cannot read it: {exc}") from None


def _layers(path: Path, fh: Any) -> IRGraph:
    import h5py

    if not isinstance(fh.get("layer"), h5py.Group):
        raise _bad(path, "no `layer` group")
    keys = list(fh["layer"].keys())
    if sorted(keys, key=lambda k: int(k) if k.isdigit() else -1) != [str(i) for i in range(len(keys))]:
        raise _bad(path, f"layers are named {keys[:5]}…, expected 0 … {len(keys) - 1}")
    r = _Reader(path, fh)
    for i in range(len(keys)):
        layer = fh["layer"][str(i)]
        if not isinstance(layer, h5py.Group):
            raise _bad(path, f"layer {i} is a {type(layer).__name__.lower()}, not a group of datasets")
        kind = _text(layer["type"][()]) if "type" in layer else ""
        if kind in REFUSED:
            raise _bad(path, f"layer {i} is `{kind}` ({REFUSED[kind]}), which snncompile's netx import (like netx's "
                       "own loader for most of them) does not build", "export the network with conv/dense layers "
                       "only (a max-pool of spikes as a grouped conv)", EXIT_UNSUPPORTED)
        if kind not in LAYERS:
            raise _bad(path, f"layer {i} has unknown type {kind!r}", f"netx layer types: {', '.join(LAYERS)}")
        LAYERS[kind](r, str(i), layer)
    if not r.g.of_type(Neuron):
        raise _bad(path, "no conv or dense layer with neurons", code=EXIT_UNSUPPORTED)
    r.g.add("output", Output(r.shape, "output"), [r.last])   # predictions: the last layer's spike counts
    r.g.step_mode = "s"
    r.g.meta["source_model"] = str(path)
    return r.g
