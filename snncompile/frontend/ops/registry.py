"""The op table: fx operations and leaf module classes → handler functions.

A function or method call is keyed by its fx opcode and its target's name (a torch function
and the Tensor method of the same name are one operation: ``torch.flatten(x)`` and
``x.flatten()``); a ``call_module`` by the module's class, looked up along its MRO so that
spikingjelly's ``layer.Conv2d`` finds ``nn.Conv2d``'s handler.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import fx, nn

if TYPE_CHECKING:
    from snncompile.frontend.ops.context import Converter

CALL = ("call_function", "call_method")
FUNCTION = ("call_function",)

FunctionHandler = Callable[["Converter", fx.Node], "str | None"]
ModuleHandler = Callable[["Converter", Any, str, str, "tuple[int, ...]"], str]


@dataclass(frozen=True)
class Op:
    """A handler for a function or method call. ``early`` handlers run whatever the call
    returns (refusals by name; chunk/split, whose result is a tuple); the others only when it
    returns a tensor (a Python value such as a size only feeds shape arguments: skipped)."""

    handler: FunctionHandler
    early: bool = False


_CALLS: dict[tuple[str, str], Op] = {}
_MODULES: dict[type, ModuleHandler] = {}


def op(*names: str, opcodes: tuple[str, ...] = CALL, early: bool = False) -> Callable[[FunctionHandler],
                                                                                  FunctionHandler]:
    """Register the decorated function as the handler of ``names`` under ``opcodes``."""
    def register(fn: FunctionHandler) -> FunctionHandler:
        keys = [(opcode, name) for opcode in opcodes for name in names]
        taken = [key for key in keys if key in _CALLS]
        if taken:
            raise ValueError(f"two handlers for {taken[0][0]} `{taken[0][1]}`")
        _CALLS.update((key, Op(fn, early)) for key in keys)
        return fn
    return register


def layer(*classes: type) -> Callable[[ModuleHandler], ModuleHandler]:
    """Register the decorated function as the handler of modules of ``classes``."""
    def register(fn: ModuleHandler) -> ModuleHandler:
        taken = [cls for cls in classes if cls in _MODULES]
        if taken:
            raise ValueError(f"two handlers for {taken[0].__qualname__}")
        _MODULES.update((cls, fn) for cls in classes)
        return fn
    return register


@dataclass(frozen=True)
class NeuronFamily:
    """One family of spiking neuron modules (spikingjelly's, snnTorch's, hand-written ones):
    ``claims(m)`` says whether a module is one of its neurons (a leaf of the trace);
    ``build(cx, m, path, src, shape)`` adds its IR neuron fed by ``src`` (the family's
    equations, or a refusal by name); ``reset(m)`` puts the module's state back to rest;
    ``recorded``: the module is one of the source model's, so its spikes can be recorded there;
    ``by_class(cls)``: what ``claims`` answers for every module of class ``cls``, where the
    class alone decides it (None: it depends on the module)."""

    name: str
    claims: Callable[[nn.Module], bool]
    build: ModuleHandler
    reset: Callable[[nn.Module], None] | None = None
    recorded: bool = True
    by_class: Callable[[type], bool | None] | None = None


_FAMILIES: dict[str, NeuronFamily] = {}
# the family of each class the families decide by class alone (a trace asks ~3 times per module)
_BY_CLASS: weakref.WeakKeyDictionary[type, NeuronFamily | None] = weakref.WeakKeyDictionary()


def neuron_family(name: str, claims: Callable[[nn.Module], bool], reset: Callable[[nn.Module], None] | None = None,
                  recorded: bool = True, by_class: Callable[[type], bool | None] | None = None,
                  ) -> Callable[[ModuleHandler], ModuleHandler]:
    """Register the decorated function as the builder of neuron family ``name``."""
    def register(fn: ModuleHandler) -> ModuleHandler:
        if name in _FAMILIES:
            raise ValueError(f"two neuron families named {name}")
        _FAMILIES[name] = NeuronFamily(name, claims, fn, reset, recorded, by_class)
        _BY_CLASS.clear()
        return fn
    return register


def family_of(m: nn.Module) -> NeuronFamily | None:
    """The neuron family claiming ``m`` (None: not a neuron), in registration order."""
    cls = type(m)
    found = _BY_CLASS.get(cls, _UNDECIDED)
    if found is not _UNDECIDED:
        return found
    decided = True
    for family in _FAMILIES.values():
        said = None if family.by_class is None else family.by_class(cls)
        if said is None:
            decided, said = False, family.claims(m)
        if said:
            found = family
            break
    else:
        found = None
    if decided:
        _BY_CLASS[cls] = found
    return found


_UNDECIDED = object()


def families() -> list[NeuronFamily]:
    return list(_FAMILIES.values())


def op_name(n: fx.Node) -> str:
    """The name an operation is known by: the method name, or the function's ``__name__``."""
    fn = n.target
    return fn if isinstance(fn, str) else getattr(fn, "__name__", str(fn))


def call_op(opcode: str, name: str) -> Op | None:
    return _CALLS.get((opcode, name))


def module_handler(m: nn.Module) -> ModuleHandler | None:
    return next((_MODULES[c] for c in type(m).__mro__ if c in _MODULES), None)


def calls() -> dict[tuple[str, str], Op]:
    """The function/method table (a copy), for tests and documentation."""
    return dict(_CALLS)


def module_classes() -> list[type]:
    return list(_MODULES)
