"""Load a checkpoint safely and return an ``nn.Module`` in eval mode plus its metadata."""

from __future__ import annotations

import importlib
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from snncompile import schema
from snncompile.errors import EXIT_UNSAFE, EXIT_USAGE, SnnCompileError
from snncompile.frontend.tensor_check import check_model, prepare_state
from snncompile.limits import check_regular_file

# Modules whose classes may be unpickled without --trust-pickle: building them runs no
# user code. Unsupported layers still load and are rejected later with a precise message.
_SAFE_PACKAGES = (
    "torch.nn.modules",
    "spikingjelly.activation_based.neuron",
    "spikingjelly.activation_based.layer",
    "spikingjelly.activation_based.surrogate",
    "spikingjelly.activation_based.base",
    "torch.nn.utils.prune",
)
_META_KEYS = ("input_shape", "steps", "T", "num_classes", "name", "patch_mask")


@dataclass
class LoadedModel:
    module: nn.Module
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)


def allowed_globals(names: list[str]) -> dict[str, type]:
    """The classes among ``names`` (a checkpoint's globals, ``module.Class``) that may be
    unpickled without --trust-pickle: defined in one of the safe packages (or a few torch and
    Python containers). Only the modules those names live in are imported: walking every
    module of the packages imported torch's symbolic shapes and sympy (~0.3–1.3 s a command)."""
    out = {}
    for name in names:
        obj = _BASE_GLOBALS.get(name) or _safe_class(name)
        if obj is not None:
            out[name] = obj
    return out


def _safe_class(name: str) -> type | None:
    package = next((p for p in _SAFE_PACKAGES if name.startswith(p + ".")), None)
    if package is None:
        return None
    module, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except Exception:   # no such module, or an optional backend (cupy, triton) that is not installed
        return None
    if isinstance(obj, type) and obj.__module__.startswith(package) and _qualname(obj) == name:
        return obj
    return None


def _qualname(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


_BASE_GLOBALS = {_qualname(c): c for c in (OrderedDict, set, torch.nn.parameter.Parameter,
                                            torch.nn.parameter.Buffer, torch.Size)}


_LEGACY_MAGIC = bytes.fromhex("6cfc9c46f9206aa85019")  # torch.save's pre-1.6 magic number, pickled


def _check_readable(path: Path, trust_pickle: bool = False) -> None:
    check_regular_file(path, "model file")
    if not path.exists():
        raise SnnCompileError(f"model file not found: {path}",
                              "check the path; a checkpoint is a file written by torch.save",
                              EXIT_USAGE)
    if path.is_dir():
        raise SnnCompileError(f"{path} is a directory, not a model file",
                              "pass the .pt file written by torch.save", EXIT_USAGE)
    if not zipfile.is_zipfile(path):
        # torch.save has written zip archives since 1.6; anything else is a pickle or corrupt
        with open(path, "rb") as fh:
            head = fh.read(16)
        if head[:1] == b"\x80" and _LEGACY_MAGIC in head:
            if trust_pickle:
                return
            raise SnnCompileError(f"{path} is in the legacy (pre-1.6, non-zip) torch.save format, which is "
                                  "read by unpickling without snncompile's allowlist",
                                  "re-save it with torch.save in a current PyTorch (where you trust the file), "
                                  "or pass --trust-pickle if you trust it", EXIT_UNSAFE)
        if head[:1] == b"\x80":
            raise SnnCompileError(f"{path} is a plain pickle file, not a torch.save checkpoint: unpickling it "
                                  "could run any code", "load it where you trust it and re-save the model with "
                                  "torch.save(model, path)", EXIT_UNSAFE)
        raise SnnCompileError(f"cannot read {path}: not a PyTorch checkpoint (corrupt or truncated?)",
                              "re-save the model with torch.save(model, path)", EXIT_USAGE)


def _torch_load(path: Path, trust_pickle: bool) -> Any:
    unsafe: list[str] = []
    allowed: dict[str, type] = {}
    if not trust_pickle:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as exc:
            raise SnnCompileError(f"cannot read {path}: {exc}",
                                  "the file is corrupt or not a PyTorch checkpoint", EXIT_USAGE) from None
        allowed = allowed_globals(unsafe)
        refused = sorted(g for g in unsafe if g not in allowed)
        if any(g.startswith("spikingjelly.") for g in refused):
            _require_spikingjelly(path)
        if refused:
            raise SnnCompileError(
                f"refusing to unpickle {path}: it references code outside torch/spikingjelly: "
                + ", ".join(refused),
                "save a state_dict and pass --arch package.module:factory, or pass "
                "--trust-pickle if you trust this file (unpickling can run arbitrary code)",
                EXIT_UNSAFE)
    try:
        if trust_pickle:
            _project_importable()  # the pickled classes live in the user's project, as for --arch
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(list(allowed.values())):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (ImportError, AttributeError) as exc:
        if not trust_pickle:
            raise _unreadable(path, exc) from None
        raise SnnCompileError(f"cannot load {path}: the model's code cannot be imported: "
                              f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}",
                              "make the module that defines the model importable (run from its project "
                              "folder, pip install -e . or PYTHONPATH), or save a state_dict and pass "
                              "--arch package.module:factory", EXIT_USAGE) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError,
            zipfile.BadZipFile) as exc:
        raise _unreadable(path, exc) from None


def _require_spikingjelly(path: Path) -> None:
    """A spikingjelly checkpoint without spikingjelly: its classes are not refused, they are missing."""
    try:
        importlib.import_module("spikingjelly")
    except ImportError:
        raise SnnCompileError(f"{path} is a spikingjelly model, but spikingjelly is not installed",
                              'run: pip install "snncompile[spikingjelly]"', EXIT_USAGE) from None


def _unreadable(path: Path, exc: Exception) -> SnnCompileError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SnnCompileError(f"cannot load {path}: {first}",
                           "the file is corrupt, or was saved by an incompatible torch; "
                           "re-save it with torch.save", EXIT_USAGE)


def _project_importable() -> None:
    """Like ``python -m``: modules of the working directory's project are importable (and
    code written for spikingjelly's legacy ``clock_driven`` package finds it)."""
    import os
    import sys

    from snncompile.frontend import legacy

    legacy.install()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefixes = ("module.", "_orig_mod.")
    out = {}
    for k, v in state.items():
        for p in prefixes:
            while k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def _arch_name(spec: Any) -> str:
    """How messages name an ``arch``: the CLI's text, or a callable's qualified name."""
    return spec if isinstance(spec, str) else getattr(spec, "__qualname__", type(spec).__name__)


def _arch_factory(spec: Any) -> Any:
    """Import ``package.module`` and return its callable ``factory`` (the API may pass the callable)."""
    if callable(spec):
        return spec
    if ":" not in spec:
        raise SnnCompileError(f"--arch {spec!r} is not of the form package.module:factory",
                              "e.g. --arch mypkg.models:make_net", EXIT_USAGE)
    mod_name, attr = spec.split(":", 1)
    _project_importable()
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise SnnCompileError(f"--arch: cannot import {mod_name}: {exc}",
                              "make the package importable (pip install -e . or PYTHONPATH)",
                              EXIT_USAGE) from None
    factory = getattr(mod, attr, None)
    if factory is None or not callable(factory):
        raise SnnCompileError(f"--arch: {mod_name} has no callable {attr!r}",
                              "name a function or class that builds the model", EXIT_USAGE)
    return factory


def _call(factory: Any, spec: str) -> Any:
    """Run the user's ``--arch`` factory; its failure is the user's to fix, not a crash."""
    try:
        return factory()
    except TypeError as exc:
        if "argument" in str(exc):
            raise SnnCompileError(f"--arch {spec} cannot be called without arguments: {exc}",
                                  "--arch takes a factory with no arguments; wrap yours, e.g. "
                                  "def make(): return Net(width=64)", EXIT_USAGE) from None
        raise _factory_failed(spec, exc) from None
    except Exception as exc:  # noqa: BLE001 - whatever the user's code raises
        raise _factory_failed(spec, exc) from None


def _factory_failed(spec: str, exc: Exception) -> SnnCompileError:
    first = (str(exc).strip().splitlines() or [""])[0]
    return SnnCompileError(f"--arch {spec} raised {type(exc).__name__}: {first}",
                           "fix the factory so it builds the model (rerun with --debug for its traceback)",
                           EXIT_USAGE)


def _checked(model: Any, spec: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise SnnCompileError(f"--arch {spec} returned {type(model).__name__}, not an nn.Module",
                              "the factory must return the (untrained) model", EXIT_USAGE)
    return model


def _on_meta(model: nn.Module) -> bool:
    """True if any tensor of the model (parameter, buffer or plain attribute) is on meta."""
    for m in model.modules():
        for t in [*m._parameters.values(), *m._buffers.values(), *m.__dict__.values()]:
            if isinstance(t, torch.Tensor) and t.is_meta:
                return True
    return False


def _build_with_state(spec: Any, state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """Build the ``--arch`` model and give it the checkpoint's weights, holding them once:
    the model is built on the meta device (no random initial weights) and takes the loaded
    tensors themselves. A model that cannot be built that way (its constructor computes
    with tensor values, or keeps tensors the checkpoint does not hold) is built normally."""
    factory = _arch_factory(spec)
    spec = _arch_name(spec)
    state = _prepare_state(prepare_state(state, path))
    try:
        with torch.device("meta"):
            model = factory()
    except Exception:  # noqa: BLE001 - any failure here means: build it the ordinary way
        model = None
    if isinstance(model, nn.Module):
        _apply_state(model, state, path, assign=True)
        if not _on_meta(model):
            return model
    model = _checked(_call(factory, spec), spec)
    _apply_state(model, state, path)
    return model


def _prepare_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = _strip_prefix(state)
    # torch.nn.utils.prune checkpoints store weight_orig + weight_mask: rebuild weight.
    for key in [k for k in state if k.endswith("_orig")]:
        base = key[: -len("_orig")]
        mask = state.get(base + "_mask")
        if mask is not None and base not in state:
            state[base] = state.pop(key) * mask
            state.pop(base + "_mask")
    return state


def _apply_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path, assign: bool = False) -> None:
    if assign:  # the model's own dtypes, as a copy into its tensors would give
        own = model.state_dict()
        state = {k: v.to(own[k].dtype) if k in own and v.dtype != own[k].dtype else v for k, v in state.items()}
    try:
        result = model.load_state_dict(state, strict=False, assign=assign)
    except RuntimeError as exc:  # size mismatches
        detail = "; ".join(ln.strip() for ln in str(exc).splitlines()[1:4])
        raise SnnCompileError(f"state_dict in {path} does not fit the --arch model: {detail}",
                              "check that --arch builds the architecture the weights came from",
                              EXIT_USAGE) from None
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append("missing " + ", ".join(result.missing_keys[:6]))
        if result.unexpected_keys:
            parts.append("unexpected " + ", ".join(result.unexpected_keys[:6]))
        raise SnnCompileError(f"state_dict in {path} does not fit the --arch model: "
                              + "; ".join(parts),
                              "check that --arch builds the architecture the weights came from",
                              EXIT_USAGE)


def load_model(path: str | Path, arch: Any = None, trust_pickle: bool = False) -> LoadedModel:
    """Load ``path`` (whole module, or state_dict + ``arch``) and put it in eval mode."""
    path = Path(path)
    _check_readable(path, trust_pickle)
    obj = _torch_load(path, trust_pickle)
    return _from_object(obj, arch, path)


def load_object(obj: Any, arch: Any = None) -> LoadedModel:
    """A model given in memory (the Python API): an ``nn.Module``, or a state_dict with
    ``arch`` (a factory callable or ``package.module:factory``). Nothing is unpickled."""
    label = Path(f"<{type(obj).__name__}>")
    return _from_object(obj, arch, label)


def _from_object(obj: Any, arch: Any, path: Path) -> LoadedModel:
    meta: dict[str, Any] = {}
    if isinstance(obj, dict) and not _is_state_dict(obj):
        meta = {k: obj[k] for k in _META_KEYS if k in obj}
        for key in ("model", "state_dict", "net", "module"):
            if key in obj:
                obj = obj[key]
                break
    if isinstance(obj, nn.Module):
        model = obj
        if arch:
            model = _build_with_state(arch, obj.state_dict(), path)
    elif _is_state_dict(obj):
        if not arch:
            raise SnnCompileError(f"{path} holds only weights (a state_dict), not a model",
                                  "pass --arch package.module:factory that builds the network (Python API: "
                                  "arch=a function that returns it)",
                                  EXIT_USAGE)
        model = _build_with_state(arch, dict(obj), path)
    else:
        raise SnnCompileError(f"{path} holds a {type(obj).__name__}, not a model or state_dict",
                              "save with torch.save(model) or torch.save({'state_dict': ...})",
                              EXIT_USAGE)
    if "T" in meta and "steps" not in meta:
        meta["steps"] = meta.pop("T")
    meta = schema.validate(f"checkpoint {path}", meta, schema.META,
                           hint="fix the metadata saved beside the model (e.g. steps=8, input_shape=(1, 8, 8)), "
                                "or re-save without it and pass --steps / --input-shape")
    check_model(model, path)
    model.eval()
    return LoadedModel(model, path, meta)
