"""Validation of a NIR file at the boundary: declared array sizes before ``nir.read`` loads
them, then every node's parameters (numbers, finite, in range, shapes that fit) and the time
step, so the converters in ``nir_nodes`` only ever see a well-formed graph."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.limits import check_memory

_FIX = "the file is malformed; re-export it from the framework that wrote it"
# Every array is read as float64 by the converters; conversion and the IR hold ~3 copies.
_COPIES = 3


def check_declared_sizes(path: Path) -> None:
    """Sum the sizes the HDF5 datasets declare (headers only) and refuse a file whose
    arrays cannot fit in memory, before ``nir.read`` allocates them."""
    try:
        import h5py
    except ImportError:
        return
    total = 0
    layers: list[tuple[str, Any]] = []

    def visit(name: str, obj: Any) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            total += int(np.prod(obj.shape, dtype=object)) * 8
            if name.endswith("/stride"):   # only convolutions and pools have one
                layers.append((name.rsplit("/", 2)[-2], obj.parent))
    try:
        with h5py.File(path, "r") as fh:
            fh.visititems(visit)
            check_memory(f"NIR graph {path} (its arrays)", total * _COPIES, "use a smaller model")
            for name, group in layers:
                _raw_geometry(name, group)
    except (OSError, ValueError, RuntimeError) as exc:
        raise SnnCompileError(f"cannot read NIR graph {path}: {exc}", _FIX, EXIT_USAGE) from None


_GEOMETRY = {"stride": 1, "dilation": 1, "kernel_size": 1, "groups": 1, "padding": 0}


def _raw_geometry(name: str, group: Any) -> None:
    """Convolution and pooling geometry as stored, before ``nir.read``: nir's constructors
    compute output shapes from it and fail with bare Python errors on a zero stride or a
    weight of the wrong rank."""
    kind = group["type"][()] if "type" in group else b""
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind not in ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d"):
        return
    for field, lo in _GEOMETRY.items():
        ds = group.get(field)
        if ds is not None and getattr(ds, "size", 99) <= 16:   # small by nature: safe to read
            _ints(name, field, ds[()], lo)
    weight = group.get("weight")
    if kind.startswith("Conv") and weight is not None and weight.ndim != int(kind[4]) + 2:
        raise _bad(name, f"weight has {weight.ndim} dimensions, expected {int(kind[4]) + 2} for {kind}")


def _bad(name: str, what: str, hint: str = _FIX) -> SnnCompileError:
    return SnnCompileError(f"NIR node `{name}`: {what}", hint, EXIT_USAGE)


def numbers(name: str, field: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array, or one error naming the node and field."""
    if value is None:
        raise _bad(name, f"{field} is missing")
    try:
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise TypeError(a.dtype)
        return a.astype(np.float64)
    except (TypeError, ValueError):
        shown = repr(value)[:40]
        raise _bad(name, f"{field} is not numeric ({shown})") from None


def _finite(name: str, field: str, value: Any) -> np.ndarray:
    a = numbers(name, field, value)
    if not np.all(np.isfinite(a)):
        raise _bad(name, f"{field} holds NaN or inf")
    return a


def _positive(name: str, field: str, value: Any) -> None:
    a = _finite(name, field, value)
    if a.size == 0 or np.any(a <= 0):
        raise _bad(name, f"{field} must be > 0, got {a.min() if a.size else 'nothing'}")


def _ints(name: str, field: str, value: Any, lo: int) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        return np.zeros(0)
    a = _finite(name, field, value)
    if a.size == 0 or np.any(a != np.round(a)) or np.any(a < lo) or np.any(np.abs(a) > 1 << 31):
        raise _bad(name, f"{field} = {a.ravel().tolist()[:4]} is not a whole number >= {lo}")
    return a


def check_shape(name: str, field: str, value: Any) -> tuple[int, ...]:
    """A declared shape: positive whole numbers whose product fits in memory."""
    a = numbers(name, field, value).ravel()
    if a.size == 0 or np.any(a < 1) or np.any(a != np.round(a)) or np.any(a > 1 << 40):
        raise _bad(name, f"{field} {a.tolist()[:6]} is not a shape of positive integers")
    shape = tuple(int(v) for v in a)
    check_memory(f"NIR node `{name}` ({field} {shape})", math.prod(shape) * 8.0 * _COPIES,
                 "use a smaller input")
    return shape


def _weights(name: str, node: Any, ndim: tuple[int, ...]) -> None:
    w = _finite(name, "weight", node.weight)
    if w.ndim not in ndim:
        raise _bad(name, f"weight has {w.ndim} dimensions, expected {' or '.join(map(str, ndim))}")
    bias = getattr(node, "bias", None)
    if bias is not None:
        b = _finite(name, "bias", bias)
        if b.size not in (1, w.shape[0]):
            raise _bad(name, f"bias has {b.size} values for {w.shape[0]} outputs (weight {w.shape})")


def _conv(name: str, node: Any) -> None:
    _weights(name, node, (3, 4))
    _ints(name, "stride", node.stride, 1)
    _ints(name, "dilation", node.dilation, 1)
    pad = _ints(name, "padding", node.padding, 0)
    w = np.shape(node.weight)
    if pad.size and np.any(pad > 4 * max(w[2:])):   # beyond the kernel: only zeros, no network does it
        raise _bad(name, f"padding {pad.ravel().tolist()} is far beyond the kernel {tuple(w[2:])}")
    _ints(name, "groups", node.groups, 1)


def _pool(name: str, node: Any) -> None:
    k = _ints(name, "kernel_size", node.kernel_size, 1)
    _ints(name, "stride", node.stride, 1)
    pad = _ints(name, "padding", node.padding, 0)
    if pad.size and np.any(pad > k.max()):
        raise _bad(name, f"padding {pad.ravel().tolist()} is larger than the kernel {k.ravel().tolist()}")


_NEURON_FIELDS = {  # (finite, positive) per neuron type name
    "LIF": (("r", "v_leak", "v_reset"), ("tau",)),
    "LI": (("r", "v_leak"), ("tau",)),
    "CubaLIF": (("r", "v_leak", "v_reset", "w_in"), ("tau_mem", "tau_syn")),
    "CubaLI": (("r", "v_leak", "w_in"), ("tau_mem", "tau_syn")),
    "IF": (("r", "v_reset"), ()),
    "I": (("r",), ()),
    "Integrator": (("r",), ()),
    "Threshold": ((), ()),
}


def _neuron(name: str, node: Any) -> None:
    finite, positive = _NEURON_FIELDS[type(node).__name__]
    for field in finite:
        if hasattr(node, field):
            _finite(name, field, getattr(node, field))
    for field in positive:
        _positive(name, field, getattr(node, field))
    for field in ("v_threshold", "threshold"):
        if hasattr(node, field):   # inf is allowed: a neuron that never fires (removed neurons)
            th = numbers(name, field, getattr(node, field))
            if np.any(np.isnan(th)):
                raise _bad(name, f"{field} holds NaN")


def _check_node(name: str, node: Any) -> None:
    import nir

    kind = type(node).__name__
    if isinstance(node, (nir.Input, nir.Output)):
        for v in (getattr(node, "input_type", None) or {}).values():
            check_shape(name, "shape", v)
    elif isinstance(node, (nir.Affine, nir.Linear)):
        _weights(name, node, (2,))
    elif isinstance(node, (nir.Conv2d, nir.Conv1d)):
        _conv(name, node)
    elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        _pool(name, node)
    elif isinstance(node, nir.Scale):
        _finite(name, "scale", node.scale)
    elif isinstance(node, nir.Delay):
        d = _finite(name, "delay", node.delay)
        if np.any(d < 0):
            raise _bad(name, f"delay {d.min():g} is negative")
    elif kind in _NEURON_FIELDS:
        _neuron(name, node)


def check_nodes(nodes: dict[str, Any]) -> None:
    """Every node's parameters: numeric, finite, in range, shapes consistent."""
    for name, node in nodes.items():
        _check_node(name, node)


def check_dt(dt: Any, source: str) -> float:
    """A time step: a finite number > 0."""
    try:
        value = float(np.asarray(dt, dtype=np.float64).ravel()[0])
    except (TypeError, ValueError, IndexError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SnnCompileError(f"{source}: the time step dt = {dt!r} is not a finite number > 0",
                              "pass --nir-dt with the step the exporting framework simulated with "
                              "(e.g. 0.001)", EXIT_USAGE)
    return value
