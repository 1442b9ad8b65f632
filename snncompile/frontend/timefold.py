"""Where time lives in a traced model, and the one-step program of a model that loops over T.

Calling conventions, found from the traced graph (probe sizes T, B):

- ``s``: one call per time step on ``[B, ...]``; no neuron module is called twice.
- ``m``: one call on ``[T, B, ...]`` (spikingjelly multi-step).
- ``static-m``: one call on a static ``[B, ...]``; forward() repeats it over its own T
  (``x.unsqueeze(0).repeat(T, 1, 1, 1, 1)``, Spikformer and Spike-driven Transformer).
- ``loop``: one call on a static ``[B, ...]``; forward() loops ``for t in range(T)`` over
  single-step neurons and stacks or sums the per-step outputs (snnTorch tutorials, Kim et
  al.'s lottery tickets). The unrolled graph is folded back to one step: every step must
  repeat step 0's operations on its own values, and the output must be the per-step values
  stacked, summed or averaged over time.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError

_STACK = {torch.stack, torch.cat}
_REDUCE = {"mean", "sum"}


@dataclass
class TimeLayout:
    convention: str                 # "s" | "m" | "static-m" | "loop"
    steps: int | None = None        # the model's own T ("static-m", "loop")
    output: fx.Node | None = None   # the fx value of one step's output ("loop")
    reduced: bool = False           # the model's output is summed or averaged over time
    keep: set[str] = field(default_factory=set)   # fx nodes one step needs (all if empty)
    output_steps: bool = False      # forward() returns a list with one output per step


def _name(n: fx.Node) -> str:
    t = n.target
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def output_value(graph: fx.Graph) -> Any:
    """The model's prediction value: its return value, or the first of several (snnTorch
    models return (spikes, membranes))."""
    out = next(n for n in graph.nodes if n.op == "output")
    arg = out.args[0]
    while isinstance(arg, (tuple, list)) and arg:
        arg = arg[0]
    return arg


def ancestors(node: fx.Node) -> set[str]:
    """Names of ``node`` and every node it is computed from."""
    return {n.name for n in _ancestor_nodes(node)}


def neuron_calls(graph: fx.Graph, is_neuron_target: Callable[[str], bool]) -> dict[str, list[fx.Node]]:
    calls: dict[str, list[fx.Node]] = {}
    for n in graph.nodes:
        if n.op == "call_module" and is_neuron_target(str(n.target)):
            calls.setdefault(str(n.target), []).append(n)
    return calls


def lift_steps(graph: fx.Graph, values: dict[str, Any], batch: int) -> int | None:
    """The T of a static input repeated over time inside forward(): the size of the new
    leading axis of the first ``repeat``/``expand``/``stack`` that turns [1|B, …] into [T, B, …]."""
    for n in graph.nodes:
        out = values.get(n.name)
        if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[1] != batch:
            continue
        ins = [values.get(a.name) for a in n.all_input_nodes]
        if _name(n) in ("repeat", "expand", "expand_as", "repeat_interleave") or n.target in _STACK:
            if any(isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] in (1, batch)
                   and v.dim() <= out.dim() for v in ins):
                return int(out.shape[0])
    return None


def fold_loop(graph: fx.Graph, calls: dict[str, list[fx.Node]]) -> TimeLayout:
    """The one-step program of a model whose forward() loops over time (``loop``)."""
    counts = {t: len(ns) for t, ns in calls.items()}
    steps = max(counts.values())
    if len(set(counts.values())) != 1:
        uneven = ", ".join(f"`{t}` {c}×" for t, c in counts.items())
        raise _fold_error(f"forward() calls its neurons an uneven number of times ({uneven})",
                          "call every neuron module once per time step")
    step_of: dict[str, frozenset[int]] = {}
    for n in graph.nodes:
        if n.op == "call_module" and str(n.target) in calls:
            k = calls[str(n.target)].index(n)
            step_of[n.name] = frozenset({k})
            continue
        lab: frozenset[int] = frozenset()
        for a in n.all_input_nodes:
            lab |= step_of.get(a.name, frozenset())
        step_of[n.name] = lab
    ret = next(n for n in graph.nodes if n.op == "output").args[0]
    if isinstance(ret, (list, tuple)) and len(ret) == steps and all(
            isinstance(v, fx.Node) and step_of[v.name] == frozenset({k}) for k, v in enumerate(ret)):
        per, reduced, listed = list(ret), False, True      # a list of per-step outputs (Kim et al.)
    else:
        out = output_value(graph)
        if not isinstance(out, fx.Node):
            raise _fold_error("the model returns no tensor", "return the output layer's values")
        (per, reduced), listed = _per_step(out, step_of, steps), False
    _check_repeats(per, step_of, set(calls))
    check_states(calls, looped=True)
    return TimeLayout("loop", steps=steps, output=per[0], reduced=reduced, keep=ancestors(per[0]),
                      output_steps=listed)


def _per_step(n: fx.Node, step_of: dict[str, frozenset[int]], steps: int) -> tuple[list[fx.Node], bool]:
    """(each step's value, reduced) for the model's output ``n`` built from all steps."""
    lab = step_of[n.name]
    if len(lab) <= 1:
        raise _fold_error(f"the model's output `{n.format_node()}` depends only on "
                          f"{'time step ' + str(min(lab)) if lab else 'the input'}, not on every step",
                          "return the per-step outputs stacked (torch.stack(outs)) or summed over time")
    name = _name(n)
    if n.target in _STACK:
        items = n.args[0] if n.args else n.kwargs.get("tensors")
        dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
        if dim == 0 and isinstance(items, (list, tuple)) and len(items) == steps and \
                all(isinstance(v, fx.Node) and step_of[v.name] == frozenset({k}) for k, v in enumerate(items)):
            return list(items), False
    if name in _REDUCE and n.args and isinstance(n.args[0], fx.Node):
        dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
        if dim in (0, (0,), [0]):
            per, _ = _per_step(n.args[0], step_of, steps)
            return per, True
    if name in ("truediv", "div", "mul", "__truediv__", "__mul__") or n.target in (operator.truediv,
                                                                               operator.mul):
        # a positive constant factor (mean = sum / T) leaves every prediction unchanged
        tensors = [a for a in n.args if isinstance(a, fx.Node)]
        scalars = [a for a in n.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        divides = name in ("truediv", "div", "__truediv__") or n.target is operator.truediv
        if len(tensors) == 1 and len(scalars) == 1 and scalars[0] > 0 and not n.kwargs \
                and (not divides or n.args[0] is tensors[0]):
            return _per_step(tensors[0], step_of, steps)
    if name in ("add", "iadd", "__add__", "__iadd__") or n.target in (operator.add, operator.iadd, torch.add):
        terms = _sum_terms(n, step_of)
        per = {}
        for t in terms:
            if not isinstance(t, fx.Node):
                break
            lab_t = step_of[t.name]
            if len(lab_t) != 1 or min(lab_t) in per:
                break   # a term not of one step (a static offset, a constant), or a step twice
            per[min(lab_t)] = t
        else:
            if sorted(per) == list(range(steps)):
                return [per[k] for k in range(steps)], True
    raise _fold_error(f"the model's output `{n.format_node()}` combines the time steps in a way "
                      "snncompile cannot read", "return torch.stack(per_step_outputs) (or their sum/mean "
                      "over time)")


def _sum_terms(n: fx.Node, step_of: dict[str, frozenset[int]]) -> list[Any]:
    """The summands of an accumulation ``acc = acc + y_t``; a zero start (``acc = 0``,
    ``torch.zeros(...)``) is dropped, any other constant or static term is kept (and refused)."""
    if isinstance(n, fx.Node) and (_name(n) in ("add", "iadd", "__add__", "__iadd__")
                                   or n.target in (operator.add, operator.iadd, torch.add)) and not n.kwargs:
        if len(step_of[n.name]) > 1 or any(_is_zero(a) for a in n.args):
            out: list[Any] = []
            for a in n.args:
                if not _is_zero(a):
                    out.extend(_sum_terms(a, step_of) if isinstance(a, fx.Node) else [a])
            return out
    return [n]


def _is_zero(a: Any) -> bool:
    """A literal 0 or a tensor of zeros made in forward() (torch.zeros / zeros_like, or a
    constant the tracer recorded whose values are all zero)."""
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        return a == 0
    if not isinstance(a, fx.Node):
        return False
    if a.op in ("call_function", "call_method"):
        return _name(a) in ("zeros", "zeros_like", "new_zeros")
    const = a.meta.get("constant")
    return a.op == "get_attr" and isinstance(const, torch.Tensor) and not bool(torch.any(const != 0))


def _signature(n: fx.Node, memo: dict[str, Any], neuron_targets: set[str]) -> Any:
    if n.name in memo:
        return memo[n.name]

    def arg_sig(a: Any) -> Any:
        if isinstance(a, fx.Node):
            return _signature(a, memo, neuron_targets)
        if isinstance(a, (list, tuple)):
            return tuple(arg_sig(x) for x in a)
        if isinstance(a, dict):
            return tuple(sorted((k, arg_sig(v)) for k, v in a.items()))
        return repr(a)

    args = n.args[:1] if n.op == "call_module" and str(n.target) in neuron_targets else n.args
    sig = (n.op, str(n.target), arg_sig(args), arg_sig(dict(n.kwargs)))
    memo[n.name] = sig
    return sig


def _check_repeats(outputs: list[fx.Node], step_of: dict[str, frozenset[int]], neuron_targets: set[str]) -> None:
    """Every step must do what step 0 does, on its own values: the operations of step k that
    its output needs equal step 0's."""
    memo: dict[str, Any] = {}
    per_step: list[list[str]] = []
    for k, out in enumerate(outputs):
        nodes = [n for n in _ancestor_nodes(out) if step_of[n.name] == frozenset({k})]
        per_step.append(sorted(repr(_signature(n, memo, neuron_targets)) for n in nodes))
    for k in range(1, len(outputs)):
        if per_step[k] != per_step[0]:
            raise _fold_error(f"forward() does not compute the same thing at every time step (step {k} "
                              "differs from step 0)", "compute every time step with the same layers")


def check_states(calls: dict[str, list[fx.Node]], looped: bool) -> None:
    """A neuron given its state explicitly (snnTorch ``spk, mem = lif(x, mem)``) compiles to a
    neuron that keeps its own state from rest: inside a time loop (``looped``) it must start
    from zeros (``init_leaky()``) and then get, at step k, the state it returned at step k − 1;
    called once per step, any state passed in would restart it at every call."""
    for target, nodes in calls.items():
        for k, node in enumerate(nodes):
            for a in node.args[1:]:
                if not isinstance(a, fx.Node):
                    continue
                if not looped:
                    raise SnnCompileError(
                        f"neuron `{target}` is given its state by forward() at every call (`{a.format_node()}`): "
                        "each time step would start from that state, the compiled neuron keeps its own",
                        "let the neuron keep its state (snn.Leaky(..., init_hidden=True)), or loop over the time "
                        "steps inside forward() passing the returned membrane on", EXIT_UNSUPPORTED)
                if k == 0:
                    const = a.meta.get("constant")
                    ok = a.op == "get_attr" and isinstance(const, torch.Tensor) and not bool(torch.any(const != 0))
                    what = "does not start from rest (zeros)"
                else:
                    ok = a.op == "call_function" and a.target is operator.getitem and a.args[0] is nodes[k - 1]
                    what = f"is not the one it returned at step {k - 1}"
                if not ok:
                    raise _fold_error(f"neuron `{target}` is given a state at step {k} that {what} "
                                      f"(`{a.format_node()}`)", "pass the membrane the neuron returned "
                                      "(spk, mem = lif(x, mem)), starting from lif.init_leaky()")


def _ancestor_nodes(node: fx.Node) -> list[fx.Node]:
    seen: dict[str, fx.Node] = {}
    stack = [node]
    while stack:
        n = stack.pop()
        if n.name not in seen:
            seen[n.name] = n
            stack.extend(n.all_input_nodes)
    return list(seen.values())


def _fold_error(message: str, hint: str) -> SnnCompileError:
    return SnnCompileError(f"cannot read the time loop in forward(): {message}", hint, EXIT_UNSUPPORTED)


def indexed_steps(graph: fx.Graph) -> list[int] | None:
    """The integer indices ``x[k]`` forward() reads its input by (snnTorch's ``for step in
    range(x.size(0)): ... x[step]``), or None when the input is used otherwise."""
    inputs = [n for n in graph.nodes if n.op == "placeholder" and n.users]
    if len(inputs) != 1:
        return None
    ks = []
    for u in inputs[0].users:
        if not (u.op == "call_function" and u.target is operator.getitem and u.args[0] is inputs[0]
                and isinstance(u.args[1], int) and not isinstance(u.args[1], bool)):
            return None
        ks.append(u.args[1])
    return ks


def read_step_by_step(graph: fx.Graph, steps: int) -> bool:
    """Rewrite a model that reads its ``[T, B, ...]`` input step by step (``x[k]`` for every
    k < T) to one that reads a ``[B, ...]`` sample each step: the folded one-step program is
    then the model's step (its input changes with t, as in the "s" convention)."""
    ks = indexed_steps(graph)
    if not ks or sorted(set(ks)) != list(range(steps)):
        return False
    x = next(n for n in graph.nodes if n.op == "placeholder" and n.users)
    value = x.meta.get("value")
    if isinstance(value, torch.Tensor):
        x.meta["value"] = value[0]
    for u in list(x.users):
        u.replace_all_uses_with(x)
        graph.erase_node(u)
    return True


def swap_batch_first(graph: fx.Graph) -> bool:
    """Rewrite a model that takes batch-first ``[B, T, ...]`` input and turns it time-first
    itself (``x = x.transpose(0, 1)``, DVS code) to one taking ``[T, B, ...]``."""
    inputs = [n for n in graph.nodes if n.op == "placeholder" and n.users]
    if len(inputs) != 1 or len(inputs[0].users) != 1:
        return False
    x, (u,) = inputs[0], list(inputs[0].users)
    swaps = u.op in ("call_method", "call_function") and _name(u) in ("transpose", "swapaxes", "swapdims") \
        and u.args[0] is x and sorted(u.args[1:3]) == [0, 1] and not u.kwargs
    dims = u.args[1:] if len(u.args) > 2 or not u.args[1:] else u.args[1]
    swaps = swaps or (_name(u) == "permute" and u.args[0] is x and tuple(dims)[:2] == (1, 0)
                      and list(dims)[2:] == list(range(2, len(dims))))
    if not swaps:
        return False
    value = x.meta.get("value")
    if isinstance(value, torch.Tensor):
        x.meta["value"] = value.transpose(0, 1)
    u.replace_all_uses_with(x)
    graph.erase_node(u)
    return True
