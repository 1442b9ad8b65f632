"""Hand-written neurons: a module of the user's that keeps its membrane between calls
(``self.mem = self.mem * leak + x``; the spike from ``(mem >= th).float()`` or a custom
``torch.autograd.Function``; hard or soft reset; per-layer or per-channel threshold and leak).

Such a module is identified by what it computes, not by its name: candidate IF/LIF/PLIF
dynamics are built from its parameters and attributes (threshold, leak/β, τ, reset value),
and one is accepted only if it reproduces the module's own spikes, step for step, on probe
inputs over many time steps (from rest, hard or soft reset, ``>=`` or ``>``). A module that
matches none is refused by name with the equation its ``forward`` was traced to.
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import itertools
import re
import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import neuron_family
from snncompile.ir import Neuron
from snncompile.ir.dynamics import IF, LIF, PLIF, Dynamics
from snncompile.ir.dynamics.step import step

_LIBRARIES = ("torch.", "spikingjelly", "snntorch", "snncompile", "norse", "lava")
_RESET_METHODS = ("reset", "reset_state", "reset_states", "reset_mem", "init_state", "zero_state")
_PROBE_T, _PROBE_B = 24, 3
_REST: dict[type, Any] = {}   # the value a class's state attributes take at rest (None or 0.0)


@functools.cache
def state_attributes(cls: type) -> tuple[str, ...]:
    """The attributes ``cls.forward`` assigns on ``self`` (its state between calls); empty when
    it assigns none or its source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.forward)))
    except (OSError, TypeError, SyntaxError):
        return ()
    fn = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if fn is None or not fn.args.args:
        return ()
    me = fn.args.args[0].arg   # "self", as the author spells it
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == me:
                names.add(t.attr)
    return tuple(sorted(names))


def claims(m: nn.Module) -> bool:
    """A user module without weights whose forward keeps state on ``self``: a neuron candidate
    (identified, or refused by name, when the converter meets it)."""
    cls = type(m)
    if cls.__module__.startswith(_LIBRARIES) or cls.forward is nn.Module.forward:
        return False
    if any(p.dim() >= 2 for p in m.parameters()) or any(True for c in m.children() if list(c.parameters())):
        return False
    return bool(state_attributes(cls))


def reset(m: nn.Module) -> None:
    """Back to rest: the module's own reset method, else its state attributes set to the rest
    value found when it was identified (None by default: ``if self.mem is None`` starts over)."""
    for name in _RESET_METHODS:
        fn = getattr(m, name, None)
        if callable(fn) and not inspect.signature(fn).parameters:
            fn()
            return
    rest = _REST.get(type(m))
    for attr in state_attributes(type(m)):
        value = m.__dict__.get(attr, rest)
        if value is None or isinstance(value, (torch.Tensor, float, int)) and not isinstance(value, bool):
            m.__dict__[attr] = rest


def claims_by_class(cls: type) -> bool | None:
    """A library's class is never a hand-written neuron; a user's depends on the module (its parameters)."""
    return False if cls.__module__.startswith(_LIBRARIES) else None


@neuron_family("hand-written", claims, reset=reset, by_class=claims_by_class)
def hand_neuron(cx: Converter, m: nn.Module, path: str, src: str, shape: tuple[int, ...]) -> str:
    """A hand-written stateful neuron module, by the dynamics its spikes match."""
    return cx.add(path, Neuron(shape, path, dynamics=identify(m, path, shape)), [src])


def identify(m: nn.Module, path: str, shape: tuple[int, ...]) -> Dynamics:
    """The IF/LIF/PLIF dynamics that reproduce ``m`` spike for spike on probe inputs."""
    probe = tuple(shape[:1]) + tuple(min(d, 4) for d in shape[1:])
    consts = _constants(m)
    rng = np.random.default_rng(1234)
    for rest in (None, 0.0):
        _REST[type(m)] = rest
        runs = _probe_runs(m, probe, consts, rng)
        if runs is None:
            continue
        for dyn in _candidates(consts, probe):
            if all(_agrees(dyn, x, s) for x, s in runs):
                return _full_size(dyn, consts, shape)
        break
    raise SnnCompileError(
        f"`{path}` is a hand-written module {type(m).__module__}.{type(m).__qualname__} that keeps state, but "
        f"its spikes match no IF/LIF/PLIF neuron built from its parameters ({', '.join(consts) or 'none'}); "
        f"its forward computes: {equation(m, probe)}",
        "write the neuron as mem = leak*mem + x (leak 1: IF), spike = (mem >= threshold).float() (or >), "
        "then mem = mem*(1 - spike) (hard reset) or mem = mem - threshold*spike (soft reset); or use "
        "spikingjelly's IFNode/LIFNode/ParametricLIFNode", EXIT_UNSUPPORTED)


def _constants(m: nn.Module) -> dict[str, torch.Tensor]:
    """The module's numbers that can be parameters of its dynamics (not its state)."""
    state = set(state_attributes(type(m)))
    out: dict[str, torch.Tensor] = {}
    items = itertools.chain(m.named_parameters(), m.named_buffers(),
                            ((k, v) for k, v in vars(m).items() if not k.startswith("_")))
    for name, v in items:
        if name in state or isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            v = torch.tensor(float(v), dtype=torch.float64)
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel() and bool(torch.isfinite(v).all()):
            out[name] = v.detach().cpu().to(torch.float64)
    return out


def _sample(t: torch.Tensor, shape: tuple[int, ...]) -> float | np.ndarray | None:
    """``t`` as a scalar, or as per-neuron values of a sample of ``shape`` (a per-channel
    vector runs along axis 0); None if it fits neither."""
    if t.numel() == 1:
        return float(t.reshape(()))
    a = t.numpy()
    if a.ndim == 1 and len(shape) > 1 and a.shape[0] == shape[0]:
        a = a.reshape(-1, *([1] * (len(shape) - 1)))
    while a.ndim > len(shape) and a.shape[0] == 1:
        a = a[0]
    try:
        return np.broadcast_to(a, shape).copy()
    except ValueError:
        return None


def _named(consts: dict[str, torch.Tensor], pattern: str) -> list[str]:
    return [k for k in consts if re.search(pattern, k, re.IGNORECASE)]


def _candidates(consts: dict[str, torch.Tensor], shape: tuple[int, ...]) -> Iterator[Dynamics]:
    """IF/LIF/PLIF dynamics built from the module's numbers, the named ones first."""
    th_names = _named(consts, r"th|thr|vth") or list(consts)
    thresholds = [v for v in (_sample(consts[k], shape) for k in th_names) if v is not None] + [1.0]
    leaks = [v for v in (_sample(consts[k], shape) for k in _named(consts, r"leak|beta|decay|alpha|lam"))
             if v is not None and np.all((np.asarray(v) > 0) & (np.asarray(v) <= 1))]
    taus = [v for v in (_sample(consts[k], shape) for k in _named(consts, r"tau"))
            if v is not None and np.ndim(v) == 0 and v > 1]
    resets = [0.0] + [float(consts[k]) for k in _named(consts, r"reset|v_r") if consts[k].numel() == 1]
    for th, strict in itertools.product(thresholds, (False, True)):
        for v_reset in [None, *resets]:
            firing = dict(v_threshold=th, strict=strict, v_reset=v_reset)
            yield IF(**firing)
            for beta in leaks:
                if np.ndim(beta) == 0 and beta == 1:
                    continue
                try:
                    yield PLIF(decay=1.0 - beta if np.ndim(beta) == 0 else 1.0 - beta, decay_input=False,
                               **firing)
                except (ValueError, TypeError):
                    continue
            for tau in taus:
                yield LIF(tau=float(tau), decay_input=True, **firing)
                yield LIF(tau=float(tau), decay_input=False, **firing)


def _run_module(m: nn.Module, x: np.ndarray) -> np.ndarray | None:
    """The module's outputs over the steps of ``x`` [T, B, ...], from rest (None: it fails
    or its output is not spikes)."""
    mod = copy.deepcopy(m).to(torch.float64).eval()
    reset(mod)
    out = []
    try:
        with torch.no_grad():
            for t in range(x.shape[0]):
                y = mod(torch.as_tensor(x[t]))
                y = y[0] if isinstance(y, (tuple, list)) else y
                out.append(np.asarray(y.detach().to(torch.float64).numpy()))
    except Exception:   # noqa: BLE001 - this rest value does not start the module: try the next
        return None
    s = np.stack(out)
    if s.shape != x.shape or not np.all((s == 0) | (s == 1)):
        return None
    return s


def _probe_runs(m: nn.Module, shape: tuple[int, ...], consts: dict[str, torch.Tensor],
                rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Probe inputs at several scales (around each threshold-like value) and the module's
    spikes; only probes where the module both fires and stays silent somewhere count."""
    scales = sorted({float(np.max(np.abs(v.numpy()))) for v in consts.values() if float(v.abs().max()) > 0}
                    | {1.0})
    runs = []
    for scale in scales:
        for gain in (0.5, 2.0, 0.0):
            x = probe_input(rng, (_PROBE_T, _PROBE_B, *shape), scale, gain)
            s = _run_module(m, x)
            if s is None:
                return None
            if 0 < s.mean() < 1:
                runs.append((x, s))
    return runs or None


def probe_input(rng: np.random.Generator, shape: tuple[int, ...], scale: float, gain: float) -> np.ndarray:
    """Uniform values around ``scale·gain``; gain 0: multiples of scale/2 (sums then reach a
    threshold exactly, which tells ``>=`` from ``>``)."""
    if gain == 0.0:
        return rng.integers(-1, 3, shape).astype(np.float64) * (scale / 2)
    return rng.uniform(-0.5, 1.5, shape) * scale * gain


def _agrees(dyn: Dynamics, x: np.ndarray, spikes: np.ndarray) -> bool:
    v = np.full(x.shape[1:], dyn.v_init, dtype=np.float64)
    for t in range(x.shape[0]):
        s, v = step(v, x[t], dyn)
        if not np.array_equal(s, spikes[t]):
            return False
    return True


def _full_size(dyn: Dynamics, consts: dict[str, torch.Tensor], shape: tuple[int, ...]) -> Dynamics:
    """The matched dynamics with per-neuron values for the whole layer (probed on a crop)."""
    changes: dict[str, Any] = {}
    for field in ("v_threshold", "decay"):
        value = getattr(dyn, field, None)
        if isinstance(value, np.ndarray):
            src = next(t for t in consts.values() if _matches(t, value, field))
            full = _sample(src, shape)
            changes[field] = 1.0 - full if field == "decay" else full
    return dyn.with_params(**changes) if changes else dyn


def _matches(t: torch.Tensor, value: np.ndarray, field: str) -> bool:
    s = _sample(t, value.shape)
    if s is None:
        return False
    return bool(np.array_equal(1.0 - s if field == "decay" else s, value))


def equation(m: nn.Module, shape: tuple[int, ...]) -> str:
    """What ``m.forward`` computes on one call, as traced Python (for messages)."""
    from torch import fx

    from snncompile.frontend.tracer import ShapeTracer

    try:
        mod = copy.deepcopy(m).to("meta")
        reset(mod)
        tracer = ShapeTracer(mod, lambda _: False, [torch.empty((1, *shape), device="meta")])
        code = fx.GraphModule(mod, tracer.trace(mod)).code
    except Exception:   # noqa: BLE001 - the source as written is the next best description
        try:
            code = textwrap.dedent(inspect.getsource(type(m).forward))
        except (OSError, TypeError):
            return "(its source is not available)"
    lines = [ln.strip() for ln in code.splitlines()
             if ln.strip() and not ln.strip().startswith(("def ", "#", '"""'))]
    parts = [p.strip() for ln in lines for p in ln.split(";")]
    text = "; ".join(p for p in parts if p and not p.endswith("= None"))
    return text if len(text) <= 600 else text[:600] + " …"
