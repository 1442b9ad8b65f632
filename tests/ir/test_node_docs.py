"""Every IR node type documents its semantics as equations, in its own docstring."""

import inspect
import re

import pytest

from snncompile.ir import nodes


def _node_types() -> list[type[nodes.Node]]:
    """Registered node types plus any Node subclass defined in the module (unregistered too)."""
    defined = [c for _, c in inspect.getmembers(nodes, inspect.isclass)
               if issubclass(c, nodes.Node) and c is not nodes.Node and c.__module__ == nodes.__name__]
    return list(dict.fromkeys([*nodes.NODE_TYPES.values(), *defined]))


def _own_doc(cls: type) -> str:
    doc = cls.__dict__.get("__doc__") or ""
    # @dataclass puts a generated signature ("Conv2d(shape: ..., source: 'str' = '', ...)")
    # into __doc__ when the class has none; that is not documentation.
    return "" if doc.startswith(f"{cls.__name__}(") else doc


def _flag(doc: str, name: str) -> bool:
    m = re.search(rf"\b{name}: (yes|no)\b", doc)
    assert m, f"docstring does not say '{name}: yes' or '{name}: no'"
    return m.group(1) == "yes"


@pytest.mark.parametrize("cls", _node_types(), ids=lambda c: c.__name__)
def test_node_docstring_states_semantics(cls):
    doc = _own_doc(cls)
    assert doc.strip(), f"{cls.__name__} has no docstring of its own"
    equations = [line for line in doc.splitlines() if re.search(r"\S\s+=\s+\S", line)]
    assert equations, f"{cls.__name__}'s docstring states no equation (a line with ' = ')"
    assert _flag(doc, "Synaptic") == cls.synaptic
    assert _flag(doc, "Spiking") == cls.spiking
    _flag(doc, "Stateful")


def test_module_docstring_states_conventions():
    assert nodes.__doc__ and "Θ(0) = 1" in nodes.__doc__ and "t = 1..T" in nodes.__doc__
