"""Firing rates: given on the command line, in a JSON file or a previous report, and looked
up per synaptic layer (its input's mean value per step) or per neuron population."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from snncompile import schema
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.ir import Add, Conv2d, Delay, IRGraph, Linear, Mask, Neuron, Reshape
from snncompile.ir.labels import labels

ANY = "*"           # firing-rate key that applies to every layer not named otherwise


class Rates:
    """Looks up firing rates given per synaptic layer or per neuron (IR name or module path)."""

    def __init__(self, graph: IRGraph, rates: Mapping[str, float], names: Mapping[str, str] | None = None) -> None:
        """``names``: :func:`~snncompile.ir.labels.labels` of ``graph``, when the caller has them."""
        self.graph = graph
        self.rates: dict[str, float] = {}
        alias: dict[str, str] = {}
        if names is None:   # the names the report prints (``6``: OR neurons, ``6.or_syn``)
            names = labels(graph)
        for name, node in graph.items():
            if isinstance(node, (Conv2d, Linear, Neuron)):
                alias[name] = name
                alias.setdefault(names[name], name)
        for name, node in graph.items():
            if isinstance(node, (Conv2d, Linear, Neuron)) and node.source:
                alias.setdefault(node.source, name)
        unknown = []
        for key, value in rates.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise SnnCompileError(f"firing rate {key!r} = {value!r} is not a finite, non-negative number",
                                      "rates are mean spikes per neuron per step, e.g. 0.12", EXIT_USAGE)
            if key == ANY:
                self.rates[ANY] = float(value)
            elif key in alias:
                self.rates[alias[key]] = float(value)
            else:
                unknown.append(key)
        if unknown:
            names = [n for n in alias if n == alias[n]]
            raise SnnCompileError(f"firing rates given for unknown layer(s) {', '.join(map(repr, unknown))}",
                                  f"use IR names or module paths of synaptic or neuron layers "
                                  f"({', '.join(names[:12])}{', ...' if len(names) > 12 else ''}) or "
                                  f"'{ANY}' for all", EXIT_USAGE)
        for name, value in self.rates.items():
            if name != ANY and isinstance(graph.node(name), Neuron) and value > 1:
                raise SnnCompileError(f"firing rate of neuron layer {name!r} is {value} > 1",
                                      "a neuron fires at most once per step", EXIT_USAGE)

    def value(self, name: str, _seen: frozenset = frozenset()) -> float | None:
        """Mean value per element per step of node ``name``'s output, if it can be told (a
        delay passes its input's mean rate on)."""
        if name in self.rates:
            return self.rates[name]
        if name in _seen:   # a loop of sums with no neuron on it
            return None
        seen = _seen | {name}
        node = self.graph.node(name)
        if isinstance(node, Neuron):
            return self.rates.get(ANY)
        if isinstance(node, (Reshape, Delay)):
            return self.value(self.graph.inputs(name)[0], seen)
        if isinstance(node, Mask):  # a static keep-mask passes the kept fraction on average
            v = self.value(self.graph.inputs(name)[0], seen)
            return None if v is None else v * float(np.mean(node.keep))
        if isinstance(node, Add):
            parts = [self.value(s, seen) for s in self.graph.inputs(name)]
            return None if any(p is None for p in parts) else float(sum(parts))
        return None

    def layer_input(self, name: str) -> float | None:
        if name in self.rates:
            return self.rates[name]
        v = self.value(self.graph.inputs(name)[0])
        return self.rates.get(ANY) if v is None else v

    def neuron(self, name: str) -> float | None:
        if name in self.rates:
            return self.rates[name]
        # A synaptic layer reading this neuron directly (through reshapes, delays) tells its rate.
        frontier, seen = list(self.graph.users(name)), set()
        while frontier:
            user = frontier.pop()
            if user in seen:
                continue
            seen.add(user)
            node = self.graph.node(user)
            if isinstance(node, (Reshape, Delay)):
                frontier.extend(self.graph.users(user))
            elif isinstance(node, (Conv2d, Linear)) and user in self.rates:
                return self.rates[user]
        return self.rates.get(ANY)


def parse_firing_rates(text: str) -> dict[str, float]:
    """Rates from the command line: ``0.1`` (every layer), ``name=0.1,name2=0.05`` (IR names
    or module paths, ``*`` for the rest), or a JSON file: ``{"name": rate}`` or a previous
    report (``report.json`` or its ``energy`` object; its measured rates are reused)."""
    import json
    from pathlib import Path

    text = text.strip()
    if text.endswith(".json"):
        path = Path(text)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SnnCompileError(f"cannot read firing rates {path}: {exc.strerror}",
                                  "pass an existing .json file", EXIT_USAGE) from None
        except ValueError as exc:
            raise SnnCompileError(f"firing rates {path} is not JSON: {exc}", "fix the file", EXIT_USAGE) from None
        if isinstance(data, dict) and isinstance(data.get("energy"), dict):
            data = data["energy"]
        if isinstance(data, dict) and isinstance(data.get("layers"), list):
            rates = {}
            for row in data["layers"]:
                r = row.get("firing_rate_out") if row.get("op") == "neuron" else row.get("firing_rate_in")
                if r is not None:
                    rates[row.get("ir_name", row["name"])] = r
            if not rates:
                raise SnnCompileError(f"{path} holds no measured firing rates",
                                      "use a report of a run with --input", EXIT_USAGE)
            return rates
        if not isinstance(data, dict):
            raise SnnCompileError(f"firing rates {path} is not an object of name → rate",
                                  'e.g. {"sn1": 0.12, "*": 0.1}', EXIT_USAGE)
        return _checked_rates(str(path), dict(data))
    try:
        return _checked_rates("--firing-rates", {ANY: float(text)})
    except ValueError:
        pass
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            rates[key.strip()] = float(value)
        except ValueError:
            raise SnnCompileError(f"cannot read firing rate {part!r}",
                                  "use 0.1, name=0.1,name2=0.05 ('*' for the rest) or a .json file",
                                  EXIT_USAGE) from None
    if not rates:
        raise SnnCompileError("no firing rates given", "e.g. --firing-rates 0.1", EXIT_USAGE)
    return _checked_rates("--firing-rates", rates)


def _checked_rates(where: str, rates: dict) -> dict[str, float]:
    """Each rate is a spike probability per neuron and step (``schema.FIRING_RATE``)."""
    return {str(k): schema.check_value(where, f"firing rate of {k}", v, schema.FIRING_RATE,
                                       "a firing rate is spikes per neuron per step, in [0, 1]")
            for k, v in rates.items()}
