"""Every neuron dynamics type has an entry in every dynamics registry (a supported one or an
explicit refusal that names the model): a missing case fails here, not in a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

import backends.lava.dynamics  # noqa: F401  (Lava's parameters, without importing Lava)
import backends.nir.dynamics  # noqa: F401
import backends.onnx.step  # noqa: F401
import snncompile.api  # noqa: F401  (imports every stage, so every registry is filled)
import snncompile.energy.dynamics_cost  # noqa: F401
import snncompile.fixedpoint.dynamics_int  # noqa: F401
import snncompile.passes.dead_neurons  # noqa: F401  (not imported by the api until a pass runs)
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir.dynamics import DYNAMICS_REGISTRIES, DYNAMICS_TYPES, Firing, MissingDynamics

CONCERNS = {"fixed-point decay", "NIR mapping", "ONNX step", "Lava SJNeuron parameters",
            "energy leaks per update", "dead-neuron bound"}

# the models each concern refuses by name today (everything else it supports)
REFUSED = {
    "fixed-point decay": {"li", "integrator", "cubali"},
    "ONNX step": {"li", "integrator", "cubali", "cubalif", "loihi_cuba"},
    "Lava SJNeuron parameters": {"li", "integrator", "cubali", "cubalif", "loihi_cuba"},
    "NIR mapping": {"loihi_cuba"},
}


def test_every_concern_has_a_registry():
    assert CONCERNS <= set(DYNAMICS_REGISTRIES)


@pytest.mark.parametrize("concern", sorted(DYNAMICS_REGISTRIES))
def test_registry_covers_every_dynamics_type(concern):
    assert DYNAMICS_REGISTRIES[concern].missing() == []


@pytest.mark.parametrize("concern", sorted(CONCERNS))
def test_refusals_are_the_expected_ones(concern):
    reg = DYNAMICS_REGISTRIES[concern]
    assert {name for name, cls in DYNAMICS_TYPES.items() if not reg.supports(cls)} == REFUSED.get(concern, set())


@pytest.mark.parametrize("concern,model", sorted((c, m) for c, ms in REFUSED.items() for m in ms))
def test_a_refusal_names_the_population_and_the_model_and_the_way_out(concern, model):
    cls = DYNAMICS_TYPES[model]
    with pytest.raises(SnnCompileError, match=f"`layer1`.*{model}") as exc:
        DYNAMICS_REGISTRIES[concern](cls)(cls(), name="layer1")
    assert exc.value.exit_code == EXIT_UNSUPPORTED and exc.value.hint


def test_a_new_dynamics_type_without_entries_is_reported(monkeypatch):
    @dataclass(frozen=True, kw_only=True, eq=False)
    class Spiral(Firing):
        """H[t] = V[t−1] + X[t] (a test-only model)."""
        name: ClassVar[str] = "spiral"

        def charge(self, v: Any, x: Any) -> Any:
            return v + x

    monkeypatch.setitem(DYNAMICS_TYPES, "spiral", Spiral)
    for concern in CONCERNS:
        assert "spiral" in DYNAMICS_REGISTRIES[concern].missing()
        with pytest.raises(MissingDynamics, match=f"no {concern} for neuron dynamics Spiral"):
            DYNAMICS_REGISTRIES[concern](Spiral)
