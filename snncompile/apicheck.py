"""Argument types of the Python API, checked at the call.

Every public function of :mod:`snncompile.api` checks its arguments here before any work:
a wrong type or value raises one :class:`SnnCompileError` naming the function, the argument,
what it got and what it takes, with an example, instead of a ``TypeError`` or ``KeyError``
from deep inside. Values are returned normalized (numbers as ``int``/``float``, shapes as
tuples, tensors as numpy arrays). Nothing here imports torch: a value can only be a tensor
if torch is already imported.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snncompile import schema
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.fsutil import names_folder


def _shown(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def bad(func: str, name: str, value: Any, wants: str, example: str) -> SnnCompileError:
    """The error for argument ``name`` of ``func``: what it got, what it takes, an example."""
    return SnnCompileError(f"{func}(): {name}={_shown(value)} ({type(value).__name__}) is not {wants}",
                           f"e.g. {name}={example}", EXIT_USAGE)


def is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def is_module(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def as_array(value: Any) -> np.ndarray:
    """A numpy array from an array or a (CPU or device) tensor."""
    if is_tensor(value):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _path(func: str, name: str, value: Any, example: str, what: str = "file") -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(os.fspath(value)).strip():
        raise bad(func, name, value, f"a {what} path (str or pathlib.Path)", example)
    return Path(os.fspath(value))


def _file(func: str, name: str, value: Any, example: str) -> Path:
    """A path for one output file: a name ending in a separator names a folder."""
    path = _path(func, name, value, example)
    if names_folder(os.fspath(value)):
        raise bad(func, name, value, "a file path (it ends with '/': a folder)", example)
    return path


def _number(func: str, name: str, value: Any, kind: str, lo: float, example: str, *, open_lo: bool = False,
            hi: float | None = None) -> int | float:
    what = ("an integer" if kind == "int" else "a number") + (f" > {lo:g}" if open_lo else f" >= {lo:g}")
    if hi is not None:
        what += f" and <= {hi:g}"
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (kind == "float" or v == int(v))
        ok = ok and (v > lo if open_lo else v >= lo) and (hi is None or v <= hi)
    if not ok:
        raise bad(func, name, value, what, example)
    return int(value) if kind == "int" else float(value)


def _bool(func: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise bad(func, name, value, "True or False", "True")
    return bool(value)


def _text(func: str, name: str, value: Any, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad(func, name, value, "a non-empty string", example)
    return value


def _name_or_path(func: str, name: str, value: Any, example: str) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return _text(func, name, value, example)


def _shape(func: str, name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes, Mapping)):
        raise bad(func, name, value, "a shape: a tuple of positive integers", "(1, 32, 32)")
    try:
        return schema.check_value(func, name, value, schema.Field("shape"))
    except SnnCompileError:
        raise bad(func, name, value, "a shape: a tuple of positive integers", "(1, 32, 32)") from None


def _passes(func: str, name: str, value: Any) -> list[str]:
    from snncompile.passes import PASSES

    if isinstance(value, str) or not isinstance(value, (list, tuple)) or \
            not all(isinstance(v, str) for v in value):
        raise bad(func, name, value, "a list of pass names", "['binarize', 'dead_neurons'] (or [] for none)")
    unknown = [v for v in value if v not in PASSES]
    if unknown:
        raise SnnCompileError(f"{func}(): {name} names unknown pass(es) {', '.join(map(repr, unknown))}",
                              f"choose from {', '.join(PASSES)}", EXIT_USAGE)
    return list(value)


def _arch(func: str, name: str, value: Any) -> str | Callable[[], Any]:
    if callable(value):
        return value
    if not isinstance(value, str) or not value.strip():  # the text's form is checked where it is imported
        raise bad(func, name, value, "a factory: a callable returning the nn.Module, or 'package.module:function'",
                  "make_net (a function of no arguments)")
    return value


def _firing_rates(func: str, name: str, value: Any) -> str:
    """Rates as the CLI's text (``schema.FIRING_RATE`` checks the numbers when parsed)."""
    if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool):
        return repr(schema.check_value(f"{func}()", name, value, schema.FIRING_RATE))
    if isinstance(value, Mapping) and value and all(isinstance(k, str) for k in value):
        for k, v in value.items():
            schema.check_value(f"{func}()", f"{name}[{k!r}]", v, schema.FIRING_RATE)
        return ",".join(f"{k}={float(v)!r}" for k, v in value.items())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str) and value.strip():
        return value
    raise bad(func, name, value, "a rate in [0, 1], a dict of layer name → rate, or a .json file",
              "0.1 or {'features.0': 0.2}")


def _names(func: str, name: str, value: Any, example: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value or \
            not all(isinstance(v, str) and v.strip() for v in value):
        raise bad(func, name, value, "a non-empty list of layer names", example)
    return list(value)


def _callable(func: str, name: str, value: Any, example: str) -> Callable:
    if not callable(value):
        raise bad(func, name, value, "a callable", example)
    return value


def _array_or_path(func: str, name: str, value: Any, example: str) -> Path | np.ndarray:
    if isinstance(value, np.ndarray) or is_tensor(value):
        return as_array(value)
    return _path(func, name, value, example)


def check_input(func: str, value: Any) -> Path | tuple[np.ndarray, np.ndarray | None]:
    """``input=``: a .npy/.npz/.aedat4 path, an array or tensor ``x``, a pair ``(x, y)`` with
    labels, or event recordings (a structured array with fields t, x, y, p, or a list of them)."""
    if isinstance(value, list) and value and all(_events(v) for v in value):
        return value, None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], list) and value[0] and \
            all(_events(v) for v in value[0]) and (value[1] is None or isinstance(value[1], np.ndarray)):
        return value[0], value[1]
    if isinstance(value, tuple) and len(value) == 2 and all(
            isinstance(v, np.ndarray) or is_tensor(v) or v is None for v in value) and value[0] is not None:
        return as_array(value[0]), None if value[1] is None else as_array(value[1])
    if isinstance(value, np.ndarray) or is_tensor(value):
        return as_array(value), None
    if isinstance(value, (str, os.PathLike)) and str(os.fspath(value)).strip():
        return Path(os.fspath(value))
    raise bad(func, "input", value, "a .npy/.npz/.aedat4 path, an array or tensor [N, ...] or [T, N, ...], a pair "
              "(x, y), or event recordings (a list of structured arrays)", "'inputs.npz' or x_test or (x_test, y_test)")


def _events(value: Any) -> bool:
    return isinstance(value, np.ndarray) and bool(value.dtype.names)


# Each option: how to check it (None is always allowed unless named in NOT_NONE).
_RULES: dict[str, Callable[[str, str, Any], Any]] = {
    "target": lambda f, n, v: _text(f, n, v, "'lava'"),
    "steps": lambda f, n, v: _number(f, n, v, "int", 1, "8", hi=schema.MAX_STEPS),
    "input": lambda f, n, v: check_input(f, v),
    "samples": lambda f, n, v: _number(f, n, v, "int", 1, "100"),
    "simulate_on_target": _bool,
    "outdir": lambda f, n, v: _path(f, n, v, "'out/model'", "folder"),
    "arch": _arch,
    "trust_pickle": _bool,
    "input_shape": _shape,
    "energy_model": lambda f, n, v: _name_or_path(f, n, v, "'45nm'"),
    "timeout": lambda f, n, v: _number(f, n, v, "float", 0, "900.0", open_lo=True, hi=7 * 24 * 3600.0),
    "emit": lambda f, n, v: _text(f, n, v, "'fused'"),
    "workers": lambda f, n, v: _number(f, n, v, "int", 1, "4", hi=4096),
    "ray_address": lambda f, n, v: _text(f, n, v, "'head:6379'"),
    "ray_connect_timeout": lambda f, n, v: _number(f, n, v, "float", 0, "30.0", open_lo=True, hi=3600.0),
    "progress": lambda f, n, v: _callable(f, n, v, "lambda what, done, total: None"),
    "passes": _passes,
    "masks": lambda f, n, v: _path(f, n, v, "'masks.pkl'"),
    "patch_mask": lambda f, n, v: _array_or_path(f, n, v, "'patch_mask.npy'"),
    "fixed_point": _bool,
    "chip": lambda f, n, v: _name_or_path(f, n, v, "'loihi2'"),
    "ann_sparse": _bool,
    "firing_rates": _firing_rates,
    "plot": lambda f, n, v: _file(f, n, v, "'energy.png'"),
    "output_file": lambda f, n, v: _file(f, n, v, "'model.net'"),
    "nir_dt": lambda f, n, v: _number(f, n, v, "float", 0, "0.001", open_lo=True),
    "verify_ir": _bool,
    "time_axis": lambda f, n, v: _number(f, n, v, "int", 0, "1", hi=1),
    "event_frames": lambda f, n, v: _number(f, n, v, "int", 1, "16", hi=schema.MAX_STEPS),
    "event_window": lambda f, n, v: _number(f, n, v, "float", 0, "10000 (µs)", open_lo=True),
    "event_count": lambda f, n, v: _number(f, n, v, "int", 1, "2000"),
    "plot_layers": lambda f, n, v: _names(f, n, v, "['features.2', 'classifier.2']"),
    "no_host": _bool,
    "keep_ratio": lambda f, n, v: _number(f, n, v, "float", 0, "0.7", open_lo=True, hi=1.0),
}
# Options whose absence has no meaning: None is a wrong value there, not "unset".
NOT_NONE = {"target", "simulate_on_target", "trust_pickle", "energy_model", "timeout", "fixed_point",
            "ann_sparse", "ray_connect_timeout", "verify_ir", "time_axis", "no_host"}


def check_options(func: str, values: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """``values`` checked and normalized; an unknown keyword is refused with the known ones."""
    unknown = [k for k in values if k not in known]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], known, n=1)
        guess = f"did you mean {close[0]}=? " if close else ""
        raise SnnCompileError(f"{func}(): unknown keyword argument(s) {', '.join(unknown)}",
                              f"{guess}{func}() takes {', '.join(known)}", EXIT_USAGE)
    out = {}
    for name, value in values.items():
        # every rule refuses None, so the options in NOT_NONE get the rule's own message
        out[name] = None if value is None and name not in NOT_NONE else _RULES[name](func, name, value)
    return out


def check_model(func: str, model: Any) -> Any:
    """``model``: a checkpoint or .nir path, an ``nn.Module``, or a state_dict (with ``arch``)."""
    if is_module(model) or (isinstance(model, Mapping) and model):
        return model
    if isinstance(model, (str, os.PathLike)) and str(os.fspath(model)).strip():
        return model if isinstance(model, (str, Path)) else Path(os.fspath(model))
    raise bad(func, "model", model, "a checkpoint or .nir path, an nn.Module, or a state_dict (with arch=)",
              "'model.pt' or net or (net.state_dict(), arch=make_net)")
