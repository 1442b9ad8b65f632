"""Neurons written inline in forward(): a membrane recurrence over a ``for t in range(T)``
loop, the membranes kept in dicts or lists (DIET-SNN / attention-guided compression code):

    mem[k] = leak[k] * mem[k] + conv_k(out)
    spike  = SpikeFn.apply(mem[k] / threshold[k] - 1)      # or (mem[k] >= th).float()
    mem[k] = mem[k] - threshold[k] * spike                  # or mem[k] * (1 - spike)

The traced (unrolled) graph is searched for spikes (a comparison, cast to float); the
elementwise computation behind each spike back to its synaptic input is one neuron's
update, and the spikes whose updates chain into each other (through the membrane) are
one neuron layer over the steps. Its dynamics are found as for a hand-written module
(``hand_neurons``): IF/LIF/PLIF candidates from the parameters it reads, accepted only if
they reproduce its spikes step for step on probe inputs. The recurrence is then replaced
by calls of one :class:`InlineNeuron` per layer, so the time loop folds as usual.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.hand_neurons import _agrees, _candidates, probe_input
from snncompile.frontend.ops.registry import neuron_family
from snncompile.frontend.taps import SpikeTap
from snncompile.ir import Neuron
from snncompile.ir.dynamics import Dynamics

_COMPARE = {operator.gt, operator.ge, torch.gt, torch.ge, "gt", "ge", "__gt__", "__ge__"}
_CAST = {"float", "double", "to", "type", "half"}
_ARITH = {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.iadd,
          operator.isub, operator.imul, operator.itruediv, torch.add, torch.sub, torch.mul, torch.div,
          torch.neg, "add", "sub", "mul", "div", "neg", "__add__", "__sub__", "__mul__", "__truediv__",
          "__radd__", "__rsub__", "__rmul__", "detach", "clone", "contiguous", "add_", "sub_", "mul_"}
_ZEROS = {torch.zeros_like, "zeros_like", "new_zeros", torch.zeros}
_PROBES = 12


class InlineNeuron(nn.Module):
    """A neuron layer found inline in forward() (its update replaced by calls of this module)."""

    def __init__(self, dynamics: Dynamics, equation: str, source: SpikeTap) -> None:
        super().__init__()
        self.dynamics = dynamics
        self.equation = equation
        self.source = source   # where forward() computes it, and which module receives its spikes

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # shapes only: the graph is converted, not run
        return x * 0


@neuron_family("inline", lambda m: isinstance(m, InlineNeuron), recorded=False,
               by_class=lambda cls: issubclass(cls, InlineNeuron))
def inline_neuron(cx: Converter, m: InlineNeuron, path: str, src: str, shape: tuple[int, ...]) -> str:
    name = cx.add(path, Neuron(shape, str(m.source), dynamics=m.dynamics), [src])
    cx.neuron_sources[name] = m.source
    return name


def _key(n: fx.Node) -> Any:
    return n.target


def _is(n: Any, names: set) -> bool:
    return isinstance(n, fx.Node) and n.op in ("call_function", "call_method") and _key(n) in names


def _spikes(graph: fx.Graph) -> list[fx.Node]:
    """Comparisons cast to float (or used as they are): the candidate spikes, in graph order."""
    out = []
    for n in graph.nodes:
        if _is(n, _COMPARE):
            casts = [u for u in n.users if _is(u, _CAST)]
            out.append(casts[0] if len(casts) == 1 and len(n.users) == 1 else n)
    return out


def _closure(spike: fx.Node) -> tuple[set[fx.Node], set[fx.Node]]:
    """(the elementwise nodes ``spike`` is computed by, the tensors they read from outside)."""
    inside: set[fx.Node] = set()
    frontier: set[fx.Node] = set()
    stack = [spike]
    while stack:
        n = stack.pop()
        if n in inside:
            continue
        if n.op == "get_attr" or _is(n, _ARITH | _COMPARE | _CAST) or _is(n, _ZEROS):
            inside.add(n)
            if not _is(n, _ZEROS):   # zeros_like(x) reads only x's shape
                stack.extend(n.all_input_nodes)
        else:
            frontier.add(n)
    return inside, frontier


def _layers(spikes: list[fx.Node]) -> list[list[fx.Node]]:
    """Spikes grouped by membrane: each spike's update reads the spikes before it in its group."""
    group: dict[fx.Node, int] = {}
    layers: list[list[fx.Node]] = []
    first: dict[Any, fx.Node] = {}
    for s in spikes:
        cmp = s if _is(s, _COMPARE) else s.args[0]
        key = (cmp.target, cmp.args, tuple(cmp.kwargs.items()))
        if key in first and first[key] in group:   # the same comparison again (DIET-SNN's reset mask)
            group[s] = group[first[key]]
            continue
        first.setdefault(key, s)
        inside, _ = _closure(s)
        earlier = {group[t] for t in inside if t in group and t is not s}
        if len(earlier) == 1:
            k = earlier.pop()
            layers[k].append(s)
            group[s] = k
        elif not earlier:
            group[s] = len(layers)
            layers.append([s])
        else:
            return []   # spikes of several layers meet elementwise: not a recurrence we can read
    return layers


def rewrite(gm: fx.GraphModule) -> list[str]:
    """Replace every inline neuron layer of ``gm`` by calls of an :class:`InlineNeuron`
    (registered on ``gm``); returns their paths."""
    paths = []
    for k, steps in enumerate(_layers(_spikes(gm.graph))):
        found = _layer(gm, steps)
        if found is None:
            continue
        inputs, inside, dyn, equation = found
        path = f"inline_neuron_{k}"
        gm.add_submodule(path, InlineNeuron(dyn, equation, _source(gm, steps, inside)))
        for x, s in zip(inputs, steps):
            with gm.graph.inserting_before(s):
                call = gm.graph.call_module(path, (x,))
            call.meta.update({key: s.meta[key] for key in ("value", "nn_module_stack") if key in s.meta})
            s.replace_all_uses_with(call, delete_user_cb=lambda u, inside=inside: u not in inside)
        paths.append(path)
    if paths:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return paths


def _layer(gm: fx.GraphModule, steps: list[fx.Node]) -> tuple[list[fx.Node], set[fx.Node], Dynamics, str] | None:
    """(each step's synaptic input, the update's nodes, the dynamics, the equation), or None
    when the update is not one neuron's (several inputs per step, its membrane read elsewhere)."""
    inputs, seen, inside = [], set(), set()
    for s in steps:
        nodes, frontier = _closure(s)
        new = frontier - seen
        if len(new) != 1:
            return None
        inputs.append(next(iter(new)))
        seen |= frontier
        inside |= nodes
    core = set(inside)
    members = inside - set(steps)
    for n in [n for n in members if n.op != "get_attr"]:
        for u in n.users:
            if u not in inside and not _dead_tail(u, inside):
                return None   # a membrane or comparison is read by the network itself
    value = steps[0].meta.get("value")
    if not isinstance(value, torch.Tensor):
        return None
    shape = tuple(value.shape[1:])
    program = _program(gm, sorted(core, key=_order(gm)), inputs, steps)
    consts = _constants(gm, core)
    equation = _equation(program)
    dyn = _identify(program, consts, shape, len(steps))
    if dyn is None and len(steps) == 1 and not any(_is(n, _ARITH) for n in core):
        return None   # one comparison with no membrane (a token mask from scores): a host comparison
    if dyn is None:
        path = _where(steps[0])
        raise SnnCompileError(
            f"the membrane recurrence at `{path}` (spikes from a comparison, {len(steps)} steps) is not an "
            f"IF/LIF/PLIF neuron with its parameters ({', '.join(consts) or 'none'}); it computes: {equation}",
            "write it as mem = leak*mem + x (leak 1: IF), spike = (mem >= threshold).float() (or >, or "
            "mem/threshold - 1 > 0), then mem = mem*(1 - spike) (hard reset) or mem = mem - threshold*spike "
            "(soft reset)", EXIT_UNSUPPORTED)
    return inputs, inside, dyn, equation


def _source(gm: fx.GraphModule, steps: list[fx.Node], inside: set[fx.Node]) -> SpikeTap:
    """Where the neuron is written (the comparison's ``Class.forward (file:line)``) and the
    parameters it reads; its spikes are observable as the input of the module every step's
    spike is passed to alone (e.g. the next layer), if there is one."""
    cmp = steps[0] if _is(steps[0], _COMPARE) else steps[0].args[0]
    site = cmp.meta.get("site") or f"{_where(steps[0])}.forward"
    params = dict(gm.named_parameters())
    names = sorted({str(n.target) for n in inside if n.op == "get_attr" and str(n.target) in params})
    label = f"{site}: {', '.join(names)}" if names else site
    receivers = set()
    for s in steps:
        users = [u for u in s.users if u.op == "call_module" and u.args == (s,) and not u.kwargs]
        receivers.add(users[0].target if len(users) == 1 else None)
    module = receivers.pop() if len(receivers) == 1 else None
    return SpikeTap(label, module)


def _dead_tail(n: fx.Node, inside: set[fx.Node]) -> bool:
    """``n`` and everything computed from it are elementwise and unused (the membrane after
    the last step's reset); added to ``inside``."""
    tail, stack = set(), [n]
    while stack:
        m = stack.pop()
        if m in tail or m in inside:
            continue
        if not _is(m, _ARITH | _COMPARE | _CAST):
            return False
        tail.add(m)
        stack.extend(m.users)
    inside |= tail
    return True


def _order(gm: fx.GraphModule):
    index = {n: i for i, n in enumerate(gm.graph.nodes)}
    return lambda n: index[n]


def _program(gm: fx.GraphModule, nodes: list[fx.Node], inputs: list[fx.Node], outputs: list[fx.Node]) -> fx.GraphModule:
    """The update alone, as a function of the per-step inputs: (x_0, …, x_{T−1}) → spikes."""
    g = fx.Graph()
    env: dict[fx.Node, Any] = {x: g.placeholder(f"x{i}") for i, x in enumerate(inputs)}
    for n in nodes:
        if _is(n, _ZEROS) or _zero_constant(gm, n):
            env[n] = 0.0
            continue
        env[n] = g.node_copy(n, lambda a: env[a])
    g.output(tuple(env[o] for o in outputs))
    return fx.GraphModule(gm, g)


def _constants(gm: fx.GraphModule, inside: set[fx.Node]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for n in inside:
        if n.op == "get_attr" and not _zero_constant(gm, n):
            v = gm.get_parameter(n.target) if n.target in dict(gm.named_parameters()) else getattr_path(gm, n.target)
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                out[str(n.target)] = v.detach().cpu().to(torch.float64)
        for a in n.args:
            if isinstance(a, float) and a not in (0.0, 1.0):
                out.setdefault(f"constant {a:g}", torch.tensor(a, dtype=torch.float64))
    return out


def _zero_constant(gm: fx.GraphModule, n: fx.Node) -> bool:
    """A tensor of zeros made in forward() with the trace's batch size (the membranes' start,
    ``torch.zeros(x.shape[0], ...)``, folded to a constant by the tracer): zero at any batch."""
    if n.op != "get_attr" or str(n.target) in dict(gm.named_parameters()):
        return False
    v = getattr_path(gm, n.target)
    return isinstance(v, torch.Tensor) and v.device.type != "meta" and v.numel() > 1 and not bool(v.any())


def getattr_path(root: nn.Module, target: str) -> Any:
    obj: Any = root
    for part in str(target).split("."):
        obj = getattr(obj, part)
    return obj


def _identify(program: fx.GraphModule, consts: dict[str, torch.Tensor], shape: tuple[int, ...],
              steps: int) -> Dynamics | None:
    rng = np.random.default_rng(4321)
    scales = sorted({float(v.abs().max()) for v in consts.values() if float(v.abs().max()) > 0} | {1.0})
    runs = []
    for i in range(_PROBES):
        x = probe_input(rng, (steps, 2, *shape), scales[i % len(scales)], (0.5, 1.0, 2.0, 0.0)[i % 4])
        with torch.no_grad():
            out = program(*(torch.as_tensor(x[t]) for t in range(steps)))
        s = np.stack([np.asarray(o.detach().to(torch.float64).numpy()) for o in out])
        if not np.all((s == 0) | (s == 1)):
            return None
        if 0 < s.mean() < 1:
            runs.append((x, s))
    if not runs:
        return None
    return next((d for d in _candidates(consts, shape) if all(_agrees(d, x, s) for x, s in runs)), None)


def _equation(program: fx.GraphModule) -> str:
    lines = [ln.strip() for ln in program.code.splitlines() if ln.strip() and not ln.strip().startswith("def ")]
    parts = [p.strip() for ln in lines for p in ln.split(";")]
    text = "; ".join(p for p in parts if p and not p.endswith("= None"))
    return text if len(text) <= 600 else text[:600] + " …"


def _where(n: fx.Node) -> str:
    stack = list((n.meta.get("nn_module_stack") or {}).values())
    return stack[-1][0] if stack else "forward"
