"""Cost models: energy per operation, loaded from TOML files that carry their sources.

A cost model file has ``name``, ``source``, ``units = "pJ"``, an ``[ops]`` table (pJ per
operation, vocabulary in :data:`OPS`), an ``unverified`` list naming the figures without a
primary source, and optionally a ``[memory]`` table that prices memory accesses
(see :data:`MEMORY_KEYS`). Missing optional ops are derived from ``mac`` and ``ac``; every
derived figure is listed in ``derived`` and counts as unverified.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from snncompile.errors import EXIT_USAGE, SnnCompileError

MODELS_DIR = Path(__file__).parent / "models"

# Operation vocabulary of the [ops] table (all energies in pJ).
OPS: dict[str, str] = {
    "mac": "multiply-accumulate at the ANN's precision (ANN layers; SNN layers on real-valued input)",
    "ac": "synaptic accumulate of a full-precision weight on one input spike (one SOP)",
    "ac_binary": "sign-controlled integer add of a 1-bit weight on one input spike (binary-weight SNN)",
    "bop": "one XNOR-popcount bit-operation (binary ANN)",
    "add": "membrane integration add, per neuron per step",
    "mult": "leak multiply of a LIF/PLIF neuron, per neuron per step",
    "cmp": "threshold compare per neuron per step; ReLU / sign activation per ANN neuron",
    "reset": "membrane reset, per emitted spike",
    "spike": "routing one emitted spike (optional; priced only if present)",
    "neuron_update_active": "whole neuron update in a step where the neuron fires (replaces add/mult/cmp/reset)",
    "neuron_update_inactive": "whole neuron update in a step where the neuron does not fire",
}
REQUIRED_OPS = ("mac", "ac")
OPTIONAL_OPS = ("spike", "neuron_update_active", "neuron_update_inactive")

# [memory] table: SRAM access energy per word, E(N) = ram_pj_per_bit·N + ram_pj_offset,
# N = size in bits of the memory being accessed (Lemaire et al. 2022).
MEMORY_KEYS: dict[str, str] = {
    "ram_pj_per_bit": "slope of the access energy in the memory size N (pJ per bit of N)",
    "ram_pj_offset": "access energy of a word in an empty memory (pJ)",
    "word_bits": "width of one memory word (bits)",
    "addressing": "count the address arithmetic of event-driven layers (true/false)",
}


@dataclass(frozen=True)
class CostModel:
    name: str
    source: str
    units: str
    ops: dict[str, float]
    description: str = ""
    unverified: tuple[str, ...] = field(default_factory=tuple)
    derived: dict[str, str] = field(default_factory=dict)   # op → how it was derived
    memory: dict[str, Any] | None = None
    path: str = ""

    def pj(self, op: str) -> float:
        if op not in self.ops:
            raise SnnCompileError(f"cost model {self.name!r} has no energy for operation {op!r}",
                                  f"add `{op} = <pJ>` under [ops] in its TOML file", EXIT_USAGE)
        return float(self.ops[op])

    def has(self, op: str) -> bool:
        return op in self.ops

    @property
    def per_neuron_update(self) -> bool:
        """True if neurons are priced per update (Loihi style) rather than per operation."""
        return "neuron_update_active" in self.ops

    def ram_pj(self, size_bits: float) -> float:
        """Energy of one word access to a memory of ``size_bits`` bits (0 without [memory])."""
        if not self.memory:
            return 0.0
        return self.memory["ram_pj_per_bit"] * size_bits + self.memory["ram_pj_offset"]

    def is_unverified(self, key: str) -> bool:
        return key in self.unverified or key in self.derived

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: every figure used, and which ones are unverified."""
        return {"name": self.name, "source": self.source, "units": self.units,
                "description": self.description, "ops": dict(self.ops),
                "memory": dict(self.memory) if self.memory else None,
                "unverified": sorted(set(self.unverified) | set(self.derived)),
                "derived": dict(self.derived)}


def available() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.toml"))


def _bad(path: Path, what: str, hint: str) -> SnnCompileError:
    return SnnCompileError(f"energy model {path}: {what}", hint, EXIT_USAGE)


def _number(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise _bad(path, f"{key} = {value!r} is not a finite, non-negative number",
                   "energies are numbers in pJ, e.g. `ac = 0.9`")
    return float(value)


def _check_header(data: dict[str, Any], path: Path) -> None:
    """name, source, units and an [ops] table; no unknown top-level keys."""
    missing = [k for k in ("name", "source", "units", "ops") if k not in data]
    if missing:
        raise _bad(path, f"lacks {', '.join(missing)}",
                   "every cost model needs name, source, units and an [ops] table")
    for key in ("name", "source"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise _bad(path, f"`{key}` must be a non-empty string",
                       "name the model and cite where its figures come from")
    if data["units"] != "pJ":
        raise _bad(path, f"uses units {data['units']!r}", 'give energies in pJ (units = "pJ")')
    known_top = {"name", "source", "units", "ops", "description", "unverified", "memory"}
    extra = sorted(set(data) - known_top)
    if extra:
        raise _bad(path, f"unknown key(s) {', '.join(extra)}",
                   f"allowed top-level keys: {', '.join(sorted(known_top))}")


def _ops(table: Any, path: Path) -> dict[str, float]:
    """The [ops] table, checked: known operations, numbers, mac and ac present."""
    if not isinstance(table, dict):
        raise _bad(path, "`ops` must be a table", "write the energies under an [ops] header")
    unknown = sorted(set(table) - set(OPS))
    if unknown:
        raise _bad(path, f"unknown operation(s) {', '.join(unknown)} in [ops]",
                   f"known operations: {', '.join(OPS)}")
    ops = {k: _number(path, f"ops.{k}", v) for k, v in table.items()}
    lacking = [k for k in REQUIRED_OPS if k not in ops]
    if lacking:
        raise _bad(path, f"[ops] lacks {', '.join(lacking)}",
                   "mac (multiply-accumulate) and ac (accumulate on a spike) are required")
    if ("neuron_update_active" in ops) != ("neuron_update_inactive" in ops):
        raise _bad(path, "give both neuron_update_active and neuron_update_inactive, or neither",
                   "per-update neuron pricing needs the firing and the non-firing cost")
    return ops


def _derive(ops: dict[str, float]) -> dict[str, str]:
    """Fill the optional ops from mac and ac; returns op → rule for each derived figure
    (none has a primary source, so each is reported as unverified)."""
    derived: dict[str, str] = {}

    def derive(op: str, value: float, rule: str) -> None:
        if op not in ops:
            ops[op] = value
            derived[op] = rule

    derive("ac_binary", ops["ac"], "ac (a sign-controlled add costs at most one add)")
    derive("bop", ops["mac"] / 64.0, "mac/64 (Bi-Real Net / ReActNet OPs = BOPs/64 + FLOPs)")
    if "neuron_update_active" not in ops:  # per-operation neuron pricing
        derive("add", ops["ac"], "ac")
        derive("mult", max(ops["mac"] - ops["ac"], 0.0), "mac - ac")
        derive("reset", ops["add"], "add")
    derive("cmp", ops.get("add", ops["ac"]), "add (a compare is a subtraction)")
    return derived


def _memory(memory: Any, path: Path) -> dict[str, Any] | None:
    """The optional [memory] table, checked."""
    if memory is None:
        return None
    if not isinstance(memory, dict):
        raise _bad(path, "`memory` must be a table", "write it under a [memory] header")
    unknown = sorted(set(memory) - set(MEMORY_KEYS))
    if unknown:
        raise _bad(path, f"unknown key(s) {', '.join(unknown)} in [memory]",
                   f"known keys: {', '.join(MEMORY_KEYS)}")
    lacking = [k for k in ("ram_pj_per_bit", "ram_pj_offset", "word_bits") if k not in memory]
    if lacking:
        raise _bad(path, f"[memory] lacks {', '.join(lacking)}",
                   "a memory model needs ram_pj_per_bit, ram_pj_offset and word_bits")
    wb = memory["word_bits"]
    if isinstance(wb, bool) or not isinstance(wb, int) or wb < 1:
        raise _bad(path, f"memory.word_bits = {wb!r} is not a positive integer", "e.g. word_bits = 32")
    addressing = memory.get("addressing", True)
    if not isinstance(addressing, bool):
        raise _bad(path, "memory.addressing must be true or false", "e.g. addressing = true")
    return {"ram_pj_per_bit": _number(path, "memory.ram_pj_per_bit", memory["ram_pj_per_bit"]),
            "ram_pj_offset": _number(path, "memory.ram_pj_offset", memory["ram_pj_offset"]),
            "word_bits": wb, "addressing": addressing}


def _unverified(unverified: Any, path: Path) -> list[str]:
    """The ``unverified`` list, checked: known figure names that the model defines."""
    if not isinstance(unverified, list) or not all(isinstance(u, str) for u in unverified):
        raise _bad(path, "`unverified` must be a list of strings",
                   'name the figures without a primary source, e.g. unverified = ["cmp"]')
    return unverified


def _check_unverified_names(unverified: list[str], ops: dict[str, float], path: Path) -> None:
    names = set(OPS) | {f"memory.{k}" for k in MEMORY_KEYS}
    bad_names = sorted(set(unverified) - names)
    if bad_names:
        raise _bad(path, f"`unverified` names unknown figure(s) {', '.join(bad_names)}",
                   "list operation names from [ops] or memory.<key>")
    not_given = sorted(u for u in unverified if u not in ops and not u.startswith("memory."))
    if not_given:
        raise _bad(path, f"`unverified` lists {', '.join(not_given)}, which [ops] does not define",
                   "remove it from the list or give its energy")


def parse_cost_model(data: dict[str, Any], path: Path) -> CostModel:
    """Validate parsed TOML ``data`` and build the :class:`CostModel` (derivations included)."""
    _check_header(data, path)
    ops = _ops(data["ops"], path)
    derived = _derive(ops)
    unverified = _unverified(data.get("unverified", []), path)
    memory = _memory(data.get("memory"), path)
    _check_unverified_names(unverified, ops, path)
    return CostModel(name=data["name"], source=data["source"], units=data["units"], ops=ops,
                     description=str(data.get("description", "")), unverified=tuple(unverified),
                     derived=derived, memory=memory, path=str(path))


def load_cost_model(name_or_path: str | Path) -> CostModel:
    """Load a shipped cost model by name (``45nm``, ``lemaire``, ...) or a TOML file path."""
    text = str(name_or_path)
    path = Path(text)
    if not path.suffix and "/" not in text and "\\" not in text:
        path = MODELS_DIR / f"{text}.toml"
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise SnnCompileError(f"unknown energy model {text!r} ({path} {what})",
                              f"use one of {', '.join(available())} or a TOML file path", EXIT_USAGE)
    try:
        model = _parsed(path.read_text(encoding="utf-8"), str(path))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SnnCompileError(f"cannot parse energy model {path}: {exc}",
                              "fix the TOML syntax", EXIT_USAGE) from None
    except OSError as exc:
        raise SnnCompileError(f"cannot read energy model {path}: {exc.strerror}",
                              "check the path and its permissions", EXIT_USAGE) from None
    # the caller's own tables: a change to them must not reach the next caller
    return replace(model, ops=dict(model.ops), derived=dict(model.derived),
                   memory=None if model.memory is None else dict(model.memory))


@lru_cache(maxsize=32)   # keyed by the file's text, so an edited file is parsed again
def _parsed(text: str, path: str) -> CostModel:
    """The model in ``text`` (parsing and checking cost ~0.1 ms, paid once per text, not
    once per estimate of a sweep)."""
    return parse_cost_model(tomllib.loads(text), Path(path))
