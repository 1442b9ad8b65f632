"""Every node type has an entry in every registry: a missing case fails here, not in a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

import backends.onnx.ops  # noqa: F401  (the ONNX target's emitters load with the target)
import snncompile.energy  # noqa: F401  (the API imports its stages lazily: each stage that
import snncompile.lower  # noqa: F401   fills a registry is imported here)
import snncompile.report  # noqa: F401
from snncompile.ir.nodes import NODE_TYPES, Node
from snncompile.ir.registry import REGISTRIES, MissingBehaviour

CONCERNS = {"reference step", "path structure", "synapse count", "lowering", "unrolled matrix",
            "energy count", "report row", "onnx emission", "verification"}


def test_every_concern_has_a_registry():
    assert CONCERNS <= set(REGISTRIES)


@pytest.mark.parametrize("concern", sorted(REGISTRIES))
def test_registry_covers_every_node_type(concern):
    assert REGISTRIES[concern].missing() == []


def test_a_new_node_type_without_entries_is_reported(monkeypatch):
    @dataclass(eq=False)
    class Spiral(Node):
        """y = x (a test-only node)."""
        op: ClassVar[str] = "spiral"

    monkeypatch.setitem(NODE_TYPES, "spiral", Spiral)
    for concern in CONCERNS:
        assert "spiral" in REGISTRIES[concern].missing()
        with pytest.raises(MissingBehaviour, match=f"no {concern} for IR node type Spiral"):
            REGISTRIES[concern](Spiral)
