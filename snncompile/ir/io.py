"""Save and load an IR graph as one ``.npz`` file (no pickle: safe to open)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.fsutil import write_atomic
from snncompile.ir.dynamics import LEGACY_FIELDS, Dynamics, from_legacy, make, stored_fields, stored_params
from snncompile.ir.graph import IRGraph
from snncompile.ir.host import HOST_FUNCTIONS, HostFn
from snncompile.ir.nodes import NODE_TYPES, Neuron

FORMAT = "snncompile-ir/2"
OLD_FORMATS = ("snncompile-ir/1",)   # a Neuron with a ``model`` string (read by ``dynamics.from_legacy``)


def _jsonable(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_ir(graph: IRGraph, path: str | Path, write=write_atomic) -> Path:
    """Write ``graph`` to ``path`` atomically (temp file + rename), or with ``write(path, fn)``."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for name, node in graph.items():
        attrs, array_keys = {}, []
        for f in fields(node):
            value = getattr(node, f.name)
            if isinstance(value, Dynamics):   # stored by its stable name; arrays beside the others
                attrs[f.name] = {"type": value.name, "params": stored_params(value, skip=())}
                for k in stored_fields(type(value)):
                    if isinstance(getattr(value, k), np.ndarray):
                        key = f"{len(arrays)}"
                        arrays[key] = getattr(value, k)
                        array_keys.append([f"{f.name}.{k}", key])
            elif isinstance(value, HostFn):   # a host function by its name and its (scalar) fields
                attrs[f.name] = {"host_fn": value.name, "params": {k.name: _jsonable(getattr(value, k.name))
                                                                   for k in fields(value)}}
            elif isinstance(value, np.ndarray):
                key = f"{len(arrays)}"
                arrays[key] = value
                array_keys.append([f.name, key])
            else:
                attrs[f.name] = _jsonable(value)
        entries.append({"name": name, "op": node.op, "inputs": graph.inputs(name),
                        "attrs": attrs, "arrays": array_keys})
    header = {"format": FORMAT, "name": graph.name, "meta": graph.meta, "nodes": entries,
              "graph": {"input_shape": list(graph.input_shape), "step_mode": graph.step_mode,
                        "model_steps": graph.model_steps, "output_steps": graph.output_steps,
                        "output_time_reduced": graph.output_time_reduced, "facts": sorted(graph.facts),
                        "passes": list(graph.passes),
                        "patch_mask": None if graph.patch_mask is None else graph.patch_mask.tolist()}}
    arrays["__graph__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return write(path, lambda fh: np.savez_compressed(fh, **arrays))


def _neuron_kwargs(kwargs: dict) -> dict:
    """A Neuron's constructor arguments from its stored attributes: the typed dynamics
    (``dynamics.<field>`` arrays beside it), or the flat fields of the first format."""
    if isinstance(kwargs.get("dynamics"), dict):
        d = kwargs.pop("dynamics")
        params = {**d["params"], **{k.split(".", 1)[1]: kwargs.pop(k) for k in list(kwargs)
                                    if k.startswith("dynamics.")}}
        return {**kwargs, "dynamics": make(d["type"], params)}
    old = {k: kwargs.pop(k) for k in LEGACY_FIELDS if k in kwargs}
    return {**kwargs, "dynamics": from_legacy(old)}


def _host_fn(stored: dict, path: Path, name: str) -> HostFn:
    cls = HOST_FUNCTIONS.get(stored["host_fn"])
    if cls is None:
        raise SnnCompileError(f"{path}: host node `{name}` has an unknown function `{stored['host_fn']}`",
                              "re-export it with this version of snncompile", EXIT_USAGE)
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.get("params", {}).items()})


def load_ir(path: str | Path) -> IRGraph:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["__graph__"]).decode())
            stored = {k: data[k] for k in data.files if k != "__graph__"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise SnnCompileError(f"cannot read IR file {path}: {exc}",
                              "pass a file written by `snncompile ... -o DIR` (model.ir.npz)",
                              EXIT_USAGE) from None
    if header.get("format") not in (FORMAT, *OLD_FORMATS):
        raise SnnCompileError(f"{path} is not an {FORMAT} file", "re-export it", EXIT_USAGE)
    graph = IRGraph(header["name"])
    graph.meta = header.get("meta", {})
    attrs = header.get("graph", {})
    graph.input_shape = tuple(attrs.get("input_shape", graph.meta.get("input_shape", ())))
    graph.step_mode = attrs.get("step_mode", graph.meta.get("step_mode", "s"))
    graph.model_steps = attrs.get("model_steps")
    graph.output_steps = bool(attrs.get("output_steps", False))
    graph.output_time_reduced = bool(attrs.get("output_time_reduced", graph.meta.get("output_time_reduced")))
    graph.facts = set(attrs.get("facts", ["synapses_pruned"] if graph.meta.get("pruned") else []))
    graph.passes = list(attrs.get("passes", graph.meta.get("passes", [])))
    if attrs.get("patch_mask") is not None:
        graph.patch_mask = np.asarray(attrs["patch_mask"], dtype=bool)
    later: list[tuple[str, list[str]]] = []
    for e in header["nodes"]:
        cls = NODE_TYPES[e["op"]]
        kwargs = dict(e["attrs"])
        for fname, key in e["arrays"]:
            kwargs[fname] = stored[key]
        for k, v in list(kwargs.items()):
            if isinstance(v, list):
                kwargs[k] = tuple(v)
            elif isinstance(v, dict) and "host_fn" in v:
                kwargs[k] = _host_fn(v, path, e["name"])
        if cls is Neuron:
            try:
                kwargs = _neuron_kwargs(kwargs)
            except (ValueError, TypeError, KeyError) as exc:
                raise SnnCompileError(f"{path}: neuron `{e['name']}` cannot be read: {exc}",
                                      "re-export it with this version of snncompile", EXIT_USAGE) from None
        ready = all(src in graph.nx for src in e["inputs"])
        graph.add(e["name"], cls(**kwargs), e["inputs"] if ready else [])
        if not ready:   # a loop's Delay is stored before its source
            later.append((e["name"], e["inputs"]))
    for name, inputs in later:
        graph.set_inputs(name, inputs)
    return graph
