"""Traced fx graphs remembered by architecture, for sweeps over many tickets of one network.

Symbolic tracing costs more than the rest of an energy estimate (ResNet-18: ~10 ms of ~35).
A ticket of an architecture already traced in this process (same classes, same attributes,
same parameter and buffer shapes, same input shape) gets a copy of that trace, bound to its
own modules and tensors; only the weights differ, and the frontend reads those from the new
model as always (and checks every traced layer against it). A trace is reused only when
nothing in it depends on more than its key:

* every attribute of every module is part of the key (plain values, tensor shapes, functions
  with the values they close over), and so is which slots hold one shared module and which
  parameters are one tied tensor; a module holding anything else (an arbitrary object, a
  C-level callable) is not remembered;
* so is the code of the user's own classes: their methods, class attributes, and the
  module-level functions, values and config modules those read (a notebook cell run again
  redefines a helper, not the class);
* a trace that captured a tensor computed in ``forward()`` from non-parameter values (fx's
  ``_tensor_constant`` attributes: a value of the traced model, not of its architecture) is
  not remembered; nor is one that read a tensor's value into Python while tracing
  (``int(self.steps)`` of a buffer: fx proxies parameters only, so the value is baked in).
"""

from __future__ import annotations

import copy
import enum
import functools
import os
import sys
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn

_SIZE = 8   # architectures remembered (a trace holds no weights: meta shapes only)
_ATOMS = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size)
_EXACT_ATOMS = frozenset(_ATOMS)
_CONTAINERS = frozenset((dict, OrderedDict, list, tuple, set, frozenset))
_OWN = ("_parameters", "_buffers", "_modules")   # read separately (shapes; the module walk)
_SMALL_ARRAY = 4096   # numpy attributes up to this size are keyed by value; larger ones are not remembered
_DEPTH = 6


class _Unkeyed(Exception):
    """A value the key cannot hold faithfully: the model is traced afresh."""


@dataclass
class _Remembered:
    """One remembered trace. ``pristine`` is never handed out. A ticket gets a copy of it,
    or, once the first ticket's processing is seen to leave its graph as it was (no rewrite:
    no hand-written neuron, no loop over time, no batch-first input), one shared copy
    lent to one ticket at a time (copying ResNet-18's ~70 fx nodes is ~0.7 ms of a ~14 ms
    ticket). The shared copy is checked when it is given back: one changed is dropped."""

    pristine: fx.Graph
    shape: tuple   # every node's name and user count: a rewrite adds, drops or rewires nodes
    shared: fx.Graph | None = None
    lent: bool = False
    changes: bool | None = None   # does processing a ticket change its graph? (None: not seen yet)


@dataclass
class _Architecture:
    meta: nn.Module | None = None   # the meta-device copy of the first model traced (shapes only)
    traces: dict[tuple, _Remembered] = field(default_factory=dict)   # by how it was traced


class Key:
    """An architecture's key: a nested tuple hashed once (a ticket looks it up several
    times; hashing ResNet-18's key walks ~1,500 values)."""

    __slots__ = ("value", "_hash")

    def __init__(self, value: tuple) -> None:
        self.value, self._hash = value, hash(value)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and self._hash == other._hash and self.value == other.value


_SEEN: OrderedDict[Key, _Architecture] = OrderedDict()


def architecture(model: nn.Module, named: list[tuple[str, nn.Module]] | None = None) -> Key | None:
    """The key of ``model``'s architecture, or None when it cannot be remembered (or
    ``SNNCOMPILE_TRACE_CACHE=0`` asks for a trace from scratch every time). ``named``:
    ``list(model.named_modules())``, when the caller has it."""
    if os.environ.get("SNNCOMPILE_TRACE_CACHE", "1").strip() == "0":
        return None
    try:
        named = named or list(model.named_modules())
        modules = tuple(_module_key(path, m) for path, m in named)
        code = tuple(_class_code(cls) for cls in dict.fromkeys(type(m) for _, m in named))
        return Key((modules, code, _aliases(named)))
    except (_Unkeyed, RecursionError):
        return None


def _aliases(named: list[tuple[str, nn.Module]]) -> tuple:
    """Which module every child slot holds and which tensors are one tensor: a module or a
    parameter shared by two places is traced under its first path only (fx names modules and
    parameters by ``named_modules``/``named_parameters``, which skip repeats), so
    ``[a, b, a]`` and ``[a, b, b]`` (or tied and untied weights) are different programs."""
    rank = {id(m): i for i, (_, m) in enumerate(named)}
    tree = tuple(tuple(None if c is None else rank[id(c)] for c in m._modules.values()) for _, m in named)
    first: dict[int, tuple[int, str]] = {}
    tied = []
    for i, (_, m) in enumerate(named):
        for tensors in (m._parameters, m._buffers):
            for k, t in tensors.items():
                if t is not None and first.setdefault(id(t), (i, k)) != (i, k):
                    tied.append((i, k, first[id(t)]))
    return tree, tuple(tied)


def meta_model(arch: Key | None) -> nn.Module | None:
    """The meta copy remembered for ``arch`` (None: make one and :func:`keep_meta` it)."""
    entry = _entry(arch)
    return None if entry is None else entry.meta


def keep_meta(arch: Key | None, meta: nn.Module) -> None:
    if arch is not None:
        _entry(arch, create=True).meta = meta


def lookup(arch: Key | None, how: tuple) -> fx.Graph | None:
    """The trace remembered for ``arch`` traced ``how`` (input shape, dtype, the tracer's
    choices), a copy or lent (see :class:`_Remembered`; pass it to :func:`give_back` when the
    ticket is done); None if there is none. Every module and tensor it reads exists in a
    model of this key: its targets are module, parameter and buffer paths (fx names any
    other tensor ``_tensor_constant``, and such traces are not kept), all of them in the key."""
    entry = _entry(arch)
    rec = None if entry is None else entry.traces.get(how)
    if rec is None:
        return None
    with _LEND_LOCK:
        if rec.changes is False and not rec.lent:
            if rec.shared is None:
                rec.shared = copy.deepcopy(rec.pristine)
            rec.lent = True
            _OUT[rec.shared] = rec
            return rec.shared
    return copy.deepcopy(rec.pristine)


def give_back(graph: fx.Graph) -> None:
    """A ticket is done with ``graph`` (from :func:`lookup`, or the fresh trace :func:`store`
    remembered): learn whether processing changed it; a lent graph is kept for the next
    ticket if it did not, without what the ticket left on it (its module, its constants)."""
    with _LEND_LOCK:
        rec = _OUT.pop(graph, None)
        if rec is None:
            return
        same = _shape(graph) == rec.shape
        rec.changes = not same if rec.changes is None else rec.changes or not same
        if graph is rec.shared:
            rec.lent = False
            if not same:
                rec.shared = None
                return
            graph.owning_module = None   # (the ticket's GraphModule holds its model's modules)
            for n in graph.nodes:
                n.meta.pop("constant", None)


def _shape(graph: fx.Graph) -> tuple:
    return tuple((n.name, len(n.users)) for n in graph.nodes)


_LEND_LOCK = threading.Lock()
_OUT: weakref.WeakKeyDictionary[fx.Graph, _Remembered] = weakref.WeakKeyDictionary()   # graphs tickets hold


def store(arch: Key | None, how: tuple, graph: fx.Graph, values_read: bool = False) -> None:
    """Remember a copy of ``graph`` (fresh from the tracer, before any rewrite); not when
    tracing read a tensor's value into Python (``values_read``, see :func:`watch_values`)."""
    if arch is None or values_read or any(_made_by_tracer(str(n.target)) for n in graph.nodes
                                          if n.op == "get_attr"):
        return
    rec = _entry(arch, create=True).traces[how] = _Remembered(copy.deepcopy(graph), _shape(graph))
    with _LEND_LOCK:
        _OUT[graph] = rec   # given back after its own ticket: did processing change it?


def clear() -> None:
    _SEEN.clear()
    _LAST[0] = None


# the ways a tensor's value becomes a Python value (format(), np.asarray() and iteration go through them)
_READERS = ("item", "tolist", "numpy", "__int__", "__float__", "__complex__", "__bool__", "__index__")


@contextmanager
def watch_values() -> Iterator[list[str]]:
    """While tracing: whether forward() read a concrete tensor's value into Python
    (``int(self.steps)``, ``self.mask.sum().item()``, ``if self.flag:`` on a buffer or a plain
    tensor attribute; fx proxies parameters, not those). The value is baked into the trace
    and the key holds only the tensor's shape, so such a trace is not remembered. Yields the
    readers called on non-meta tensors (empty: none). Traces on several threads share one
    patch of ``torch.Tensor`` (installed by the first, removed by the last) and each sees
    every read (a read on another thread only costs a trace its reuse)."""
    read: list[str] = []
    with _WATCH_LOCK:
        if not _WATCHERS:
            _install_readers()
        _WATCHERS.append(read)
    try:
        yield read
    finally:
        with _WATCH_LOCK:
            del _WATCHERS[next(i for i, w in enumerate(_WATCHERS) if w is read)]
            if not _WATCHERS:
                _remove_readers()


_WATCH_LOCK = threading.Lock()
_WATCHERS: list[list[str]] = []   # the read lists of the traces being made
_OWN_READERS: dict[str, Any] = {}  # torch.Tensor's own definitions, while patched


def _install_readers() -> None:
    def watched(name: str) -> Any:
        real = getattr(torch.Tensor, name)

        def reader(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if not self.is_meta:
                for read in _WATCHERS:
                    read.append(name)
            return real(self, *args, **kwargs)
        return reader

    _OWN_READERS.clear()
    _OWN_READERS.update({n: torch.Tensor.__dict__[n] for n in _READERS if n in torch.Tensor.__dict__})
    for name in _READERS:
        setattr(torch.Tensor, name, watched(name))


def _remove_readers() -> None:
    for name in _READERS:
        if name in _OWN_READERS:
            setattr(torch.Tensor, name, _OWN_READERS[name])
        else:
            delattr(torch.Tensor, name)
    _OWN_READERS.clear()


def _entry(arch: Key | None, create: bool = False) -> _Architecture | None:
    if arch is None:
        return None
    last = _LAST[0]
    if last is not None and last[0] is arch:   # the key of the trace being made, asked again
        return last[1]
    entry = _SEEN.get(arch)
    if entry is None and create:
        entry = _SEEN[arch] = _Architecture()
        while len(_SEEN) > _SIZE:
            _SEEN.popitem(last=False)
    if entry is not None:
        if last is None or last[1] is not entry:   # (already the most recent: a sweep over one network)
            _SEEN.move_to_end(arch)
        _LAST[0] = (arch, entry)
    return entry


# the last key looked up and its entry: a trace asks for its key's entry several times,
# and comparing two equal keys walks them whole (an evicted entry still holds a valid trace)
_LAST: list[tuple[Key, _Architecture] | None] = [None]


def _made_by_tracer(target: str) -> bool:
    # fx names tensors it found outside the module tree _tensor_constantN (or _param_constantN)
    return any(part.startswith(("_tensor_constant", "_param_constant")) for part in target.split("."))


# code the user does not edit while a session runs: keyed by its classes alone
_LIBRARIES = ("torch", "spikingjelly", "snntorch", "norse", "sinabs", "torchvision", "timm", "snncompile")


def _class_code(cls: type) -> tuple:
    """The code a user's class runs: every method of its own classes (a notebook cell run
    again defines them anew) and the module-level functions and values they read (a helper
    redefined between two compilations is another program); and the values it holds for
    its instances (``scale = 2.0`` read as ``self.scale``, changed on the class)."""
    out = []
    for klass in cls.__mro__:
        if not _user_class(klass):
            continue
        for name, attr in klass.__dict__.items():
            fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
            if isinstance(fn, types.FunctionType):
                out.append((name, fn.__code__, _globals_read(fn, 0)))
    return cls, tuple(out), _class_values(cls, 0)


def _class_values(cls: type, depth: int) -> tuple:
    """The class attributes of ``cls`` and its user bases other than methods (a module's
    ``scale = 2.0``; a config class used as a namespace, ``cfg.use_residual``)."""
    return tuple((name, _value_key(v, depth + 1)) for klass in cls.__mro__ if _user_class(klass)
                 for name, v in klass.__dict__.items()
                 if not (name.startswith("__") and name.endswith("__")) and name != "_abc_impl"
                 and not isinstance(v, (types.FunctionType, staticmethod, classmethod)))


@functools.cache
def _library(module: str | None) -> bool:
    """Code the user does not edit while a session runs: the libraries above, Python's own
    modules and anything installed as a package."""
    top = (module or "").split(".")[0]
    if top in _LIBRARIES or top in sys.stdlib_module_names or top == "builtins":
        return True
    path = getattr(sys.modules.get(top), "__file__", None) or ""
    return "site-packages" in path or "dist-packages" in path


def _user_class(klass: type) -> bool:
    return klass is not object and not _library(klass.__module__)


def _globals_read(fn: types.FunctionType, depth: int) -> tuple:
    """The module-level names ``fn``'s code reads, with what they hold now."""
    names = _names(fn.__code__)
    return _namespace_read(fn.__globals__, names, depth)


def _namespace_read(namespace: dict[str, Any], names: list[str], depth: int) -> tuple:
    out = []
    for name in names:
        if name not in namespace:
            continue   # a builtin, an attribute name, or not defined yet
        v = namespace[name]
        if isinstance(v, types.FunctionType):
            out.append((name, _function_key(v, depth)))
        elif isinstance(v, type) and _user_class(v) and not issubclass(v, enum.Enum):
            out.append((name, "class", v, _class_values(v, depth)))   # a config class: its fields
        elif isinstance(v, types.ModuleType) and depth < _HOPS and not _library(v.__name__):
            # the user's own module read as a namespace (``config.USE_RESIDUAL``): the names read in it
            out.append((name, "module", v, _namespace_read(vars(v), list(dict.fromkeys(names)), depth + 1)))
        elif isinstance(v, (types.ModuleType, type, types.BuiltinFunctionType)):
            out.append((name, "ref", v))
        else:
            out.append((name, _value_key(v, depth)))
    return tuple(out)


_HOPS = 3   # module-level functions followed from a method: its helpers, theirs, and theirs


def _function_key(v: types.FunctionType, depth: int) -> tuple:
    """A Python function: its code, the values it closes over and its defaults (a helper made
    by a factory, ``gain = make_gain(2.0)``, or redefined with another default), and for user
    code the module-level names it reads (a lambda attribute reading a global flag)."""
    try:
        cells = tuple(_value_key(c.cell_contents, depth + 1) for c in v.__closure__ or ())
    except ValueError:   # an empty cell
        raise _Unkeyed from None
    read = _globals_read(v, depth + 1) if depth < _HOPS and not _library(v.__module__) else ()
    return ("function", v.__code__, cells, _value_key(v.__defaults__, depth + 1),
            _value_key(v.__kwdefaults__, depth + 1), read)


def _names(code: types.CodeType) -> list[str]:
    """Global and attribute names read by ``code`` and the functions nested in it."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _names(const)
    return names


def _module_key(path: str, m: nn.Module) -> tuple:
    # attributes as one flat run of (name, type, value) triplets: a sweep keys every module
    # of every ticket, and a tuple per attribute (~2,000 for ResNet-18) cost a garbage
    # collection or two per ticket
    attrs: list = []
    hooks = {}
    for k, v in m.__dict__.items():
        t = type(v)
        if t in _EXACT_ATOMS:   # most attributes
            attrs += (k, t, v)
        elif t in _CONTAINERS and not v:   # torch's hook dicts, almost always empty
            attrs += (k, t, None)
        elif "hook" in k and isinstance(v, dict):
            hooks[k] = v
        elif k not in _OWN:
            attrs += (k, None, _value_key(v, 0))
    for k, v in hooks.items():
        attrs += (k, None, _value_key(_ranked(v, hooks), 0))
    params = tuple((k, _value_key(v, 0)) for k, v in m._parameters.items())
    buffers = tuple((k, _value_key(v, 0)) for k, v in m._buffers.items())
    # the class's forward too: a class patched between two traces is a different program
    return path, type(m), getattr(type(m), "forward", None), tuple(attrs), params, buffers


def _ranked(hooks: dict, every: dict[str, dict]) -> list:
    """A hook dict keyed by registration rank instead of its handle ids (global counters:
    the same pruning applied to two tickets registers hooks under different ids)."""
    ids = sorted({k for d in every.values() for k in d if isinstance(k, int)})
    rank = {k: i for i, k in enumerate(ids)}
    return [(rank.get(k, k), v) for k, v in hooks.items()]


def _value_key(v: Any, depth: int) -> Any:
    t = type(v)
    if t in _EXACT_ATOMS:   # most attributes: flags, sizes, names, torch's empty hook dicts
        return t, v
    if t in _CONTAINERS and not v:
        return t
    if depth > _DEPTH:
        raise _Unkeyed
    if isinstance(v, _ATOMS):
        return t, v
    if isinstance(v, torch.Tensor):   # its values are read from the model; its shape shapes the trace
        return "tensor", v.shape, v.dtype, v.device, v.requires_grad, type(v)
    if isinstance(v, type) and _user_class(v) and not issubclass(v, enum.Enum):
        return "class", v, _class_values(v, depth)   # a config class held as a namespace
    if isinstance(v, (enum.Enum, type)):
        return "const", v
    if isinstance(v, np.ndarray):
        if v.size > _SMALL_ARRAY or v.dtype == object:
            raise _Unkeyed
        return "array", v.shape, v.dtype.str, v.tobytes()
    if isinstance(v, np.generic):
        return "scalar", v.dtype.str, v.tobytes()
    if isinstance(v, (tuple, list, set, frozenset)):
        items = sorted(v, key=repr) if isinstance(v, (set, frozenset)) else v
        return type(v), tuple(_value_key(x, depth + 1) for x in items)
    if isinstance(v, dict):
        return type(v), tuple((_value_key(k, depth + 1), _value_key(x, depth + 1)) for k, x in v.items())
    return _callable_key(v, depth)


def _callable_key(v: Any, depth: int) -> Any:
    if isinstance(v, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        return "builtin", v
    if isinstance(v, types.FunctionType):   # snnTorch's surrogates are closures over their slope
        return _function_key(v, depth)
    if isinstance(v, property):
        return "property", _value_key(v.fget, depth + 1), _value_key(v.fset, depth + 1)
    if isinstance(v, types.MethodType):
        owner = v.__self__
        return "method", v.__func__, ("module", type(owner)) if isinstance(owner, nn.Module) \
            else _value_key(owner, depth + 1)
    if isinstance(v, nn.Module) or not _plain_object(v):
        raise _Unkeyed   # a module outside the tree, or an object whose state is not in its __dict__
    return "object", type(v), tuple((k, _value_key(x, depth + 1)) for k, x in vars(v).items())


class _Plain:
    pass


_PLAIN_SIZE = _Plain.__basicsize__   # an instance of Python classes: a __dict__ (and weak references) only


def _plain_object(v: Any) -> bool:
    """An instance of Python classes only (no C base such as functools.partial, no
    __slots__): all its state is in its __dict__."""
    return hasattr(v, "__dict__") and type(v).__basicsize__ == _PLAIN_SIZE
